// The dashboard's data (stats/dashboard-data.ts) from a stats store the test fills: latency
// percentiles land in the histogram buckets that hold them and count only what was observed
// after the window's start, server states follow health (ejected, failing, up), rates are
// non-negative and zero without traffic, and the reload history is newest first and bounded.

import { afterEach, expect, test } from "bun:test";
import { DashboardSampler } from "../../src/stats/dashboard-data.ts";
import type { PoolHealth } from "../../src/stats/http.ts";
import { ReloadHistory } from "../../src/stats/reloads.ts";
import { PoolStats, ProxyStats, ServerStats } from "../../src/stats/store.ts";
import { S } from "../../src/stats/table.ts";

const samplers: DashboardSampler[] = [];
afterEach(() => samplers.splice(0).forEach((s) => s.stop()));

function setup(servers: PoolHealth["servers"]) {
  const stats = new ProxyStats([new PoolStats("p", servers.map((s) => new ServerStats(s.name)))]);
  const reloads = new ReloadHistory();
  const sampler = new DashboardSampler({
    stats,
    health: { health: () => [{ name: "p", listening: true, sentinels: false, servers }] },
    generation: () => 3,
    loadedAt: () => 0,
    reloads,
  });
  samplers.push(sampler);
  return { stats, reloads, sampler };
}

test("percentiles come from the buckets holding them, over what was observed since the window began", () => {
  const { stats, sampler } = setup([{ name: "a", ejected: false, address: "127.0.0.1:1", failures: 0 }]);
  const pool = stats.pools[0]!;
  for (let i = 0; i < 50; i++) pool.observe(5000); // before the first sample: outside the window
  sampler.start();
  for (let i = 0; i < 90; i++) pool.observe(20);
  for (let i = 0; i < 10; i++) pool.observe(3000);
  const latency = sampler.data().pools[0]!.latency;
  expect(latency.count).toBe(100);
  expect(latency.p50!).toBeGreaterThan(16);
  expect(latency.p50!).toBeLessThanOrEqual(32);
  expect(latency.p99!).toBeGreaterThan(2048);
  expect(latency.p99!).toBeLessThanOrEqual(4096);
});

test("no traffic: no percentiles, zero rates", () => {
  const { sampler } = setup([{ name: "a", ejected: false, address: "127.0.0.1:1", failures: 0 }]);
  sampler.start();
  const pool = sampler.data().pools[0]!;
  expect(pool.latency).toEqual({ count: 0, p50: null, p90: null, p99: null });
  expect([pool.requestsPerSec, pool.errorsPerSec]).toEqual([0, 0]);
});

test("server state, address and connections follow health and the counters", () => {
  const { stats, sampler } = setup([
    { name: "up", ejected: false, address: "10.0.0.1:6379", failures: 0 },
    { name: "failing", ejected: false, address: "10.0.0.2:6379", failures: 2 },
    { name: "out", ejected: true, address: "10.0.0.3:6379", failures: 0 },
  ]);
  stats.pools[0]!.servers[0]!.counters[S.server_connections] = 4;
  sampler.start();
  const servers = sampler.data().pools[0]!.servers;
  expect(servers.map((s) => [s.name, s.state, s.address])).toEqual([
    ["up", "up", "10.0.0.1:6379"],
    ["failing", "failing", "10.0.0.2:6379"],
    ["out", "ejected", "10.0.0.3:6379"],
  ]);
  expect(servers[0]!.connections).toBe(4);
});

test("server requests and errors after the first sample give positive rates", async () => {
  const { stats, sampler } = setup([{ name: "a", ejected: false, address: "127.0.0.1:1", failures: 0 }]);
  sampler.start();
  await Bun.sleep(20);
  const counters = stats.pools[0]!.servers[0]!.counters;
  counters[S.requests] = 10;
  counters[S.server_timedout] = 2;
  const server = sampler.data().pools[0]!.servers[0]!;
  expect(server.requestsPerSec).toBeGreaterThan(0);
  expect(server.errorsPerSec).toBeGreaterThan(0);
  expect(server.errorsPerSec).toBeLessThan(server.requestsPerSec);
});

test("reload history: newest first, the last 20, times as ISO strings", () => {
  const { reloads, sampler } = setup([]);
  for (let i = 1; i <= 25; i++) reloads.record({ at: i * 1000, applied: i % 2 === 0, generation: i, detail: `r${i}` });
  const config = sampler.data().config;
  expect(config.generation).toBe(3);
  expect(config.reloads).toHaveLength(20);
  expect(config.reloads[0]).toEqual({ at: new Date(25_000).toISOString(), applied: false, generation: 25, detail: "r25" });
  expect(config.reloads.at(-1)!.detail).toBe("r6");
});
