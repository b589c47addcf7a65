// The twemproxy-compatible stats port: our document against a real nutcracker 0.5.0's for the
// same config (same bytes once the numbers are blanked out: key order, value types, spacing),
// counter aggregation every -i ms versus live gauges, and the TCP server itself.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { loadConfig } from "../../src/conf/load.ts";
import type { Config } from "../../src/conf/types.ts";
import { renderStatsJson } from "../../src/stats/json.ts";
import { startStatsServer } from "../../src/stats/server.ts";
import { retire, sumHealth, sumSnapshots, takeSnapshot } from "../../src/cluster/snapshot.ts";
import { newClusterStats, PoolStats, ProxyStats, ServerStats } from "../../src/stats/store.ts";
import { C, CLUSTER_STATS, P, POOL_STATS, S, SERVER_STATS } from "../../src/stats/table.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, type RunningProxy } from "../helpers/proxy.ts";
import { makeTempDir } from "../helpers/tmp.ts";

/** Everything a stats port sends before it closes the connection. */
async function readStats(port: number): Promise<string> {
  const chunks: Buffer[] = [];
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data: (_s, chunk) => void chunks.push(Buffer.from(chunk)),
      close: () => resolve(),
      error: (_s, err) => reject(err),
    },
  });
  await promise;
  return Buffer.concat(chunks).toString("utf8");
}

/** The stats store the proxy builds for `config`: pools in file order, servers in config order. */
const storeFor = (config: Config): ProxyStats =>
  new ProxyStats(
    config.pools.map((p) => new PoolStats(p.name, p.servers.map((s) => new ServerStats(s.statsName)))),
  );

/** [key, JSON type] pairs of every object, depth first, in document order. */
function shape(value: unknown, path = ""): string[] {
  if (value === null || typeof value !== "object") return [`${path}: ${typeof value}`];
  return Object.entries(value).flatMap(([k, v]) => [`${path}/${k}`, ...shape(v, `${path}/${k}`)]);
}

const blankNumbers = (text: string): string => text.replace(/\d+/g, "N");

describe("stats document against nutcracker 0.5.0", () => {
  let redis: Backend;
  let nutcracker: RunningProxy;
  let config: Config;

  beforeAll(async () => {
    redis = await startRedis();
    // Pool names out of order (nutcracker lists pools shorter-first, then bytewise), a named and
    // an unnamed server on one address, and a memcached server on 11211 (keyed by host alone).
    const yaml = [
      poolYaml("zeta", { listen: `127.0.0.1:${freePort()}`, redis: true }, [
        serverLine(redis.address),
        serverLine(redis.address, 1, "named"),
      ]),
      poolYaml("alpha", { listen: `127.0.0.1:${freePort()}` }, [serverLine("127.0.0.1:11211")]),
      poolYaml("mid", { listen: `127.0.0.1:${freePort()}`, redis: true }, [
        serverLine(redis.address, 1, "zz"),
        serverLine(redis.address, 2, "b"),
        serverLine(redis.address, 1, "aa"),
      ]),
    ].join("");
    nutcracker = await startProxy("nutcracker", yaml, { args: ["-i", "100"] });
    const dir = makeTempDir();
    writeFileSync(dir.file("proxy.yml"), yaml);
    config = loadConfig(dir.file("proxy.yml"));
    dir.remove();
  });

  afterAll(async () => {
    await nutcracker?.stop();
    await redis?.stop();
  });

  test("same bytes once numbers are blanked: keys, order, types, spacing, newline", async () => {
    const theirs = await readStats(nutcracker.statsPort);
    const ours = renderStatsJson(storeFor(config));
    expect(shape(JSON.parse(ours))).toEqual(shape(JSON.parse(theirs)));
    expect(blankNumbers(ours)).toBe(blankNumbers(theirs));
  });

  test("header strings: service, source (hostname), version", async () => {
    const theirs = JSON.parse(await readStats(nutcracker.statsPort));
    const ours = JSON.parse(renderStatsJson(storeFor(config)));
    expect(ours.service).toBe(theirs.service);
    expect(ours.version).toBe(theirs.version);
    expect(ours.source).toBe(theirs.source);
    expect(ours.source).toBe(hostname());
  });
});

describe("stats values", () => {
  const store = () => new ProxyStats([new PoolStats("p", [new ServerStats("s1"), new ServerStats("s2")])]);

  test("counters show the last aggregation, gauges the current value", () => {
    const stats = store();
    const pool = stats.pools[0]!;
    const server = pool.servers[1]!;
    pool.counters[P.client_eof] = 7;
    pool.counters[P.client_connections] = 3;
    server.counters[S.requests] = 11;
    server.counters[S.server_connections] = 2;
    server.counters[S.server_ejected_at] = 1_795_651_485_123_456;

    let doc = JSON.parse(renderStatsJson(stats));
    expect(doc.p.client_eof).toBe(0);
    expect(doc.p.client_connections).toBe(3);
    expect(doc.p.s2.requests).toBe(0);
    expect(doc.p.s2.server_connections).toBe(2);
    expect(doc.p.s2.server_ejected_at).toBe(0);

    stats.aggregate();
    pool.counters[P.client_eof] = 8; // after the snapshot: not served yet
    doc = JSON.parse(renderStatsJson(stats));
    expect(doc.p.client_eof).toBe(7);
    expect(doc.p.s2.requests).toBe(11);
    expect(doc.p.s2.server_ejected_at).toBe(1_795_651_485_123_456);
  });

  test("only the twemproxy stats appear, each once", () => {
    const doc = JSON.parse(renderStatsJson(store()));
    expect(Object.keys(doc.p)).toEqual([
      ...POOL_STATS.filter((s) => s.json === true).map((s) => s.name),
      "s1",
      "s2",
    ]);
    expect(Object.keys(doc.p.s1)).toEqual(SERVER_STATS.filter((s) => s.json === true).map((s) => s.name));
  });

  test("a pool configured with keys of ours adds our stats after twemproxy's, none changed", () => {
    const stats = store();
    const plain = JSON.parse(renderStatsJson(stats));
    const pool = stats.pools[0]!;
    pool.extended = true;
    pool.counters[P.client_tls_failed] = 4;
    pool.counters[P.client_buffered_bytes] = 5000;
    pool.servers[0]!.counters[S.server_tls_failed] = 2;
    stats.aggregate();
    const doc = JSON.parse(renderStatsJson(stats));
    const ours = (table: typeof POOL_STATS | typeof SERVER_STATS) => table.filter((s) => s.json === "extended").map((s) => s.name);
    const poolKeys = Object.keys(plain.p).filter((k) => typeof plain.p[k] === "number");
    expect(Object.keys(doc.p)).toEqual([...poolKeys, ...ours(POOL_STATS), "s1", "s2"]);
    expect(Object.keys(doc.p.s1)).toEqual([...Object.keys(plain.p.s1), ...ours(SERVER_STATS)]);
    for (const k of poolKeys) expect(doc.p[k]).toBe(plain.p[k]);
    expect([doc.p.client_tls_failed, doc.p.client_buffered_bytes, doc.p.s1.server_tls_failed]).toEqual([4, 5000, 2]);
    expect(Object.keys(doc).slice(0, 7)).toEqual(Object.keys(plain).slice(0, 7));
  });

  test("a redis_cluster pool adds its map and redirections after the pool's stats; other pools do not", () => {
    const stats = new ProxyStats([
      new PoolStats("plain", [new ServerStats("s1")]),
      new PoolStats("big", [new ServerStats("127.0.0.1:7000")]),
    ]);
    const cluster = newClusterStats();
    stats.pools[1]!.cluster = cluster;
    cluster[C.cluster_map_loaded] = 1;
    cluster[C.cluster_epoch] = 6;
    cluster[C.cluster_uncovered_slots] = 0;
    cluster[C.cluster_map_loads] = 3;
    cluster[C.cluster_moved] = 2;
    const doc = JSON.parse(renderStatsJson(stats));
    const twemproxy = POOL_STATS.filter((s) => s.json === true).map((s) => s.name);
    expect(Object.keys(doc.plain)).toEqual([...twemproxy, "s1"]);
    expect(Object.keys(doc.big)).toEqual([...twemproxy, ...CLUSTER_STATS.map((s) => s.name), "127.0.0.1:7000"]);
    expect([doc.big.cluster_map_loaded, doc.big.cluster_epoch, doc.big.cluster_uncovered_slots, doc.big.cluster_map_loads, doc.big.cluster_moved]).toEqual([1, 6, 0, 3, 2]);
    expect(newClusterStats()[C.cluster_epoch]).toBe(-1);
    expect(newClusterStats()[C.cluster_uncovered_slots]).toBe(16384);
  });

  test("under --workers: cluster counters add up; the map shown is the stalest a worker routes by", () => {
    const worker = (loaded: number, epoch: number, uncovered: number, loads: number, moved: number) => {
      const pool = new PoolStats("big", [new ServerStats("127.0.0.1:7000")]);
      pool.cluster = newClusterStats();
      pool.cluster[C.cluster_map_loaded] = loaded;
      pool.cluster[C.cluster_epoch] = epoch;
      pool.cluster[C.cluster_uncovered_slots] = uncovered;
      pool.cluster[C.cluster_map_loads] = loads;
      pool.cluster[C.cluster_moved] = moved;
      const stats = new ProxyStats([pool]);
      return takeSnapshot(stats, [{ stats: pool, listening: true, servers: [] }], 1, 0, 0, { residentBytes: 0, heapUsedBytes: 0, cpuSeconds: 0 });
    };
    const a = worker(1, 7, 0, 4, 5);
    const b = worker(1, 6, 10, 2, 1);
    const sum = new ProxyStats([]);
    sumSnapshots(sum, [a, b], retire(null, worker(1, 9, 0, 100, 100)));
    const c = sum.pools[0]!.cluster!;
    expect([c[C.cluster_map_loaded], c[C.cluster_epoch], c[C.cluster_uncovered_slots], c[C.cluster_map_loads], c[C.cluster_moved]]).toEqual([1, 6, 10, 106, 106]);
    const [health] = sumHealth([a, b, worker(0, -1, 16384, 0, 0)]);
    expect(health!.cluster).toMatchObject({ loaded: false, epoch: -1, uncoveredSlots: 16384, mapLoads: 6, moved: 6 });
    expect(sumHealth([a])[0]!.cluster).toMatchObject({ loaded: true, epoch: 7, uncoveredSlots: 0 });
  });

  test("uptime and timestamp are whole seconds of the clock", () => {
    const stats = store();
    const now = stats.startedAt + 90_500;
    const doc = JSON.parse(renderStatsJson(stats, now));
    expect(doc.timestamp).toBe(Math.floor(now / 1000));
    expect(doc.uptime).toBe(Math.floor(now / 1000) - Math.floor(stats.startedAt / 1000));
  });

  test("connection totals are served live", () => {
    const stats = store();
    stats.totalConnections = 9;
    stats.currConnections = 4;
    const doc = JSON.parse(renderStatsJson(stats));
    expect([doc.total_connections, doc.curr_connections]).toEqual([9, 4]);
  });
});

describe("stats server", () => {
  test("writes one document and a newline, then closes; counters follow every -i ms", async () => {
    const stats = new ProxyStats([new PoolStats("p", [new ServerStats("s")])]);
    const server = startStatsServer({ hostname: "127.0.0.1", port: 0, intervalMs: 20, stats });
    try {
      const first = await readStats(server.port);
      expect(first.endsWith("}\n")).toBe(true);
      expect(first.indexOf("\n")).toBe(first.length - 1);
      expect(JSON.parse(first).p.s.requests).toBe(0);

      stats.pools[0]!.servers[0]!.counters[S.requests] = 5;
      let seen = 0;
      for (let i = 0; i < 500 && seen !== 5; i++) {
        await Bun.sleep(10);
        seen = JSON.parse(await readStats(server.port)).p.s.requests;
      }
      expect(seen).toBe(5);
    } finally {
      server.stop();
    }
  });

  test("a document larger than the socket buffers arrives whole", async () => {
    const servers = Array.from({ length: 20_000 }, (_, i) => new ServerStats(`10.0.${i >> 8}.${i & 255}:6379`));
    const stats = new ProxyStats([new PoolStats("big", servers)]);
    const server = startStatsServer({ hostname: "127.0.0.1", port: 0, intervalMs: 1000, stats });
    try {
      const text = await readStats(server.port);
      expect(text.length).toBeGreaterThan(4 * 1024 * 1024);
      expect(text).toBe(renderStatsJson(stats, JSON.parse(text).timestamp * 1000));
    } finally {
      server.stop();
    }
  });

  test("an address in use is a clear error", () => {
    const stats = new ProxyStats([]);
    const first = startStatsServer({ hostname: "127.0.0.1", port: 0, intervalMs: 1000, stats });
    try {
      expect(() =>
        startStatsServer({ hostname: "127.0.0.1", port: first.port, intervalMs: 1000, stats }),
      ).toThrow(`stats: cannot listen on 127.0.0.1:${first.port}`);
    } finally {
      first.stop();
    }
  });
});
