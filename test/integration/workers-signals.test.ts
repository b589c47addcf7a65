// Signals to a `--workers 2` supervisor while a worker is still starting (restarted after a
// kill, caught with SIGSTOP before it has installed its handlers): SIGUSR1 must not kill it
// (the default action), and the reload round waits for it, so it runs the reloaded config with
// the others, or, when it cannot apply it, neither does any other worker (before, the round went
// on without it and it caught up alone: a reload it could not apply left the workers on two
// configs); after SIGTTIN it must log at the level the
// others were moved to; after a log rotation (the file moved, SIGHUP) that it missed with its log
// already open, it must write to the new file.
// A supervisor killed while a worker starts takes that worker down too; SIGTERM to the
// supervisor turns /healthz to 503 at once (the workers' reports lag by up to a second).

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from "node:fs";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { stopAll } from "../helpers/direct.ts";
import { metricsRequest, readStats, serverOf, waitFor, waitForLines } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { environOf, isAlive } from "../helpers/procfs.ts";
import { metricSample } from "../helpers/prometheus.ts";
import { TARGET } from "../helpers/proxy.ts";
import { command, respFrame } from "../helpers/resp.ts";
import { makeTempDir, type TempDir } from "../helpers/tmp.ts";
import { ownedClients, startWorkers, waitForListeners, type Supervised } from "../helpers/workers.ts";

setDefaultTimeout(90_000);

const SIGHUP = 1;
const SIGUSR1 = 10;
let redis: Backend;
let other: Backend;
let dir: TempDir;

beforeAll(async () => {
  [redis, other] = await Promise.all([startRedis(), startRedis()]);
  dir = makeTempDir("bct-ws-");
});

afterAll(async () => {
  await stopAll([redis, other].filter(Boolean));
  dir?.remove();
});

const fileText = (path: string): string => (existsSync(path) ? readFileSync(path, "utf8") : "");

function children(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, "latin1").trim();
  return text === "" ? [] : text.split(" ").map(Number);
}

/** Whether `pid` has a handler for signal number `signal` (SigCgt in /proc). */
function catches(pid: number, signal: number): boolean {
  const mask = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, "latin1"))![1]!;
  return (BigInt(`0x${mask}`) & (1n << BigInt(signal - 1))) !== 0n;
}

/** Kills worker 0 and stops its replacement (SIGSTOP) before it handles signals; returns the
 *  stopped pid. A replacement that won the race (it handles SIGUSR1 already) is killed again. */
async function stopWhileStarting(sup: Supervised): Promise<number> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const victim = (await sup.workers())[0]!;
    process.kill(victim, "SIGKILL");
    let fresh: number | undefined;
    while (fresh === undefined) {
      fresh = children(sup.proxy.pid).find((pid) => pid !== victim && environOf(pid, "BUNCRACKER_WORKER") === "0");
      if (fresh === undefined) await Bun.sleep(1);
    }
    process.kill(fresh, "SIGSTOP");
    if (!catches(fresh, SIGUSR1)) return fresh;
    process.kill(fresh, "SIGCONT");
    await waitForListeners(alphaPort, 2);
  }
  throw new Error("every replacement worker handled signals before it could be stopped");
}

/** The files `pid` has open (where its fds link); [] once it is gone. */
function openFiles(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return ""; // closed meanwhile
      }
    });
  } catch {
    return [];
  }
}

/** Kills worker 0 and stops its replacement (SIGSTOP) once it has opened `logPath` but before it
 *  handles SIGHUP (so before its first report: it installs its handlers first). The window is a
 *  few ms, so /proc is read in a tight loop; a replacement that won the race is let go and
 *  killed again. */
async function stopWithLogOpen(sup: Supervised, logPath: string): Promise<number> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const victim = (await sup.workers())[0]!;
    process.kill(victim, "SIGKILL");
    const deadline = Date.now() + 10_000;
    let fresh: number | undefined;
    while (fresh === undefined && Date.now() < deadline) {
      fresh = children(sup.proxy.pid).find((pid) => pid !== victim && environOf(pid, "BUNCRACKER_WORKER") === "0");
    }
    if (fresh === undefined) throw new Error("no replacement for worker 0 within 10 s");
    while (!openFiles(fresh).includes(logPath) && isAlive(fresh) && Date.now() < deadline) {
      // read /proc again at once
    }
    process.kill(fresh, "SIGSTOP");
    if (openFiles(fresh).includes(logPath) && !catches(fresh, SIGHUP)) return fresh;
    process.kill(fresh, "SIGCONT");
    await waitForListeners(alphaPort, 2);
  }
  throw new Error("every replacement worker handled SIGHUP before it could be stopped with its log open");
}

let alphaPort = 0;
const alpha = () => poolYaml("alpha", { listen: `127.0.0.1:${alphaPort}`, redis: true }, [serverLine(redis.address)]);

describe.skipIf(TARGET !== "buncracker")("signals while a worker starts", () => {
  test("SIGUSR1: the starting worker is not killed, and the round waits for it: both commit it", async () => {
    alphaPort = freePort();
    const logPath = dir.file("usr1.log");
    const sup = await startWorkers(alpha(), 2, { args: ["-o", logPath] });
    try {
      await waitForLines(() => fileText(logPath), /all 2 workers listening/);
      const starting = await stopWhileStarting(sup);
      const betaPort = freePort();
      writeFileSync(sup.proxy.configPath, alpha() + poolYaml("beta", { listen: `127.0.0.1:${betaPort}`, redis: true }, [serverLine(other.address)]));
      sup.proxy.signal("SIGUSR1");
      // Worker 1 staged it (a new pool listens from the stage on): the round has begun.
      await waitForListeners(betaPort, 1);
      process.kill(starting, "SIGCONT");
      await waitForListeners(betaPort, 2);
      await waitForListeners(alphaPort, 2);
      await waitForLines(() => fileText(logPath), /reloaded '.*' \(generation 2\): \+pool beta/, 2);
      await waitForLines(() => fileText(logPath), /reload applied by \d+ workers/);
      expect(fileText(logPath)).toContain("reload applied by 2 workers");
      expect(isAlive(starting)).toBe(true);
      expect(fileText(logPath)).not.toContain("exited (SIGUSR1)");
      expect((await sup.workers())[0]).toBe(starting);
    } finally {
      await sup.proxy.stop();
    }
  });

  test("SIGUSR1: a reload the starting worker 0 cannot apply (a unix path only it binds) is applied by neither", async () => {
    alphaPort = freePort();
    const logPath = dir.file("whole.log");
    const metricsPort = freePort();
    const sock = (path: string) => poolYaml("sock", { listen: path, redis: true }, [serverLine(redis.address)]);
    const sup = await startWorkers(alpha() + sock(dir.file("w.sock")), 2, { args: ["-o", logPath, "--metrics-port", String(metricsPort)] });
    try {
      await waitForLines(() => fileText(logPath), /all 2 workers listening/);
      const starting = await stopWhileStarting(sup);
      const betaPort = freePort();
      writeFileSync(sup.proxy.configPath, alpha() + sock(dir.file("missing/dir/w.sock")) + poolYaml("beta", { listen: `127.0.0.1:${betaPort}`, redis: true }, [serverLine(other.address)]));
      sup.proxy.signal("SIGUSR1");
      await waitForListeners(betaPort, 1);
      process.kill(starting, "SIGCONT");
      await waitForListeners(alphaPort, 2);
      await waitForLines(() => fileText(logPath), /reload applied by (no worker: worker 0: |\d+ workers)/);
      expect(fileText(logPath)).toMatch(/reload applied by no worker: worker 0: /);
      await waitForListeners(betaPort, 0);
      expect(await metricSample(metricsPort, "buncracker_config_generation")).toBe(1);
      expect(fileText(logPath)).not.toMatch(/reloaded '.*' \(generation 2\)/);
    } finally {
      await sup.proxy.stop();
    }
  });

  test("SIGUSR1: a worker restarted while the round runs starts after it, on the config it committed", async () => {
    alphaPort = freePort();
    const logPath = dir.file("restart.log");
    const sup = await startWorkers(alpha(), 2, { args: ["-o", logPath] });
    try {
      await waitForLines(() => fileText(logPath), /all 2 workers listening/);
      const [first, second] = await sup.workers();
      // Worker 1 cannot answer: the round waits for it (up to 5 s).
      process.kill(second!, "SIGSTOP");
      const betaPort = freePort();
      writeFileSync(sup.proxy.configPath, alpha() + poolYaml("beta", { listen: `127.0.0.1:${betaPort}`, redis: true }, [serverLine(other.address)]));
      sup.proxy.signal("SIGUSR1");
      await waitForListeners(betaPort, 1); // worker 0 staged it
      process.kill(first!, "SIGKILL");
      await waitForLines(() => fileText(logPath), /worker 0 exited \(SIGKILL\); restarting it in 500 ms/);
      // Past the backoff: before, worker 0 restarted now, on the config the round replaces.
      await Bun.sleep(1500);
      process.kill(second!, "SIGCONT");
      await waitForLines(() => fileText(logPath), /reload applied by \d+ workers/);
      await waitForListeners(betaPort, 2);
      await waitForListeners(alphaPort, 2);
      // Worker 1 committed it; worker 0 started on it (before, it caught up alone: a second line).
      await Bun.sleep(500);
      expect([...fileText(logPath).matchAll(/reloaded '.*' \(generation 2\): \+pool beta/g)]).toHaveLength(1);
      expect(fileText(logPath)).toContain("reload applied by 1 workers");
    } finally {
      await sup.proxy.stop();
    }
  });

  test("SIGHUP: a worker that opened its log before the rotation and reports after it reopens it too", async () => {
    alphaPort = freePort();
    const logPath = dir.file("hup.log");
    const sup = await startWorkers(alpha(), 2, { args: ["-o", logPath] });
    try {
      await waitForLines(() => fileText(logPath), /all 2 workers listening/);
      const starting = await stopWithLogOpen(sup, logPath);
      // logrotate: move the file away, then SIGHUP.
      renameSync(logPath, `${logPath}.1`);
      sup.proxy.signal("SIGHUP");
      // The supervisor's line and the running worker's, in the new file.
      await waitForLines(() => fileText(logPath), /reopened log file/, 2);
      process.kill(starting, "SIGCONT");
      await waitForListeners(alphaPort, 2);
      expect((await sup.workers())[0]).toBe(starting);
      await waitFor("the restarted worker logging to the new file, not the rotated one", () => {
        const files = openFiles(starting);
        return files.includes(logPath) && !files.includes(`${logPath}.1`);
      }, 10_000, () => openFiles(starting).filter((f) => f.startsWith(dir.path)).join(", "));
      await waitForLines(() => fileText(logPath), /reopened log file/, 3);
    } finally {
      await sup.proxy.stop();
    }
  });

  test("SIGTTIN: the starting worker logs at the raised level", async () => {
    alphaPort = freePort();
    const logPath = dir.file("ttin.log");
    const sup = await startWorkers(alpha(), 2, { args: ["-o", logPath] });
    try {
      await waitForLines(() => fileText(logPath), /all 2 workers listening/);
      const starting = await stopWhileStarting(sup);
      sup.proxy.signal("SIGTTIN");
      // The supervisor's own line and the running worker's.
      await waitForLines(() => fileText(logPath), /up log level to 6/, 2);
      process.kill(starting, "SIGCONT");
      await waitForListeners(alphaPort, 2);
      const workers = await sup.workers();
      expect(workers[0]).toBe(starting);
      // At 6 (info) a new server connection is logged: the restarted worker's first one.
      const before = [...fileText(logPath).matchAll(/info connected to server/g)].length;
      const clients = await ownedClients(alphaPort, 8, workers);
      const mine = clients.filter((c) => c.owner === starting);
      expect(mine.length).toBeGreaterThan(0);
      await mine[0]!.client.send(command("PING"));
      await mine[0]!.client.send(command("GET", "k"));
      await mine[0]!.client.readReplies(2, respFrame);
      for (const c of clients) c.client.close();
      await waitFor("the restarted worker's connection logged", () =>
        [...fileText(logPath).matchAll(/info connected to server/g)].length > before);
    } finally {
      await sup.proxy.stop();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("the supervisor killed while a worker starts", () => {
  test("the starting worker exits too (it does not serve on unsupervised)", async () => {
    alphaPort = freePort();
    const sup = await startWorkers(alpha(), 2);
    const workers = await sup.workers();
    let starting = 0;
    try {
      await waitForLines(sup.proxy.stderr, /all 2 workers listening/);
      starting = await stopWhileStarting(sup);
      sup.proxy.signal("SIGKILL");
      await waitFor("the supervisor gone", () => !isAlive(sup.proxy.pid));
      process.kill(starting, "SIGCONT");
      await waitFor("every worker to exit", () => [starting, ...workers].every((pid) => !isAlive(pid)), 20_000);
    } finally {
      for (const pid of [starting, ...workers]) if (pid !== 0 && isAlive(pid)) process.kill(pid, "SIGKILL");
      await sup.proxy.stop();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("SIGTERM to the supervisor", () => {
  test("/healthz says 503 from the moment it drains (not only once the workers next report)", async () => {
    alphaPort = freePort();
    const metricsPort = freePort();
    const sup = await startWorkers(alpha(), 2, { args: ["--metrics-port", String(metricsPort), "--drain-timeout", "60000"] });
    const client = await RawClient.connect({ host: "127.0.0.1", port: alphaPort });
    try {
      await waitFor("/healthz 200", async () => (await metricsRequest(metricsPort, "/healthz")).status === 200);
      await redis.process.freeze();
      await client.send(command("GET", "k"));
      await waitFor("the GET forwarded", async () => serverOf(await readStats(sup.proxy.statsPort), "alpha", redis.address).requests === 1);
      sup.proxy.signal("SIGTERM");
      await waitForLines(sup.proxy.stderr, /SIGTERM: draining workers/);
      expect((await metricsRequest(metricsPort, "/healthz")).status).toBe(503);
      redis.process.signal("SIGCONT");
      expect(await sup.proxy.process.exited).toBe(0);
    } finally {
      redis.process.signal("SIGCONT");
      client.close();
      await sup.proxy.stop();
    }
  });
});
