// Workers report their counters to the supervisor as plain snapshots; the supervisor sums them
// into one ProxyStats, so the stats port and /metrics show the workers as one proxy.

import { clusterHealth, type PoolHealth } from "../stats/http.ts";
import type { Histogram } from "../stats/histogram.ts";
import type { ProcessFigures } from "../stats/process.ts";
import { PoolStats, ProxyStats, ServerStats } from "../stats/store.ts";
import { C, CLUSTER_STATS, POOL_STATS, S, SERVER_STATS, type StatSpec } from "../stats/table.ts";

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
  /** Where the server is, for a pool that follows sentinels (ServerStats.address). */
  readonly address: string | null;
}

interface PoolSnapshot {
  readonly name: string;
  readonly listening: boolean;
  /** PoolStats.extended. */
  readonly extended: boolean;
  readonly counters: number[];
  readonly latency: HistogramSnapshot;
  readonly servers: ServerSnapshot[];
  /** A redis_cluster pool's CLUSTER_STATS (each worker has its own slot map); else null. */
  readonly cluster: number[] | null;
}

export interface StatsSnapshot {
  readonly totalConnections: number;
  readonly currConnections: number;
  readonly generation: number;
  /** When the worker's config generation was loaded (ms since the epoch). */
  readonly loadedAt: number;
  /** The worker's worst event-loop lag since its previous report, seconds (EventLoopLag). */
  readonly loopLagSeconds: number;
  /** The worker's memory and CPU as it reported (retired: none; the supervisor counts the dead
   *  workers' CPU from their resource usage as it reaps them). */
  readonly process: ProcessFigures;
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
  loadedAt: number,
  loopLagSeconds: number,
  process: ProcessFigures,
): StatsSnapshot {
  return {
    totalConnections: stats.totalConnections,
    currConnections: stats.currConnections,
    generation,
    loadedAt,
    loopLagSeconds,
    process,
    pools: pools.map((p) => ({
      name: p.stats.name,
      listening: p.listening,
      extended: p.stats.extended,
      counters: Array.from(p.stats.counters),
      latency: histogram(p.stats.latency),
      cluster: p.stats.cluster === null ? null : Array.from(p.stats.cluster),
      servers: p.servers.map((s) => ({
        name: s.stats.name,
        counters: Array.from(s.stats.counters),
        latency: histogram(s.stats.latency),
        ejected: s.ejected,
        address: s.stats.address,
      })),
    })),
  };
}

function addHistogram(into: Histogram, from: HistogramSnapshot): void {
  for (let i = 0; i < from.buckets.length; i++) into.buckets[i]! += from.buckets[i]!;
  into.count += from.count;
  into.sumMicros += from.sumMicros;
}

/** Server slots that are the highest of the workers', not a sum: a timestamp
 *  (server_ejected_at), and failovers, which every worker follows on its own. */
const HIGHEST = [S.server_ejected_at, S.failovers];

function addCounters(into: Float64Array, from: number[], highest: readonly number[]): void {
  for (let i = 0; i < from.length; i++) {
    into[i] = highest.includes(i) ? Math.max(into[i]!, from[i]!) : into[i]! + from[i]!;
  }
}

/** One worker's CLUSTER_STATS into the sum (null: none yet): counters add up; the gauges say
 *  how the stalest map any live worker routes by is (loaded only when every worker's is, the
 *  lowest epoch, the most uncovered slots). A dead worker (`live` false) adds its counters only. */
function addCluster(into: Float64Array | null, from: readonly number[], live: boolean): Float64Array | null {
  if (into === null) return live ? Float64Array.from(from) : null;
  CLUSTER_STATS.forEach((spec, i) => {
    if (spec.kind === "counter") into[i]! += from[i]!;
    else if (!live) return;
    else if (i === C.cluster_uncovered_slots) into[i] = Math.max(into[i]!, from[i]!);
    else into[i] = Math.min(into[i]!, from[i]!);
  });
  return into;
}

/** Adds one pool's snapshot into `pool`; `serverFor` names where each server's counters go
 *  (undefined: nowhere); `live`: the snapshot is a running worker's (else a dead one's). */
function addPool(
  pool: PoolStats,
  p: PoolSnapshot,
  serverFor: (name: string) => ServerStats | undefined,
  live: boolean,
): void {
  pool.extended ||= p.extended;
  addCounters(pool.counters, p.counters, []);
  if (p.cluster !== null) pool.cluster = addCluster(pool.cluster, p.cluster, live);
  addHistogram(pool.latency, p.latency);
  for (const s of p.servers) {
    const server = serverFor(s.name);
    if (server === undefined) continue;
    addCounters(server.counters, s.counters, HIGHEST);
    addHistogram(server.latency, s.latency);
    server.address ??= s.address ?? null;
  }
}

/** Replace `target`'s pools with the sum of the live workers' snapshots (pools and servers
 *  matched by name, in the order the first snapshot that has them lists them), plus what workers
 *  that died had counted (`retired`) for the pools and servers that still exist. */
export function sumSnapshots(
  target: ProxyStats,
  snapshots: Iterable<StatsSnapshot>,
  retired: StatsSnapshot | null = null,
): void {
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
      const owner = pool;
      addPool(owner, p, (name) => {
        const key = `${p.name}\n${name}`;
        let server = servers.get(key);
        if (server === undefined) {
          server = new ServerStats(name);
          servers.set(key, server);
          owner.servers.push(server);
        }
        return server;
      }, true);
    }
  }
  if (retired !== null) {
    total += retired.totalConnections;
    for (const p of retired.pools) {
      const pool = pools.get(p.name);
      // Pools and servers a reload removed since are not brought back.
      if (pool !== undefined) addPool(pool, p, (name) => servers.get(`${p.name}\n${name}`), false);
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

/** A worker's counters without its gauges (its connections and queues died with it). */
const countersOnly = (table: readonly StatSpec[], counters: readonly number[]): number[] =>
  counters.map((v, i) => (table[i]?.kind === "gauge" ? 0 : v));

/** What dead workers' processes leave here: no memory (a gauge); their CPU the supervisor keeps. */
const GONE: ProcessFigures = { residentBytes: 0, heapUsedBytes: 0, cpuSeconds: 0 };

/** Adds the last report of a worker that died to `base` (null at first): counters and
 *  histograms are kept, gauges dropped, so the sum over workers never goes back. */
export function retire(base: StatsSnapshot | null, last: StatsSnapshot): StatsSnapshot {
  const dead: StatsSnapshot = {
    totalConnections: last.totalConnections,
    currConnections: 0,
    generation: last.generation,
    loadedAt: last.loadedAt,
    loopLagSeconds: 0,
    process: GONE,
    pools: last.pools.map((p) => ({
      ...p,
      listening: false,
      counters: countersOnly(POOL_STATS, p.counters),
      cluster: p.cluster === null ? null : countersOnly(CLUSTER_STATS, p.cluster),
      servers: p.servers.map((s) => ({
        ...s,
        ejected: false,
        counters: countersOnly(SERVER_STATS, s.counters),
      })),
    })),
  };
  if (base === null) return dead;
  const sum = new ProxyStats([]);
  sumSnapshots(sum, [base, dead]);
  const views = sum.pools.map((stats) => ({
    stats,
    listening: false,
    servers: stats.servers.map((server) => ({ stats: server, ejected: false })),
  }));
  return takeSnapshot(sum, views, last.generation, last.loadedAt, 0, GONE);
}

/** /healthz over all workers: a pool listens when any worker listens on it; a server is
 *  ejected when any worker ejected it. */
export function sumHealth(snapshots: Iterable<StatsSnapshot>): PoolHealth[] {
  const pools = new Map<string, { listening: boolean; servers: Map<string, boolean>; addresses: Map<string, string>; cluster: Float64Array | null }>();
  for (const snap of snapshots) {
    for (const p of snap.pools) {
      let pool = pools.get(p.name);
      if (pool === undefined) {
        pool = { listening: false, servers: new Map(), addresses: new Map(), cluster: null };
        pools.set(p.name, pool);
      }
      pool.listening ||= p.listening;
      if (p.cluster !== null) pool.cluster = addCluster(pool.cluster, p.cluster, true);
      for (const s of p.servers) {
        pool.servers.set(s.name, (pool.servers.get(s.name) ?? false) || s.ejected);
        if (s.address !== null && s.address !== undefined && !pool.addresses.has(s.name)) pool.addresses.set(s.name, s.address);
      }
    }
  }
  return [...pools].map(([name, p]) => ({
    name,
    listening: p.listening,
    // Only pools that follow sentinels report addresses (ServerStats.address); failures are
    // each worker's own.
    sentinels: p.addresses.size > 0,
    servers: [...p.servers].map(([server, ejected]) => ({ name: server, ejected, address: p.addresses.get(server) ?? null, failures: 0 })),
    ...(p.cluster === null ? {} : { cluster: clusterHealth(p.cluster) }),
  }));
}
