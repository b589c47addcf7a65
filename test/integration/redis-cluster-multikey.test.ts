// Commands beyond one key through a redis_cluster pool, over a real cluster started here (3
// masters, 3 replicas): SCAN over the masters (every key once), DBSIZE summed, RANDOMKEY, KEYS
// and FLUSHDB behind their pool keys; pub/sub with channels by slot, shard channels on their
// slot's master and a pattern that hears every message once; blocking commands on connections
// of their own; transactions and scripts on one slot, and redis's own CROSSSLOT (then EXECABORT)
// for keys of two slots; SCRIPT LOAD / EXISTS / FLUSH on every master.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { KeySlots } from "../../src/route/key-slot.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { blocked, clientList, subscribers } from "../helpers/client-list.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { redisCall } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { eventually } from "../helpers/reload.ts";
import { startRedisCluster, untilRouting, type RedisCluster } from "../helpers/redis-cluster.ts";
import { command, decode, RespError, respFrame, type RespValue } from "../helpers/resp.ts";

setDefaultTimeout(120_000);

const slots = new KeySlots();
const slotOf = (key: string): number => {
  const b = Buffer.from(key, "latin1");
  return slots.slot(b, 0, b.length);
};

let cluster: RedisCluster;
let proxy: RunningProxy;
let pool: Endpoint;
let open: Endpoint;

async function session(client: RawClient, ...requests: string[][]): Promise<RespValue[]> {
  await client.send(Buffer.concat(requests.map((r) => command(...r))));
  return (await client.readReplies(requests.length, respFrame)).map(decode);
}

async function run(endpoint: Endpoint, ...requests: string[][]): Promise<RespValue[]> {
  const client = await RawClient.connect(endpoint);
  try {
    return await session(client, ...requests);
  } finally {
    client.close();
  }
}

const text = (v: RespValue): string => (Buffer.isBuffer(v) ? v.toString("latin1") : JSON.stringify(v));
const sum = (ns: number[]): number => ns.reduce((a, b) => a + b, 0);

/** The masters (by CLUSTER NODES) and what a node of them answers directly. */
async function masters() {
  const lines = await cluster.nodeLines(cluster.nodes[0]!);
  const ports = lines.filter((l) => l.flags.includes("master")).map((l) => l.port);
  return cluster.nodes.filter((n) => ports.includes(n.port));
}

describe.skipIf(TARGET !== "buncracker")("redis_cluster beyond one key", () => {
  beforeAll(async () => {
    cluster = await startRedisCluster();
    const seeds = [serverLine(cluster.seeds[0]!), serverLine(cluster.seeds[1]!)];
    proxy = await startProxy(
      TARGET,
      [
        poolYaml("big", { listen: `127.0.0.1:${freePort()}`, redis: true, distribution: "redis_cluster", timeout: 5000 }, seeds),
        poolYaml("open", { listen: `127.0.0.1:${freePort()}`, redis: true, distribution: "redis_cluster", redis_allow_keys: true, redis_allow_flush: true }, seeds),
      ].join(""),
    );
    pool = proxy.pools.big!;
    open = proxy.pools.open!;
    await untilRouting(pool);
    await untilRouting(open);
  });

  afterAll(async () => {
    await proxy?.stop();
    await cluster?.stop();
  });

  test("SCAN over the masters returns every key exactly once; DBSIZE is their sum; RANDOMKEY one of them; KEYS and FLUSHDB only where enabled", async () => {
    const keys = Array.from({ length: 3000 }, (_, i) => `scan:${i}`);
    const client = await RawClient.connect(pool);
    try {
      for (let i = 0; i < keys.length; i += 500) {
        const batch = keys.slice(i, i + 500);
        expect(await session(client, ["MSET", ...batch.flatMap((k) => [k, "v"])])).toEqual(["OK"]);
      }
      const seen = new Map<string, number>();
      let cursor = "0";
      let calls = 0;
      do {
        const [reply] = await session(client, ["SCAN", cursor, "MATCH", "scan:*", "COUNT", "100"]);
        const [next, batch] = reply as [Buffer, Buffer[]];
        for (const k of batch) seen.set(k.toString(), (seen.get(k.toString()) ?? 0) + 1);
        cursor = next.toString();
        calls++;
      } while (cursor !== "0" && calls < 10_000);
      expect(seen.size).toBe(keys.length);
      expect([...seen.values()].filter((n) => n !== 1)).toEqual([]);
      const direct = await Promise.all((await masters()).map(async (m) => (await cluster.call(m, "DBSIZE")) as number));
      expect(direct.length).toBe(3);
      expect(await session(client, ["DBSIZE"])).toEqual([sum(direct)]);
      const [random] = await session(client, ["RANDOMKEY"]);
      expect(keys).toContain(text(random!));
      const [refused] = await session(client, ["KEYS", "scan:*"]);
      expect((refused as RespError).message).toContain("redis_allow_keys");
      const [all] = await run(open, ["KEYS", "scan:*"]);
      expect((all as Buffer[]).map(text).sort()).toEqual([...keys].sort());
      expect(await run(open, ["FLUSHDB"], ["DBSIZE"])).toEqual(["OK", 0]);
    } finally {
      client.close();
    }
  });

  test("SCRIPT LOAD, EXISTS and FLUSH on every master: EVALSHA of a key on each master runs it; SCRIPT KILL refused", async () => {
    const lua = "return redis.call('GET', KEYS[1])";
    const sha1 = (script: string): string => createHash("sha1").update(script).digest("hex");
    const keys = Array.from({ length: 100 }, (_, i) => `sc:${i}`);
    expect(await run(pool, ["MSET", ...keys.flatMap((k) => [k, `v${k}`])])).toEqual(["OK"]);
    const nodes = await masters();
    const onEach = await Promise.all(nodes.map(async (m) => text(((await cluster.call(m, "KEYS", "sc:*")) as Buffer[])[0]!)));
    await Promise.all(nodes.map((m) => cluster.call(m, "SCRIPT", "FLUSH")));
    const [noscript] = await run(pool, ["EVALSHA", sha1(lua), "1", onEach[0]!]);
    expect((noscript as RespError).message).toStartWith("NOSCRIPT");
    expect(await run(pool, ["SCRIPT", "LOAD", lua])).toEqual([Buffer.from(sha1(lua))]);
    for (const m of nodes) expect(await cluster.call(m, "SCRIPT", "EXISTS", sha1(lua))).toEqual([1]);
    expect(await run(pool, ...onEach.map((k) => ["EVALSHA", sha1(lua), "1", k]))).toEqual(onEach.map((k) => Buffer.from(`v${k}`)));
    expect(await run(pool, ["SCRIPT", "EXISTS", sha1(lua), sha1("return 2")], ["SCRIPT", "FLUSH"], ["SCRIPT", "EXISTS", sha1(lua)])).toEqual([[1, 0], "OK", [0]]);
    for (const m of nodes) expect(await cluster.call(m, "SCRIPT", "EXISTS", sha1(lua))).toEqual([0]);
    const [kill] = await run(pool, ["SCRIPT", "KILL"]);
    expect((kill as RespError).message).toStartWith("ERR 'script kill' is not served through the proxy");
  });

  test("pub/sub: channels by slot, every message once (a pattern too), shard channels on their slot's master; PUBSUB NUMSUB", async () => {
    const channels = Array.from({ length: 12 }, (_, i) => `news:${i}`);
    expect(new Set(channels.map(slotOf)).size).toBe(12);
    const sub = await RawClient.connect(pool);
    const psub = await RawClient.connect(pool);
    const ssub = await RawClient.connect(pool);
    try {
      await sub.send(command("SUBSCRIBE", ...channels));
      expect((await sub.readReplies(12, respFrame)).map((r) => (decode(r) as RespValue[])[2])).toEqual(channels.map((_, i) => i + 1));
      await psub.send(command("PSUBSCRIBE", "news:*"));
      await psub.readReplies(1, respFrame);
      await ssub.send(command("SSUBSCRIBE", ...channels.slice(0, 3)));
      await ssub.readReplies(3, respFrame);
      const numsub = (await run(pool, ["PUBSUB", "NUMSUB", ...channels]))[0] as RespValue[];
      expect(numsub.filter((_, i) => i % 2 === 1)).toEqual(channels.map(() => 1));
      // In a cluster, PUBLISH counts the receivers on the node it reached (here the channel's
      // subscriber, and the pattern's when it is on that node).
      for (const ch of channels) expect((await run(pool, ["PUBLISH", ch, `m:${ch}`]))[0]).toBeOneOf([1, 2]);
      const messages = (await sub.readReplies(12, respFrame)).map((r) => (decode(r) as RespValue[]).map(text));
      expect(messages.map((m) => m[2]).sort()).toEqual(channels.map((c) => `m:${c}`).sort());
      const pmessages = (await psub.readReplies(12, respFrame)).map((r) => (decode(r) as RespValue[]).map(text));
      expect(new Set(pmessages.map((m) => m[3])).size).toBe(12);
      for (const ch of channels.slice(0, 3)) expect(await run(pool, ["SPUBLISH", ch, `s:${ch}`])).toEqual([1]);
      const smessages = (await ssub.readReplies(3, respFrame)).map((r) => (decode(r) as RespValue[]).map(text));
      expect(smessages.map((m) => m[0])).toEqual(["smessage", "smessage", "smessage"]);
      expect(smessages.map((m) => m[2]).sort()).toEqual(channels.slice(0, 3).map((c) => `s:${c}`).sort());
    } finally {
      sub.close();
      psub.close();
      ssub.close();
    }
    await eventually("no subscriber connection left on the nodes", async () =>
      sum(await Promise.all(cluster.nodes.map(async (n) => subscribers(await clientList(n)).length))) === 0 ? true : undefined,
    );
  });

  test("blocking commands wait on connections of their own: GETs go on meanwhile; each blocked client gets its element", async () => {
    const queues = Array.from({ length: 10 }, (_, i) => `q:${i}`);
    const waiting = await Promise.all(queues.map(() => RawClient.connect(pool)));
    try {
      await Promise.all(waiting.map((c, i) => c.send(command("BLPOP", queues[i]!, "0"))));
      await eventually("10 clients blocked on the nodes", async () =>
        sum(await Promise.all(cluster.nodes.map(async (n) => blocked(await clientList(n)).length))) === 10 ? true : undefined,
      );
      const getter = await RawClient.connect(pool);
      for (let i = 0; i < 50; i++) expect(await session(getter, ["GET", `g:${i}`])).toEqual([null]);
      getter.close();
      for (const q of queues) expect(await run(pool, ["RPUSH", q, `e:${q}`])).toEqual([1]);
      for (let i = 0; i < waiting.length; i++) {
        expect((decode((await waiting[i]!.readReplies(1, respFrame))[0]!) as RespValue[]).map(text)).toEqual([queues[i], `e:${queues[i]}`]);
      }
      const [cross] = await run(pool, ["BLPOP", "q:a", "q:b", "1"]);
      expect((cross as RespError).message).toBe("CROSSSLOT Keys in request don't hash to the same slot");
    } finally {
      for (const c of waiting) c.close();
    }
  });

  test("a client that disconnects while blocked, or RESETs while subscribed, leaves no connection of its own behind", async () => {
    const onNodes = async (count: (list: Awaited<ReturnType<typeof clientList>>) => number): Promise<number> =>
      sum(await Promise.all(cluster.nodes.map(async (n) => count(await clientList(n)))));
    const waiter = await RawClient.connect(pool);
    await waiter.send(command("BRPOP", "gone:1", "0"));
    await eventually("the client blocked on its node", async () => ((await onNodes((l) => blocked(l).length)) === 1 ? true : undefined));
    waiter.close();
    await eventually("no blocked connection left", async () => ((await onNodes((l) => blocked(l).length)) === 0 ? true : undefined));
    const sub = await RawClient.connect(pool);
    try {
      await sub.send(Buffer.concat([command("SUBSCRIBE", "a:1", "b:2"), command("RESET"), command("SET", "{after}x", "1")]));
      expect((await sub.readReplies(4, respFrame)).map(decode).slice(2)).toEqual(["RESET", "OK"]);
      await eventually("its subscriber connections closed", async () => ((await onNodes((l) => subscribers(l).length)) === 0 ? true : undefined));
    } finally {
      sub.close();
    }
  });

  test("MULTI/EXEC and WATCH on one slot; keys of two slots: redis's own CROSSSLOT, then EXECABORT; EVAL likewise", async () => {
    const [a, b] = ["{user1}a", "{user1}b"];
    expect(await run(pool, ["MULTI"], ["SET", a, "1"], ["INCR", b], ["EXEC"], ["GET", a])).toEqual(["OK", "QUEUED", "QUEUED", ["OK", 1], Buffer.from("1")]);
    const watcher = await RawClient.connect(pool);
    try {
      expect(await session(watcher, ["WATCH", a])).toEqual(["OK"]);
      expect(await run(pool, ["SET", a, "other"])).toEqual(["OK"]);
      expect(await session(watcher, ["MULTI"], ["SET", a, "mine"], ["EXEC"])).toEqual(["OK", "QUEUED", null]);
    } finally {
      watcher.close();
    }
    // Two slots, on one master or on two: the node's own words for it.
    const other = ["{user2}x", "{user3}x", "{user4}x", "{user5}x"].find((k) => slotOf(k) !== slotOf(a))!;
    const node = (await masters())[0]!;
    const theirs = await redisCall(node, "EVAL", "return 1", "2", a, other);
    const crossText = theirs instanceof RespError ? theirs.message : text(theirs);
    expect(crossText).toStartWith("CROSSSLOT ");
    const replies = await run(pool, ["MULTI"], ["SET", a, "2"], ["SET", other, "2"], ["EXEC"], ["GET", a], ["GET", other]);
    expect(replies[1]).toBe("QUEUED");
    expect((replies[2] as RespError).message).toBe(crossText);
    expect((replies[3] as RespError).message).toStartWith("EXECABORT ");
    expect(replies.slice(4)).toEqual([Buffer.from("other"), null]);
    const [evalCross] = await run(pool, ["EVAL", "return 1", "2", a, other]);
    expect((evalCross as RespError).message).toBe(crossText);
    expect(await run(pool, ["EVAL", "return redis.call('GET', KEYS[1])", "2", a, b])).toEqual([Buffer.from("other")]);
    const [wait] = await run(pool, ["WAIT", "1", "10"]);
    expect((wait as RespError).message).toContain("redis_cluster");
  });
});
