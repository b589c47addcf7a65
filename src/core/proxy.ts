// The running proxy: one Pool per configured pool, their stats, the request-timeout ticker (over
// the pools a reload removed too, until they close), a hot reload over all pools (prepared whole
// before any is changed), and the graceful drain.

import type { Config, PoolConfig } from "../conf/types.ts";
import { log } from "../log.ts";
import type { Codec } from "../proto/codec.ts";
import { clusterHealth, type PoolHealth } from "../stats/http.ts";
import { memcacheCodec } from "../proto/memcache/index.ts";
import { redisCodec } from "../proto/redis/index.ts";
import { PoolStats, ProxyStats, ServerStats } from "../stats/store.ts";
import { fdBudget } from "./fdlimit.ts";
import { checkTimeouts } from "./health.ts";
import { Pool } from "./pool.ts";
import { abandon, apply, prepare, type PreparedReload } from "./reload.ts";
import { plainSockets, type SocketFactory } from "./sockets.ts";

export function codecFor(cfg: PoolConfig): Codec {
  return cfg.redis ? redisCodec : memcacheCodec;
}

/** How often request timeouts are checked: a tenth of the shortest timeout, 5..100 ms. */
function tickFor(pools: Iterable<PoolConfig>): number | null {
  let min = Infinity;
  for (const p of pools) if (p.timeout !== null && p.timeout < min) min = p.timeout;
  return min === Infinity ? null : Math.min(100, Math.max(5, Math.floor(min / 10)));
}

/** One pool of a reload: kept (reloaded in place) or new. */
interface ReloadStep {
  readonly cfg: PoolConfig;
  readonly pool: Pool;
  readonly kept: boolean;
}

/** How often idle clients are looked for (client_idle_timeout is met within this). */
const IDLE_TICK_MS = 250;

/** A reload prepared whole (Proxy.stage): nothing has changed yet but the bindings it needs. */
export interface StagedReload {
  /** Applies it (cannot fail, but throws when it was given up meanwhile); returns the diff. */
  commit(): string;
  /** Gives it up: the proxy runs on as before. */
  abandon(): void;
}

export interface ListenOptions {
  /** SO_REUSEPORT on every TCP listener (workers share the ports). */
  readonly reusePort: boolean;
  /** false in workers other than the first: a unix socket path cannot be shared. */
  readonly listenUnix: boolean;
}

export class Proxy {
  pools: Pool[];
  readonly stats: ProxyStats;
  /** Config generation: 1 at start, +1 per applied reload. */
  generation = 1;
  loadedAt = Date.now();
  private ticker: Timer | null = null;
  /** Pools a reload removed, until they close (Pool.retire): their clients' requests still
   *  time out by their pool's timeout, not at the retire deadline. */
  private readonly retiring = new Set<Pool>();
  /** Closes idle clients, while a pool has client_idle_timeout. */
  private idleTicker: Timer | null = null;
  /** Set by drain(): a reload then would listen again (new or moved pools) on the way out. */
  private draining = false;
  /** The reload staged and not yet committed or abandoned (one at a time). */
  private staged: StagedReload | null = null;
  /** Pools a partial start could not bind (start): the next reload binds them, or fails. */
  private readonly unbound = new Set<Pool>();

  constructor(
    public config: Config,
    private readonly listenOpts: ListenOptions = { reusePort: false, listenUnix: true },
    /** Where every pool's listeners and server connections come from. */
    private readonly sockets: SocketFactory = plainSockets,
  ) {
    this.stats = new ProxyStats([]);
    this.pools = config.pools.map((p) => this.createPool(p));
    this.stats.pools = this.pools.map((p) => p.stats);
  }

  private createPool(cfg: PoolConfig): Pool {
    const stats = new PoolStats(cfg.name, cfg.servers.map((s) => new ServerStats(s.statsName)));
    return new Pool(cfg, codecFor(cfg), stats, this.stats, this.sockets);
  }

  private startPool(pool: Pool, partial: boolean): void {
    if (this.serves(pool.cfg)) {
      try {
        pool.listen(this.listenOpts.reusePort);
      } catch (err) {
        if (!partial) throw err;
        this.unbound.add(pool);
        log.error(`${(err as Error).message}; serving the other pools, this one listens once a reload can bind it`);
      }
    }
    if (pool.cfg.preconnect) pool.preconnect();
  }

  /** /healthz: the pools as they are now. */
  health(): PoolHealth[] {
    return this.pools.map((p) => ({
      name: p.cfg.name,
      listening: p.listening,
      sentinels: p.cfg.sentinels.length > 0,
      // address and failures: also for the dashboard (stats/dashboard-data.ts)
      servers: p.servers.map((s) => ({ name: s.cfg.statsName, ejected: s.ejected, address: s.addr.spec, failures: s.failures })),
      ...(p.stats.cluster === null ? {} : { cluster: clusterHealth(p.stats.cluster) }),
    }));
  }

  /** Serves every pool. `partial` (a worker restarted under --workers: the others already run
   *  this config, which it must not stop) leaves a pool that cannot listen unbound, logged,
   *  instead of failing the start; /healthz then shows it not listening. */
  start(partial = false): void {
    fdBudget.plan(this.config);
    for (const pool of this.pools) this.startPool(pool, partial);
    this.startTicker();
  }

  private startTicker(): void {
    this.stopTickers();
    if (this.config.pools.some((p) => p.clientIdleTimeout !== null)) {
      this.idleTicker = setInterval(() => {
        const now = performance.now();
        for (const pool of this.pools) pool.closeIdle(now);
      }, IDLE_TICK_MS);
      this.idleTicker.unref();
    }
    const tick = tickFor([...this.config.pools, ...[...this.retiring].map((p) => p.cfg)]);
    if (tick === null) return;
    this.ticker = setInterval(() => {
      const now = performance.now();
      for (const pool of this.pools) checkTimeouts(pool, now);
      for (const pool of this.retiring) checkTimeouts(pool, now);
    }, tick);
    this.ticker.unref();
  }

  /** Whether this process serves cfg's listen address (a unix path is served by one worker). */
  private serves(cfg: PoolConfig): boolean {
    return !cfg.listen.unix || this.listenOpts.listenUnix;
  }

  /** Hot reload: apply `next` as a diff against the running pools (see stage). Returns the
   *  diff; throws, having changed nothing, when it cannot be applied. */
  reload(next: Config, retireTimeoutMs: number): string {
    return this.stage(next, retireTimeoutMs).commit();
  }

  /** The first step of a reload (a worker's, which commits only once every worker could stage
   *  it). Pools are matched by name; a pool that changes protocol is replaced. Every kept
   *  pool's reload is prepared (its router built, its new listen address bound) and every new
   *  pool made and listening: when one cannot be, nothing changes and this throws. */
  stage(next: Config, retireTimeoutMs: number): StagedReload {
    if (this.draining) throw new Error("the proxy is draining (SIGTERM)");
    if (this.staged !== null) throw new Error("another reload is being applied");
    const running = new Map(this.pools.map((p) => [p.cfg.name, p]));
    const plan = next.pools.map((cfg): ReloadStep => {
      const pool = running.get(cfg.name);
      // A pool that changes protocol, or starts or stops being a redis_cluster, is replaced.
      const clustered = (c: PoolConfig): boolean => c.distribution === "redis_cluster";
      const kept = pool !== undefined && pool.cfg.redis === cfg.redis && clustered(pool.cfg) === clustered(cfg);
      return { cfg, pool: kept ? pool : this.createPool(cfg), kept };
    });
    const leaving = this.pools.filter((p) => !plan.some((x) => x.pool === p));
    // Leaving pools stop accepting first: a renamed pool, or one that switched protocol, may
    // take over their address.
    const wasListening = leaving.filter((p) => p.listening);
    for (const pool of leaving) pool.stopListening();
    const prepared = new Map<Pool, PreparedReload>();
    try {
      for (const { cfg, pool, kept } of plan) {
        if (!kept) {
          if (this.serves(cfg)) pool.listen(this.listenOpts.reusePort);
        } else {
          prepared.set(pool, prepare(pool, cfg, this.serves(cfg), this.listenOpts.reusePort, this.unbound.has(pool)));
        }
      }
    } catch (err) {
      this.undo(plan, prepared, wasListening);
      throw err;
    }
    const staged: StagedReload = {
      commit: () => {
        if (this.staged !== staged) throw new Error("the reload was given up (the proxy is draining)");
        this.staged = null;
        return this.commit(next, plan, leaving, prepared, retireTimeoutMs);
      },
      abandon: () => {
        if (this.staged !== staged) return;
        this.staged = null;
        this.undo(plan, prepared, wasListening);
      },
    };
    this.staged = staged;
    return staged;
  }

  /** Gives up a staged reload: its new pools close, its bindings are let go, and the pools it
   *  removed listen again. */
  private undo(plan: readonly ReloadStep[], prepared: ReadonlyMap<Pool, PreparedReload>, wasListening: readonly Pool[]): void {
    for (const { pool, kept } of plan) if (!kept) pool.close();
    for (const p of prepared.values()) abandon(p);
    for (const pool of wasListening) {
      try {
        pool.listen(this.listenOpts.reusePort);
      } catch (again) {
        log.error((again as Error).message);
      }
    }
  }

  private commit(
    next: Config,
    plan: readonly ReloadStep[],
    leaving: readonly Pool[],
    prepared: ReadonlyMap<Pool, PreparedReload>,
    retireTimeoutMs: number,
  ): string {
    const changes: string[] = [];
    for (const { cfg, pool, kept } of plan) {
      if (!kept) {
        if (cfg.preconnect) pool.preconnect();
        changes.push(`+pool ${cfg.name}`);
        continue;
      }
      const diff = apply(pool, prepared.get(pool)!);
      if (diff.length > 0) changes.push(`pool ${cfg.name}: ${diff.join(", ")}`);
    }
    for (const pool of leaving) {
      this.retiring.add(pool);
      pool.retire(retireTimeoutMs, () => this.retiring.delete(pool));
      changes.push(`-pool ${pool.cfg.name}`);
    }
    this.pools = plan.map((x) => x.pool);
    this.stats.pools = this.pools.map((p) => p.stats);
    // Each bound now (prepare), not served by this process any more, or removed.
    this.unbound.clear();
    this.config = next;
    this.generation++;
    this.loadedAt = Date.now();
    fdBudget.plan(next);
    this.startTicker();
    return changes.length === 0 ? "no changes" : changes.join("; ");
  }

  /** Requests in flight, in the pools a reload removed too. */
  get inFlight(): number {
    let n = 0;
    for (const p of this.pools) n += p.inFlight;
    for (const p of this.retiring) n += p.inFlight;
    return n;
  }

  /** Stop accepting, let in-flight requests finish for at most `timeoutMs`, then close all. */
  async drain(timeoutMs: number): Promise<void> {
    this.draining = true;
    this.staged?.abandon();
    for (const pool of this.pools) pool.stopListening();
    const deadline = performance.now() + timeoutMs;
    while (this.inFlight > 0 && performance.now() < deadline) await Bun.sleep(5);
    const left = this.inFlight;
    if (left > 0) log.warn(`drain timed out with ${left} requests in flight`);
    this.close();
  }

  close(): void {
    this.stopTickers();
    for (const pool of this.pools) pool.close();
    for (const pool of this.retiring) pool.close();
  }

  private stopTickers(): void {
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    if (this.idleTicker !== null) clearInterval(this.idleTicker);
    this.idleTicker = null;
  }
}
