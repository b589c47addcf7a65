// Signals on a real process (a small script using the logger, the pid file and installSignals):
// nutcracker's SIGTTIN/SIGTTOU/SIGHUP/SIGINT texts and effects, SIGPIPE ignored, and the
// graceful SIGTERM: the drain runs to its end before the process exits 0, a second SIGTERM exits
// at once. The pid file is gone after every exit.

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnManaged, type ManagedProcess } from "../helpers/process.ts";
import { makeTempDir, removeTempDirs } from "../helpers/tmp.ts";

afterAll(removeTempDirs);

const REPO = join(import.meta.dir, "..", "..");
const BUN = join(REPO, "node_modules", ".bin", "bun");

const FIXTURE = `
import { log } from ${JSON.stringify(join(REPO, "src/log.ts"))};
import { writePidFile } from ${JSON.stringify(join(REPO, "src/ops/pidfile.ts"))};
import { installSignals } from ${JSON.stringify(join(REPO, "src/ops/signals.ts"))};
const [logPath, pidPath, drain] = process.argv.slice(2);
log.open(logPath);
writePidFile(pidPath);
installSignals({
  drain: () =>
    new Promise((resolve) => {
      log.notice("drain started");
      if (drain === "hang") return;
      setTimeout(() => {
        log.notice("drain finished");
        resolve();
      }, 50);
    }),
});
setInterval(() => {}, 1000);
log.notice("fixture up");
`;

interface Fixture {
  readonly proc: ManagedProcess;
  readonly logPath: string;
  readonly pidPath: string;
  /** The messages logged to `path` (default: the log file) so far. */
  messages(path?: string): string[];
  /** Waits until `path`'s messages include `message`; returns them. */
  waitFor(message: string, path?: string): Promise<string[]>;
}

async function startFixture(drain: "finish" | "hang"): Promise<Fixture> {
  const dir = makeTempDir("bc-sig-");
  writeFileSync(dir.file("fixture.ts"), FIXTURE);
  const logPath = dir.file("proxy.log");
  const pidPath = dir.file("proxy.pid");
  const proc = spawnManaged([BUN, dir.file("fixture.ts"), logPath, pidPath, drain]);
  const messages = (path = logPath): string[] =>
    existsSync(path)
      ? readFileSync(path, "utf8")
          .split("\n")
          .filter((l) => l !== "")
          .map((l) => l.replace(/^\[[^\]]+\] \w+ /, ""))
      : [];
  const waitFor = async (message: string, path = logPath): Promise<string[]> => {
    for (let i = 0; i < 1000; i++) {
      const seen = messages(path);
      if (seen.includes(message)) return seen;
      if (!proc.running) break;
      await Bun.sleep(10);
    }
    throw new Error(`no "${message}" in ${path}: ${JSON.stringify(messages(path))}\n${proc.stderr()}`);
  };
  const fixture = { proc, logPath, pidPath, messages, waitFor };
  await waitFor("fixture up");
  return fixture;
}

describe("nutcracker's signals", () => {
  test("SIGTTIN / SIGTTOU move the level and log it; SIGPIPE is ignored", async () => {
    const f = await startFixture("finish");
    f.proc.signal("SIGTTIN");
    await f.waitFor("up log level to 6");
    f.proc.signal("SIGPIPE");
    f.proc.signal("SIGTTOU");
    await f.waitFor("down log level to 5");
    f.proc.signal("SIGTTOU");
    const seen = await f.waitFor("down log level to 4");
    expect(seen).toEqual([
      "fixture up",
      "signal 21 (SIGTTIN) received, up logging level",
      "up log level to 6",
      "signal 22 (SIGTTOU) received, down logging level",
      "down log level to 5",
      "signal 22 (SIGTTOU) received, down logging level",
      "down log level to 4",
    ]);
    expect(f.proc.running).toBe(true);
    await f.proc.stop();
  });

  test("SIGHUP re-creates a rotated log file; SIGINT exits 1 and removes the pid file", async () => {
    const f = await startFixture("finish");
    expect(readFileSync(f.pidPath, "utf8")).toBe(String(f.proc.pid));
    renameSync(f.logPath, `${f.logPath}.1`);
    f.proc.signal("SIGHUP");
    await f.waitFor(`reopened log file '${f.logPath}'`);
    expect(f.messages(`${f.logPath}.1`)).toEqual([
      "fixture up",
      "signal 1 (SIGHUP) received, reopening log file",
    ]);
    f.proc.signal("SIGINT");
    expect(await f.proc.exited).toBe(1);
    expect(f.messages()).toEqual([
      `reopened log file '${f.logPath}'`,
      "signal 2 (SIGINT) received, exiting",
    ]);
    expect(existsSync(f.pidPath)).toBe(false);
  });
});

describe("graceful SIGTERM", () => {
  test("the drain runs to its end, then the process exits 0", async () => {
    const f = await startFixture("finish");
    f.proc.signal("SIGTERM");
    expect(await f.proc.exited).toBe(0);
    expect(f.messages()).toEqual([
      "fixture up",
      "signal 15 (SIGTERM) received, draining",
      "drain started",
      "drain finished",
    ]);
    expect(existsSync(f.pidPath)).toBe(false);
  });

  test("a second SIGTERM exits at once, with status 1", async () => {
    const f = await startFixture("hang");
    f.proc.signal("SIGTERM");
    await f.waitFor("drain started");
    f.proc.signal("SIGTERM");
    expect(await f.proc.exited).toBe(1);
    expect(f.messages()).toEqual([
      "fixture up",
      "signal 15 (SIGTERM) received, draining",
      "drain started",
      "signal 15 (SIGTERM) received again, exiting now",
    ]);
    expect(existsSync(f.pidPath)).toBe(false);
  });
});
