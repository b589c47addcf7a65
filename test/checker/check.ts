// The checker's engine, for any proxy and any faults: lanes of tagged, pipelined traffic on the
// given pools (traffic.ts), faults injected by the caller's callback (`inject`, through a
// FaultContext that marks when each fault is under way), then a wind-down that answers every
// request, waits a quiet time for replies nothing asked for, and closes. run.ts builds the
// standard run on it (random kills, freezes and garbage); the failover and reshard tests bring
// their own proxy, backends and faults. README.md in this folder shows how.

import type { Endpoint } from "../helpers/client.ts";
import { eventually } from "../helpers/reload.ts";
import { makeRng } from "../helpers/random.ts";
import { Calm } from "./calm.ts";
import { Lane } from "./lane.ts";
import { Report } from "./report.ts";
import { MemcacheTraffic, RedisTraffic } from "./traffic.ts";

/** One pool of the proxy under check. */
export interface CheckedPool {
  endpoint: Endpoint;
  protocol: "redis" | "memcache";
  /** Connections of checked traffic; default 4. */
  lanes?: number;
  /** How long a fault's effects outlast it in this pool (ms): its server_retry_timeout and a
   *  margin when it ejects servers, little otherwise. Default: the run's settleMs. */
  settleMs?: number;
  /** A name faults can pick it by (FaultContext.fault's `pools`). */
  name?: string;
}

/** What an `inject` callback gets. */
export interface FaultContext {
  readonly report: Report;
  /**
   * Runs `body` as the fault `kind` (counted in report.faults): in the pools it disturbs (those
   * named in `pools`, default all), from its start until each pool's settleMs after it resolves,
   * error replies and reads that miss data are forgiven; wrong values never are. Faults may
   * overlap.
   */
  fault<T>(kind: string, body: () => Promise<T>, opts?: { pools?: string[] }): Promise<T>;
  /** True until durationMs has passed (a loop of faults stops when it turns false). */
  readonly running: boolean;
  /** Resolves once `n` more replies were judged ok, so a fault lands under traffic. */
  traffic(n: number, timeoutMs?: number): Promise<void>;
}

export interface CheckOptions {
  pools: CheckedPool[];
  /** The least the traffic runs (ms); it also runs until `inject` resolves. Default 0. */
  durationMs?: number;
  /** Injects the faults; the run winds down when it has resolved and durationMs has passed. */
  inject?: (ctx: FaultContext) => Promise<void>;
  /** How long a fault's effects outlast it (ms), for pools that do not say. Default 1500. */
  settleMs?: number;
  seed?: number;
  /** Requests in flight per lane; default 32. */
  window?: number;
  /** After the last reply, how long extra replies are waited for (ms); default 300. */
  quietMs?: number;
  /** Runs once every request was answered and no more are sent, before the quiet time: for a
   *  test's fake proxy that misbehaves only then, and waits (on the report) until it shows. */
  whenQuiet?: (report: Report) => Promise<void>;
  /** A line now and then while it runs. */
  progress?: (line: string) => void;
}

export interface CheckResult {
  report: Report;
  seconds: number;
}

export async function check(opts: CheckOptions): Promise<CheckResult> {
  const seed = opts.seed ?? 1;
  const report = new Report();
  const window = opts.window ?? 32;
  const lanes: Lane[] = [];
  /** Each pool's fault epochs, and how long faults outlast themselves there. */
  const calms: { name: string | undefined; calm: Calm; settleMs: number }[] = [];
  let id = 0;
  for (const pool of opts.pools) {
    const calm = new Calm();
    calms.push({ name: pool.name, calm, settleMs: pool.settleMs ?? opts.settleMs ?? 1500 });
    for (let i = 0; i < (pool.lanes ?? 4); i++, id++) {
      const rng = makeRng(seed * 1000 + id);
      const traffic = pool.protocol === "redis" ? new RedisTraffic(id, rng, calm, report) : new MemcacheTraffic(id, rng, calm, report);
      lanes.push(new Lane(pool.endpoint, traffic, window, report));
    }
  }
  let running = true;
  const ctx: FaultContext = {
    report,
    get running() {
      return running;
    },
    async fault(kind, body, faultOpts = {}) {
      const hit = faultOpts.pools === undefined ? calms : calms.filter((c) => c.name !== undefined && faultOpts.pools!.includes(c.name));
      report.fault(kind);
      for (const c of hit) c.calm.begin();
      try {
        return await body();
      } finally {
        for (const c of hit) c.calm.end(c.settleMs);
      }
    },
    async traffic(n, timeoutMs = 30_000) {
      const target = report.ok + n;
      await eventually(`${n} more ok replies (${report.ok} of ${target})`, () => (report.ok >= target ? true : undefined), timeoutMs);
    },
  };

  const began = Date.now();
  try {
    await Promise.all(lanes.map((l) => l.start()));
    const ticker = setInterval(
      () => opts.progress?.(`${Math.round((Date.now() - began) / 1000)} s: ${report.requests} requests, ${report.errorCount} proxy errors, clean: ${report.clean}`),
      10_000,
    );
    try {
      const duration = Bun.sleep(opts.durationMs ?? 0).then(() => {
        running = false;
      });
      await Promise.all([duration, opts.inject?.(ctx)]);
    } finally {
      running = false;
      clearInterval(ticker);
    }
    // Wind down: faults over and settled, every request answered (or lost), then a quiet time
    // in which any reply is one nothing asked for.
    await Promise.all(calms.map((c) => c.calm.settled()));
    for (const l of lanes) l.stop();
    const deadline = Date.now() + 15_000;
    await Promise.all(lanes.map((l) => l.drain(deadline)));
    await opts.whenQuiet?.(report);
    await Bun.sleep(opts.quietMs ?? 300);
  } finally {
    running = false;
    for (const l of lanes) l.close();
  }
  return { report, seconds: (Date.now() - began) / 1000 };
}
