// The processes under test: 4 redis and 4 memcached backends, and the two proxies with
// equivalent configs (same pools, servers, names, hash and distribution; only ports differ),
// and predixy when a binary is given (predixy.ts: its own config, the redis4 pool only).

import type { Subprocess } from "bun";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { commandLine } from "./cpu.ts";
import { freePort, isAlive, startService, stop, waitListening } from "./procs.ts";
import { probe } from "./prefill.ts";
import { type Pool, isRedis } from "./workloads.ts";

export type TargetName = "direct" | "nutcracker" | "buncracker" | "predixy";
export const TARGETS: readonly TargetName[] = ["direct", "nutcracker", "buncracker", "predixy"];
/** Every proxy's pools; buncracker also serves SHARED_POOL. */
const POOLS: readonly Pool[] = ["redis4", "redis1", "mc4", "mc1"];
/** redis4 with buncracker's redis_shared_subscriptions: a proxy without it serves its
 *  workloads on redis4 (listenPort), as its users would. */
const SHARED_POOL: Pool = "redis4s";

export interface Backend {
  name: string;
  port: number;
  proc: Subprocess;
}

export interface Proxy<P extends Pool = Pool> {
  proc: Subprocess;
  /** The pid whose CPU is measured (checked to be the proxy program itself). */
  pid: number;
  listen: Record<P, number>;
  config: string;
  log: string;
}

export interface Cluster {
  redis: Backend[];
  memcached: Backend[];
  /** predixy serves the redis4 pool only (see listenPort). */
  proxies: Partial<Record<TargetName, Proxy | Proxy<"redis4">>>;
  /** Why a target is not measured. */
  skipped: Partial<Record<TargetName, string>>;
  /** Pools of a started proxy that failed the set/get probe, with the reason. */
  brokenPools: Partial<Record<TargetName, Partial<Record<Pool, string>>>>;
}

const BACKENDS_PER_KIND = 4;

/** The backend a pool sends all its keys to when it has one server, and that "direct" uses. */
export function directBackend(cluster: Cluster, pool: Pool): Backend {
  return (isRedis(pool) ? cluster.redis : cluster.memcached)[0]!;
}

/** The port a workload on `pool` connects to for `target`. */
export function endpoint(cluster: Cluster, target: TargetName, pool: Pool): number {
  if (target === "direct") return directBackend(cluster, pool).port;
  const proxy = cluster.proxies[target];
  if (proxy === undefined) throw new Error(`${target} is not running`);
  const port = listenPort(proxy, pool);
  if (port === undefined) throw new Error(`${target} does not serve pool ${pool}`);
  return port;
}

/** The port a proxy listens on for `pool`, or undefined when it does not serve that pool. */
export function listenPort(proxy: Proxy | Proxy<"redis4">, pool: Pool): number | undefined {
  const listen = proxy.listen as Partial<Record<Pool, number>>;
  return listen[pool] ?? (pool === SHARED_POOL ? listen.redis4 : undefined);
}

export async function startBackends(tools: Record<string, string>, dir: string): Promise<Pick<Cluster, "redis" | "memcached">> {
  const redis: Backend[] = [];
  const memcached: Backend[] = [];
  const asRoot = process.getuid?.() === 0 ? ["-u", "root"] : [];
  for (let i = 0; i < BACKENDS_PER_KIND; i++) {
    const port = freePort();
    const proc = startService(
      [tools["redis-server"]!, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--protected-mode", "no", "--daemonize", "no", "--maxclients", "4096", "--dir", dir],
      join(dir, `redis-r${i}.log`),
    );
    redis.push({ name: `r${i}`, port, proc });
  }
  for (let i = 0; i < BACKENDS_PER_KIND; i++) {
    const port = freePort();
    const proc = startService(
      [tools.memcached!, ...asRoot, "-l", "127.0.0.1", "-p", String(port), "-U", "0", "-t", "2", "-m", "1024", "-c", "4096"],
      join(dir, `memcached-m${i}.log`),
    );
    memcached.push({ name: `m${i}`, port, proc });
  }
  for (const b of [...redis, ...memcached]) await waitListening(b.proc, b.port, `backend ${b.name}`);
  return { redis, memcached };
}

/** A proxy config with `pools`, each listening on its port in `listen`. */
function proxyConfig(cluster: Pick<Cluster, "redis" | "memcached">, listen: Partial<Record<Pool, number>>, pools: readonly Pool[]): string {
  const pool = (name: Pool): string => {
    const all = isRedis(name) ? cluster.redis : cluster.memcached;
    const servers = name.endsWith("1") ? all.slice(0, 1) : all;
    return [
      `${name}:`,
      `  listen: 127.0.0.1:${listen[name]}`,
      "  hash: fnv1a_64",
      "  distribution: ketama",
      `  redis: ${isRedis(name)}`,
      "  timeout: 3000",
      "  preconnect: true",
      "  auto_eject_hosts: false",
      "  server_connections: 1",
      ...(name === SHARED_POOL ? ["  redis_shared_subscriptions: true"] : []),
      "  servers:",
      ...servers.map((b) => `   - 127.0.0.1:${b.port}:1 ${b.name}`),
    ].join("\n");
  };
  return pools.map(pool).join("\n") + "\n";
}

export interface ProxyLaunch {
  target: Exclude<TargetName, "direct">;
  /** Command without -c/-s/-a/-v (added here, nutcracker-compatible). */
  command: string[];
  cwd?: string;
  /** A string the measured process's command line must contain. */
  mustRun: string;
  /** The pools its config has. */
  pools: readonly Pool[];
}

/** A proxy started apart from the cluster's (e.g. the memory phase's): some of the pools only. */
export interface ProxyVariant<P extends Pool> {
  /** Names its config and log files, so that they do not overwrite the cluster proxy's. */
  tag: string;
  pools: readonly P[];
  /** Wraps the command line; the wrapper must exec, so that the pid stays the proxy's. */
  wrap: (argv: string[]) => string[];
}

/** Starts a proxy, waits for all its pools to listen and probes each; throws if it cannot start. */
export async function startProxy<P extends Pool = Pool>(
  cluster: Pick<Cluster, "redis" | "memcached">,
  launch: ProxyLaunch,
  dir: string,
  // Without a variant P is Pool, so the launch's pools are a valid readonly P[].
  variant: ProxyVariant<P> = { tag: launch.target, pools: launch.pools as readonly P[], wrap: (argv) => argv },
): Promise<{ proxy: Proxy<P>; broken: Partial<Record<P, string>> }> {
  const pools = variant.pools;
  const listen = Object.fromEntries(pools.map((p) => [p, freePort()])) as Record<P, number>;
  const config = join(dir, `${variant.tag}.yml`);
  writeFileSync(config, proxyConfig(cluster, listen, pools));
  const log = join(dir, `${variant.tag}.log`);
  const statsPort = freePort();
  const proc = startService(
    variant.wrap([...launch.command, "-c", config, "-s", String(statsPort), "-a", "127.0.0.1", "-v", "4"]),
    log,
    launch.cwd,
  );
  try {
    for (const pool of pools) await waitListening(proc, listen[pool], `${launch.target} pool ${pool}`, 15_000);
  } catch (error) {
    await stop(proc);
    throw error;
  }
  const cmdline = commandLine(proc.pid);
  if (!cmdline.includes(launch.mustRun)) {
    await stop(proc);
    throw new Error(`pid ${proc.pid} runs "${cmdline}", not ${launch.mustRun}: its CPU would not be the proxy's`);
  }
  const broken: Partial<Record<P, string>> = {};
  for (const pool of pools) {
    const problem = await probe(listen[pool], isRedis(pool));
    if (problem !== null) broken[pool] = problem;
  }
  return { proxy: { proc, pid: proc.pid, listen, config, log }, broken };
}

export function proxyLaunches(tools: Record<string, string>, repo: string, bun: string): ProxyLaunch[] {
  return [
    { target: "nutcracker", command: [tools.nutcracker!], mustRun: "nutcracker", pools: POOLS },
    { target: "buncracker", command: [bun, join(repo, "src/main.ts")], cwd: repo, mustRun: "src/main.ts", pools: [...POOLS, SHARED_POOL] },
  ];
}

/** Why buncracker cannot be started yet, or null when it can be tried. */
export const buncrackerMissing = (repo: string): string | null =>
  existsSync(join(repo, "src/main.ts")) ? null : `${join(repo, "src/main.ts")} does not exist yet`;

export const running = (proxy: Proxy | Proxy<"redis4">): boolean => isAlive(proxy.proc);
