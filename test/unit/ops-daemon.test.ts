// -d on a real process (a small script using daemonize/daemonChannel and the pid file): the
// parent exits 0 only once the daemon listens; the daemon runs in its own session with
// /dev/null for stdio and its command line (with -c) unchanged; start-up failures, crashes and
// a daemon that never gets ready make the parent exit 1 with a message.

import { afterAll, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { canBind, freePort } from "../helpers/ports.ts";
import { runToEnd } from "../helpers/process.ts";
import { makeTempDir, removeTempDirs } from "../helpers/tmp.ts";

const REPO = join(import.meta.dir, "..", "..");
const BUN = join(REPO, "node_modules", ".bin", "bun");

const FIXTURE = `
import { readlinkSync, writeFileSync } from "node:fs";
import { daemonChannel, daemonize } from ${JSON.stringify(join(REPO, "src/ops/daemon.ts"))};
import { writePidFile } from ${JSON.stringify(join(REPO, "src/ops/pidfile.ts"))};
const args = process.argv.slice(2);
const opt = (flag) => args[args.indexOf(flag) + 1];
const channel = daemonChannel();
if (channel === null) process.exit(await daemonize(Number(opt("--ready-timeout"))));
// Which pipe the ready channel is, so the test can check it was closed.
writeFileSync(opt("-p") + ".channel", readlinkSync("/proc/self/fd/3"));
writePidFile(opt("-p"));
process.on("SIGTERM", () => process.exit(0));
setInterval(() => {}, 1000);
switch (opt("--mode")) {
  case "fail":
    channel.fail("buncracker: configuration file 'x.yml' is invalid");
    process.exit(1);
  case "crash":
    process.exit(3);
  case "never-ready":
    break;
  default:
    await Bun.sleep(200); // a slow start: the parent must wait for it
    Bun.listen({ hostname: "127.0.0.1", port: Number(opt("--port")), socket: { data() {} } });
    channel.ready();
}
`;

const daemons = new Set<number>();

afterAll(() => {
  for (const pid of daemons) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  removeTempDirs();
});

/** Alive and not a zombie (an orphan's exit may wait for a reaper). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (condition()) return;
    await Bun.sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function runDaemon(mode: string, readyTimeoutMs = 10_000) {
  const dir = makeTempDir("bc-daemon-");
  writeFileSync(dir.file("fixture.ts"), FIXTURE);
  writeFileSync(dir.file("proxy.yml"), "");
  const pidPath = dir.file("proxy.pid");
  const port = freePort();
  const argv = [BUN, dir.file("fixture.ts"), "-c", dir.file("proxy.yml"), "-d", "-p", pidPath];
  argv.push("--port", String(port), "--mode", mode, "--ready-timeout", String(readyTimeoutMs));
  const result = await runToEnd(argv, 30_000);
  const pid = existsSync(pidPath) ? Number(readFileSync(pidPath, "utf8")) : null;
  if (pid !== null) daemons.add(pid);
  return { ...result, pid, pidPath, port, confPath: dir.file("proxy.yml") };
}

test("the parent exits 0 once the detached daemon listens", async () => {
  const d = await runDaemon("ok");
  expect(d.code).toBe(0);
  expect(d.stderr).toBe("");
  // already listening when the parent returned
  expect(canBind("127.0.0.1", d.port)).toBe(false);
  const pid = d.pid!;
  expect(alive(pid)).toBe(true);

  const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
  expect(argv.slice(argv.indexOf("-c"), argv.indexOf("-c") + 2)).toEqual(["-c", d.confPath]);
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const session = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
  expect(session).toBe(pid); // setsid: its own session, no controlling terminal
  for (const fd of [0, 1, 2]) expect(readlinkSync(`/proc/${pid}/fd/${fd}`)).toBe("/dev/null");
  // The ready pipe is closed (its fd number may since have been reused by something else).
  const channel = readFileSync(`${d.pidPath}.channel`, "utf8");
  expect(channel).toMatch(/^(pipe|socket):\[\d+\]$/); // Bun makes the "pipe" a socketpair
  const open = readdirSync(`/proc/${pid}/fd`).map((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`, "utf8"));
  expect(open).not.toContain(channel);

  process.kill(pid, "SIGTERM");
  await until(() => !alive(pid) && !existsSync(d.pidPath), "the daemon to exit and remove its pid file");
});

test("a start-up failure reaches the parent's stderr and exit status", async () => {
  const d = await runDaemon("fail");
  expect(d.code).toBe(1);
  expect(d.stderr).toBe("buncracker: configuration file 'x.yml' is invalid\n");
  await until(() => d.pid === null || !alive(d.pid), "the daemon to exit");
});

test("a daemon that dies before it is ready fails the parent", async () => {
  const d = await runDaemon("crash");
  expect(d.code).toBe(1);
  expect(d.stderr).toBe("buncracker: daemon exited before it was listening (exit status 3)\n");
});

test("a daemon that never gets ready is stopped and fails the parent", async () => {
  const d = await runDaemon("never-ready", 300);
  expect(d.code).toBe(1);
  expect(d.stderr).toBe("buncracker: daemon not listening after 300 ms, stopped it\n");
  await until(() => d.pid === null || !alive(d.pid), "the daemon to be stopped");
});
