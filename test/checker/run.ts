// The standard "nothing lost" run: tagged, pipelined requests over many connections to a proxy in
// front of 3 redis and 2 memcached backends (check.ts), while the backends are killed, restarted
// and frozen and side connections send garbage; every reply is checked against its request and
// the lane's own acknowledged writes (report.ts says how each is counted). Used by
// test/integration/resilience-checker.test.ts (about 20 s) and by scripts/checker.sh (10 minutes):
//
//   bun test/checker/run.ts [--duration SECONDS] [--seed N] [--target buncracker|nutcracker]
//
// Exits 0 when something succeeded and nothing was lost, misordered, foreign, missing, wrong,
// duplicated or unexpected, no proxy error fell outside the faults, and the proxy still runs.

import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { freePort } from "../helpers/ports.ts";
import { parseExposition } from "../helpers/prometheus.ts";
import { startProxy, type ProxyKind } from "../helpers/proxy.ts";
import { makeRng } from "../helpers/random.ts";
import { check } from "./check.ts";
import { Garbage, randomFaults } from "./faults.ts";
import type { Report } from "./report.ts";

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
  /** buncracker: per pool, the requests and fragments its servers got joined to the command
   *  before them (coalesce_gets: memcached get lines, redis MGET fragments), so a run shows
   *  those were under its faults too; null for nutcracker. */
  joined: Record<string, number> | null;
}

/** The ejecting pool's server_retry_timeout (ms). */
const RETRY_MS = 1000;
/** How long a fault's effects may outlast it besides (ms): the last replies it delayed. */
const SETTLE_MS = 500;

/** Two redis pools over the same backends (one ejecting failed servers) and a memcached pool. */
function config(redis: Backend[], memcached: Backend[]): string {
  const listen = (): string => `127.0.0.1:${freePort()}`;
  const servers = (bs: Backend[]) => bs.map((b) => serverLine(b.address));
  return [
    poolYaml("redis", { listen: listen(), redis: true, timeout: 1000 }, servers(redis)),
    poolYaml(
      "ejecting",
      { listen: listen(), redis: true, timeout: 1000, server_connections: 2, auto_eject_hosts: true, server_failure_limit: 2, server_retry_timeout: RETRY_MS },
      servers(redis),
    ),
    poolYaml("memcache", { listen: listen(), timeout: 1000 }, servers(memcached)),
  ].join("");
}

export async function runChecker(opts: CheckerOptions): Promise<CheckerResult> {
  const seed = opts.seed ?? 1;
  const [redis, memcached] = await Promise.all([
    Promise.all([startRedis(), startRedis(), startRedis()]),
    Promise.all([startMemcached(), startMemcached()]),
  ]);
  const backends = [...redis, ...memcached];
  const target = opts.target ?? "buncracker";
  const metricsPort = freePort();
  const proxy = await startProxy(target, config(redis, memcached), { args: target === "buncracker" ? [`--metrics-port=${metricsPort}`] : [] });
  let proxyAlive = false;
  const garbage: Garbage[] = [];
  try {
    const redisLanes = opts.redisLanes ?? 6;
    const { report, seconds } = await check({
      // A backend's fault disturbs the pools over it; the ejecting pool for its retry time more.
      pools: [
        { name: "redis", endpoint: proxy.pools.redis!, protocol: "redis", lanes: redisLanes, settleMs: SETTLE_MS },
        { name: "ejecting", endpoint: proxy.pools.ejecting!, protocol: "redis", lanes: redisLanes, settleMs: RETRY_MS + SETTLE_MS },
        { name: "memcache", endpoint: proxy.pools.memcache!, protocol: "memcache", lanes: opts.memcacheLanes ?? 6, settleMs: SETTLE_MS },
      ],
      durationMs: opts.durationMs,
      seed,
      window: opts.window,
      progress: opts.progress,
      inject: async (ctx) => {
        const g = new Garbage(ctx.report);
        garbage.push(g);
        g.add(proxy.pools.redis!, "redis", seed + 1);
        g.add(proxy.pools.ejecting!, "redis", seed + 2);
        g.add(proxy.pools.memcache!, "memcache", seed + 3);
        await randomFaults(backends, makeRng(seed), (b) => (b.kind === "redis" ? ["redis", "ejecting"] : ["memcache"]))(ctx);
      },
    });
    proxyAlive = proxy.process.running;
    const joined = target === "buncracker" && proxyAlive ? await joinedPerPool(metricsPort) : null;
    return { report, seconds, proxyAlive, joined };
  } finally {
    await Promise.all(garbage.map((g) => g.stop()));
    await proxy.stop();
    await Promise.all(backends.map((b) => b.stop()));
  }
}

/** buncracker_server_requests_joined_total summed per pool. */
async function joinedPerPool(metricsPort: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const joined: Record<string, number> = {};
  for (const s of parseExposition(text).get("buncracker_server_requests_joined_total")?.samples ?? []) {
    const pool = s.labels["pool"]!;
    joined[pool] = (joined[pool] ?? 0) + s.value;
  }
  return joined;
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
  const { report, seconds, proxyAlive, joined } = await runChecker({ durationMs, seed, target, progress: log });
  log(report.summary(seconds));
  if (joined !== null) log(`sent joined (coalesce_gets), per pool: ${JSON.stringify(joined)}`);
  log(`proxy ${proxyAlive ? "alive" : "DEAD"} at the end`);
  process.stdout.write(JSON.stringify(report) + "\n");
  process.exit(report.clean && proxyAlive ? 0 : 1);
}
