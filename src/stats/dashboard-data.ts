// The dashboard's data (GET /dashboard.json on the metrics port, which the page at / polls):
// pools and servers as they are now (state, address, connections), request and error rates and
// latency percentiles over the last seconds, memory (under --workers: the total and each
// worker's, with its CPU and event-loop lag), config generation and reload history.
// Rates and percentiles need the past: a sampler copies the counters and histogram buckets once
// a second into a short ring (pools and servers matched by name, so reloads keep their history)
// and answers from the difference between the newest sample and an older one. It only reads the
// stats store and the health source; the data path never sees it.

import { VERSION } from "../lib/version.ts";
import { LATENCY_BOUNDS_US, type Histogram } from "./histogram.ts";
import type { HealthSource } from "./http.ts";
import { ownProcessFigures, processTotals, type WorkerFigures, type WorkerProcesses } from "./process.ts";
import type { ReloadHistory, ReloadRecord } from "./reloads.ts";
import type { ProxyStats } from "./store.ts";
import { P, S } from "./table.ts";

const SAMPLE_MS = 1000;
/** Samples kept: the request-rate history the page draws (one minute). */
const RING = 61;
/** Rates are over this many samples (seconds), percentiles over LATENCY_WINDOW. */
const RATE_WINDOW = 5;
const LATENCY_WINDOW = 10;

/** One pool's or server's cumulative numbers at a sample. */
interface Totals {
  readonly requests: number;
  readonly errors: number;
  readonly buckets: Float64Array;
}

interface Sample {
  /** ms since the epoch. */
  readonly at: number;
  /** By pool name, and by `pool/server` name. */
  readonly totals: Map<string, Totals>;
}

export interface LatencySummary {
  /** Requests answered in the window. */
  readonly count: number;
  /** µs, interpolated within the histogram's power-of-two buckets; null when count is 0. */
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
}

export type ServerState = "up" | "failing" | "ejected";

export interface DashboardServer {
  readonly name: string;
  readonly address: string | null;
  /** ejected: out of the pool until server_retry_timeout; failing: its last requests failed
   *  (server_failure_limit not reached yet); up: otherwise. */
  readonly state: ServerState;
  readonly failures: number;
  readonly connections: number;
  readonly requestsPerSec: number;
  readonly errorsPerSec: number;
  readonly latency: LatencySummary;
}

/** A worker of --workers, as of its last report. */
export interface DashboardWorker {
  readonly index: number;
  readonly pid: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly cpuSeconds: number;
  readonly loopLagSeconds: number;
  /** ISO time the supervisor last started it (a restart moves it). */
  readonly startedAt: string;
}

export interface DashboardPool {
  readonly name: string;
  readonly listening: boolean;
  readonly clientConnections: number;
  readonly requestsPerSec: number;
  readonly errorsPerSec: number;
  readonly latency: LatencySummary;
  readonly servers: DashboardServer[];
}

export interface DashboardData {
  readonly version: string;
  readonly runtime: string;
  readonly pid: number;
  /** ISO time of this answer. */
  readonly now: string;
  readonly uptimeSec: number;
  /** --workers: the supervisor's plus its workers' (stats/process.ts processTotals). */
  readonly memory: { readonly rssBytes: number; readonly heapUsedBytes: number };
  /** --workers only: the live workers, by index. */
  readonly workers?: readonly DashboardWorker[];
  readonly connections: { readonly current: number; readonly total: number };
  readonly config: {
    readonly generation: number;
    readonly loadedAt: string | null;
    readonly reloads: readonly (Omit<ReloadRecord, "at"> & { readonly at: string })[];
  };
  /** Seconds the rates are averaged over, and the percentiles' window. */
  readonly windows: { readonly rateSec: number; readonly latencySec: number };
  readonly pools: DashboardPool[];
  /** Requests and errors per second over all pools, oldest first, one per sample. */
  readonly history: { readonly at: string; readonly requestsPerSec: number; readonly errorsPerSec: number }[];
}

export interface DashboardSources {
  readonly stats: ProxyStats;
  readonly health: HealthSource;
  readonly generation: () => number;
  readonly loadedAt: () => number | undefined;
  /** Absent where reloads are not recorded (the supervisor of --workers). */
  readonly reloads?: ReloadHistory;
  /** The supervisor of --workers: its workers' processes; absent in a single process. */
  readonly workers?: () => WorkerProcesses;
}

const copyBuckets = (h: Histogram): Float64Array => new Float64Array(h.buckets);

function take(stats: ProxyStats, at: number): Sample {
  const totals = new Map<string, Totals>();
  for (const pool of stats.pools) {
    const c = pool.counters;
    totals.set(pool.name, {
      requests: pool.latency.count,
      errors: c[P.forward_error]! + c[P.request_errors]! + c[P.client_err]!,
      buckets: copyBuckets(pool.latency),
    });
    for (const server of pool.servers) {
      const s = server.counters;
      totals.set(`${pool.name}/${server.name}`, {
        requests: s[S.requests]!,
        errors: s[S.server_err]! + s[S.server_timedout]!,
        buckets: copyBuckets(server.latency),
      });
    }
  }
  return { at, totals };
}

/** The value below which `q` of the counts lie, interpolated within its bucket (µs). */
function quantile(buckets: Float64Array, count: number, q: number): number {
  const rank = q * count;
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    const n = buckets[i]!;
    if (n > 0 && seen + n >= rank) {
      const low = i === 0 ? 0 : LATENCY_BOUNDS_US[i - 1]!;
      // The overflow bucket has no upper bound: report its lower one.
      const high = LATENCY_BOUNDS_US[i] ?? low;
      return Math.round(low + ((high - low) * (rank - seen)) / n);
    }
    seen += n;
  }
  return LATENCY_BOUNDS_US[LATENCY_BOUNDS_US.length - 1]!;
}

function latency(now: Totals | undefined, then: Totals | undefined): LatencySummary {
  if (now === undefined) return { count: 0, p50: null, p90: null, p99: null };
  const delta = new Float64Array(now.buckets.length);
  let count = 0;
  for (let i = 0; i < delta.length; i++) {
    delta[i] = now.buckets[i]! - (then?.buckets[i] ?? 0);
    count += delta[i]!;
  }
  if (count <= 0) return { count: 0, p50: null, p90: null, p99: null };
  return { count, p50: quantile(delta, count, 0.5), p90: quantile(delta, count, 0.9), p99: quantile(delta, count, 0.99) };
}

/** Per-second rates of `key` between two samples (0 before there are two). */
function rates(newer: Sample, older: Sample, key: string): { requestsPerSec: number; errorsPerSec: number } {
  const a = newer.totals.get(key);
  const b = older.totals.get(key);
  const seconds = (newer.at - older.at) / 1000;
  if (a === undefined || seconds <= 0) return { requestsPerSec: 0, errorsPerSec: 0 };
  const per = (x: number, y: number): number => Math.max(0, Math.round(((x - y) / seconds) * 10) / 10);
  return { requestsPerSec: per(a.requests, b?.requests ?? a.requests), errorsPerSec: per(a.errors, b?.errors ?? a.errors) };
}

const dashboardWorker = (w: WorkerFigures): DashboardWorker => ({
  index: w.index,
  pid: w.pid,
  rssBytes: w.residentBytes,
  heapUsedBytes: w.heapUsedBytes,
  cpuSeconds: w.cpuSeconds,
  loopLagSeconds: w.loopLagSeconds,
  startedAt: new Date(w.startedAt).toISOString(),
});

export class DashboardSampler {
  private readonly ring: Sample[] = [];
  private timer: Timer | null = null;

  constructor(private readonly sources: DashboardSources) {}

  start(): void {
    if (this.timer !== null) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private sample(): void {
    this.ring.push(take(this.sources.stats, Date.now()));
    if (this.ring.length > RING) this.ring.shift();
  }

  data(): DashboardData {
    const { stats, health, generation, loadedAt, reloads } = this.sources;
    // The current numbers are a sample of their own, so the page shows a reload or an ejection
    // at once; rates compare it with the ring.
    const current = take(stats, Date.now());
    const all = [...this.ring, current];
    /** The sample `back` seconds before now (the oldest there is, if fewer). */
    const before = (back: number): Sample => all[Math.max(0, all.length - 1 - back)]!;
    const rateBase = before(RATE_WINDOW);
    const latencyBase = before(LATENCY_WINDOW);
    const poolStats = new Map(stats.pools.map((p) => [p.name, p]));
    const pools = health.health().map((p): DashboardPool => {
      const ps = poolStats.get(p.name);
      const servers = p.servers.map((s): DashboardServer => {
        const key = `${p.name}/${s.name}`;
        const counters = ps?.servers.find((x) => x.name === s.name)?.counters;
        return {
          name: s.name,
          address: s.address,
          state: s.ejected ? "ejected" : s.failures > 0 ? "failing" : "up",
          failures: s.failures,
          connections: counters?.[S.server_connections] ?? 0,
          ...rates(current, rateBase, key),
          latency: latency(current.totals.get(key), latencyBase.totals.get(key)),
        };
      });
      return {
        name: p.name,
        listening: p.listening,
        clientConnections: ps?.counters[P.client_connections] ?? 0,
        ...rates(current, rateBase, p.name),
        latency: latency(current.totals.get(p.name), latencyBase.totals.get(p.name)),
        servers,
      };
    });
    const history = all.slice(1).map((sample, i) => {
      let requestsPerSec = 0;
      let errorsPerSec = 0;
      for (const pool of stats.pools) {
        const r = rates(sample, all[i]!, pool.name);
        requestsPerSec += r.requestsPerSec;
        errorsPerSec += r.errorsPerSec;
      }
      return { at: new Date(sample.at).toISOString(), requestsPerSec, errorsPerSec };
    });
    const loaded = loadedAt();
    const workers = this.sources.workers?.();
    const memory = processTotals(ownProcessFigures(), workers);
    return {
      version: VERSION,
      runtime: `bun ${Bun.version}`,
      pid: process.pid,
      now: new Date(current.at).toISOString(),
      uptimeSec: Math.round((current.at - stats.startedAt) / 1000),
      memory: { rssBytes: memory.residentBytes, heapUsedBytes: memory.heapUsedBytes },
      ...(workers === undefined ? {} : { workers: workers.live.map(dashboardWorker) }),
      connections: { current: stats.currConnections, total: stats.totalConnections },
      config: {
        generation: generation(),
        loadedAt: loaded === undefined ? null : new Date(loaded).toISOString(),
        reloads: (reloads?.list() ?? []).map((r) => ({ ...r, at: new Date(r.at).toISOString() })),
      },
      windows: { rateSec: RATE_WINDOW, latencySec: LATENCY_WINDOW },
      pools,
      history,
    };
  }
}
