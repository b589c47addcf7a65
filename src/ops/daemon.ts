// -d: detach for real. The parent re-runs its own command line unchanged (-d and -c <conf>
// included, as nutcracker's forked daemon keeps its argv, so process tools find it) in a new
// session (setsid), with /dev/null for stdin/stdout/stderr and a pipe on fd 3. The daemon
// reports over that pipe once: "ready" when it listens (the parent exits 0) or "error <text>"
// (the parent prints the text and exits 1); the pipe closing without a word means the daemon
// died before it was ready (the parent exits 1). An environment variable names the pipe's fd,
// which is also how the daemon knows it is the daemon and must not detach again.

import { closeSync, writeSync } from "node:fs";
import { selfCommand } from "./self.ts";

const DAEMON_FD_ENV = "BUNCRACKER_DAEMON_FD";
const DAEMON_FD = 3;
const DEFAULT_READY_TIMEOUT_MS = 30_000;

/** `promise`'s value, or null when it takes longer than `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  const late = new Promise<null>((resolve) => setTimeout(() => resolve(null), ms).unref());
  return Promise.race([promise, late]);
}

/** Parent side: starts the daemon and waits for its word; returns the parent's exit code.
 *  Messages for the user go to stderr. */
export async function daemonize(readyTimeoutMs = DEFAULT_READY_TIMEOUT_MS): Promise<number> {
  const child = Bun.spawn({
    cmd: [...selfCommand(), ...process.argv.slice(2)],
    env: { ...process.env, [DAEMON_FD_ENV]: String(DAEMON_FD) },
    detached: true,
    stdio: ["ignore", "ignore", "ignore", "pipe"],
  });
  const fd = child.stdio[DAEMON_FD]!;
  child.unref();
  const word = await within(Bun.file(fd).text(), readyTimeoutMs);
  closeSync(fd);
  if (word === null) {
    child.kill("SIGTERM");
    process.stderr.write(
      `buncracker: daemon not listening after ${readyTimeoutMs} ms, stopped it\n`,
    );
    return 1;
  }
  if (word.startsWith("ready")) return 0;
  if (word.startsWith("error ")) {
    process.stderr.write(word.slice("error ".length));
    return 1;
  }
  const status = await within(child.exited, 1000);
  process.stderr.write(
    `buncracker: daemon exited before it was listening (exit status ${status ?? "unknown"})\n`,
  );
  return 1;
}

/** Daemon side: how the daemon tells its parent how start-up went (once). */
export class DaemonChannel {
  private open = true;
  constructor(private readonly fd: number) {}

  /** Every pool listens: the parent may exit 0. */
  ready(): void {
    this.say("ready\n");
  }

  /** Start-up failed: the parent prints `message` and exits 1. */
  fail(message: string): void {
    this.say(`error ${message}\n`);
  }

  private say(word: string): void {
    if (!this.open) return;
    this.open = false;
    try {
      writeSync(this.fd, word);
      closeSync(this.fd);
    } catch {
      // the parent is gone (killed, or timed out): nobody to tell
    }
  }
}

/** Non-null in the process daemonize() started; consumes the marker so that processes this
 *  one spawns with process.env are not mistaken for the daemon. */
export function daemonChannel(): DaemonChannel | null {
  const fd = process.env[DAEMON_FD_ENV];
  if (fd === undefined) return null;
  delete process.env[DAEMON_FD_ENV];
  return new DaemonChannel(Number(fd));
}
