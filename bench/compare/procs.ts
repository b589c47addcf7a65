// Every process the comparison starts goes through here, so that all of them are stopped on a
// normal end, on an exception, and on SIGINT/SIGTERM. Children are also started with a
// parent-death signal (setpriv --pdeathsig KILL), so even a SIGKILLed suite leaves nothing behind,
// and with the open-file soft limit raised to the hard limit (the 1,000-connection workloads).

import type { Subprocess } from "bun";
import { closeSync, openSync } from "node:fs";

const running = new Set<Subprocess>();
let niceness = 0;

/** Scheduling priority of every process started from now on (negative: ahead of other work). */
export function setNiceness(value: number): void {
  niceness = value;
}

/** Prefix that keeps the pid (everything execs) while adding the guards described above. */
function guarded(cmd: string[]): string[] {
  const nice = niceness === 0 ? [] : ["nice", "-n", String(niceness)];
  return ["setpriv", "--pdeathsig", "KILL", "--", "sh", "-c", 'ulimit -n "$(ulimit -Hn)"; exec "$@"', "sh", ...nice, ...cmd];
}

/** A long-running service (backend or proxy); stdout and stderr go to `logPath`. */
export function startService(cmd: string[], logPath: string, cwd?: string): Subprocess {
  const fd = openSync(logPath, "a");
  try {
    const proc = Bun.spawn(guarded(cmd), { cwd, stdin: "ignore", stdout: fd, stderr: fd });
    running.add(proc);
    void proc.exited.then(() => running.delete(proc));
    return proc;
  } finally {
    closeSync(fd);
  }
}

export interface ToolRun {
  code: number;
  stdout: string;
  stderr: string;
  /** The tool's CPU time (user + system, with the children it waited for), microseconds. */
  cpuUs: number;
  wallMs: number;
  timedOut: boolean;
}

/** Runs a bounded tool (load generator, installer) to completion, killing it after `timeoutMs`. */
export async function runTool(cmd: string[], timeoutMs: number): Promise<ToolRun> {
  const started = performance.now();
  const proc = Bun.spawn(guarded(cmd), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  running.add(proc);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, timeoutMs);
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    const usage = proc.resourceUsage();
    const wallMs = performance.now() - started;
    return { code, stdout, stderr, cpuUs: usage ? Number(usage.cpuTime.total) : 0, wallMs, timedOut };
  } finally {
    clearTimeout(timer);
    running.delete(proc);
  }
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(proc: Subprocess, graceMs = 2000): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill("SIGTERM");
  const killer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
  await proc.exited;
  clearTimeout(killer);
}

/** Stops every process started here that is still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((proc) => stop(proc)));
}

/** Ctrl-C / SIGTERM stop everything and exit; a plain exit SIGKILLs whatever is left. */
export function installSignalHandlers(): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    console.error(`\n${signal}: stopping ${running.size} started process(es)`);
    void stopAll().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  process.on("exit", () => {
    for (const proc of running) proc.kill("SIGKILL");
  });
}

export const isAlive = (proc: Subprocess): boolean => proc.exitCode === null && proc.signalCode === null;

/** A loopback TCP port that is free right now (bound to port 0 and released). */
export function freePort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = listener.port;
  listener.stop(true);
  return port;
}

async function canConnect(port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    socket.end();
    return true;
  } catch {
    return false;
  }
}

/** Waits until 127.0.0.1:`port` accepts; throws when `proc` dies or after `timeoutMs`. */
export async function waitListening(proc: Subprocess, port: number, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await canConnect(port)) return;
    if (!isAlive(proc)) throw new Error(`${what} exited (code ${proc.exitCode ?? proc.signalCode}) before listening on ${port}`);
    if (Date.now() > deadline) throw new Error(`${what} not listening on ${port} after ${timeoutMs} ms`);
    await Bun.sleep(25);
  }
}
