// Shard channels (SSUBSCRIBE) through a redis_cluster pool while their slot changes owner, over
// a real cluster (3 masters, a replica each). A node that gives a slot away (a reshard's
// CLUSTER SETSLOT ... NODE, or CLUSTER FAILOVER of its master) ends every subscription to that
// slot's shard channels with an unsolicited `sunsubscribe <channel> <count>` (redis 7.0
// cluster.c removeChannelsInSlot). The client must get it as redis would send it (with its own
// count), stay connected with its other subscriptions, and may subscribe again: the SSUBSCRIBE
// goes to the slot's new owner (a node's MOVED to it is followed, never passed on). The unasked
// message must never be taken for the reply to a request the client has on its way. Each case
// first checks, on a direct connection to the node, that redis did send the message.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { KeySlots } from "../../src/route/key-slot.ts";
import type { Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { poolOf, readStats } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { unreadBytes } from "../helpers/procfs.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { startRedisCluster, untilRouting, type RedisCluster } from "../helpers/redis-cluster.ts";
import { command, respFrame, type Bytes } from "../helpers/resp.ts";

setDefaultTimeout(120_000);

const slots = new KeySlots();
const slotOf = (key: string): number => slots.slot(Buffer.from(key, "latin1"), 0, key.length);

/** A confirmation or a message as redis writes it (RESP2 `*`, RESP3 `>`). */
const pushed = (type: "*" | ">", word: string, name: string, last: string | number): string =>
  `${type}3\r\n$${word.length}\r\n${word}\r\n$${name.length}\r\n${name}\r\n` +
  (typeof last === "number" ? `:${last}\r\n` : `$${last.length}\r\n${last}\r\n`);

describe.skipIf(TARGET !== "buncracker")("redis_cluster shard channels whose slot moves", () => {
  let cluster: RedisCluster;
  let proxy: RunningProxy;
  let endpoint: Endpoint;

  beforeAll(async () => {
    cluster = await startRedisCluster();
    proxy = await startProxy(
      TARGET,
      poolYaml("shard", { listen: `127.0.0.1:${freePort()}`, redis: true, distribution: "redis_cluster", timeout: 5000 }, [serverLine(cluster.seeds[0]!)]),
    );
    endpoint = proxy.pools.shard!;
    await untilRouting(endpoint);
  });

  afterAll(async () => {
    await proxy?.stop();
    await cluster?.stop();
  });

  /** A name of the form `prefix:i` whose slot `owner` serves and that none of `not` has. */
  async function channelOn(owner: Backend, prefix: string, not: readonly string[] = []): Promise<string> {
    const line = (await cluster.masters()).find((l) => l.address === owner.address)!;
    const taken = new Set(not.map(slotOf));
    for (let i = 0; ; i++) {
      const name = `${prefix}:${i}`;
      const slot = slotOf(name);
      if (!taken.has(slot) && line.slots.some(([a, b]) => slot >= a && slot <= b)) return name;
    }
  }

  /** Moves `slot` (holding no keys) from its owner to another master, as redis-cli --cluster
   *  does: IMPORTING, MIGRATING, then NODE on the destination and on the other masters.
   *  `atSource` replaces the source's own SETSLOT NODE (it is sent the command to send). */
  async function moveSlot(slot: number, atSource?: (source: Backend, setslot: Buffer) => Promise<void>): Promise<Backend> {
    const move = await cluster.slotMove(slot);
    const { source, destId } = move;
    await move.begin();
    const setslot = command("CLUSTER", "SETSLOT", String(slot), "NODE", destId);
    if (atSource !== undefined) await atSource(source, setslot);
    else await cluster.call(source, "CLUSTER", "SETSLOT", String(slot), "NODE", destId);
    for (const line of move.masters) if (line.id !== move.sourceId) await cluster.call(cluster.nodeAt(line.address), "CLUSTER", "SETSLOT", String(slot), "NODE", destId);
    return move.dest;
  }

  /** The node's own SETSLOT NODE (`setslot`) and then `requests` from each of `clients` reach
   *  `node` while it is stopped; it reads them in that order once it runs again, so the
   *  message that ends its subscriptions comes before their replies. */
  async function whileStopped(node: Backend, setslot: Buffer, clients: RawClient[], requests: Bytes[][]): Promise<void> {
    const admin = await RawClient.connect(node);
    try {
      // Accepted and read from before the node stops (a connection accepted after it runs
      // again would be read from only on its next turn, after the clients').
      await send(admin, ["PING"]);
      expect(await read(admin, 1)).toEqual(["+PONG\r\n"]);
      await node.process.freeze();
      const bytes = Buffer.concat(requests.map((r) => command(...r)));
      let unread = setslot.length;
      await admin.send(setslot);
      for (const c of clients) {
        await c.send(bytes);
        unread += bytes.length;
        // Until they wait in the node's socket (through the proxy: its own requests, as long).
        while (unreadBytes(node.port) < unread) await Bun.sleep(2);
      }
      node.process.signal("SIGCONT");
      expect(await read(admin, 1)).toEqual(["+OK\r\n"]);
    } finally {
      node.process.signal("SIGCONT");
      admin.close();
    }
  }

  async function send(client: RawClient, ...commands: Bytes[][]): Promise<void> {
    await client.send(Buffer.concat(commands.map((c) => command(...c))));
  }

  async function read(client: RawClient, n: number): Promise<string[]> {
    try {
      return (await client.readReplies(n, respFrame)).map((r) => r.toString("latin1"));
    } catch (error) {
      throw new Error(`${(error as Error).message}\nthe proxy's log:\n${proxy.stderr().slice(-2000)}`);
    }
  }

  async function spublish(channel: string, message: string): Promise<string> {
    const client = await RawClient.connect(endpoint);
    try {
      await send(client, ["SPUBLISH", channel, message]);
      return (await read(client, 1))[0]!;
    } finally {
      client.close();
    }
  }

  test("a slot that moves away: its shard channel's subscription ends as redis ends it, the others stay, and it can be subscribed again", async () => {
    const source = await cluster.ownerOf(slotOf("moving:0"));
    const x = await channelOn(source, "moving");
    const kept = await channelOn(source, "kept", [x]);
    const direct = await RawClient.connect(source);
    const resp2 = await RawClient.connect(endpoint);
    const resp3 = await RawClient.connect(endpoint);
    try {
      await send(direct, ["SSUBSCRIBE", x]);
      await read(direct, 1);
      await send(resp2, ["SSUBSCRIBE", x, kept]);
      expect(await read(resp2, 2)).toEqual([pushed("*", "ssubscribe", x, 1), pushed("*", "ssubscribe", kept, 2)]);
      await send(resp3, ["HELLO", "3"], ["SSUBSCRIBE", x]);
      expect((await read(resp3, 2))[1]).toBe(pushed(">", "ssubscribe", x, 1));

      await moveSlot(slotOf(x));
      // What redis tells a client of its own.
      expect(await read(direct, 1)).toEqual([pushed("*", "sunsubscribe", x, 0)]);
      // The same through the proxy, with each client's own count.
      expect(await read(resp2, 1)).toEqual([pushed("*", "sunsubscribe", x, 1)]);
      expect(await read(resp3, 1)).toEqual([pushed(">", "sunsubscribe", x, 0)]);
      // The other subscription on that node is still there.
      expect(await spublish(kept, "still")).toBe(":1\r\n");
      expect(await read(resp2, 1)).toEqual([pushed("*", "smessage", kept, "still")]);
      // Subscribed again: on the slot's new owner (the proxy's map may still name the old one).
      await send(resp2, ["SSUBSCRIBE", x]);
      expect(await read(resp2, 1)).toEqual([pushed("*", "ssubscribe", x, 2)]);
      expect(await spublish(x, "moved")).toBe(":1\r\n");
      expect(await read(resp2, 1)).toEqual([pushed("*", "smessage", x, "moved")]);
      // And the RESP3 client, which had nothing left, is out of subscribed mode but connected.
      await send(resp3, ["PING"]);
      expect(await read(resp3, 1)).toEqual(["+PONG\r\n"]);
    } finally {
      direct.close();
      resp2.close();
      resp3.close();
    }
  });

  test("the node's message comes while an SSUBSCRIBE and an SUNSUBSCRIBE are on their way: each request gets its own reply, then the message", async () => {
    const source = await cluster.ownerOf(slotOf("pending:0"));
    const x = await channelOn(source, "pending");
    const kept = await channelOn(source, "stay", [x]);
    const y = await channelOn(source, "late", [x, kept]);
    const direct = await RawClient.connect(source);
    const client = await RawClient.connect(endpoint);
    try {
      await send(direct, ["SSUBSCRIBE", x]);
      await read(direct, 1);
      await send(client, ["SSUBSCRIBE", x, kept]);
      await read(client, 2);
      await moveSlot(slotOf(x), (node, setslot) => whileStopped(node, setslot, [direct, client], [["SSUBSCRIBE", y], ["SUNSUBSCRIBE", kept]]));
      // The node's order, to a client of its own.
      expect(await read(direct, 3)).toEqual([
        pushed("*", "sunsubscribe", x, 0),
        pushed("*", "ssubscribe", y, 1),
        pushed("*", "sunsubscribe", kept, 1),
      ]);
      // Through the proxy: its replies first (counts as the client's state went), then the message.
      expect(await read(client, 3)).toEqual([
        pushed("*", "ssubscribe", y, 3),
        pushed("*", "sunsubscribe", kept, 2),
        pushed("*", "sunsubscribe", x, 1),
      ]);
      // Heard by both (the direct client subscribed y too).
      expect(await spublish(y, "after")).toBe(":2\r\n");
      expect(await read(client, 1)).toEqual([pushed("*", "smessage", y, "after")]);
      expect(await read(direct, 1)).toEqual([pushed("*", "smessage", y, "after")]);
      // x is no longer the client's: unsubscribing it sends nothing up and counts what is left.
      await send(client, ["SUNSUBSCRIBE", x], ["SUNSUBSCRIBE"]);
      expect(await read(client, 2)).toEqual([pushed("*", "sunsubscribe", x, 1), pushed("*", "sunsubscribe", y, 0)]);
    } finally {
      direct.close();
      client.close();
    }
  });

  test("the node's message comes while the client's own SUNSUBSCRIBE of that channel is on its way: one confirmation, nothing more", async () => {
    const source = await cluster.ownerOf(slotOf("crossed:0"));
    const x = await channelOn(source, "crossed");
    const direct = await RawClient.connect(source);
    const client = await RawClient.connect(endpoint);
    try {
      await send(direct, ["SSUBSCRIBE", x]);
      await read(direct, 1);
      await send(client, ["SSUBSCRIBE", x]);
      await read(client, 1);
      await moveSlot(slotOf(x), (node, setslot) => whileStopped(node, setslot, [direct, client], [["SUNSUBSCRIBE", x]]));
      // A client of its own gets the node's message, then a MOVED for its request (the node no
      // longer serves the slot).
      const [ended, moved] = await read(direct, 2);
      expect(ended).toBe(pushed("*", "sunsubscribe", x, 0));
      expect(moved).toStartWith(`-MOVED ${slotOf(x)} `);
      // Through the proxy the client asked for one confirmation and gets it, and nothing else
      // (the MOVED answers nothing now); it is out of subscribed mode.
      expect(await read(client, 1)).toEqual([pushed("*", "sunsubscribe", x, 0)]);
      await send(client, ["PING"]);
      expect(await read(client, 1)).toEqual(["+PONG\r\n"]);
    } finally {
      direct.close();
      client.close();
    }
  });

  /** cluster-node-timeout on every node (a node stopped for longer would be failed over). */
  async function nodeTimeout(ms: number): Promise<void> {
    for (const node of cluster.nodes) await cluster.call(node, "CONFIG", "SET", "cluster-node-timeout", String(ms));
  }

  /** Resolves once the proxy's slot map was read at `epoch` or later (its cluster_epoch gauge). */
  async function mapAtEpoch(epoch: number): Promise<void> {
    const deadline = Date.now() + 60_000;
    while ((poolOf(await readStats(proxy.statsPort), "shard").cluster_epoch as number) < epoch) {
      if (Date.now() > deadline) throw new Error(`the proxy's slot map is not at epoch ${epoch} after 60 s`);
      await Bun.sleep(100);
    }
  }

  test("the old node's sunsubscribe comes after the client subscribed again on the new one: it ends nothing of the client's", async () => {
    const source = await cluster.ownerOf(slotOf("again:0"));
    const x = await channelOn(source, "again");
    const other = await channelOn(source, "there", [x]);
    const client = await RawClient.connect(endpoint);
    const admin = await RawClient.connect(source);
    await nodeTimeout(60_000);
    try {
      await send(client, ["SSUBSCRIBE", x]);
      expect(await read(client, 1)).toEqual([pushed("*", "ssubscribe", x, 1)]);
      // The slot moves while its old owner is stopped: every other node knows, and so does the
      // proxy's map; the old owner still holds the client's subscription.
      const move = await cluster.slotMove(slotOf(x));
      await move.begin();
      await send(admin, ["PING"]);
      expect(await read(admin, 1)).toEqual(["+PONG\r\n"]);
      await source.process.freeze();
      await send(admin, ["CLUSTER", "SETSLOT", String(slotOf(x)), "NODE", move.destId]);
      for (const line of move.masters) if (line.id !== move.sourceId) await cluster.call(cluster.nodeAt(line.address), "CLUSTER", "SETSLOT", String(slotOf(x)), "NODE", move.destId);
      const info = String(await cluster.call(move.dest, "CLUSTER", "INFO"));
      await mapAtEpoch(Number(/cluster_current_epoch:(\d+)/.exec(info)![1]));
      // The client lets go of the channel and subscribes to it again: on the new owner.
      await send(client, ["SUNSUBSCRIBE", x], ["SSUBSCRIBE", x]);
      expect(await read(client, 2)).toEqual([pushed("*", "sunsubscribe", x, 0), pushed("*", "ssubscribe", x, 1)]);
      // The old owner runs again, learns the slot is gone and ends what it held: the client's
      // first subscription, which the client ended already.
      source.process.signal("SIGCONT");
      expect(await read(admin, 1)).toEqual(["+OK\r\n"]);
      // Its message came on the client's connection to the old owner before this reply.
      await send(client, ["SSUBSCRIBE", other]);
      expect(await read(client, 1)).toEqual([pushed("*", "ssubscribe", other, 2)]);
      expect(await spublish(x, "kept")).toBe(":1\r\n");
      expect(await read(client, 1)).toEqual([pushed("*", "smessage", x, "kept")]);
      await send(client, ["SUNSUBSCRIBE"]);
      expect(await read(client, 2)).toEqual([pushed("*", "sunsubscribe", x, 1), pushed("*", "sunsubscribe", other, 0)]);
    } finally {
      source.process.signal("SIGCONT");
      admin.close();
      client.close();
      await nodeTimeout(2000);
    }
  });

  test("an SSUBSCRIBE to a slot the proxy's map still gives to its old owner goes to the new one", async () => {
    const source = await cluster.ownerOf(slotOf("fresh:0"));
    const x = await channelOn(source, "fresh");
    await moveSlot(slotOf(x));
    const client = await RawClient.connect(endpoint);
    try {
      await send(client, ["SSUBSCRIBE", x]);
      expect(await read(client, 1)).toEqual([pushed("*", "ssubscribe", x, 1)]);
      expect(await spublish(x, "there")).toBe(":1\r\n");
      expect(await read(client, 1)).toEqual([pushed("*", "smessage", x, "there")]);
    } finally {
      client.close();
    }
  });

  /** CLUSTER FAILOVER until `replica` is a master: a manual failover gives up after 5 s when the
   *  replica does not catch up (a busy machine), and redis then says nothing. */
  async function failOverTo(replica: Backend): Promise<void> {
    const promoted = async (): Promise<boolean> => (await cluster.nodeLines(replica)).find((l) => l.flags.includes("myself"))!.flags.includes("master");
    for (let attempt = 0; attempt < 5; attempt++) {
      await cluster.call(replica, "CLUSTER", "FAILOVER");
      for (let i = 0; i < 200; i++) {
        if (await promoted()) return;
        await Bun.sleep(50);
      }
    }
    throw new Error(`${replica.address} is not promoted after 5 CLUSTER FAILOVERs`);
  }

  test("CLUSTER FAILOVER of the channel's master: the subscription ends as redis ends it, and can be made again on the new master", async () => {
    const lines = await cluster.nodeLines(cluster.nodes[0]!);
    const masterLine = lines.find((l) => l.masterId === "-" && l.slots.length > 0 && lines.some((r) => r.masterId === l.id))!;
    const master = cluster.nodeAt(masterLine.address);
    const replica = cluster.nodeAt(lines.find((l) => l.masterId === masterLine.id)!.address);
    const x = await channelOn(master, "failover");
    const direct = await RawClient.connect(master);
    const client = await RawClient.connect(endpoint);
    try {
      await send(direct, ["SSUBSCRIBE", x]);
      await read(direct, 1);
      await send(client, ["SSUBSCRIBE", x]);
      expect(await read(client, 1)).toEqual([pushed("*", "ssubscribe", x, 1)]);
      await failOverTo(replica);
      expect(await read(direct, 1)).toEqual([pushed("*", "sunsubscribe", x, 0)]);
      expect(await read(client, 1)).toEqual([pushed("*", "sunsubscribe", x, 0)]);
      await cluster.waitHealthy();
      await send(client, ["SSUBSCRIBE", x]);
      expect(await read(client, 1)).toEqual([pushed("*", "ssubscribe", x, 1)]);
      // Wherever the stale map sent the SSUBSCRIBE (a replica serves its master's shard channels),
      // the message comes; SPUBLISH counts the receivers on the node it reached.
      expect(await spublish(x, "new master")).toBeOneOf([":0\r\n", ":1\r\n"]);
      expect(await read(client, 1)).toEqual([pushed("*", "smessage", x, "new master")]);
    } finally {
      direct.close();
      client.close();
    }
  });
});
