// The "nothing lost" checker: tagged, pipelined requests over many connections to a proxy in
// front of 3 redis and 2 memcached backends, while the backends are killed, restarted and frozen
// and side connections send garbage; every reply is checked against its request (report.ts says
// how each is counted). Used by test/integration/resilience-checker.test.ts (about 20 s) and by
// scripts/checker.sh (10 minutes):
//
//   bun test/checker/run.ts [--duration SECONDS] [--seed N] [--target buncracker|nutcracker]
//
// Exits 0 when nothing was lost, misordered, foreign, duplicated or unexpected.

import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, type ProxyKind } from "../helpers/proxy.ts";
import { makeRng } from "../helpers/random.ts";
import { Faults, Garbage } from "./faults.ts";
import { Lane } from "./lane.ts";
import { Report } from "./report.ts";
import { MemcacheTraffic, RedisTraffic } from "./traffic.ts";

export interface CheckerOptions {
  durationMs: number;
  seed?: number;
  target?: ProxyKind;
  /** Clients per redis pool (there are two) and for the memcached pool. */
  redisLanes?: number;
  memcacheLanes?: number;
  /** Requests in flight per client. */
  window?: number;
  /** A line now and then while it runs. */
  progress?: (line: string) => void;
}

export interface CheckerResult {
  report: Report;
  seconds: number;
  /** The proxy was still running at the end. */
  proxyAlive: boolean;
}

/** Two redis pools over the same backends (one ejecting failed servers) and a memcached pool. */
function config(redis: Backend[], memcached: Backend[]): string {
  const listen = (): string => `127.0.0.1:${freePort()}`;
  const servers = (bs: Backend[]) => bs.map((b) => serverLine(b.address));
  return [
    poolYaml("redis", { listen: listen(), redis: true, timeout: 1000 }, servers(redis)),
    poolYaml(
      "ejecting",
      { listen: listen(), redis: true, timeout: 1000, server_connections: 2, auto_eject_hosts: true, server_failure_limit: 2, server_retry_timeout: 1000 },
      servers(redis),
    ),
    poolYaml("memcache", { listen: listen(), timeout: 1000 }, servers(memcached)),
  ].join("");
}

export async function runChecker(opts: CheckerOptions): Promise<CheckerResult> {
  const seed = opts.seed ?? 1;
  const rng = makeRng(seed);
  const report = new Report();
  const [redis, memcached] = await Promise.all([
    Promise.all([startRedis(), startRedis(), startRedis()]),
    Promise.all([startMemcached(), startMemcached()]),
  ]);
  const backends = [...redis, ...memcached];
  const proxy = await startProxy(opts.target ?? "buncracker", config(redis, memcached));
  const window = opts.window ?? 32;
  const lanes: Lane[] = [];
  let id = 0;
  for (const pool of ["redis", "ejecting"]) {
    for (let i = 0; i < (opts.redisLanes ?? 6); i++, id++) lanes.push(new Lane(proxy.pools[pool]!, new RedisTraffic(id, makeRng(seed * 1000 + id)), window, report));
  }
  for (let i = 0; i < (opts.memcacheLanes ?? 6); i++, id++) {
    lanes.push(new Lane(proxy.pools.memcache!, new MemcacheTraffic(id, makeRng(seed * 1000 + id)), window, report));
  }
  const faults = new Faults(backends, rng, report);
  const garbage = new Garbage(report);
  garbage.add(proxy.pools.redis!, "redis", seed + 1);
  garbage.add(proxy.pools.ejecting!, "redis", seed + 2);
  garbage.add(proxy.pools.memcache!, "memcache", seed + 3);

  const began = Date.now();
  let proxyAlive = false;
  try {
    await Promise.all(lanes.map((l) => l.start()));
    faults.start();
    const ticker = setInterval(() => opts.progress?.(`${Math.round((Date.now() - began) / 1000)} s: ${report.requests} requests, ${report.errorCount} proxy errors, clean: ${report.clean}`), 10_000);
    await Bun.sleep(opts.durationMs);
    clearInterval(ticker);
    // Wind down: no more faults, every backend up, every request answered (or lost).
    await faults.stop();
    for (const l of lanes) l.stop();
    const deadline = Date.now() + 15_000;
    await Promise.all(lanes.map((l) => l.drain(deadline)));
    proxyAlive = proxy.process.running;
  } finally {
    for (const l of lanes) l.close();
    await garbage.stop();
    await proxy.stop();
    await Promise.all(backends.map((b) => b.stop()));
  }
  return { report, seconds: (Date.now() - began) / 1000, proxyAlive };
}

function flag(argv: string[], name: string, fallback: string): string {
  const at = argv.lastIndexOf(name);
  return at >= 0 && at + 1 < argv.length ? argv[at + 1]! : fallback;
}

if (import.meta.main) {
  const argv = process.argv.slice(2);
  const durationMs = Number(flag(argv, "--duration", "20")) * 1000;
  const seed = Number(flag(argv, "--seed", "1"));
  const target = flag(argv, "--target", "buncracker") as ProxyKind;
  const log = (line: string) => process.stdout.write(`[checker] ${line}\n`);
  log(`${target}, ${durationMs / 1000} s, seed ${seed}`);
  const { report, seconds, proxyAlive } = await runChecker({ durationMs, seed, target, progress: log });
  log(report.summary(seconds));
  log(`proxy ${proxyAlive ? "alive" : "DEAD"} at the end`);
  process.stdout.write(JSON.stringify(report) + "\n");
  process.exit(report.clean && proxyAlive ? 0 : 1);
}
