// Child processes started by tests. Every test stops what it starts (afterAll); as a safety net,
// children are started under `setpriv --pdeathsig SIGKILL`, so the kernel kills whatever is left
// when the test process dies, however it dies (`bun test` runs no "exit" handlers, and an
// interrupted or SIGKILLed runner runs nothing at all). Plain scripts (`bun run`) also kill
// them in an "exit" handler. A daemon that a child forks is not covered: its test must stop it.

import type { Subprocess } from "bun";
import { existsSync, readFileSync } from "node:fs";

const OUTPUT_LIMIT = 256 * 1024; // keep at most this much of each stream (the tail)

export interface ManagedProcess {
  readonly pid: number;
  /** The command line, for messages. */
  readonly command: string;
  /** Resolves with the exit code (128 + signal number when killed by a signal). */
  readonly exited: Promise<number>;
  readonly running: boolean;
  /** Captured stdout so far (the last 256 KB). */
  stdout(): string;
  /** Captured stderr so far (the last 256 KB). */
  stderr(): string;
  /** Resolves when both output streams have ended (after exit). */
  readonly drained: Promise<void>;
  /** Sends a signal without waiting. */
  signal(sig: NodeJS.Signals): void;
  /** SIGSTOP, then waits until the kernel reports the process stopped (state T), so that no
   *  byte sent after this resolves can still be served by it. */
  freeze(): Promise<void>;
  /** SIGTERM, then SIGKILL if still running after `graceMs`; resolves with the exit code. */
  stop(graceMs?: number): Promise<number>;
  /** SIGKILL; resolves with the exit code. */
  kill(): Promise<number>;
}

const running = new Set<Subprocess>();

function killAll(): void {
  for (const proc of running) {
    try {
      proc.kill("SIGKILL");
    } catch {
      // already gone
    }
  }
  running.clear();
}

process.on("exit", killAll);

const SETPRIV = "/usr/bin/setpriv"; // util-linux, present on every Debian system
const dieWithUs = existsSync(SETPRIV) ? [SETPRIV, "--pdeathsig", "SIGKILL"] : [];

const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15 };

/** Starts `argv` with stdout and stderr captured, tracked for clean-up. */
export function spawnManaged(argv: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): ManagedProcess {
  const proc = Bun.spawn([...dieWithUs, ...argv], {
    cwd: opts.cwd,
    env: opts.env ?? (process.env as Record<string, string>),
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  running.add(proc);
  const out = capture(proc.stdout);
  const err = capture(proc.stderr);
  const exited = proc.exited.then(() => {
    running.delete(proc);
    if (proc.signalCode) return 128 + (SIGNAL_NUMBERS[proc.signalCode] ?? 0);
    return proc.exitCode ?? 0;
  });

  const waitOrKill = async (graceMs: number): Promise<number> => {
    const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    pid: proc.pid,
    command: argv.join(" "),
    exited,
    get running() {
      return proc.exitCode === null && proc.signalCode === null;
    },
    stdout: () => out.text(),
    drained: Promise.all([out.done, err.done]).then(() => {}),
    stderr: () => err.text(),
    signal: (sig) => proc.kill(sig),
    async freeze() {
      proc.kill("SIGSTOP");
      const deadline = Date.now() + 5000;
      while (processState(proc.pid) !== "T" && Date.now() < deadline) await Bun.sleep(2);
    },
    stop(graceMs = 3000) {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      return waitOrKill(graceMs);
    },
    kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
      return exited;
    },
  };
}

/** Runs `argv` to completion (killed after `timeoutMs`) and returns its exit code and output. */
export async function runToEnd(
  argv: string[],
  timeoutMs = 10000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawnManaged(argv);
  const timer = setTimeout(() => child.signal("SIGKILL"), timeoutMs);
  const code = await child.exited;
  clearTimeout(timer);
  await child.drained;
  return { code, stdout: child.stdout(), stderr: child.stderr() };
}

function capture(stream: ReadableStream<Uint8Array>): { text(): string; done: Promise<void> } {
  let chunks: Uint8Array[] = [];
  let size = 0;
  const done = (async () => {
    for await (const chunk of stream) {
      chunks.push(chunk);
      size += chunk.length;
      while (size - chunks[0]!.length > OUTPUT_LIMIT) size -= chunks.shift()!.length;
    }
  })().catch(() => {});
  return {
    done,
    text: () => {
      const joined = Buffer.concat(chunks);
      chunks = [joined];
      return joined.toString("utf8");
    },
  };
}

/** The state letter of /proc/<pid>/stat (R, S, T, Z, ...), or "" when it cannot be read. */
function processState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  } catch {
    return "";
  }
}

