// /metrics, /healthz and /reload: the exposition is read back by a small parser of the
// Prometheus text format 0.0.4 (HELP/TYPE before samples, name and label syntax, one series
// once, cumulative histogram buckets), and its values checked against what was counted.

import { describe, expect, test } from "bun:test";
import { LATENCY_BOUNDS_US } from "../../src/stats/histogram.ts";
import { type HealthSource, type PoolHealth, startMetricsServer } from "../../src/stats/http.ts";
import { metricName, renderMetrics } from "../../src/stats/prometheus.ts";
import { PoolStats, ProxyStats, ServerStats } from "../../src/stats/store.ts";
import { P, POOL_STATS, S, SERVER_STATS } from "../../src/stats/table.ts";
import { parseExposition, parseValue, type Sample, value } from "../helpers/prometheus.ts";

const RUNTIME = { residentBytes: 12345678, cpuSeconds: 1.5, eventLoopLagSeconds: 0.002, configGeneration: 1, bufferBudgetBytes: 2147483648, listeningPools: new Set(["alpha"]) };

function sampleStats(): ProxyStats {
  const stats = new ProxyStats([
    new PoolStats("alpha", [new ServerStats("127.0.0.1:6379"), new ServerStats('we"ird\\name')]),
    new PoolStats("beta", [new ServerStats("127.0.0.1")]),
  ]);
  const alpha = stats.pools[0]!;
  alpha.counters[P.client_eof] = 4;
  alpha.counters[P.client_connections] = 2;
  alpha.counters[P.server_ejects] = 1;
  alpha.servers[0]!.counters[S.requests] = 10;
  alpha.servers[0]!.counters[S.request_bytes] = 1234;
  alpha.servers[1]!.counters[S.server_ejected_at] = 1_795_651_485_250_000;
  stats.totalConnections = 9;
  stats.currConnections = 5;
  return stats;
}

describe("exposition", () => {
  test("parses as Prometheus text 0.0.4, with every stat of the table", () => {
    const families = parseExposition(renderMetrics(sampleStats(), RUNTIME));
    for (const spec of POOL_STATS) {
      const f = families.get(metricName("pool", spec));
      expect(f?.type).toBe(spec.kind === "counter" ? "counter" : "gauge");
      expect(f?.samples.map((s) => s.labels)).toEqual([{ pool: "alpha" }, { pool: "beta" }]);
    }
    for (const spec of SERVER_STATS) {
      const f = families.get(metricName("server", spec));
      expect(f?.samples.map((s) => s.labels)).toEqual([
        { pool: "alpha", server: "127.0.0.1:6379" },
        { pool: "alpha", server: 'we"ird\\name' },
        { pool: "beta", server: "127.0.0.1" },
      ]);
    }
  });

  test("names follow the conventions, values are the counted ones", () => {
    const f = parseExposition(renderMetrics(sampleStats(), RUNTIME));
    expect(value(f, "buncracker_pool_client_eof_total", { pool: "alpha" })).toBe(4);
    expect(value(f, "buncracker_pool_client_connections", { pool: "alpha" })).toBe(2);
    expect(value(f, "buncracker_server_requests_total", { server: "127.0.0.1:6379" })).toBe(10);
    expect(value(f, "buncracker_server_request_bytes_total", { server: "127.0.0.1:6379" })).toBe(1234);
    expect(value(f, "buncracker_pool_server_ejects_total", { pool: "alpha" })).toBe(1);
    // As /healthz's listening: beta is not bound (or drains).
    expect(value(f, "buncracker_pool_listening", { pool: "alpha" })).toBe(1);
    expect(value(f, "buncracker_pool_listening", { pool: "beta" })).toBe(0);
    expect(value(f, "buncracker_server_eof_total", { pool: "beta" })).toBe(0);
    expect(value(f, "buncracker_server_connections", { pool: "beta" })).toBe(0);
    // µs since the epoch in the table, seconds here
    expect(value(f, "buncracker_server_ejected_at_seconds", { server: 'we"ird\\name' })).toBe(1_795_651_485.25);
    expect(value(f, "buncracker_connections_total", {})).toBe(9);
    expect(value(f, "buncracker_connections", {})).toBe(5);
    expect(value(f, "process_resident_memory_bytes", {})).toBe(RUNTIME.residentBytes);
    expect(value(f, "buncracker_event_loop_lag_seconds", {})).toBe(RUNTIME.eventLoopLagSeconds);
    expect(value(f, "buncracker_config_generation", {})).toBe(1);
    expect(value(f, "buncracker_buffer_budget_bytes", {})).toBe(RUNTIME.bufferBudgetBytes);
    expect(f.get("buncracker_uptime_seconds")?.type).toBe("gauge");
  });

  test("latency histograms per pool and per server count each observation in its bucket", () => {
    const stats = sampleStats();
    const server = stats.pools[0]!.servers[0]!;
    const observed = [3, 16, 16.5, 250, 1_000, 40_000, 2_500_000, 1e12];
    for (const us of observed) server.observe(us);
    stats.pools[1]!.observe(700);

    const f = parseExposition(renderMetrics(stats, RUNTIME));
    const family = "buncracker_request_duration_seconds";
    const labels = { pool: "alpha", server: "127.0.0.1:6379" };
    const buckets = f.get(family)!.samples.filter(
      (s) => s.name === `${family}_bucket` && s.labels.server === labels.server,
    );
    const le = (b: Sample): number => parseValue(b.labels.le!, "");
    expect(buckets.map(le)).toEqual([...LATENCY_BOUNDS_US.map((us) => us / 1e6), Infinity]);
    for (const b of buckets) {
      expect(b.value).toBe(observed.filter((us) => us / 1e6 <= le(b)).length);
    }
    expect(value(f, family, labels, `${family}_count`)).toBe(observed.length);
    expect(value(f, family, labels, `${family}_sum`)).toBeCloseTo(observed.reduce((a, b) => a + b) / 1e6, 6);
    expect(value(f, family, { server: "127.0.0.1" }, `${family}_count`)).toBe(0);

    const pool = "buncracker_pool_request_duration_seconds";
    expect(value(f, pool, { pool: "beta" }, `${pool}_count`)).toBe(1);
    expect(value(f, pool, { pool: "beta", le: "0.001024" }, `${pool}_bucket`)).toBe(1);
    expect(value(f, pool, { pool: "beta", le: "0.000512" }, `${pool}_bucket`)).toBe(0);
    expect(value(f, pool, { pool: "alpha" }, `${pool}_count`)).toBe(0);
  });
});

test("a server of a pool that follows sentinels: its address as a label, its failovers", () => {
  const stats = sampleStats();
  const moved = stats.pools[1]!.servers[0]!;
  moved.address = "127.0.0.1:6380";
  moved.counters[S.failovers] = 2;
  const f = parseExposition(renderMetrics(stats, RUNTIME));
  expect(f.get("buncracker_server_address_info")?.samples).toEqual([
    { name: "buncracker_server_address_info", labels: { pool: "beta", server: "127.0.0.1", address: "127.0.0.1:6380" }, value: 1 },
  ]);
  expect(value(f, "buncracker_server_failovers_total", { pool: "beta" })).toBe(2);
  expect(value(f, "buncracker_server_failovers_total", { server: "127.0.0.1:6379" })).toBe(0);
});

describe("metrics HTTP server", () => {
  const pools: PoolHealth[] = [
    {
      name: "alpha",
      listening: true,
      sentinels: false,
      servers: [
        { name: "a1", ejected: false, address: "127.0.0.1:6379", failures: 0 },
        { name: "a2", ejected: true, address: "127.0.0.1:6380", failures: 0 },
      ],
    },
    { name: "beta", listening: true, sentinels: true, servers: [{ name: "b1", ejected: false, address: "10.0.0.5:6379", failures: 1 }] },
  ];
  const health: HealthSource = { health: () => pools };

  async function withServer(
    extra: { reload?: () => Promise<void> },
    run: (base: string) => Promise<void>,
  ): Promise<void> {
    const server = startMetricsServer({ hostname: "127.0.0.1", port: 0, stats: sampleStats(), health, ...extra });
    try {
      await run(`http://127.0.0.1:${server.port}`);
    } finally {
      server.stop();
    }
  }

  test("GET /metrics serves the exposition as text 0.0.4", async () => {
    await withServer({}, async (base) => {
      const res = await fetch(`${base}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
      const f = parseExposition(await res.text());
      expect(value(f, "buncracker_pool_client_eof_total", { pool: "alpha" })).toBe(4);
      expect(value(f, "process_resident_memory_bytes", {})).toBeGreaterThan(0);
    });
  });

  test("GET /healthz: 200 with live and ejected servers while every pool listens, else 503; addresses of pools that follow sentinels", async () => {
    await withServer({}, async (base) => {
      let res = await fetch(`${base}/healthz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({
        status: "ok",
        config: { generation: 1 },
        pools: [
          { name: "alpha", listening: true, live: ["a1"], ejected: ["a2"] },
          { name: "beta", listening: true, live: ["b1"], ejected: [], addresses: { b1: "10.0.0.5:6379" } },
        ],
      });
      pools[1] = { ...pools[1]!, listening: false };
      res = await fetch(`${base}/healthz`);
      expect(res.status).toBe(503);
      expect((await res.json()).status).toBe("unavailable");
      pools[1] = { ...pools[1]!, listening: true };
    });
  });

  test("GET /healthz: a redis_cluster pool shows its map; 503 without one or with uncovered slots", async () => {
    const map = { loaded: true, epoch: 7, uncoveredSlots: 0, mapLoads: 3, mapLoadFailures: 1, moved: 2, asked: 1, retried: 0, resentLost: 4 };
    pools.push({ name: "big", listening: true, sentinels: false, servers: [{ name: "127.0.0.1:7000", ejected: false, address: "127.0.0.1:7000", failures: 0 }], cluster: map });
    try {
      await withServer({}, async (base) => {
        let res = await fetch(`${base}/healthz`);
        expect(res.status).toBe(200);
        expect((await res.json()).pools[2]).toEqual({ name: "big", listening: true, live: ["127.0.0.1:7000"], ejected: [], cluster: map });
        pools[2] = { ...pools[2]!, cluster: { ...map, uncoveredSlots: 100 } };
        res = await fetch(`${base}/healthz`);
        expect(res.status).toBe(503);
        expect((await res.json()).pools[2].cluster.uncoveredSlots).toBe(100);
        pools[2] = { ...pools[2]!, cluster: { ...map, loaded: false, uncoveredSlots: 16384 } };
        expect((await fetch(`${base}/healthz`)).status).toBe(503);
      });
    } finally {
      pools.pop();
    }
  });

  test("POST /reload runs the callback and reports its outcome; 501 without one", async () => {
    await withServer({}, async (base) => {
      expect((await fetch(`${base}/reload`, { method: "POST" })).status).toBe(501);
    });
    let calls = 0;
    await withServer({ reload: async () => void calls++ }, async (base) => {
      const res = await fetch(`${base}/reload`, { method: "POST" });
      expect([res.status, calls]).toEqual([200, 1]);
    });
    const failing = async () => {
      throw new Error("conf/x.yml: pool 'a': directive \"bogus\" is unknown");
    };
    await withServer({ reload: failing }, async (base) => {
      const res = await fetch(`${base}/reload`, { method: "POST" });
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ error: "conf/x.yml: pool 'a': directive \"bogus\" is unknown" });
    });
  });

  test("wrong method is 405 with Allow, unknown path 404", async () => {
    await withServer({}, async (base) => {
      const wrong = await fetch(`${base}/reload`);
      expect([wrong.status, wrong.headers.get("allow")]).toEqual([405, "POST"]);
      expect((await fetch(`${base}/metrics`, { method: "POST" })).status).toBe(405);
      expect((await fetch(`${base}/nope`)).status).toBe(404);
    });
  });
});
