// Proxies under test: buncracker (this repo) or the reference nutcracker, started the same way
// (`-c FILE -s STATS_PORT -a 127.0.0.1`), and the BC_TARGET switch that picks which one the
// integration suites run against. BC_EXECUTABLE=dist/buncracker runs buncracker as the single
// executable (`npm run build`) instead of `bun src/main.ts`.

import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parse } from "yaml";
import type { Endpoint } from "./client.ts";
import { freePort, waitForPort, waitForUnixSocket } from "./ports.ts";
import { runToEnd, spawnManaged, type ManagedProcess } from "./process.ts";
import { makeTempDir } from "./tmp.ts";

export type ProxyKind = "buncracker" | "nutcracker";

const REPO = join(import.meta.dir, "..", "..");
const BUN = join(REPO, "node_modules", ".bin", "bun");
const NUTCRACKER = "/usr/sbin/nutcracker";

/** The proxy the suites test: BC_TARGET=nutcracker|buncracker (default buncracker). */
export const TARGET: ProxyKind = parseTarget(process.env.BC_TARGET);

function parseTarget(value: string | undefined): ProxyKind {
  if (value === undefined || value === "" || value === "buncracker") return "buncracker";
  if (value === "nutcracker") return "nutcracker";
  throw new Error(`BC_TARGET must be "buncracker" or "nutcracker", not ${JSON.stringify(value)}`);
}

/** buncracker's single executable under test (BC_EXECUTABLE, relative to the repo), or null
 *  for the source. */
export const EXECUTABLE: string | null = executable(process.env.BC_EXECUTABLE);

function executable(value: string | undefined): string | null {
  if (value === undefined || value === "") return null;
  const path = resolve(REPO, value);
  if (!existsSync(path)) throw new Error(`BC_EXECUTABLE=${value}: ${path} does not exist (npm run build)`);
  return path;
}

/** The command line that runs `kind` (append the flags). */
export function proxyCommand(kind: ProxyKind): string[] {
  if (kind === "nutcracker") return [NUTCRACKER];
  return EXECUTABLE === null ? [BUN, join(REPO, "src", "main.ts")] : [EXECUTABLE];
}

export interface ProxyOptions {
  /** `-v N`; default: the proxy's own default (5). */
  verbosity?: number;
  /** `-m N` mbuf size. */
  mbufSize?: number;
  /** More flags, appended as given. */
  args?: string[];
  /** How long to wait for every listener; default 10 s. */
  startupMs?: number;
  /** Wraps the command line (e.g. to start it with a lower open-file limit). */
  wrap?: (argv: string[]) => string[];
}

export interface RunningProxy {
  readonly kind: ProxyKind;
  readonly pid: number;
  readonly statsPort: number;
  /** The config file the proxy was started with. */
  readonly configPath: string;
  /** Each pool's listen endpoint, by pool name. */
  readonly pools: Readonly<Record<string, Endpoint>>;
  readonly process: ManagedProcess;
  /** Captured output so far. */
  stdout(): string;
  stderr(): string;
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM (SIGKILL after a grace period), removes the config; resolves with the exit code. */
  stop(): Promise<number>;
}

/**
 * Writes `yamlText` to a temp file, starts `kind` on it with a free stats port on 127.0.0.1 and
 * resolves once every pool's listen address (TCP or unix socket) accepts connections. Throws
 * with the proxy's output if it exits or does not listen in time.
 */
export async function startProxy(kind: ProxyKind, yamlText: string, opts: ProxyOptions = {}): Promise<RunningProxy> {
  const dir = makeTempDir(`bct-${kind}-`);
  const configPath = dir.file("proxy.yml");
  writeFileSync(configPath, yamlText);
  const pools = listenEndpoints(yamlText);
  const statsPort = freePort();
  const argv = [...proxyCommand(kind), "-c", configPath, "-s", String(statsPort), "-a", "127.0.0.1"];
  if (opts.verbosity !== undefined) argv.push("-v", String(opts.verbosity));
  if (opts.mbufSize !== undefined) argv.push("-m", String(opts.mbufSize));
  argv.push(...(opts.args ?? []));

  const proc = spawnManaged(opts.wrap === undefined ? argv : opts.wrap(argv), { cwd: REPO });
  const alive = () => proc.running;
  const startupMs = opts.startupMs ?? 10000;
  try {
    for (const endpoint of Object.values(pools)) {
      if ("path" in endpoint) await waitForUnixSocket(endpoint.path, startupMs, alive);
      else await waitForPort(endpoint.host, endpoint.port, startupMs, alive);
    }
  } catch (error) {
    await proc.kill();
    await proc.drained;
    throw new Error(
      `${kind} did not start: ${(error as Error).message}\n$ ${argv.join(" ")}\n${proc.stdout()}${proc.stderr()}`,
    );
  }
  return {
    kind,
    pid: proc.pid,
    statsPort,
    configPath,
    pools,
    process: proc,
    stdout: () => proc.stdout(),
    stderr: () => proc.stderr(),
    signal: (sig) => proc.signal(sig),
    async stop() {
      const code = await proc.stop();
      dir.remove();
      return code;
    },
  };
}

/** Runs `kind -t -c FILE` on `yamlText`: the config check, with its exit code and output. */
export async function testConfig(
  kind: ProxyKind,
  yamlText: string,
): Promise<{ code: number; stdout: string; stderr: string; configPath: string }> {
  const dir = makeTempDir("bct-conf-");
  const configPath = dir.file("proxy.yml");
  writeFileSync(configPath, yamlText);
  const result = await runToEnd([...proxyCommand(kind), "-t", "-c", configPath]);
  dir.remove();
  return { ...result, configPath };
}

/**
 * Each pool's `listen` as an endpoint. Accepts what both proxies accept: `host:port`,
 * `ip:port` (IPv6 as `::1:port` or `[::1]:port`) and `/path/to.sock [perm]`.
 */
export function listenEndpoints(yamlText: string): Record<string, Endpoint> {
  const doc = parse(yamlText) as Record<string, { listen?: unknown }> | null;
  const endpoints: Record<string, Endpoint> = {};
  for (const [pool, body] of Object.entries(doc ?? {})) {
    const listen = String(body?.listen ?? "");
    if (listen.startsWith("/")) {
      endpoints[pool] = { path: listen.split(/\s+/)[0]! };
      continue;
    }
    const colon = listen.lastIndexOf(":");
    if (colon < 0) throw new Error(`pool ${pool}: cannot read listen ${JSON.stringify(listen)}`);
    const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
    endpoints[pool] = { host, port: Number(listen.slice(colon + 1)) };
  }
  return endpoints;
}
