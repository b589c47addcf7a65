// The processes under test: 4 redis and 4 memcached backends, and the two proxies with
// equivalent configs (same pools, servers, names, hash and distribution; only ports differ).

import type { Subprocess } from "bun";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { commandLine } from "./cpu.ts";
import { freePort, isAlive, startService, stop, waitListening } from "./procs.ts";
import { probe } from "./prefill.ts";
import { type Pool, isRedis } from "./workloads.ts";

export type TargetName = "direct" | "nutcracker" | "buncracker";
export const TARGETS: readonly TargetName[] = ["direct", "nutcracker", "buncracker"];
const POOLS: readonly Pool[] = ["redis4", "redis1", "mc4", "mc1"];

export interface Backend {
  name: string;
  port: number;
  proc: Subprocess;
}

export interface Proxy {
  proc: Subprocess;
  /** The pid whose CPU is measured (checked to be the proxy program itself). */
  pid: number;
  listen: Record<Pool, number>;
  config: string;
  log: string;
}

export interface Cluster {
  redis: Backend[];
  memcached: Backend[];
  proxies: Partial<Record<TargetName, Proxy>>;
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
  return proxy.listen[pool];
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

/** One proxy config: the four pools, listening on `listen`. */
function proxyConfig(cluster: Pick<Cluster, "redis" | "memcached">, listen: Record<Pool, number>): string {
  const pool = (name: Pool, servers: Backend[]): string =>
    [
      `${name}:`,
      `  listen: 127.0.0.1:${listen[name]}`,
      "  hash: fnv1a_64",
      "  distribution: ketama",
      `  redis: ${isRedis(name)}`,
      "  timeout: 3000",
      "  preconnect: true",
      "  auto_eject_hosts: false",
      "  server_connections: 1",
      "  servers:",
      ...servers.map((b) => `   - 127.0.0.1:${b.port}:1 ${b.name}`),
    ].join("\n");
  return [
    pool("redis4", cluster.redis),
    pool("redis1", cluster.redis.slice(0, 1)),
    pool("mc4", cluster.memcached),
    pool("mc1", cluster.memcached.slice(0, 1)),
  ].join("\n") + "\n";
}

interface ProxyLaunch {
  target: Exclude<TargetName, "direct">;
  /** Command without -c/-s/-a/-v (added here, nutcracker-compatible). */
  command: string[];
  cwd?: string;
  /** A string the measured process's command line must contain. */
  mustRun: string;
}

/** Starts a proxy, waits for all its pools to listen and probes each; throws if it cannot start. */
export async function startProxy(
  cluster: Pick<Cluster, "redis" | "memcached">,
  launch: ProxyLaunch,
  dir: string,
): Promise<{ proxy: Proxy; broken: Partial<Record<Pool, string>> }> {
  const listen = Object.fromEntries(POOLS.map((p) => [p, freePort()])) as Record<Pool, number>;
  const config = join(dir, `${launch.target}.yml`);
  writeFileSync(config, proxyConfig(cluster, listen));
  const log = join(dir, `${launch.target}.log`);
  const statsPort = freePort();
  const proc = startService(
    [...launch.command, "-c", config, "-s", String(statsPort), "-a", "127.0.0.1", "-v", "4"],
    log,
    launch.cwd,
  );
  try {
    for (const pool of POOLS) await waitListening(proc, listen[pool], `${launch.target} pool ${pool}`, 15_000);
  } catch (error) {
    await stop(proc);
    throw error;
  }
  const cmdline = commandLine(proc.pid);
  if (!cmdline.includes(launch.mustRun)) {
    await stop(proc);
    throw new Error(`pid ${proc.pid} runs "${cmdline}", not ${launch.mustRun}: its CPU would not be the proxy's`);
  }
  const broken: Partial<Record<Pool, string>> = {};
  for (const pool of POOLS) {
    const problem = await probe(listen[pool], isRedis(pool));
    if (problem !== null) broken[pool] = problem;
  }
  return { proxy: { proc, pid: proc.pid, listen, config, log }, broken };
}

export function proxyLaunches(tools: Record<string, string>, repo: string, bun: string): ProxyLaunch[] {
  return [
    { target: "nutcracker", command: [tools.nutcracker!], mustRun: "nutcracker" },
    { target: "buncracker", command: [bun, join(repo, "src/main.ts")], cwd: repo, mustRun: "src/main.ts" },
  ];
}

/** Why buncracker cannot be started yet, or null when it can be tried. */
export const buncrackerMissing = (repo: string): string | null =>
  existsSync(join(repo, "src/main.ts")) ? null : `${join(repo, "src/main.ts")} does not exist yet`;

export const running = (proxy: Proxy): boolean => isAlive(proxy.proc);
