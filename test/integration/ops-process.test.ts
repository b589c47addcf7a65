// The process life cycle of the real proxy: the -p pid file (written once running, removed on
// every exit; nutcracker 0.5.0 writes one only with -d), and -d (detached for real: the parent exits 0
// only once the daemon listens, the daemon keeps `-c <conf>` on its command line, runs in its own
// session with /dev/null for stdio, and start-up errors reach the parent's stderr and status).

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { testDeliberate } from "../helpers/deliberate.ts";
import { redisCall } from "../helpers/direct.ts";
import { waitFor } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { isAlive } from "../helpers/procfs.ts";
import { runToEnd } from "../helpers/process.ts";
import { proxyCommand, startProxy, TARGET } from "../helpers/proxy.ts";
import { bulk, command, respFrame } from "../helpers/resp.ts";
import { makeTempDir, type TempDir } from "../helpers/tmp.ts";

setDefaultTimeout(60_000);

let redis: Backend;
let dir: TempDir;
/** Daemons started here: not children of the test runner, so stopped by pid in afterAll. */
const daemons = new Set<number>();

beforeAll(async () => {
  redis = await startRedis();
  dir = makeTempDir("bct-proc-");
  await redisCall(redis, "SET", "k", "daemon-value");
});

afterAll(async () => {
  for (const pid of daemons) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  await redis?.stop();
  dir?.remove();
});

const pool = (port: number) =>
  poolYaml("alpha", { listen: `127.0.0.1:${port}`, redis: true }, [serverLine(redis.address)]);

async function get(port: number): Promise<string> {
  const client = await RawClient.connect({ host: "127.0.0.1", port });
  await client.send(command("GET", "k"));
  const reply = (await client.readReply(respFrame)).toString();
  client.close();
  return reply;
}

describe("pid file", () => {
  testDeliberate("written while running (the pid, no newline) and removed when the process exits", {
    async buncracker() {
      for (const signal of ["SIGTERM", "SIGINT"] as const) {
        const pidPath = dir.file(`bc-${signal}.pid`);
        const proxy = await startProxy(TARGET, pool(freePort()), { args: ["-p", pidPath] });
        expect(readFileSync(pidPath, "utf8")).toBe(String(proxy.pid));
        proxy.signal(signal);
        expect(await proxy.process.exited).toBe(signal === "SIGTERM" ? 0 : 1);
        expect(existsSync(pidPath)).toBe(false);
        await proxy.stop();
      }
    },
    async nutcracker() {
      // nutcracker 0.5.0 writes the pid file only when it daemonizes (-d); in the foreground
      // -p is ignored.
      const pidPath = dir.file("nc.pid");
      const proxy = await startProxy(TARGET, pool(freePort()), { args: ["-p", pidPath] });
      expect(existsSync(pidPath)).toBe(false);
      await proxy.stop();
    },
  });

  testDeliberate("a pid file that cannot be written stops the start with nutcracker's message", {
    async buncracker() {
      const confPath = dir.file("pid-fail.yml");
      writeFileSync(confPath, pool(freePort()));
      const pidPath = dir.file("no-such-dir/x.pid");
      const logPath = dir.file("pid-fail.log");
      const argv = [...proxyCommand(TARGET), "-c", confPath, "-s", String(freePort()), "-p", pidPath, "-o", logPath];
      const run = await runToEnd(argv);
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(`opening pid file '${pidPath}' failed: No such file or directory`);
    },
  });
});

/** The pid in a pid file, or null when there is none: a daemon that failed may remove its file
 *  between any check and the read, so the read itself is the check. */
function readPid(path: string): number | null {
  try {
    return Number(readFileSync(path, "utf8"));
  } catch {
    return null;
  }
}

describe.skipIf(TARGET !== "buncracker")("-d (daemonize)", () => {
  /** Runs `buncracker -d ...` to its end; records the daemon (from its pid file) for clean-up. */
  async function daemonize(name: string, yamlText: string, extra: string[] = []) {
    const confPath = dir.file(`${name}.yml`);
    const pidPath = dir.file(`${name}.pid`);
    writeFileSync(confPath, yamlText);
    const argv = [...proxyCommand("buncracker"), "-d", "-c", confPath, "-s", String(freePort()), "-a", "127.0.0.1", "-p", pidPath, ...extra];
    const run = await runToEnd(argv, 60_000);
    const pid = readPid(pidPath);
    if (pid !== null) daemons.add(pid);
    return { ...run, confPath, pidPath, pid };
  }

  test("the parent exits 0 once the daemon listens; the daemon is detached and keeps -c on its command line", async () => {
    const port = freePort();
    const run = await daemonize("detach", pool(port), ["-o", dir.file("detach.log")]);
    expect(run.code).toBe(0);
    expect(run.stdout + run.stderr).toBe("");
    // Listening already when the parent returned: no waiting here.
    expect(await get(port)).toBe(bulk("daemon-value").toString());

    const pid = run.pid!;
    expect(isAlive(pid)).toBe(true);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    expect(cmdline[cmdline.indexOf("-c") + 1]).toBe(run.confPath);
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const [, ppid, , session] = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number) as number[];
    expect(session).toBe(pid); // its own session (setsid)
    expect(ppid).not.toBe(process.pid);
    for (const fd of [0, 1, 2]) expect(readlinkSync(`/proc/${pid}/fd/${fd}`)).toBe("/dev/null");

    process.kill(pid, "SIGTERM");
    await waitFor("the daemon to exit", () => !isAlive(pid));
    expect(existsSync(run.pidPath)).toBe(false);
    expect(readFileSync(dir.file("detach.log"), "utf8")).toContain("signal 15 (SIGTERM) received, draining");
  });

  test("a bad config is reported by the parent, which exits 1 and leaves no daemon", async () => {
    const run = await daemonize("bad-conf", "alpha:\n  listen: 127.0.0.1:1\n  bogus: 1\n  servers:\n   - 127.0.0.1:6379:1\n");
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('directive "bogus" is unknown');
    expect(run.pid).toBeNull();
  });

  test("a daemon that cannot listen reports the reason to the parent, which exits 1", async () => {
    const port = freePort();
    const holder = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    try {
      const run = await daemonize("in-use", pool(port));
      expect(run.code).toBe(1);
      expect(run.stderr).toContain(String(port));
      if (run.pid !== null) await waitFor("the failed daemon to be gone", () => !isAlive(run.pid!));
    } finally {
      holder.stop(true);
    }
  });
});
