// Live counters: preallocated numeric slots the data path increments (`pool.counters[P.x]++`).
// Readers (stats JSON, Prometheus, /healthz) only read these; nothing here allocates per request.

import { POOL_STATS, SERVER_STATS } from "./table.ts";

export class ServerStats {
  readonly counters = new Float64Array(SERVER_STATS.length);
  constructor(readonly name: string) {}
}

export class PoolStats {
  readonly counters = new Float64Array(POOL_STATS.length);
  constructor(
    readonly name: string,
    readonly servers: ServerStats[],
  ) {}
}

export class ProxyStats {
  /** Client connections ever accepted, and open now, over all pools. */
  totalConnections = 0;
  currConnections = 0;
  readonly startedAt = Date.now();
  constructor(readonly pools: PoolStats[]) {}
}
