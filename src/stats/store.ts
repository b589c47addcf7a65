// Live counters: preallocated numeric slots the data path increments (`pool.counters[P.x]++`),
// and latency histograms it records into (`server.observe(µs)`). Readers (stats JSON,
// Prometheus, /healthz) only read these; nothing here allocates per request.

import { Histogram } from "./histogram.ts";
import { C, CLUSTER_STATS, POOL_STATS, SERVER_STATS } from "./table.ts";

export class ServerStats {
  readonly counters = new Float64Array(SERVER_STATS.length);
  /** `counters` as of the last aggregation (every -i ms), for the stats JSON. */
  readonly aggregated = new Float64Array(SERVER_STATS.length);
  /** Round trip of each request (or fragment) sent to this server: forwarded -> reply parsed. */
  readonly latency = new Histogram();
  /** Where the server is now, for a pool that follows sentinels (which move it); else null. */
  address: string | null = null;
  constructor(readonly name: string) {}

  /** One completed request to this server took `micros` µs. */
  observe(micros: number): void {
    this.latency.observe(micros);
  }
}

export class PoolStats {
  readonly counters = new Float64Array(POOL_STATS.length);
  /** `counters` as of the last aggregation (every -i ms), for the stats JSON. */
  readonly aggregated = new Float64Array(POOL_STATS.length);
  /** What the client sees: request parsed -> its whole reply ready (fragments merged, local
   *  and error replies included). */
  readonly latency = new Histogram();
  /** distribution redis_cluster: its map and redirections (CLUSTER_STATS, live); else null. */
  cluster: Float64Array | null = null;
  /** The pool uses keys of ours (tls, server_tls, client_max_request, client_idle_timeout):
   *  its stats JSON adds our "extended" stats (table.ts). */
  extended = false;
  constructor(
    readonly name: string,
    public servers: ServerStats[],
  ) {}

  /** One client request of this pool was answered `micros` µs after it was parsed. */
  observe(micros: number): void {
    this.latency.observe(micros);
  }
}

/** A redis_cluster pool's CLUSTER_STATS before its first map. */
export function newClusterStats(): Float64Array {
  const stats = new Float64Array(CLUSTER_STATS.length);
  stats[C.cluster_epoch] = -1;
  stats[C.cluster_uncovered_slots] = 16384;
  return stats;
}

export class ProxyStats {
  /** Connections ever opened and open now, counted as nutcracker counts them (conn_get): every
   *  listener, client connection and server connection, over all pools. */
  totalConnections = 0;
  currConnections = 0;
  readonly startedAt = Date.now();
  constructor(public pools: PoolStats[]) {}

  /** Snapshots every pool's and server's counters; the stats server calls it every -i ms and
   *  serves the snapshot (gauges excepted, which it serves live). */
  aggregate(): void {
    for (const pool of this.pools) {
      pool.aggregated.set(pool.counters);
      for (const server of pool.servers) server.aggregated.set(server.counters);
    }
  }
}
