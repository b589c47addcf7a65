// The running proxy: one Pool per configured pool, their stats, the request-timeout ticker, and
// the graceful drain.

import type { Config, PoolConfig } from "../conf/types.ts";
import { log } from "../log.ts";
import type { Codec } from "../proto/codec.ts";
import { memcacheCodec } from "../proto/memcache/index.ts";
import { redisCodec } from "../proto/redis/index.ts";
import { PoolStats, ProxyStats, ServerStats } from "../stats/store.ts";
import { Pool } from "./pool.ts";

export function codecFor(cfg: PoolConfig): Codec {
  return cfg.redis ? redisCodec : memcacheCodec;
}

/** How often request timeouts are checked: a tenth of the shortest timeout, 5..100 ms. */
function tickFor(config: Config): number | null {
  let min = Infinity;
  for (const p of config.pools) if (p.timeout !== null && p.timeout < min) min = p.timeout;
  return min === Infinity ? null : Math.min(100, Math.max(5, Math.floor(min / 10)));
}

export class Proxy {
  readonly pools: Pool[];
  readonly stats: ProxyStats;
  private ticker: Timer | null = null;

  constructor(
    readonly config: Config,
    private readonly reusePort = false,
  ) {
    const poolStats = config.pools.map(
      (p) => new PoolStats(p.name, p.servers.map((s) => new ServerStats(s.statsName))),
    );
    this.stats = new ProxyStats(poolStats);
    this.pools = config.pools.map((p, i) => new Pool(p, codecFor(p), poolStats[i]!, this.stats));
  }

  start(): void {
    for (const pool of this.pools) {
      pool.listen(this.reusePort);
      if (pool.cfg.preconnect) pool.preconnect();
    }
    const tick = tickFor(this.config);
    if (tick !== null) {
      this.ticker = setInterval(() => {
        const now = performance.now();
        for (const pool of this.pools) pool.checkTimeouts(now);
      }, tick);
      this.ticker.unref();
    }
  }

  get inFlight(): number {
    let n = 0;
    for (const p of this.pools) n += p.inFlight;
    return n;
  }

  /** Stop accepting, let in-flight requests finish for at most `timeoutMs`, then close all. */
  async drain(timeoutMs: number): Promise<void> {
    for (const pool of this.pools) pool.stopListening();
    const deadline = performance.now() + timeoutMs;
    while (this.inFlight > 0 && performance.now() < deadline) await Bun.sleep(5);
    const left = this.inFlight;
    if (left > 0) log.warn(`drain timed out with ${left} requests in flight`);
    this.close();
  }

  close(): void {
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    for (const pool of this.pools) pool.close();
  }
}
