// Fault injection for the resilience suites: a backend that accepts and never answers, a proxy
// started under a chosen open-file limit, a process's memory and descriptors from /proc, the
// stats port, and waiting for a condition.

import { readdirSync, readFileSync } from "node:fs";
import type { Socket } from "bun";
import { connectSocket } from "./client.ts";
import { freePort } from "./ports.ts";
import { startProxy, type ProxyKind, type RunningProxy } from "./proxy.ts";

/** A TCP server that accepts connections, reads and discards everything, and never replies. */
export interface Blackhole {
  readonly port: number;
  readonly address: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  stop(): void;
}

export function startBlackhole(host = "127.0.0.1"): Blackhole {
  let accepted = 0;
  const sockets = new Set<Socket<undefined>>();
  const listener = Bun.listen({
    hostname: host,
    port: freePort(host),
    socket: {
      open(s) {
        accepted++;
        sockets.add(s);
      },
      data() {},
      close(s) {
        sockets.delete(s);
      },
      error(s) {
        sockets.delete(s);
      },
    },
  });
  return {
    port: listener.port,
    address: `${host}:${listener.port}`,
    get accepted() {
      return accepted;
    },
    get open() {
      return sockets.size;
    },
    stop() {
      for (const s of sockets) s.terminate();
      listener.stop(true);
    },
  };
}

/** Resident memory of `pid` in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** Open file descriptors of `pid`. */
export const openFds = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

/** The hard RLIMIT_NOFILE of this process (what a child may raise its soft limit to). */
export function hardFileLimit(): number {
  const m = /^Max open files\s+\S+\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "latin1"));
  return m === null || m[1] === "unlimited" ? 1 << 20 : Number(m[1]);
}

/** Runs `argv` under `sh -c 'ulimit -n N; exec ...'`: the process itself (same pid) with that
 *  soft open-file limit. */
export function limitedArgv(nofile: number, argv: readonly string[]): string[] {
  const quoted = argv.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
  return ["sh", "-c", `ulimit -n ${nofile} && exec ${quoted}`];
}

/** startProxy() with a soft open-file limit of `nofile` (and the given extra flags). */
export function startLimitedProxy(
  kind: ProxyKind,
  yamlText: string,
  nofile: number,
  extraArgs: string[] = [],
): Promise<RunningProxy> {
  return startProxy(kind, yamlText, { args: extraArgs, wrap: (argv) => limitedArgv(nofile, argv) });
}

export type StatsDoc = Record<string, unknown>;

/** The stats port's JSON document, or null when nothing listens there. */
export async function readStats(port: number, host = "127.0.0.1"): Promise<StatsDoc | null> {
  const chunks: Uint8Array[] = [];
  let done!: () => void;
  const closed = new Promise<void>((resolve) => (done = resolve));
  try {
    await connectSocket(
      { host, port },
      { data: (_s, chunk) => void chunks.push(Buffer.from(chunk)), close: () => done(), end: () => done(), error: () => done() },
    );
  } catch {
    return null;
  }
  const timer = setTimeout(done, 5000);
  await closed;
  clearTimeout(timer);
  return JSON.parse(Buffer.concat(chunks).toString("utf8")) as StatsDoc;
}

/** Polls `check` every 20 ms until it returns true; throws `what` after `timeoutMs`. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await Bun.sleep(20);
  }
}
