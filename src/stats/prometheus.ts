// Prometheus text exposition (format 0.0.4) of the stats table, the latency histograms and a few
// process metrics. Names derive from the table: a pool stat `x` is `buncracker_pool_x`, a server
// stat `server_x` or `x` is `buncracker_server_x`; counters end in `_total`, gauges do not, and
// the µs timestamp becomes `_seconds`. Values are live (Prometheus has its own scrape interval).

import { TWEMPROXY_VERSION, VERSION } from "../lib/version.ts";
import { type Histogram, LATENCY_BOUNDS_US } from "./histogram.ts";
import type { WorkerFigures } from "./process.ts";
import type { ProxyStats } from "./store.ts";
import { CLUSTER_STATS, POOL_STATS, SERVER_STATS, type StatSpec } from "./table.ts";

/** Process-wide values measured outside the stats store. */
export interface RuntimeMetrics {
  /** --workers: the supervisor's plus its workers' (stats/process.ts processTotals). */
  readonly residentBytes: number;
  readonly cpuSeconds: number;
  readonly eventLoopLagSeconds: number;
  /** --workers: each live worker's figures in its last report, by index (eventLoopLagSeconds
   *  is their highest lag); absent in a single process. */
  readonly workers?: readonly WorkerFigures[];
  readonly configGeneration: number;
  /** --buffer-budget (over all workers); the bytes held against it are the pools'
   *  client_buffered_bytes. */
  readonly bufferBudgetBytes: number;
  /** The pools that accept clients now, as /healthz says (--workers: in any worker). */
  readonly listeningPools: ReadonlySet<string>;
}

export function metricName(scope: "pool" | "server", spec: StatSpec): string {
  const name = spec.name.startsWith(`${scope}_`) ? spec.name.slice(scope.length + 1) : spec.name;
  const base = `buncracker_${scope}_${name}`;
  if (spec.kind === "counter") return `${base}_total`;
  return spec.kind === "timestamp" ? `${base}_seconds` : base;
}

/** nutcracker's "# x" reads "number of x"; timestamps are exposed in seconds, not µs. */
function help(spec: StatSpec): string {
  return spec.description.replace(/^# /, "Number of ").replace(" in usec ", " in seconds ");
}

const labelValue = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

const sampleValue = (spec: StatSpec, raw: number): number =>
  spec.kind === "timestamp" ? raw / 1e6 : raw;

const typeOf = (spec: StatSpec): string => (spec.kind === "counter" ? "counter" : "gauge");

const LE_LABELS = LATENCY_BOUNDS_US.map((us) => String(us / 1e6));

class Exposition {
  readonly lines: string[] = [];

  family(name: string, type: string, helpText: string): void {
    this.lines.push(`# HELP ${name} ${helpText}`, `# TYPE ${name} ${type}`);
  }

  sample(name: string, labels: string, value: number): void {
    this.lines.push(labels === "" ? `${name} ${value}` : `${name}{${labels}} ${value}`);
  }

  single(name: string, type: string, helpText: string, value: number): void {
    this.family(name, type, helpText);
    this.sample(name, "", value);
  }

  histogram(name: string, labels: string, h: Histogram): void {
    let cumulative = 0;
    LE_LABELS.forEach((le, i) => {
      cumulative += h.buckets[i]!;
      this.sample(`${name}_bucket`, `${labels},le="${le}"`, cumulative);
    });
    this.sample(`${name}_bucket`, `${labels},le="+Inf"`, h.count);
    this.sample(`${name}_sum`, labels, h.sumMicros / 1e6);
    this.sample(`${name}_count`, labels, h.count);
  }
}

const POOL_LATENCY = "buncracker_pool_request_duration_seconds";
const SERVER_LATENCY = "buncracker_request_duration_seconds";

/** One series per worker of --workers, labelled with its index. */
const WORKER_SERIES: readonly { readonly name: string; readonly type: string; readonly help: string; readonly of: (w: WorkerFigures) => number }[] = [
  { name: "buncracker_worker_event_loop_lag_seconds", type: "gauge",
    help: "How late a worker's event-loop probe timer fired at worst between its last two reports, in seconds.",
    of: (w) => w.loopLagSeconds },
  { name: "buncracker_worker_resident_memory_bytes", type: "gauge",
    help: "A worker's resident memory size in bytes, as of its last report.",
    of: (w) => w.residentBytes },
  { name: "buncracker_worker_cpu_seconds_total", type: "counter",
    help: "A worker's user and system CPU time spent in seconds, as of its last report (from 0 again when it is restarted).",
    of: (w) => w.cpuSeconds },
  { name: "buncracker_worker_start_time_seconds", type: "gauge",
    help: "When the supervisor last started a worker (at a restart too), since unix epoch in seconds.",
    of: (w) => w.startedAt / 1000 },
];

function perWorker(x: Exposition, workers: readonly WorkerFigures[]): void {
  for (const series of WORKER_SERIES) {
    x.family(series.name, series.type, series.help);
    for (const w of workers) x.sample(series.name, `worker="${w.index}"`, series.of(w));
  }
}

/** The whole /metrics body. */
export function renderMetrics(stats: ProxyStats, runtime: RuntimeMetrics): string {
  const x = new Exposition();
  const { pools } = stats;
  const poolLabels = pools.map((p) => `pool="${labelValue(p.name)}"`);
  const serverLabels = pools.map((p, i) =>
    p.servers.map((s) => `${poolLabels[i]},server="${labelValue(s.name)}"`),
  );

  POOL_STATS.forEach((spec, slot) => {
    const name = metricName("pool", spec);
    x.family(name, typeOf(spec), help(spec));
    pools.forEach((pool, p) =>
      x.sample(name, poolLabels[p]!, sampleValue(spec, pool.counters[slot]!)),
    );
  });
  // redis_cluster pools only: buncracker_pool_cluster_epoch, ...
  CLUSTER_STATS.forEach((spec, slot) => {
    const name = metricName("pool", spec);
    x.family(name, typeOf(spec), help(spec));
    pools.forEach((pool, p) => {
      if (pool.cluster !== null) x.sample(name, poolLabels[p]!, pool.cluster[slot]!);
    });
  });
  SERVER_STATS.forEach((spec, slot) => {
    const name = metricName("server", spec);
    x.family(name, typeOf(spec), help(spec));
    pools.forEach((pool, p) =>
      pool.servers.forEach((server, s) =>
        x.sample(name, serverLabels[p]![s]!, sampleValue(spec, server.counters[slot]!)),
      ),
    );
  });

  x.family("buncracker_server_address_info", "gauge",
    "Where a server of a pool that follows sentinels is now (always 1; the address is a label).");
  pools.forEach((pool, p) =>
    pool.servers.forEach((server, s) => {
      if (server.address !== null) {
        x.sample("buncracker_server_address_info", `${serverLabels[p]![s]!},address="${labelValue(server.address)}"`, 1);
      }
    }),
  );

  x.family("buncracker_pool_listening", "gauge",
    "Whether the pool accepts clients now: 1, or 0 when its address is not bound or it drains (--workers: 1 when any worker accepts them), as /healthz says.");
  pools.forEach((pool, p) => x.sample("buncracker_pool_listening", poolLabels[p]!, runtime.listeningPools.has(pool.name) ? 1 : 0));

  x.family(POOL_LATENCY, "histogram",
    "Client-visible request latency: request parsed to reply ready (fragments merged).");
  pools.forEach((pool, p) => x.histogram(POOL_LATENCY, poolLabels[p]!, pool.latency));
  x.family(SERVER_LATENCY, "histogram",
    "Server round trip of each request or fragment: forwarded to reply parsed.");
  pools.forEach((pool, p) =>
    pool.servers.forEach((server, s) =>
      x.histogram(SERVER_LATENCY, serverLabels[p]![s]!, server.latency),
    ),
  );

  x.single("buncracker_connections_total", "counter",
    "Connections ever opened (listeners, clients, servers): the stats total_connections.",
    stats.totalConnections);
  x.single("buncracker_connections", "gauge",
    "Connections open now (listeners, clients, servers): the stats curr_connections.",
    stats.currConnections);
  x.single("buncracker_uptime_seconds", "gauge", "Seconds since the proxy started.",
    (Date.now() - stats.startedAt) / 1000);
  x.single("buncracker_event_loop_lag_seconds", "gauge",
    "How late the last event-loop probe timer fired, in seconds (--workers: the highest of buncracker_worker_event_loop_lag_seconds).",
    runtime.eventLoopLagSeconds);
  if (runtime.workers !== undefined) perWorker(x, runtime.workers);
  x.single("buncracker_config_generation", "gauge",
    "Configuration generation: 1 at start, plus one per successful reload.",
    runtime.configGeneration);
  x.single("buncracker_buffer_budget_bytes", "gauge",
    "The buffer budget (--buffer-budget): past it, the clients holding the most are read no further; what is held is buncracker_pool_client_buffered_bytes.",
    runtime.bufferBudgetBytes);
  x.family("buncracker_build_info", "gauge",
    "Versions of buncracker and of the twemproxy it is compatible with (always 1).");
  x.sample("buncracker_build_info",
    `version="${labelValue(VERSION)}",twemproxy="${TWEMPROXY_VERSION}"`, 1);
  // --workers: the sums over the supervisor and its workers (README, Workers).
  x.single("process_resident_memory_bytes", "gauge",
    runtime.workers === undefined ? "Resident memory size in bytes." : "Resident memory size in bytes, of the supervisor and its workers.",
    runtime.residentBytes);
  x.single("process_cpu_seconds_total", "counter",
    runtime.workers === undefined ? "Total user and system CPU time spent in seconds." : "Total user and system CPU time spent in seconds, by the supervisor and its workers (those that died included).",
    runtime.cpuSeconds);
  // --workers: the supervisor's, the process scraped (each worker's has a `worker` label).
  x.single("process_start_time_seconds", "gauge",
    runtime.workers === undefined ? "Start time of the process since unix epoch in seconds." : "Start time of the supervisor since unix epoch in seconds (each worker's: buncracker_worker_start_time_seconds).",
    stats.startedAt / 1000);
  x.lines.push("");
  return x.lines.join("\n");
}
