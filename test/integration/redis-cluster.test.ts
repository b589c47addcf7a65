// A redis_cluster pool in front of a real cluster (3 masters, 3 replicas, started here): command
// families answered byte for byte as a cluster-aware client talking to the nodes gets them,
// multi-key commands split by slot, CROSSSLOT, ASK and MOVED never reaching the client, and the
// proxy's own CLUSTER answers read by ioredis' Cluster and redis-py's RedisCluster; and a
// redis_cluster pool across hot reloads.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Cluster } from "ioredis";
import { createCluster } from "redis";
import { KeySlots } from "../../src/route/key-slot.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { exchange, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { endpointOf } from "../helpers/direct.ts";
import { poolOf, readStats, waitFor } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { runToEnd } from "../helpers/process.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { eventually, ReloadableProxy } from "../helpers/reload.ts";
import { startRedisCluster, untilRouting, type RedisCluster } from "../helpers/redis-cluster.ts";
import { command, decode, decode3, respFrame, type Bytes, type Resp3 } from "../helpers/resp.ts";

setDefaultTimeout(120_000);

const slots = new KeySlots();
const slotOf = (key: Bytes): number => {
  const b = Buffer.from(key as string, "latin1");
  return slots.slot(b, 0, b.length);
};

let cluster: RedisCluster;
let proxy: RunningProxy;
let endpoint: Endpoint;
const metricsPort = freePort();

/** A cluster-aware client, direct: each command to the master of its first key's slot, as
 *  CLUSTER NODES says, following MOVED as such a client does. */
async function direct(args: Bytes[], keyAt = 1): Promise<Buffer> {
  let node = await cluster.ownerOf(slotOf(args[keyAt]!));
  for (let hop = 0; hop < 5; hop++) {
    const [reply] = await exchange(endpointOf(node), command(...args), 1, respFrame);
    const moved = /^-MOVED \d+ ([\d.]+):(\d+)/.exec(reply!.toString("latin1"));
    if (moved === null) return reply!;
    node = cluster.nodes.find((n) => n.port === Number(moved[2]))!;
  }
  throw new Error("too many MOVED");
}

async function viaProxy(...commands: Bytes[][]): Promise<Buffer[]> {
  return exchange(endpoint, Buffer.concat(commands.map((c) => command(...c))), commands.length, respFrame);
}

/** As viaProxy, from a RESP3 client (HELLO 3 first: its requests go on the proxy's RESP3
 *  connections to the nodes). */
async function viaProxy3(...commands: Bytes[][]): Promise<Buffer[]> {
  const [hello, ...replies] = await viaProxy(["HELLO", "3"], ...commands);
  expect(hello![0]).toBe(0x25); // a map: the session is RESP3
  return replies;
}

describe.skipIf(TARGET !== "buncracker")("redis_cluster", () => {
  beforeAll(async () => {
    cluster = await startRedisCluster();
    proxy = await startProxy(
      TARGET,
      poolYaml("big", { listen: `127.0.0.1:${freePort()}`, redis: true, distribution: "redis_cluster", timeout: 5000 }, [
        serverLine(cluster.seeds[0]!),
        serverLine(cluster.seeds[1]!),
      ]),
      { args: ["--metrics-port", String(metricsPort)] },
    );
    endpoint = proxy.pools.big!;
    await untilRouting(endpoint);
  });

  afterAll(async () => {
    await proxy?.stop();
    await cluster?.stop();
  });

  /** One script per family; `p:` keys through the proxy, `d:` keys direct. Hash tags keep each
   *  family's multi-key commands in one slot, as redis needs. */
  const families: Record<string, (k: (name: string) => string) => Bytes[][]> = {
    strings: (k) => [
      ["SET", k("s"), "hello"], ["APPEND", k("s"), " world"], ["GET", k("s")], ["GETRANGE", k("s"), "0", "4"],
      ["STRLEN", k("s")], ["INCRBY", k("n"), "41"], ["INCR", k("n")], ["INCRBYFLOAT", k("n"), "0.5"],
      ["SETNX", k("s"), "x"], ["GETSET", k("s"), "new"], ["GETDEL", k("s")], ["GET", k("s")], ["SET", k("e"), "v", "EX", "100"],
      ["TTL", k("e")], ["PERSIST", k("e")], ["TTL", k("e")], ["SETRANGE", k("e"), "3", "xyz"], ["GET", k("e")],
    ],
    hashes: (k) => [
      ["HSET", k("h"), "a", "1", "b", "2"], ["HGET", k("h"), "a"], ["HINCRBY", k("h"), "a", "10"], ["HMGET", k("h"), "a", "b", "c"],
      ["HLEN", k("h"), ], ["HDEL", k("h"), "b"], ["HEXISTS", k("h"), "b"], ["HGETALL", k("h")],
    ],
    lists: (k) => [
      ["RPUSH", k("l"), "a", "b", "c"], ["LPUSH", k("l"), "z"], ["LRANGE", k("l"), "0", "-1"], ["LPOP", k("l")], ["LLEN", k("l")],
      ["LINDEX", k("l"), "1"], ["LSET", k("l"), "0", "A"], ["RPOP", k("l"), "2"],
    ],
    sets: (k) => [
      ["SADD", k("{t}s1"), "a", "b", "c"], ["SADD", k("{t}s2"), "b", "c", "d"], ["SCARD", k("{t}s1")], ["SISMEMBER", k("{t}s1"), "a"],
      ["SINTERSTORE", k("{t}s3"), k("{t}s1"), k("{t}s2")], ["SMOVE", k("{t}s1"), k("{t}s2"), "a"], ["SCARD", k("{t}s2")], ["SMISMEMBER", k("{t}s3"), "b", "x"],
    ],
    zsets: (k) => [
      ["ZADD", k("z"), "1", "a", "2", "b", "3", "c"], ["ZRANGE", k("z"), "0", "-1", "WITHSCORES"], ["ZINCRBY", k("z"), "5", "a"],
      ["ZSCORE", k("z"), "a"], ["ZRANK", k("z"), "a"], ["ZREVRANGE", k("z"), "0", "1"], ["ZREM", k("z"), "b"], ["ZCARD", k("z")],
    ],
    "bits, hyperloglog, geo, streams": (k) => [
      ["SETBIT", k("b"), "7", "1"], ["BITCOUNT", k("b")], ["PFADD", k("hll"), "a", "b", "c"], ["PFCOUNT", k("hll")],
      ["GEOADD", k("g"), "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"], ["GEODIST", k("g"), "Palermo", "Catania", "km"],
      ["XADD", k("x"), "1-1", "f", "v"], ["XADD", k("x"), "2-1", "f", "w"], ["XLEN", k("x")], ["XRANGE", k("x"), "-", "+"],
    ],
    "keys, scripts and errors": (k) => [
      ["SET", k("{u}a"), "1"], ["EXISTS", k("{u}a")], ["TYPE", k("{u}a")], ["EXPIRE", k("{u}a"), "100"], ["TTL", k("{u}a")],
      ["EVAL", "return redis.call('INCRBY', KEYS[1], ARGV[1])", "1", k("{u}c"), "5"], ["LPUSH", k("{u}a"), "x"], ["GET", k("{u}c")],
      ["HGET", k("{u}c"), "f"], ["INCR"], ["GET", k("{u}c"), "extra"],
    ],
  };

  for (const [family, script] of Object.entries(families)) {
    test(`${family}: replies byte for byte as the nodes give them directly`, async () => {
      const ours = await viaProxy(...script((name) => `p:${family}:${name}`));
      const theirs: Buffer[] = [];
      for (const args of script((name) => `d:${family}:${name}`)) {
        // Commands without a key (a wrong arity) go to any node; EVAL's key is its 4th argument.
        const keyAt = args[0] === "EVAL" ? 3 : 1;
        theirs.push(args.length > keyAt ? await direct(args, keyAt) : (await exchange(endpointOf(cluster.nodes[0]!), command(...args), 1, respFrame))[0]!);
      }
      const text = (rs: Buffer[]) => rs.map((r) => r.toString("latin1").replaceAll("d:", "p:"));
      expect(text(ours)).toEqual(text(theirs));
    });
  }

  test("RENAME of keys in two slots: redis's own CROSSSLOT, from the proxy", async () => {
    const [a, b] = ["p:cross:a", "p:cross:b"];
    expect(slotOf(a)).not.toBe(slotOf(b));
    const [ours] = await viaProxy(["SUNIONSTORE", a, b]);
    const theirs = await direct(["SUNIONSTORE", a, b]);
    expect(ours!.toString()).toBe(theirs.toString());
    expect(ours!.toString()).toStartWith("-CROSSSLOT ");
  });

  test("MGET, MSET, DEL, UNLINK, EXISTS, TOUCH over keys of many slots on every master", async () => {
    const keys = Array.from({ length: 40 }, (_, i) => `p:multi:${i}`);
    expect(new Set(keys.map(slotOf)).size).toBe(40);
    const [mset, mget, exists, touch, del, unlink, after] = await viaProxy(
      ["MSET", ...keys.flatMap((k) => [k, `v-${k}`])],
      ["MGET", ...keys, "p:multi:absent"],
      ["EXISTS", ...keys, keys[0]!],
      ["TOUCH", ...keys.slice(0, 10)],
      ["DEL", ...keys.slice(0, 20), "p:multi:absent"],
      ["UNLINK", ...keys.slice(10)],
      ["MGET", ...keys.slice(0, 3)],
    );
    expect(decode(mset!)).toBe("OK");
    expect((decode(mget!) as (Buffer | null)[]).map((v) => (v === null ? null : v.toString()))).toEqual([...keys.map((k) => `v-${k}`), null]);
    expect(decode(exists!)).toBe(41);
    expect(decode(touch!)).toBe(10);
    expect(decode(del!)).toBe(20);
    expect(decode(unlink!)).toBe(20);
    expect(decode(after!)).toEqual([null, null, null]);
    // Each key was written on the node that owns its slot.
    const keys2 = Array.from({ length: 12 }, (_, i) => `p:placed:${i}`);
    await viaProxy(["MSET", ...keys2.flatMap((k) => [k, k])]);
    for (const k of keys2) expect((await direct(["GET", k])).toString()).toBe(`$${k.length}\r\n${k}\r\n`);
  });

  test("a key mid-migration is served through ASK, a moved slot through MOVED, and the client sees neither", async () => {
    const key = "p:ask:{m}";
    const slot = slotOf(key);
    const source = await cluster.ownerOf(slot);
    const masters = (await cluster.nodeLines(source)).filter((l) => l.masterId === "-");
    const destLine = masters.find((l) => l.address !== source.address)!;
    const dest = cluster.nodes.find((n) => n.address === destLine.address)!;
    const sourceId = masters.find((l) => l.address === source.address)!.id;
    await viaProxy(["SET", key, "before"], ["SET", `${key}2`, "stays"]);
    await cluster.call(dest, "CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceId);
    await cluster.call(source, "CLUSTER", "SETSLOT", String(slot), "MIGRATING", destLine.id);
    await cluster.call(source, "MIGRATE", dest.host, String(dest.port), key, "0", "5000");
    // The key is on the destination, its slot still the source's: the source answers ASK.
    expect((await direct(["GET", key])).toString()).toStartWith("-ASK ");
    const [viaAsk, stays] = await viaProxy(["GET", key], ["GET", `${key}2`]);
    expect(viaAsk!.toString()).toBe("$6\r\nbefore\r\n");
    expect(stays!.toString()).toBe("$5\r\nstays\r\n");
    // The same from a RESP3 client: ASKING and the resend go on its own connections.
    const [viaAsk3, stays3, hash3] = await viaProxy3(["GET", key], ["GET", `${key}2`], ["HGETALL", key]);
    expect(viaAsk3!.toString()).toBe("$6\r\nbefore\r\n");
    expect(stays3!.toString()).toBe("$5\r\nstays\r\n");
    expect(hash3!.toString()).toStartWith("-WRONGTYPE");
    // Finish: the slot belongs to the destination; the proxy's map still says source: MOVED.
    await cluster.call(source, "MIGRATE", dest.host, String(dest.port), `${key}2`, "0", "5000");
    const others = cluster.nodes.filter((n) => n !== dest && masters.some((m) => m.address === n.address));
    for (const node of [dest, ...others]) await cluster.call(node, "CLUSTER", "SETSLOT", String(slot), "NODE", destLine.id);
    const [moved, set] = await viaProxy(["GET", `${key}2`], ["SET", key, "after"]);
    expect(moved!.toString()).toBe("$5\r\nstays\r\n");
    expect(set!.toString()).toBe("+OK\r\n");
    const [moved3, map3] = await viaProxy3(["GET", `${key}2`], ["HGETALL", `${key}:h`]);
    expect(moved3!.toString()).toBe("$5\r\nstays\r\n");
    expect(map3!.toString()).toBe("%0\r\n"); // a RESP3 reply, from a RESP3 connection
    expect((await exchange(endpointOf(dest), command("GET", key), 1, respFrame))[0]!.toString()).toBe("$5\r\nafter\r\n");
  });

  test("INFO: every master's, merged, with cluster_enabled:1", async () => {
    const [info] = await viaProxy(["INFO"]);
    const text = info!.toString("latin1");
    expect(text).toContain("\r\n# Cluster\r\ncluster_enabled:1\r\n");
    expect(text).toContain("redis_mode:cluster\r\n");
    // The keyspace is the masters' together (replicas hold copies, not more keys).
    const lines = await cluster.nodeLines(cluster.nodes[0]!);
    let keys = 0;
    for (const line of lines.filter((l) => l.masterId === "-")) {
      const node = cluster.nodes.find((n) => n.address === line.address)!;
      const [size] = await exchange(endpointOf(node), command("DBSIZE"), 1, respFrame);
      keys += Number(size!.toString().slice(1));
    }
    expect(/db0:keys=(\d+),/.exec(text)?.[1]).toBe(String(keys));
  });

  test("WAIT is refused with a clear error (beyond one key is served: redis-cluster-multikey.test.ts); the connection goes on", async () => {
    const replies = await viaProxy(["WAIT", "1", "10"], ["SET", "p:after-refusals", "1"], ["GET", "p:after-refusals"]);
    expect(replies.map(String)).toEqual(["-ERR 'wait' is not served with distribution redis_cluster\r\n", "+OK\r\n", "$1\r\n1\r\n"]);
  });

  test("CLUSTER answers follow CLIENT REPLY OFF like every other reply", async () => {
    const requests = [["CLIENT", "REPLY", "OFF"], ["CLUSTER", "MYID"], ["CLIENT", "REPLY", "ON"], ["CLUSTER", "KEYSLOT", "foo"]];
    // Two replies: REPLY OFF and MYID are silent.
    const replies = await exchange(endpoint, Buffer.concat(requests.map((c) => command(...c))), 2, respFrame);
    expect(replies.map(String)).toEqual(["+OK\r\n", ":12182\r\n"]);
  });

  test("/healthz shows the slot map (epoch, every slot covered) and the redirections followed", async () => {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    expect(res.status).toBe(200);
    const [pool] = (await res.json()).pools;
    const epoch = Math.max(...(await cluster.nodeLines(cluster.nodes[0]!)).map((l) => l.configEpoch));
    expect(pool.cluster).toMatchObject({ loaded: true, uncoveredSlots: 0 });
    expect(pool.cluster.epoch).toBeGreaterThanOrEqual(epoch - 1);
    expect(pool.cluster.mapLoads).toBeGreaterThanOrEqual(1);
    // The migration test above: one ASK, then MOVED.
    expect(pool.cluster.asked).toBeGreaterThanOrEqual(1);
    expect(pool.cluster.moved).toBeGreaterThanOrEqual(1);
    // Every master is a server of the pool, under its address.
    const masters = (await cluster.nodeLines(cluster.nodes[0]!)).filter((l) => l.masterId === "-").map((l) => l.address);
    expect(pool.live).toEqual(expect.arrayContaining(masters));
  });

  test("stats JSON and /metrics: the map (epoch, uncovered slots, loads) and redirections, per node stats", async () => {
    // The earlier tests' migrations may still bring a newer map: read the three while the map
    // stays the same (the same epoch in /healthz before and after).
    const healthz = async () => (await (await fetch(`http://127.0.0.1:${metricsPort}/healthz`)).json()).pools[0].cluster;
    const { health, doc, metrics } = await eventually("the slot map to hold still while the stats are read", async () => {
      const health = await healthz();
      const doc = poolOf(await readStats(proxy.statsPort), "big");
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return (await healthz()).epoch === health.epoch ? { health, doc, metrics } : undefined;
    });
    expect(doc.cluster_map_loaded).toBe(1);
    expect(doc.cluster_epoch).toBe(health.epoch);
    expect(doc.cluster_uncovered_slots).toBe(0);
    expect(doc.cluster_map_loads).toBeGreaterThanOrEqual(1);
    expect(doc.cluster_asked).toBeGreaterThanOrEqual(1);
    // Each master's own twemproxy server stats, under its address (requests: live in /metrics,
    // as of the last aggregation in the JSON).
    const masters = (await cluster.nodeLines(cluster.nodes[0]!)).filter((l) => l.masterId === "-").map((l) => l.address);
    for (const m of masters) {
      expect(Object.keys(doc[m] as object)).toContain("requests");
      expect(metrics).toMatch(new RegExp(`buncracker_server_requests_total\\{pool="big",server="${m}"\\} [1-9]`));
    }
    expect(metrics).toContain(`buncracker_pool_cluster_epoch{pool="big"} ${health.epoch}\n`);
    expect(metrics).toContain(`buncracker_pool_cluster_uncovered_slots{pool="big"} 0\n`);
    expect(metrics).toMatch(/buncracker_pool_cluster_map_loads_total\{pool="big"\} [1-9]/);
  });

  test("--workers: each worker loads its own map; /healthz, stats and /metrics sum them", async () => {
    const port = freePort();
    const workers = await startProxy(
      TARGET,
      poolYaml("big", { listen: `127.0.0.1:${freePort()}`, redis: true, distribution: "redis_cluster" }, [serverLine(cluster.seeds[2]!)]),
      { args: ["--workers", "2", "--metrics-port", String(port)] },
    );
    try {
      await untilRouting(workers.pools.big!);
      // Workers report every second: until both have loaded their map.
      const doc = await waitFor("both workers' maps", async () => {
        const d = poolOf(await readStats(workers.statsPort), "big");
        return (d.cluster_map_loads as number) >= 2 && d.cluster_map_loaded === 1 ? d : false;
      });
      expect(doc.cluster_uncovered_slots).toBe(0);
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(res.status).toBe(200);
      expect((await res.json()).pools[0].cluster).toMatchObject({ loaded: true, uncoveredSlots: 0 });
      expect(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).toContain(`buncracker_pool_cluster_map_loaded{pool="big"} 1\n`);
    } finally {
      await workers.stop();
    }
  });

  test("RESP3: CLUSTER SLOTS, SHARDS, NODES and INFO in the shapes a node gives a RESP3 client", async () => {
    const asks = [["CLUSTER", "SLOTS"], ["CLUSTER", "SHARDS"], ["CLUSTER", "NODES"], ["CLUSTER", "INFO"]];
    const ours = (await viaProxy3(...asks)).map(decode3);
    const node = await exchange(endpointOf(cluster.nodes[0]!), Buffer.concat([["HELLO", "3"], ...asks].map((c) => command(...c))), asks.length + 1, respFrame);
    const theirs = node.slice(1).map(decode3);
    const items = (v: Resp3): Resp3[] => (v.t === "array" ? v.v! : []);
    const field = (v: Resp3, name: string): Resp3 => (v.t === "map" ? v.v.find(([k]) => k.t === "bulk" && k.v === name)![1] : { t: "null" });
    const keys = (v: Resp3): string[] => (v.t === "map" ? v.v.map(([k]) => (k.t === "bulk" ? k.v! : "")) : []);
    // SLOTS: [first, last, [host, port, id, metadata]], the metadata a map.
    const slotNode = (v: Resp3): Resp3 => items(items(items(v)[0]!)[2]!)[3]!;
    expect(slotNode(ours[0]!).t).toBe("map");
    expect(slotNode(ours[0]!).t).toBe(slotNode(theirs[0]!).t);
    // SHARDS: each shard a map, each of its nodes a map with the node's fields.
    const shard = (v: Resp3): Resp3 => items(v)[0]!;
    expect(shard(ours[1]!).t).toBe("map");
    expect(keys(shard(ours[1]!)).sort()).toEqual(keys(shard(theirs[1]!)).sort());
    const shardNode = (v: Resp3): Resp3 => items(field(shard(v), "nodes"))[0]!;
    expect(shardNode(ours[1]!).t).toBe("map");
    expect(keys(shardNode(theirs[1]!))).toEqual(expect.arrayContaining(keys(shardNode(ours[1]!))));
    // NODES and INFO: verbatim text.
    for (const i of [2, 3]) {
      expect(ours[i]!.t).toBe("verbatim");
      expect(ours[i]!.t).toBe(theirs[i]!.t);
    }
    // And RESP2 clients still get redis's RESP2 shapes: flat arrays and bulk strings.
    const plain = await viaProxy(...asks);
    expect(plain.map((r) => String.fromCharCode(r[0]!))).toEqual(["*", "*", "$", "$"]);
    expect(decode3(plain[1]!).t).toBe("array");
  });

  test("node-redis's cluster client in RESP3, pointed at the proxy, works across slots", async () => {
    const client = createCluster({ rootNodes: [{ url: `redis://127.0.0.1:${(endpoint as { port: number }).port}` }], RESP: 3 });
    client.on("error", () => {});
    await client.connect();
    try {
      const keys = Array.from({ length: 20 }, (_, i) => `nr3:${i}`);
      for (const k of keys) expect(await client.set(k, `v${k}`)).toBe("OK");
      for (const k of keys) expect(await client.get(k)).toBe(`v${k}`);
      // One master (the proxy) serves every slot.
      expect(client.masters.length).toBe(1);
    } finally {
      await client.close();
    }
  });

  test("ioredis' Cluster, pointed at the proxy, sees one node and works across slots", async () => {
    // Default options: ioredis 6 opens its connections with HELLO 3 (RESP3).
    const client = new Cluster([{ host: "127.0.0.1", port: (endpoint as { port: number }).port }], { lazyConnect: true });
    try {
      await client.connect();
      expect(client.nodes("master").map((n) => n.options.port)).toEqual([(endpoint as { port: number }).port]);
      const keys = Array.from({ length: 30 }, (_, i) => `p:ioredis:${i}`);
      const pipe = client.pipeline();
      for (const k of keys) pipe.set(k, `io-${k}`);
      await pipe.exec();
      expect(await client.mget(...keys)).toEqual(keys.map((k) => `io-${k}`));
      expect(await client.del(...keys.slice(0, 5))).toBe(5);
      for (const k of keys.slice(5, 10)) expect((await direct(["GET", k])).toString()).toContain(`io-${k}`);
    } finally {
      client.disconnect();
    }
  });

  test("redis-py's RedisCluster, pointed at the proxy, sees one node and works across slots", async () => {
    const script = [
      "import sys",
      "from redis.cluster import RedisCluster",
      "rc = RedisCluster(host='127.0.0.1', port=int(sys.argv[1]))",
      "print(len(rc.get_nodes()))",
      "keys = ['p:py:%d' % i for i in range(30)]",
      "for k in keys: rc.set(k, 'py-' + k)",
      "print(all(rc.get(k) == ('py-' + k).encode() for k in keys))",
      "print(rc.mget_nonatomic(keys) == [('py-' + k).encode() for k in keys])",
      "print(rc.delete(*keys[:5]))",
      "print(rc.cluster_keyslot('foo'))",
    ].join("\n");
    const port = String((endpoint as { port: number }).port);
    const result = await runToEnd(["/usr/bin/python3", "-c", script, port], 30_000);
    expect(result.stderr).toBe("");
    expect(result.stdout.trim().split("\n")).toEqual(["1", "True", "True", "5", "12182"]);
    expect((await direct(["GET", "p:py:7"])).toString()).toContain("py-p:py:7");
  });
});

describe.skipIf(TARGET !== "buncracker")("redis_cluster and hot reload", () => {
  let cluster: RedisCluster;
  let plain: Backend;
  let proxy: ReloadableProxy;
  const listen = `127.0.0.1:${freePort()}`;
  const clusterPool = (seeds: string[], timeout: number) =>
    poolYaml("big", { listen, redis: true, distribution: "redis_cluster", timeout }, seeds.map((s) => serverLine(s)));

  beforeAll(async () => {
    [cluster, plain] = await Promise.all([startRedisCluster({ replicas: 0 }), startRedis()]);
    proxy = await ReloadableProxy.start(clusterPool([cluster.seeds[0]!], 5000));
    await untilRouting(proxy.endpoint("big"));
  });

  afterAll(async () => {
    await proxy?.stop();
    await Promise.all([cluster?.stop(), plain?.stop()]);
  });

  const call = async (...args: Bytes[]): Promise<string> =>
    (await exchange(proxy.endpoint("big"), command(...args), 1, respFrame))[0]!.toString("latin1");

  test("new seeds and timeout: the nodes, their connections and the map stay", async () => {
    expect(await call("SET", "reload:a", "1")).toBe("+OK\r\n");
    const before = (await proxy.healthz()).body.pools[0]!;
    const logged = await proxy.signalReload(clusterPool([cluster.seeds[1]!, cluster.seeds[2]!], 3000));
    expect(logged[0]).toStartWith("reloaded");
    expect(await call("GET", "reload:a")).toBe("$1\r\n1\r\n");
    const after = (await proxy.healthz()).body.pools[0]!;
    expect(after.live).toEqual(expect.arrayContaining(before.live));
    expect((after as unknown as { cluster: { loaded: boolean } }).cluster.loaded).toBe(true);
  });

  test("a pool that stops or starts being redis_cluster is replaced", async () => {
    let logged = await proxy.signalReload(poolYaml("big", { listen, redis: true }, [serverLine(plain.address)]));
    expect(logged[0]).toStartWith("reloaded");
    expect(await call("GET", "reload:a")).toBe("$-1\r\n"); // the plain redis has no such key
    expect(await call("CLUSTER", "INFO")).toBe("-ERR unsupported command 'cluster'\r\n");
    logged = await proxy.signalReload(clusterPool([cluster.seeds[0]!], 5000));
    expect(logged[0]).toStartWith("reloaded");
    await untilRouting(proxy.endpoint("big"));
    expect(await call("GET", "reload:a")).toBe("$1\r\n1\r\n");
  });
});
