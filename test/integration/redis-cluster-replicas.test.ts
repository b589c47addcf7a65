// read_from in a redis_cluster pool, on a real cluster (3 masters with 2 replicas each): reads
// go round robin to the slot's replicas (READONLY connections), writes to the masters, as each
// node's own INFO commandstats counts them; a replica whose view is newer than the proxy's map
// answers MOVED, followed without the client seeing it; with a shard's replicas dead,
// prefer-replica reads from its master and replica says no replica serves it.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { KeySlots } from "../../src/route/key-slot.ts";
import type { Backend } from "../helpers/backends.ts";
import { exchange, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { startRedisCluster, untilRouting, type NodeLine, type RedisCluster } from "../helpers/redis-cluster.ts";
import { command, decode, respFrame, type Bytes } from "../helpers/resp.ts";

setDefaultTimeout(120_000);

const slots = new KeySlots();
const slotOf = (key: string): number => slots.slot(Buffer.from(key, "latin1"), 0, key.length);

/** A key (prefix + a number) whose slot is `slot`. */
function keyIn(slot: number, prefix: string): string {
  for (let i = 0; ; i++) if (slotOf(`${prefix}${i}`) === slot) return `${prefix}${i}`;
}

const KEYS = Array.from({ length: 300 }, (_, i) => `r:${i}`);
const valueOf = (key: string): string => `value of ${key}`;

describe.skipIf(TARGET !== "buncracker")("redis_cluster read_from", () => {
  let cluster: RedisCluster;
  let proxy: RunningProxy;
  let reads: Endpoint;
  let prefer: Endpoint;
  const metricsPort = freePort();

  const nodeAt = (address: string): Backend => cluster.nodes.find((n) => n.address === address)!;

  /** Masters (by their first slot) and their replicas, as CLUSTER NODES says. */
  async function shards(): Promise<{ master: NodeLine; replicas: NodeLine[] }[]> {
    const lines = await cluster.nodeLines(cluster.nodes.find((n) => n.process.running)!);
    return lines
      .filter((l) => l.masterId === "-" && l.slots.length > 0)
      .sort((a, b) => a.slots[0]![0] - b.slots[0]![0])
      .map((master) => ({ master, replicas: lines.filter((l) => l.masterId === master.id) }));
  }

  /** calls= of `command` in the node's INFO commandstats (0 when never called). */
  async function calls(node: Backend, name: string): Promise<number> {
    const text = String(await cluster.call(node, "INFO", "commandstats"));
    const match = new RegExp(`cmdstat_${name}:calls=(\\d+),`).exec(text);
    return match === null ? 0 : Number(match[1]);
  }

  async function resetStats(): Promise<void> {
    await Promise.all(cluster.nodes.filter((n) => n.process.running).map((n) => cluster.call(n, "CONFIG", "RESETSTAT")));
  }

  /** The replies to `commands`; a connection the proxy closes fails the test with its log. */
  async function send(endpoint: Endpoint, ...commands: Bytes[][]): Promise<Buffer[]> {
    try {
      return await exchange(endpoint, Buffer.concat(commands.map((c) => command(...c))), commands.length, respFrame);
    } catch (err) {
      throw new Error(`${(err as Error).message}; the proxy's log:\n${proxy.stderr()}`);
    }
  }

  async function moved(): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    return (await res.json()).pools[0].cluster.moved;
  }

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 2 });
    // A master left without replicas must stay so (the last test kills a shard's replicas).
    await Promise.all(cluster.nodes.map((n) => cluster.call(n, "CONFIG", "SET", "cluster-allow-replica-migration", "no")));
    const seeds = [serverLine(cluster.seeds[0]!)];
    const settings = { redis: true, distribution: "redis_cluster", timeout: 4000 };
    proxy = await startProxy(
      TARGET,
      poolYaml("reads", { listen: `127.0.0.1:${freePort()}`, ...settings, read_from: "replica" }, seeds) +
        poolYaml("prefer", { listen: `127.0.0.1:${freePort()}`, ...settings, read_from: "prefer-replica" }, seeds),
      { args: ["--metrics-port", String(metricsPort)] },
    );
    reads = proxy.pools.reads!;
    prefer = proxy.pools.prefer!;
    await untilRouting(reads);
    await untilRouting(prefer);
    const acks = await send(reads, ...KEYS.map((k) => ["SET", k, valueOf(k)]));
    expect(acks.map(String)).toEqual(KEYS.map(() => "+OK\r\n"));
    // Replication is asynchronous: until every replica has every key.
    for (const { master } of await shards()) {
      const replies = await exchange({ host: "127.0.0.1", port: master.port }, command("WAIT", "2", "5000"), 1, respFrame);
      expect(decode(replies[0]!)).toBe(2);
    }
  });

  afterAll(async () => {
    await proxy?.stop();
    await cluster?.stop();
  });

  test("read_from replica: GET and MGET are served by the replicas, round robin; SET by the masters", async () => {
    await resetStats();
    const replies = await send(reads, ...KEYS.map((k) => ["GET", k]), ["MGET", ...KEYS.slice(0, 40)], ["SET", "w:1", "x"]);
    expect(replies.slice(0, KEYS.length).map((r) => decode(r)!.toString())).toEqual(KEYS.map(valueOf));
    expect((decode(replies[KEYS.length]!) as Buffer[]).map(String)).toEqual(KEYS.slice(0, 40).map(valueOf));
    expect(String(replies[KEYS.length + 1])).toBe("+OK\r\n");
    let replicaGets = 0;
    for (const { master, replicas } of await shards()) {
      const m = nodeAt(master.address);
      expect([await calls(m, "get"), await calls(m, "mget")]).toEqual([0, 0]);
      const gets = await Promise.all(replicas.map((r) => calls(nodeAt(r.address), "get")));
      // Each of the master's keys read from its replicas in turn.
      expect(gets.length).toBe(2);
      expect(Math.min(...gets)).toBeGreaterThan(0);
      expect(Math.abs(gets[0]! - gets[1]!)).toBeLessThanOrEqual(1);
      replicaGets += gets[0]! + gets[1]!;
    }
    expect(replicaGets).toBe(KEYS.length);
    // The MGET is split by slot (redis refuses two slots in one command): one fragment per slot,
    // each to a replica (the masters' count is 0, above).
    const mgets = await Promise.all(cluster.nodes.map((n) => calls(n, "mget")));
    expect(mgets.reduce((a, b) => a + b, 0)).toBe(new Set(KEYS.slice(0, 40).map(slotOf)).size);
    const owner = await cluster.ownerOf(slotOf("w:1"));
    expect(await calls(owner, "set")).toBe(1);
  });

  test("read_from prefer-replica: reads go to the replicas while they serve", async () => {
    await resetStats();
    const replies = await send(prefer, ...KEYS.slice(0, 60).map((k) => ["GET", k]));
    expect(replies.map((r) => decode(r)!.toString())).toEqual(KEYS.slice(0, 60).map(valueOf));
    for (const { master, replicas } of await shards()) {
      expect(await calls(nodeAt(master.address), "get")).toBe(0);
      expect((await Promise.all(replicas.map((r) => calls(nodeAt(r.address), "get")))).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    }
  });

  test("a replica that knows its slot moved answers MOVED; the client gets the value from the new owner", async () => {
    // The proxy's map goes stale between its reloads; a slot moved meanwhile is read from the
    // old owner's replica first. A reload may come in between (every 10 s): then try again.
    let followed = false;
    for (let attempt = 0; attempt < 3 && !followed; attempt++) {
      const [from, to] = await shards();
      const slot = from!.master.slots[0]![0];
      const key = keyIn(slot, `moved${attempt}:`);
      await exchange({ host: "127.0.0.1", port: from!.master.port }, Buffer.concat([command("SET", key, valueOf(key)), command("WAIT", "2", "5000")]), 2, respFrame);
      await cluster.cli(["reshard", cluster.seeds[0]!, "--cluster-from", from!.master.id, "--cluster-to", to!.master.id, "--cluster-slots", "1", "--cluster-yes"]);
      // The old owner's replicas know the slot is the new owner's (so they redirect, not miss).
      for (const r of from!.replicas) {
        for (let i = 0; ; i++) {
          const view = await cluster.nodeLines(nodeAt(r.address));
          if (view.find((l) => l.slots.some(([a, b]) => slot >= a && slot <= b))?.address === to!.master.address) break;
          if (i > 100) throw new Error(`${r.address} does not learn that slot ${slot} moved`);
          await Bun.sleep(50);
        }
      }
      const before = await moved();
      const [reply] = await send(reads, ["GET", key]);
      expect(decode(reply!)!.toString()).toBe(valueOf(key));
      followed = (await moved()) > before;
    }
    expect(followed).toBe(true);
  });

  test("a shard's replicas dead: prefer-replica reads from its master, replica says none serves", async () => {
    const victim = (await shards())[2]!;
    const master = nodeAt(victim.master.address);
    const key = keyIn(victim.master.slots[0]![0], "orphan:");
    await cluster.call(master, "SET", key, valueOf(key));
    await Promise.all(victim.replicas.map((r) => nodeAt(r.address).kill()));
    const noReplica = `-ERR no replica of ${victim.master.address} is in service\r\n`;
    // Until the cluster fails the replicas and the proxy's map drops them.
    for (let i = 0; ; i++) {
      const [reply] = await send(reads, ["GET", key]);
      if (String(reply) === noReplica) break;
      if (i > 200) throw new Error(`read_from replica still answers ${String(reply).trim()}`);
      await Bun.sleep(100);
    }
    expect((await send(reads, ["GET", key], ["GET", key])).map(String)).toEqual([noReplica, noReplica]);
    for (let i = 0; ; i++) {
      const [reply] = await send(prefer, ["GET", key]);
      if (decode(reply!)?.toString() === valueOf(key)) break;
      if (i > 200) throw new Error(`prefer-replica still answers ${String(reply).trim()}`);
      await Bun.sleep(100);
    }
    await cluster.call(master, "CONFIG", "RESETSTAT");
    const replies = await send(prefer, ...Array.from({ length: 5 }, () => ["GET", key]));
    expect(replies.map((r) => decode(r)!.toString())).toEqual(Array.from({ length: 5 }, () => valueOf(key)));
    expect(await calls(master, "get")).toBe(5);
  });
});
