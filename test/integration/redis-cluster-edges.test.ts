// A redis_cluster pool at the edges of a real cluster's life (3 masters, a replica each): a
// slot left half-migrated (redis answers a multi-key request there ASK, then TRYAGAIN after
// ASKING, for as long as the migration stays open), and a master that hangs and is replaced
// (redis keeps listing it as a failed master without slots until it is forgotten), and a
// master killed between two writes of one client. The client must see neither a redirection
// nor the failed node, and its writes must run in its order. A blocking command that meets ASK
// or MOVED, on a connection of the client's own, waits again at the node named, on another
// connection of its own, never on a shared connection it would block. A transaction that meets
// them runs whole at the node named; one with WATCH fails at EXEC as after a watched key changed.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { KeySlots } from "../../src/route/key-slot.ts";
import type { Backend } from "../helpers/backends.ts";
import { blocked, clientList } from "../helpers/client-list.ts";
import { exchange, RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { poolOf, readStats } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { eventually } from "../helpers/reload.ts";
import { startRedisCluster, untilRouting, type RedisCluster } from "../helpers/redis-cluster.ts";
import { command, respFrame, type Bytes } from "../helpers/resp.ts";

setDefaultTimeout(120_000);

const slots = new KeySlots();
const slotOf = (key: string): number => slots.slot(Buffer.from(key, "latin1"), 0, key.length);

describe.skipIf(TARGET !== "buncracker")("redis_cluster at the edges", () => {
  let cluster: RedisCluster;
  let proxy: RunningProxy;
  let endpoint: Endpoint;
  const metricsPort = freePort();

  async function viaProxy(...commands: Bytes[][]): Promise<string[]> {
    try {
      const replies = await exchange(endpoint, Buffer.concat(commands.map((c) => command(...c))), commands.length, respFrame);
      return replies.map((r) => r.toString("latin1"));
    } catch (err) {
      throw new Error(`${(err as Error).message}; the proxy's log:\n${proxy.stderr()}`);
    }
  }

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 1000 });
    proxy = await startProxy(
      TARGET,
      // A timeout long enough that the request's time never ends a retry first; a request cap
      // far above any request here, which adds the pool's own stats (client_buffered_bytes) to
      // the stats JSON.
      poolYaml("edge", { listen: `127.0.0.1:${freePort()}`, redis: true, distribution: "redis_cluster", timeout: 8000, client_max_request: "64mb" }, [serverLine(cluster.seeds[0]!)]),
      // /healthz: the map loads as they are now (the stats JSON is up to a report behind).
      { args: ["--metrics-port", String(metricsPort)] },
    );
    endpoint = proxy.pools.edge!;
    await untilRouting(endpoint);
  });

  afterAll(async () => {
    await proxy?.stop();
    await cluster?.stop();
  });

  test("a multi-key request in a slot left mid-migration never gets ASK or MOVED", async () => {
    const [a, absent] = ["{mig}a", "{mig}absent"];
    const slot = slotOf(a);
    const move = await cluster.slotMove(slot);
    const { source, dest } = move;
    expect(await viaProxy(["SET", a, "1"])).toEqual(["+OK\r\n"]);
    await move.begin();
    await cluster.call(source, "MIGRATE", dest.host, String(dest.port), a, "0", "5000");
    try {
      // The source has neither key (ASK); the destination, asked, lacks one of them (TRYAGAIN).
      const [mget, after] = await viaProxy(["MGET", a, absent], ["GET", a]);
      expect(mget).not.toMatch(/^-(ASK|MOVED) /);
      expect(mget).toMatch(/^-(TRYAGAIN |ERR too many cluster redirections)/);
      // The single-key read is served through ASK.
      expect(after).toBe("$1\r\n1\r\n");
    } finally {
      // Close the migration: the slot is the destination's now.
      for (const line of move.masters) await cluster.call(cluster.nodeAt(line.address), "CLUSTER", "SETSLOT", String(slot), "NODE", move.destId);
    }
  });

  test("a blocking command that meets ASK waits at the slot's destination, on a connection of the client's own", async () => {
    const queue = "{blk}q";
    const move = await cluster.slotMove(slotOf(queue));
    const destLine = move.masters.find((l) => l.id === move.destId)!;
    // A key the destination serves: its requests share the proxy's connection to it.
    const destKey = Array.from({ length: 500 }, (_, i) => `blk.dest.${i}`).find((k) => destLine.slots.some(([f, l]) => slotOf(k) >= f && slotOf(k) <= l))!;
    await move.begin();
    const blocker = await RawClient.connect(endpoint);
    try {
      // The source lacks the key: ASK. Followed on a shared connection, the BLPOP would block
      // it, and every other client's request to the destination behind it.
      await blocker.send(command("BLPOP", queue, "0"));
      expect(await viaProxy(["SET", destKey, "v"], ["GET", destKey])).toEqual(["+OK\r\n", "$1\r\nv\r\n"]);
      // The push meets ASK too, and lands where the BLPOP waits (or waits for it).
      expect(await viaProxy(["RPUSH", queue, "x"])).toEqual([":1\r\n"]);
      expect((await blocker.readReply(respFrame)).toString("latin1")).toBe(`*2\r\n$${queue.length}\r\n${queue}\r\n$1\r\nx\r\n`);
    } finally {
      blocker.close();
      // The migration is called off (no key left at the destination): STABLE clears both marks
      // and leaves the slot where it was. (SETSLOT NODE on every master here left the source's
      // replica unaware of the slot, so a later failover of that master lost it.)
      await move.cancel();
    }
  });

  test("a blocking command whose slot moves away while it waits waits again at the new owner, on a connection of the client's own", async () => {
    const queue = "{bmv}q";
    const move = await cluster.slotMove(slotOf(queue));
    const { source, dest } = move;
    const blocker = await RawClient.connect(endpoint);
    try {
      await blocker.send(command("BLPOP", queue, "0"));
      await eventually("the BLPOP blocked at its slot's owner", async () => (blocked(await clientList(source)).length > 0 ? true : undefined));
      // The slot (no key in it) moves; the source answers its blocked client MOVED (redis'
      // clusterRedirectBlockedClientIfNeeded, from its clients' cron).
      await move.begin();
      await move.finish();
      await eventually("the source let its blocked client go", async () => (blocked(await clientList(source)).length === 0 ? true : undefined));
      expect(await viaProxy(["RPUSH", queue, "y"])).toEqual([":1\r\n"]);
      expect((await blocker.readReply(respFrame)).toString("latin1")).toBe(`*2\r\n$${queue.length}\r\n${queue}\r\n$1\r\ny\r\n`);
      // It waited on a connection of its own: the destination has no blocked client left.
      expect(blocked(await clientList(dest))).toEqual([]);
    } finally {
      blocker.close();
    }
  });

  /** Moves `slot` (no key in it) from its owner to another master, as a reshard's last step
   *  does, behind the proxy's back; returns the new owner. */
  async function moveEmptySlot(slot: number): Promise<Backend> {
    const move = await cluster.slotMove(slot);
    await move.begin();
    await move.finish();
    return move.dest;
  }

  /** How often the pool has loaded its map, now (/healthz). */
  const loads = async (): Promise<number> => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    return ((await res.json()) as { pools: { cluster: { mapLoads: number } }[] }).pools[0]!.cluster.mapLoads;
  };

  /** Runs `scenario` (attempt 0, 1, 2) until it finds the pool's map stale: a scenario moves
   *  slots behind the proxy's back, then asks `stillStale()` right before sending through the
   *  map that still names the old owners, and returns false (try again, with keys of another
   *  slot) when it is not: the pool's periodic reload (every 10 s) can fall between the moves
   *  and the send on a busy machine, and the request would then never meet the redirection the
   *  test is about. */
  async function onStaleMap(scenario: (attempt: number, stillStale: () => Promise<boolean>) => Promise<boolean>): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const before = await loads();
      if (await scenario(attempt, async () => (await loads()) === before)) return;
    }
    throw new Error("the pool's map was reloaded between the slot moves and the send, 3 times in a row");
  }

  const moved = async (): Promise<number> => poolOf(await readStats(proxy.statsPort), "edge").cluster_moved as number;
  const asked = async (): Promise<number> => poolOf(await readStats(proxy.statsPort), "edge").cluster_asked as number;

  test("a transaction whose slot moved goes to the new owner whole: one reply per command, as if it had run there", async () => {
    await onStaleMap(async (attempt, stillStale) => {
      const key = `{txm${attempt}}k`;
      await moveEmptySlot(slotOf(key));
      const before = await moved();
      if (!(await stillStale())) return false;
      // The proxy's map still names the old owner: the transaction meets MOVED there.
      expect(await viaProxy(["MULTI"], ["SET", key, "1"], ["INCR", key], ["PING"], ["EXEC"], ["GET", key])).toEqual([
        "+OK\r\n",
        "+QUEUED\r\n",
        "+QUEUED\r\n",
        "+QUEUED\r\n",
        "*3\r\n+OK\r\n:2\r\n+PONG\r\n",
        "$1\r\n2\r\n",
      ]);
      // It did meet MOVED (the stats are a second behind at most).
      await eventually("the pool's count of MOVED followed to grow", async () => ((await moved()) > before ? true : undefined));
      return true;
    });
  });

  test("a transaction's commands, kept to go again on a redirection, count in the buffer budget until EXEC's reply", async () => {
    const key = "{txb}k";
    const owner = await cluster.ownerOf(slotOf(key));
    const MB = 1024 * 1024;
    const transaction = Buffer.concat([command("MULTI"), command("SET", key, "v".repeat(MB)), command("EXEC")]);
    const buffered = async (): Promise<number> => poolOf(await readStats(proxy.statsPort), "edge").client_buffered_bytes as number;
    const client = await RawClient.connect(endpoint);
    try {
      // The node processes no command for 5 s (its cluster bus goes on: no failover), so the
      // four EXECs wait there with the 4 MB of their transactions.
      await cluster.call(owner, "CLIENT", "PAUSE", "5000", "ALL");
      await client.send(Buffer.concat([transaction, transaction, transaction, transaction]));
      await eventually("the kept transactions counted as the client's", async () => ((await buffered()) >= 4 * MB ? true : undefined));
      const replies = (await client.readReplies(12, respFrame)).map(String);
      expect(replies).toEqual(Array.from({ length: 4 }, () => ["+OK\r\n", "+QUEUED\r\n", "*1\r\n+OK\r\n"]).flat());
      // Answered, they are let go: after the client's next request (the figure is refreshed as a
      // client sends) the pool holds what its read buffer grew to for a 1 MB request, not the 4 MB.
      await client.send(command("PING"));
      expect(String(await client.readReply(respFrame))).toBe("+PONG\r\n");
      await eventually("the kept bytes let go", async () => ((await buffered()) < 2 * MB ? true : undefined));
    } finally {
      client.close();
    }
    await eventually("the buffered bytes back to 0", async () => ((await buffered()) === 0 ? true : undefined));
  });

  test("a transaction in a slot being migrated, its key gone from the source, runs at the destination after ASKING", async () => {
    const key = "{txa}k";
    const move = await cluster.slotMove(slotOf(key));
    await move.begin();
    try {
      const before = await asked();
      expect(await viaProxy(["MULTI"], ["SET", key, "v"], ["APPEND", key, "w"], ["EXEC"])).toEqual(["+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n", "*2\r\n+OK\r\n:2\r\n"]);
      await eventually("the pool's count of ASK followed to grow", async () => ((await asked()) > before ? true : undefined));
    } finally {
      // The migration ends: the slot, with the key the transaction wrote there, is the destination's.
      await move.finish();
    }
    expect(await viaProxy(["GET", key])).toEqual(["$2\r\nvw\r\n"]);
  });

  test("a transaction whose keys a migration keeps split between two nodes runs nowhere: after the retries, TRYAGAIN or the proxy's error, never ASK", async () => {
    const [here, gone] = ["{txs}here", "{txs}gone"];
    const move = await cluster.slotMove(slotOf(here));
    const { source, dest } = move;
    expect(await viaProxy(["SET", here, "old"], ["SET", gone, "old"])).toEqual(["+OK\r\n", "+OK\r\n"]);
    await move.begin();
    await cluster.call(source, "MIGRATE", dest.host, String(dest.port), gone, "0", "5000");
    try {
      // The source queues the first SET (its key is there) and ASKs for the second: sent whole
      // to the destination, the transaction must not create a second `here` there. It gets
      // TRYAGAIN there, and goes again (ASK, TRYAGAIN, ...) until it has gone 16 times, as a
      // request on the shared connections does (the first test here).
      const replies = await viaProxy(["MULTI"], ["SET", here, "new"], ["SET", gone, "new"], ["EXEC"]);
      expect(replies.slice(0, 3)).toEqual(["+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n"]);
      expect(replies[3]).toMatch(/^-(TRYAGAIN |ERR too many cluster redirections)/);
    } finally {
      await cluster.call(source, "MIGRATE", dest.host, String(dest.port), here, "0", "5000");
      await move.finish();
    }
    // Nothing ran: both keys kept their values (the MIGRATE of `here` would have failed with
    // BUSYKEY had the transaction written one at the destination).
    expect(await viaProxy(["GET", here], ["GET", gone])).toEqual(["$3\r\nold\r\n", "$3\r\nold\r\n"]);
  });

  test("a WATCH transaction whose slot moves away fails as a WATCH transaction does: EXEC's null reply, nothing run", async () => {
    const key = "{txw}k";
    const client = await RawClient.connect(endpoint);
    try {
      await client.send(command("WATCH", key));
      expect((await client.readReplies(1, respFrame)).map(String)).toEqual(["+OK\r\n"]);
      // The watch cannot follow the slot: the client must read again and retry.
      await moveEmptySlot(slotOf(key));
      await client.send(Buffer.concat([command("MULTI"), command("SET", key, "mine"), command("EXEC"), command("GET", key)]));
      expect((await client.readReplies(4, respFrame)).map(String)).toEqual(["+OK\r\n", "+QUEUED\r\n", "*-1\r\n", "$-1\r\n"]);
    } finally {
      client.close();
    }
  });

  test("a WATCH that meets MOVED gets OK and its transaction fails at EXEC; a read between follows the slot; the retry runs", async () => {
    await onStaleMap(async (attempt, stillStale) => {
      const key = `{txv${attempt}}k`;
      await moveEmptySlot(slotOf(key));
      const client = await RawClient.connect(endpoint);
      try {
        if (!(await stillStale())) return false;
        // The proxy's map still names the old owner: WATCH meets MOVED there, the watch is not set.
        await client.send(Buffer.concat([command("WATCH", key), command("GET", key), command("MULTI"), command("SET", key, "lost"), command("EXEC")]));
        expect((await client.readReplies(5, respFrame)).map(String)).toEqual(["+OK\r\n", "$-1\r\n", "+OK\r\n", "+QUEUED\r\n", "*-1\r\n"]);
        // As a WATCH user does: again from the start.
        await client.send(Buffer.concat([command("WATCH", key), command("GET", key), command("MULTI"), command("SET", key, "won"), command("EXEC")]));
        expect((await client.readReplies(5, respFrame)).map(String)).toEqual(["+OK\r\n", "$-1\r\n", "+OK\r\n", "+QUEUED\r\n", "*1\r\n+OK\r\n"]);
        expect(await viaProxy(["GET", key])).toEqual(["$3\r\nwon\r\n"]);
        return true;
      } finally {
        client.close();
      }
    });
  });

  test("a WATCH whose MOVED comes after its transaction's EXEC fails that transaction only, not the client's next one", async () => {
    await onStaleMap(async (attempt, stillStale) => {
      const key = `{txl${attempt}}k`;
      const slot = slotOf(key);
      const from = await cluster.ownerOf(slot);
      const fromSlots = (await cluster.masters()).find((l) => l.address === from.address)!.slots;
      // A list on the same node, in a slot that stays there: a BLPOP on it holds the client's
      // connection to the node, and the first WATCH waits behind it.
      const queue = Array.from({ length: 2000 }, (_, i) => `txl${attempt}.q.${i}`).find((k) => slotOf(k) !== slot && fromSlots.some(([f, e]) => slotOf(k) >= f && slotOf(k) <= e))!;
      // Two slots move behind the proxy's back: the key's, and another the proxy will meet MOVED
      // for, whose map reload then tells it where the key's went.
      const to = await moveEmptySlot(slot);
      const other = Array.from({ length: 500 }, (_, i) => `txl${attempt}.other.${i}`).find((k) => slotOf(k) !== slot && slotOf(k) !== slotOf(queue))!;
      await moveEmptySlot(slotOf(other));
      const watches = async (): Promise<number> => Number(/cmdstat_watch:calls=(\d+)/.exec(String(await cluster.call(to, "INFO", "commandstats")))?.[1] ?? 0);
      const loadsBefore = await loads();
      const client = await RawClient.connect(endpoint);
      try {
        if (!(await stillStale())) return false;
        // The first transaction (WATCH at once, the rest whole at EXEC) waits behind the BLPOP on
        // the old owner, and meets MOVED there once the BLPOP times out.
        await client.send(Buffer.concat([command("BLPOP", queue, "3"), command("WATCH", key), command("MULTI"), command("SET", key, "first"), command("EXEC")]));
        expect(await viaProxy(["GET", other])).toEqual(["$-1\r\n"]);
        await eventually("the pool's map reloaded after the other key's MOVED", async () => ((await loads()) > loadsBefore ? true : undefined));
        // Meanwhile the next transaction's WATCH goes to the key's new owner, and is set there.
        const watchesBefore = await watches();
        await client.send(command("WATCH", key));
        await eventually("the second WATCH to reach the new owner", async () => ((await watches()) > watchesBefore ? true : undefined));
        expect((await client.readReplies(6, respFrame)).map(String)).toEqual(["*-1\r\n", "+OK\r\n", "+OK\r\n", "+QUEUED\r\n", "*-1\r\n", "+OK\r\n"]);
        // Nobody changed the key since the second WATCH: its transaction runs.
        await client.send(Buffer.concat([command("MULTI"), command("SET", key, "second"), command("EXEC")]));
        expect((await client.readReplies(3, respFrame)).map(String)).toEqual(["+OK\r\n", "+QUEUED\r\n", "*1\r\n+OK\r\n"]);
      } finally {
        client.close();
      }
      expect(await viaProxy(["GET", key])).toEqual(["$6\r\nsecond\r\n"]);
      return true;
    });
  });

  test("a WATCH whose MOVED comes after the client's next WATCH, on the same node, fails its own transaction only", async () => {
    await onStaleMap(async (attempt, stillStale) => {
      const key = `{txn${attempt}}k`;
      const slot = slotOf(key);
      const from = await cluster.ownerOf(slot);
      const fromSlots = (await cluster.masters()).find((l) => l.address === from.address)!.slots;
      // The next transaction's key stays on the old owner: its WATCH goes on the connection the
      // first transaction's requests are still on.
      const stays = Array.from({ length: 2000 }, (_, i) => `txn${attempt}.s.${i}`).find((k) => slotOf(k) !== slot && fromSlots.some(([f, e]) => slotOf(k) >= f && slotOf(k) <= e))!;
      await moveEmptySlot(slot);
      const client = await RawClient.connect(endpoint);
      try {
        if (!(await stillStale())) return false;
        // One write: the second WATCH is planned before the old owner's MOVED for the first.
        await client.send(Buffer.concat([command("WATCH", key), command("MULTI"), command("SET", key, "first"), command("EXEC"), command("WATCH", stays)]));
        expect((await client.readReplies(5, respFrame)).map(String)).toEqual(["+OK\r\n", "+OK\r\n", "+QUEUED\r\n", "*-1\r\n", "+OK\r\n"]);
        // Nobody changed `stays` since its WATCH: its transaction runs.
        await client.send(Buffer.concat([command("MULTI"), command("SET", stays, "second"), command("EXEC")]));
        expect((await client.readReplies(3, respFrame)).map(String)).toEqual(["+OK\r\n", "+QUEUED\r\n", "*1\r\n+OK\r\n"]);
      } finally {
        client.close();
      }
      expect(await viaProxy(["GET", stays])).toEqual(["$6\r\nsecond\r\n"]);
      return true;
    });
  });

  test("a request sent again after MOVED is answered in the protocol it was sent in, not that of a HELLO 3 right after it", async () => {
    await onStaleMap(async (attempt, stillStale) => {
      const hash = `{hlm${attempt}}h`;
      const to = await moveEmptySlot(slotOf(hash));
      await cluster.call(to, "HSET", hash, "f", "v");
      // One write: the HELLO 3 is answered before the old owner's MOVED for the HGETALL comes.
      const client = await RawClient.connect(endpoint);
      try {
        if (!(await stillStale())) return false;
        await client.send(Buffer.concat([command("HGETALL", hash), command("HELLO", "3")]));
        const [hgetall] = (await client.readReplies(2, respFrame)).map(String);
        expect(hgetall).toBe("*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
      } finally {
        client.close();
      }
      return true;
    });
  });

  test("a transaction sent again after MOVED does not end the watches of the client's next transaction at the node named", async () => {
    await onStaleMap(async (attempt, stillStale) => {
      const key = `{txw${attempt}}k`;
      const to = await moveEmptySlot(slotOf(key));
      const toSlots = (await cluster.masters()).find((l) => l.address === to.address)!.slots;
      // The next transaction watches a key of the node the first one moved to.
      const watched = Array.from({ length: 2000 }, (_, i) => `txw${attempt}.w.${i}`).find((k) => slotOf(k) !== slotOf(key) && toSlots.some(([f, e]) => slotOf(k) >= f && slotOf(k) <= e))!;
      const client = await RawClient.connect(endpoint);
      try {
        if (!(await stillStale())) return false;
        // One write: the WATCH is at the new owner before the first transaction, MOVED there by
        // the old owner, is sent to it again.
        await client.send(Buffer.concat([command("MULTI"), command("SET", key, "first"), command("EXEC"), command("WATCH", watched)]));
        expect((await client.readReplies(4, respFrame)).map(String)).toEqual(["+OK\r\n", "+QUEUED\r\n", "*1\r\n+OK\r\n", "+OK\r\n"]);
        // Another client changes the watched key: the transaction must fail.
        expect(await viaProxy(["SET", watched, "theirs"])).toEqual(["+OK\r\n"]);
        await client.send(Buffer.concat([command("MULTI"), command("SET", watched, "mine"), command("EXEC")]));
        expect((await client.readReplies(3, respFrame)).map(String)).toEqual(["+OK\r\n", "+QUEUED\r\n", "*-1\r\n"]);
      } finally {
        client.close();
      }
      expect(await viaProxy(["GET", watched], ["GET", key])).toEqual(["$6\r\ntheirs\r\n", "$5\r\nfirst\r\n"]);
      return true;
    });
  });

  test("after a master hangs and is replaced, whole-pool commands leave it out", async () => {
    // A hung master (SIGSTOP: connections are accepted, nothing is answered), as a host that
    // stops answering: the cluster fails it over, and keeps listing it as a failed master
    // without slots. A pool without `timeout` waits for its servers as long as they take.
    const lines = await cluster.nodeLines(cluster.nodeAt(cluster.seeds[0]!));
    const victimLine = lines.find((l) => l.masterId === "-" && l.slots.length > 0 && l.address !== cluster.seeds[0] && lines.some((r) => r.masterId === l.id))!;
    const victim = cluster.nodeAt(victimLine.address);
    const replica = lines.find((l) => l.masterId === victimLine.id)!;
    const key = Array.from({ length: 100 }, (_, i) => `hung${i}`).find((k) => victimLine.slots.some(([f, l]) => slotOf(k) >= f && slotOf(k) <= l))!;
    const patient = await startProxy(
      TARGET,
      poolYaml("patient", { listen: `127.0.0.1:${freePort()}`, redis: true, distribution: "redis_cluster" }, [serverLine(cluster.seeds[0]!)]),
    );
    try {
      await untilRouting(patient.pools.patient!);
      await victim.process.freeze();
      // Until the replica is promoted, as a live node sees it.
      for (let i = 0; ; i++) {
        const view = await cluster.nodeLines(cluster.nodeAt(cluster.seeds[0]!));
        if (view.find((l) => l.id === replica.id)!.masterId === "-" && view.find((l) => l.id === victimLine.id)!.flags.includes("fail")) break;
        if (i > 300) throw new Error("the replica is not promoted");
        await Bun.sleep(100);
      }
      // Until the pool's map is the promoted replica's (its periodic reload: nothing else asks).
      const epoch = Number(/cluster_current_epoch:(\d+)/.exec(String(await cluster.call(cluster.nodeAt(cluster.seeds[0]!), "CLUSTER", "INFO")))![1]);
      for (let i = 0; ; i++) {
        const doc = poolOf(await readStats(patient.statsPort), "patient");
        if ((doc.cluster_epoch as number) >= epoch) break;
        if (i > 300) throw new Error(`the pool's map stays at epoch ${String(doc.cluster_epoch)}`);
        await Bun.sleep(100);
      }
      const [reply] = await exchange(patient.pools.patient!, command("SET", key, "again"), 1, respFrame);
      expect(reply!.toString()).toBe("+OK\r\n");
      // Whole-pool commands go to the masters that serve slots: none waits on the hung node.
      const replies = await exchange(patient.pools.patient!, Buffer.concat([command("DBSIZE"), command("INFO", "keyspace"), command("GET", key)]), 3, respFrame);
      expect(replies[0]!.toString()).toMatch(/^:\d+\r\n$/);
      expect(replies[1]!.toString()).toStartWith("$");
      expect(replies[2]!.toString()).toBe("$5\r\nagain\r\n");
    } finally {
      await patient.stop();
      await victim.kill();
    }
  });

  test("a client's two writes to one key, around its master's death, run in the client's order", async () => {
    // The first write finds the master dead (refused: never sent), and waits to go again while
    // the cluster fails the master over; the second, sent once the replica is promoted, must
    // not overtake it.
    const lines = await cluster.nodeLines(cluster.nodeAt(cluster.seeds[0]!));
    const victimLine = lines.find((l) => l.masterId === "-" && l.slots.length > 0 && l.address !== cluster.seeds[0] && lines.some((r) => r.masterId === l.id && !r.flags.includes("fail")))!;
    const replica = lines.find((l) => l.masterId === victimLine.id && !l.flags.includes("fail"))!;
    const key = Array.from({ length: 100 }, (_, i) => `order${i}`).find((k) => victimLine.slots.some(([f, l]) => slotOf(k) >= f && slotOf(k) <= l))!;
    const resent = async (): Promise<number> => poolOf(await readStats(proxy.statsPort), "edge").cluster_resent_lost as number;
    const client = await RawClient.connect(endpoint);
    try {
      await client.send(command("GET", key));
      await client.readReplies(1, respFrame);
      await cluster.nodeAt(victimLine.address).kill();
      const before = await resent();
      await client.send(command("SET", key, "first"));
      // Until the first write has gone again (to the dead master) several times.
      for (let i = 0; (await resent()) < before + 12; i++) {
        if (i > 500) throw new Error("the write is not sent again");
        await Bun.sleep(20);
      }
      for (let i = 0; ; i++) {
        const view = await cluster.nodeLines(cluster.nodeAt(cluster.seeds[0]!));
        if (view.find((l) => l.id === replica.id)!.masterId === "-") break;
        if (i > 500) throw new Error("the replica is not promoted");
        await Bun.sleep(20);
      }
      await client.send(command("SET", key, "second"));
      expect((await client.readReplies(2, respFrame)).map(String)).toEqual(["+OK\r\n", "+OK\r\n"]);
      await client.send(command("GET", key));
      expect(String((await client.readReplies(1, respFrame))[0])).toBe("$6\r\nsecond\r\n");
    } finally {
      client.close();
    }
  });
});
