// The HTTP side port (--metrics-port): GET /metrics (Prometheus), GET /healthz, POST /reload,
// and the live dashboard: GET / (the page, stats/dashboard-page.ts) and GET /dashboard.json (its
// data, stats/dashboard-data.ts).

import { DashboardSampler } from "./dashboard-data.ts";
import { DASHBOARD_HTML } from "./dashboard-page.ts";
import { renderMetrics } from "./prometheus.ts";
import { EventLoopLag } from "./loop-lag.ts";
import { ownProcessFigures, processTotals, type WorkerProcesses } from "./process.ts";
import type { RunningServer } from "./server.ts";
import type { ReloadHistory } from "./reloads.ts";
import type { ProxyStats } from "./store.ts";
import { C } from "./table.ts";

export interface ServerHealth {
  /** The server's stats name. */
  readonly name: string;
  readonly ejected: boolean;
  /** Where the proxy connects now (host:port or socket path; a pool that follows sentinels:
   *  where they said its master is); null where not known (the supervisor of --workers knows
   *  only the addresses its workers report, those of pools that follow sentinels). */
  readonly address: string | null;
  /** Consecutive failures so far (auto_eject_hosts counts them up to server_failure_limit);
   *  0 once a request succeeds. */
  readonly failures: number;
}

/** A redis_cluster pool's slot map. */
export interface ClusterHealth {
  /** A map was loaded (requests are routed). */
  readonly loaded: boolean;
  /** The cluster's current epoch when the map was read (-1: unknown). */
  readonly epoch: number;
  /** Slots no master serves in the map. */
  readonly uncoveredSlots: number;
  /** Loads of the map that succeeded and that failed. */
  readonly mapLoads: number;
  readonly mapLoadFailures: number;
  /** Redirections followed: MOVED, ASK, and TRYAGAIN/CLUSTERDOWN retries. */
  readonly moved: number;
  readonly asked: number;
  readonly retried: number;
  /** Requests sent again after their connection to a node was lost (a node that died). */
  readonly resentLost: number;
}

/** /healthz's view of a redis_cluster pool's CLUSTER_STATS. */
export function clusterHealth(stats: ArrayLike<number>): ClusterHealth {
  return {
    loaded: stats[C.cluster_map_loaded] === 1,
    epoch: stats[C.cluster_epoch]!,
    uncoveredSlots: stats[C.cluster_uncovered_slots]!,
    mapLoads: stats[C.cluster_map_loads]!,
    mapLoadFailures: stats[C.cluster_map_load_failures]!,
    moved: stats[C.cluster_moved]!,
    asked: stats[C.cluster_asked]!,
    retried: stats[C.cluster_retried]!,
    resentLost: stats[C.cluster_resent_lost]!,
  };
}

export interface PoolHealth {
  readonly name: string;
  /** false before the listener is bound, or once it stopped (drain). */
  readonly listening: boolean;
  /** The pool follows sentinels (/healthz lists where its servers are). */
  readonly sentinels: boolean;
  readonly servers: readonly ServerHealth[];
  /** distribution redis_cluster only. */
  readonly cluster?: ClusterHealth;
}

/** Implemented by the core (Proxy): the pools as they are now. */
export interface HealthSource {
  health(): readonly PoolHealth[];
}

export interface MetricsServerOptions {
  readonly hostname: string;
  /** 0 picks a free port (tests); the proxy does not start this server for --metrics-port 0. */
  readonly port: number;
  readonly stats: ProxyStats;
  readonly health: HealthSource;
  /** POST /reload: re-read the config; rejects with the reason when it cannot be applied.
   *  Absent: the route answers 501. */
  readonly reload?: () => Promise<void> | void;
  /** 1 until reloads exist. */
  readonly configGeneration?: () => number;
  /** When the running configuration was loaded (ms since epoch), for /healthz. */
  readonly configLoadedAt?: () => number;
  /** The reloads the dashboard lists; absent: it lists none. */
  readonly reloads?: ReloadHistory;
  /** --buffer-budget, for /metrics (0 when absent). */
  readonly bufferBudget?: number;
  /** The supervisor of --workers: its workers' memory, CPU and event-loop lag (they serve the
   *  traffic; its own loop says nothing of them). Absent: this process's own. */
  readonly workers?: () => WorkerProcesses;
}

const TEXT_0_0_4 = "text/plain; version=0.0.4; charset=utf-8";

const json = (status: number, body: unknown): Response =>
  new Response(`${JSON.stringify(body)}\n`, {
    status,
    headers: { "content-type": "application/json" },
  });

/** The running configuration, for /healthz: its generation and, when known, its load time. */
interface ConfigInfo {
  readonly generation: number;
  readonly loaded_at?: string;
}

function healthz(source: HealthSource, config: ConfigInfo): Response {
  const pools = source.health().map((p) => ({
    name: p.name,
    listening: p.listening,
    live: p.servers.filter((s) => !s.ejected).map((s) => s.name),
    ejected: p.servers.filter((s) => s.ejected).map((s) => s.name),
    ...(p.cluster === undefined ? {} : { cluster: p.cluster }),
    // Pools that follow sentinels: where each server is now.
    ...(p.sentinels
      ? { addresses: Object.fromEntries(p.servers.map((s) => [s.name, s.address])) }
      : {}),
  }));
  // A cluster pool without a map, or with slots no master serves, cannot serve every key.
  const ok = pools.every((p) => p.listening && (p.cluster === undefined || (p.cluster.loaded && p.cluster.uncoveredSlots === 0)));
  return json(ok ? 200 : 503, { status: ok ? "ok" : "unavailable", config, pools });
}

async function reload(run: MetricsServerOptions["reload"]): Promise<Response> {
  if (run === undefined) return json(501, { error: "reload is not supported" });
  try {
    await run();
    return json(200, { status: "reloaded" });
  } catch (err) {
    return json(500, { error: (err as Error).message });
  }
}

interface Route {
  readonly method: "GET" | "POST";
  handle(): Response | Promise<Response>;
}

/** Starts serving; throws when the address cannot be bound. */
export function startMetricsServer(opts: MetricsServerOptions): RunningServer {
  const lag = opts.workers === undefined ? new EventLoopLag() : null;
  const generation = opts.configGeneration ?? (() => 1);
  const configInfo = (): ConfigInfo => {
    const loadedAt = opts.configLoadedAt?.();
    return loadedAt === undefined
      ? { generation: generation() }
      : { generation: generation(), loaded_at: new Date(loadedAt).toISOString() };
  };
  const metrics = (): Response => {
    const workers = opts.workers?.();
    const total = processTotals(ownProcessFigures(), workers);
    const body = renderMetrics(opts.stats, {
      residentBytes: total.residentBytes,
      cpuSeconds: total.cpuSeconds,
      eventLoopLagSeconds: workers === undefined ? (lag?.seconds ?? 0) : Math.max(0, ...workers.live.map((w) => w.loopLagSeconds)),
      workers: workers?.live,
      configGeneration: generation(),
      bufferBudgetBytes: opts.bufferBudget ?? 0,
      listeningPools: new Set(opts.health.health().filter((p) => p.listening).map((p) => p.name)),
    });
    return new Response(body, { headers: { "content-type": TEXT_0_0_4 } });
  };
  const dashboard = new DashboardSampler({
    stats: opts.stats,
    health: opts.health,
    generation,
    loadedAt: () => opts.configLoadedAt?.(),
    reloads: opts.reloads,
    workers: opts.workers,
  });
  const routes: Readonly<Record<string, Route>> = {
    "/": { method: "GET", handle: () => new Response(DASHBOARD_HTML, { headers: { "content-type": "text/html; charset=utf-8" } }) },
    "/dashboard.json": { method: "GET", handle: () => json(200, dashboard.data()) },
    "/metrics": { method: "GET", handle: metrics },
    "/healthz": { method: "GET", handle: () => healthz(opts.health, configInfo()) },
    "/reload": { method: "POST", handle: () => reload(opts.reload) },
  };

  let server;
  try {
    server = Bun.serve({
      hostname: opts.hostname,
      port: opts.port,
      development: false,
      fetch(req) {
        const path = new URL(req.url).pathname;
        const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
        if (route === undefined) return json(404, { error: `no route ${path}` });
        if (req.method !== route.method) {
          return new Response(null, { status: 405, headers: { allow: route.method } });
        }
        return route.handle();
      },
    });
  } catch (err) {
    throw new Error(
      `metrics: cannot listen on ${opts.hostname}:${opts.port}: ${(err as Error).message}`,
    );
  }
  lag?.start();
  dashboard.start();
  const running = server;
  return {
    port: running.port ?? opts.port,
    stop() {
      lag?.stop();
      dashboard.stop();
      void running.stop(true);
    },
  };
}
