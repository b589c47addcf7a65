// Workers report their counters to the supervisor as plain snapshots; the supervisor sums them
// into one ProxyStats, so the stats port and /metrics show the workers as one proxy.

import type { PoolHealth } from "../stats/http.ts";
import type { Histogram } from "../stats/histogram.ts";
import { PoolStats, ServerStats, type ProxyStats } from "../stats/store.ts";
import { S } from "../stats/table.ts";

interface HistogramSnapshot {
  readonly buckets: number[];
  readonly count: number;
  readonly sumMicros: number;
}

interface ServerSnapshot {
  readonly name: string;
  readonly counters: number[];
  readonly latency: HistogramSnapshot;
  readonly ejected: boolean;
}

interface PoolSnapshot {
  readonly name: string;
  readonly listening: boolean;
  readonly counters: number[];
  readonly latency: HistogramSnapshot;
  readonly servers: ServerSnapshot[];
}

export interface StatsSnapshot {
  readonly totalConnections: number;
  readonly currConnections: number;
  readonly generation: number;
  readonly pools: PoolSnapshot[];
}

/** What a worker knows about one of its pools (implemented by core/Pool). */
export interface PoolView {
  readonly stats: PoolStats;
  readonly listening: boolean;
  readonly servers: readonly { readonly ejected: boolean; readonly stats: ServerStats }[];
}

const histogram = (h: Histogram): HistogramSnapshot => ({
  buckets: Array.from(h.buckets),
  count: h.count,
  sumMicros: h.sumMicros,
});

export function takeSnapshot(
  stats: ProxyStats,
  pools: readonly PoolView[],
  generation: number,
): StatsSnapshot {
  return {
    totalConnections: stats.totalConnections,
    currConnections: stats.currConnections,
    generation,
    pools: pools.map((p) => ({
      name: p.stats.name,
      listening: p.listening,
      counters: Array.from(p.stats.counters),
      latency: histogram(p.stats.latency),
      servers: p.servers.map((s) => ({
        name: s.stats.name,
        counters: Array.from(s.stats.counters),
        latency: histogram(s.stats.latency),
        ejected: s.ejected,
      })),
    })),
  };
}

function addHistogram(into: Histogram, from: HistogramSnapshot): void {
  for (let i = 0; i < from.buckets.length; i++) into.buckets[i]! += from.buckets[i]!;
  into.count += from.count;
  into.sumMicros += from.sumMicros;
}

function addCounters(into: Float64Array, from: number[], timestampSlot: number): void {
  for (let i = 0; i < from.length; i++) {
    // A timestamp (server_ejected_at) is the latest of the workers', not a sum.
    into[i] = i === timestampSlot ? Math.max(into[i]!, from[i]!) : into[i]! + from[i]!;
  }
}

/** Replace `target`'s pools with the sum of the snapshots (pools and servers matched by name,
 *  in the order the first snapshot that has them lists them). */
export function sumSnapshots(target: ProxyStats, snapshots: Iterable<StatsSnapshot>): void {
  const pools = new Map<string, PoolStats>();
  const servers = new Map<string, ServerStats>();
  let total = 0;
  let curr = 0;
  for (const snap of snapshots) {
    total += snap.totalConnections;
    curr += snap.currConnections;
    for (const p of snap.pools) {
      let pool = pools.get(p.name);
      if (pool === undefined) {
        pool = new PoolStats(p.name, []);
        pools.set(p.name, pool);
      }
      addCounters(pool.counters, p.counters, -1);
      addHistogram(pool.latency, p.latency);
      for (const s of p.servers) {
        const key = `${p.name}\n${s.name}`;
        let server = servers.get(key);
        if (server === undefined) {
          server = new ServerStats(s.name);
          servers.set(key, server);
          pool.servers.push(server);
        }
        addCounters(server.counters, s.counters, S.server_ejected_at);
        addHistogram(server.latency, s.latency);
      }
    }
  }
  // The workers' reports are the aggregation: serve them as they arrive (every second).
  for (const pool of pools.values()) {
    pool.aggregated.set(pool.counters);
    for (const server of pool.servers) server.aggregated.set(server.counters);
  }
  target.totalConnections = total;
  target.currConnections = curr;
  target.pools = [...pools.values()];
}

/** /healthz over all workers: a pool listens when any worker listens on it; a server is
 *  ejected when any worker ejected it. */
export function sumHealth(snapshots: Iterable<StatsSnapshot>): PoolHealth[] {
  const pools = new Map<string, { listening: boolean; servers: Map<string, boolean> }>();
  for (const snap of snapshots) {
    for (const p of snap.pools) {
      let pool = pools.get(p.name);
      if (pool === undefined) {
        pool = { listening: false, servers: new Map() };
        pools.set(p.name, pool);
      }
      pool.listening ||= p.listening;
      for (const s of p.servers) pool.servers.set(s.name, (pool.servers.get(s.name) ?? false) || s.ejected);
    }
  }
  return [...pools].map(([name, p]) => ({
    name,
    listening: p.listening,
    servers: [...p.servers].map(([server, ejected]) => ({ name: server, ejected })),
  }));
}
