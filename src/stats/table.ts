// The stats table: the single source of every counter the proxy keeps. The hot path counts
// into preallocated Float64Arrays indexed by the constants derived below; the stats JSON,
// `-D`, and the Prometheus exposition are all generated from this table.

export type StatKind = "counter" | "gauge" | "timestamp";

export interface StatSpec {
  readonly name: string;
  readonly kind: StatKind;
  readonly description: string;
  /** false: ours only (Prometheus and /healthz), kept out of the twemproxy-shaped JSON.
   *  "extended": ours, added (after twemproxy's) to the JSON of pools configured with our keys
   *  (PoolStats.extended), so a twemproxy config gets twemproxy's document. */
  readonly json: boolean | "extended";
}

const s = (name: string, kind: StatKind, description: string, json: boolean | "extended" = true): StatSpec => ({
  name,
  kind,
  description,
  json,
});

/** Per pool, in nutcracker's order. */
export const POOL_STATS = [
  s("client_eof", "counter", "# eof on client connections"),
  s("client_err", "counter", "# errors on client connections"),
  s("client_connections", "gauge", "# active client connections"),
  s("server_ejects", "counter", "# times backend server was ejected"),
  s("forward_error", "counter", "# times we encountered a forwarding error"),
  s("fragments", "counter", "# fragments created from a multi-vector request"),
  s("client_refused", "counter", "# client connections refused over client_connections", false),
  s("requests_local", "counter", "# requests answered by the proxy itself", false),
  s("request_errors", "counter", "# requests rejected with an error reply by the proxy", false),
  s("client_tls_failed", "counter", "# client connections refused in the TLS handshake", "extended"),
  s("requests_refused", "counter", "# requests refused over client_max_request or the buffer budget (client closed)", "extended"),
  s("client_budget_paused", "counter", "# times a client stopped being read for the buffer budget", "extended"),
  s("client_idle_closed", "counter", "# client connections closed after client_idle_timeout", "extended"),
  s("client_slow_closed", "counter", "# subscribers closed for not reading their messages", "extended"),
  s("client_buffered_bytes", "gauge", "bytes held for the pool's clients, as the buffer budget counts them", "extended"),
  s("client_budget_held", "gauge", "# clients not read now because of the buffer budget", "extended"),
] as const satisfies readonly StatSpec[];

/** Per server, in nutcracker's order. */
export const SERVER_STATS = [
  s("server_eof", "counter", "# eof on server connections"),
  s("server_err", "counter", "# errors on server connections"),
  s("server_timedout", "counter", "# timeouts on server connections"),
  s("server_connections", "gauge", "# active server connections"),
  s("server_ejected_at", "timestamp", "timestamp when server was ejected in usec since epoch"),
  s("requests", "counter", "# requests"),
  s("request_bytes", "counter", "total request bytes"),
  s("responses", "counter", "# responses"),
  s("response_bytes", "counter", "total response bytes"),
  s("in_queue", "gauge", "# requests in incoming queue"),
  s("in_queue_bytes", "gauge", "current request bytes in incoming queue"),
  s("out_queue", "gauge", "# requests in outgoing queue"),
  s("out_queue_bytes", "gauge", "current request bytes in outgoing queue"),
  s("server_tls_failed", "counter", "# server connections that failed the TLS handshake", "extended"),
  s("dedicated_connections", "gauge", "# connections of one client alone (subscriptions, transactions, blocking commands), and shared subscription connections", false),
  s("failovers", "counter", "# times sentinels moved the server to another master", false),
  s("requests_joined", "counter", "# requests and fragments sent joined to the command before them (coalesce_gets)", false),
] as const satisfies readonly StatSpec[];

/** Per redis_cluster pool (ours: in the stats JSON of such pools only, after the pool's own
 *  stats): its slot map and the redirections it followed. Gauges describe the map in use. */
export const CLUSTER_STATS = [
  s("cluster_map_loaded", "gauge", "1 once a slot map is loaded (requests are routed)"),
  s("cluster_epoch", "gauge", "the cluster's current epoch when the map in use was read (-1: unknown)"),
  s("cluster_uncovered_slots", "gauge", "slots no master serves in the map in use"),
  s("cluster_map_loads", "counter", "# slot map loads that succeeded"),
  s("cluster_map_load_failures", "counter", "# slot map loads that failed"),
  s("cluster_moved", "counter", "# MOVED replies followed"),
  s("cluster_asked", "counter", "# ASK replies followed"),
  s("cluster_retried", "counter", "# requests sent again after TRYAGAIN or CLUSTERDOWN"),
  s("cluster_resent_lost", "counter", "# requests sent again after their connection to a node was lost"),
] as const satisfies readonly StatSpec[];

type Names<T extends readonly StatSpec[]> = T[number]["name"];

function indexOf<T extends readonly StatSpec[]>(table: T): { readonly [K in Names<T>]: number } {
  const out: Record<string, number> = {};
  table.forEach((spec, i) => (out[spec.name] = i));
  return Object.freeze(out) as { readonly [K in Names<T>]: number };
}

/** Slot of each pool stat: `poolStats[P.forward_error]++`. */
export const P = indexOf(POOL_STATS);
/** Slot of each server stat: `serverStats[S.requests]++`. */
export const S = indexOf(SERVER_STATS);
/** Slot of each redis_cluster pool stat: `pool.cluster[C.cluster_moved]++`. */
export const C = indexOf(CLUSTER_STATS);
