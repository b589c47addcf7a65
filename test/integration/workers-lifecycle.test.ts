// The life of a `--workers 2` supervisor: a killed worker is restarted (logged) while the clients
// of the other worker are unaffected and the summed counters (the CPU in /metrics too) never go
// back; the total CPU has all a killed worker spent, up to its end, and each worker's start time is
// labelled (process_start_time_seconds stays the supervisor's); worker 0's restart brings the
// unix-socket pool back; SIGHUP makes the supervisor re-create its own log too; SIGTERM drains
// every worker (requests in flight complete) before the supervisor exits 0; a supervisor that is
// killed takes its workers down; -d returns once every worker listens; a worker that cannot start
// stops the supervisor with the reason instead of a restart loop, and a stats port in use stops it
// before any worker starts.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { redisCall } from "../helpers/direct.ts";
import { metricsRequest, readStats, serverOf, waitFor, waitForLines, type StatsDoc } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { childPids, cpuTicks, isAlive, listenerCount, unixListenerOwner } from "../helpers/procfs.ts";
import { parseExposition, value, type Family } from "../helpers/prometheus.ts";
import { runToEnd } from "../helpers/process.ts";
import { proxyCommand, TARGET } from "../helpers/proxy.ts";
import { bulk, command, respFrame } from "../helpers/resp.ts";
import { makeTempDir, type TempDir } from "../helpers/tmp.ts";
import { ownedClients, startWorkers, waitForListeners, type OwnedClient } from "../helpers/workers.ts";

setDefaultTimeout(90_000);

const WORKERS = 2;
let redis: Backend;
let dir: TempDir;

beforeAll(async () => {
  redis = await startRedis();
  dir = makeTempDir("bct-wl-");
  await redisCall(redis, "SET", "k", "the-value");
});

afterAll(async () => {
  redis?.process.signal("SIGCONT");
  await redis?.stop();
  dir?.remove();
});

const fileText = (path: string): string => (existsSync(path) ? readFileSync(path, "utf8") : "");

function config(port: number, sock?: string): string {
  return (
    poolYaml("alpha", { listen: `127.0.0.1:${port}`, redis: true }, [serverLine(redis.address)]) +
    (sock === undefined ? "" : poolYaml("sock", { listen: sock, redis: true }, [serverLine(redis.address)]))
  );
}

async function get(client: RawClient): Promise<string> {
  await client.send(command("GET", "k"));
  return (await client.readReply(respFrame)).toString();
}

const THE_VALUE = bulk("the-value").toString();
const requestsOf = (doc: StatsDoc) => serverOf(doc, "alpha", redis.address).requests as number;

describe.skipIf(TARGET !== "buncracker")("a worker dies", () => {
  test("it is restarted (logged); the other worker's clients never notice; counters never go back", async () => {
    const port = freePort();
    const sock = dir.file("restart.sock");
    const logPath = dir.file("restart.log");
    const sup = await startWorkers(config(port, sock), WORKERS, { args: ["-o", logPath] });
    let clients: OwnedClient[] = [];
    let sampling = true;
    try {
      const workers = await sup.workers();
      clients = await ownedClients(port, 16, workers);
      for (const c of clients) expect(await get(c.client)).toBe(THE_VALUE);
      const counted = await waitFor("the 16 requests in the summed stats", async () => {
        const doc = await readStats(sup.proxy.statsPort);
        return requestsOf(doc) === 16 ? doc : undefined;
      });
      expect(requestsOf(counted)).toBe(16);

      // The summed counter, sampled all along the kill and the restart: it never goes back.
      const sampled: { at: string; requests: number }[] = [];
      let phase = "before the kill";
      const sampler = (async () => {
        while (sampling) {
          sampled.push({ at: phase, requests: requestsOf(await readStats(sup.proxy.statsPort)) });
          await Bun.sleep(20);
        }
      })();

      // Kill the worker that holds the unix socket (worker 0), with clients on both workers.
      const victim = workers[0]!;
      const survivor = workers[1]!;
      expect(clients.some((c) => c.owner === victim) && clients.some((c) => c.owner === survivor)).toBe(true);
      // SIGHUP first: the supervisor re-creates its own log, so its restart line lands in the new file.
      renameSync(logPath, `${logPath}.1`);
      sup.proxy.signal("SIGHUP");
      await waitForLines(() => fileText(logPath), /reopened log file/, WORKERS + 1);
      await waitFor("a sample before the kill", () => sampled.length > 0);
      phase = "during the restart";
      process.kill(victim, "SIGKILL");

      const victims = clients.filter((c) => c.owner === victim);
      for (const c of victims) expect(await c.client.closesWithin(10_000)).toBe(true);
      // The survivor's clients keep being answered, during the restart and after it.
      const survivors = clients.filter((c) => c.owner === survivor);
      for (const c of survivors) expect(await get(c.client)).toBe(THE_VALUE);
      await waitForLines(() => fileText(logPath), /worker 0 exited \(SIGKILL\); restarting it in \d+ ms/);
      const restarted = await waitFor("a new worker 0", async () => {
        const now = await sup.workers();
        return now[0] !== victim ? now : undefined;
      });
      expect(restarted[1]).toBe(survivor);
      await waitFor("a sample during the restart", () => sampled.some((x) => x.at === "during the restart"));
      phase = "after the restart";
      await waitForListeners(port, WORKERS);
      for (const c of survivors) expect(await get(c.client)).toBe(THE_VALUE);
      expect(survivors.every((c) => !c.client.closed)).toBe(true);

      // The new worker 0 serves TCP clients and the unix socket again.
      const fresh = await ownedClients(port, 24, restarted);
      expect(new Set(fresh.map((c) => c.owner))).toEqual(new Set(restarted));
      for (const c of fresh) {
        expect(await get(c.client)).toBe(THE_VALUE);
        c.client.close();
      }
      await waitFor("worker 0 on the unix socket", () => unixListenerOwner(sock, restarted) === restarted[0]);
      const viaSocket = await RawClient.connect({ path: sock });
      expect(await get(viaSocket)).toBe(THE_VALUE);
      viaSocket.close();

      // What the dead worker counted stays in alpha's sum: 16 + the survivors' + 24, never less.
      const expected = 16 + 2 * survivors.length + fresh.length;
      let seen = 0;
      const after = await waitFor(
        `${expected} requests in the summed stats`,
        async () => {
          const doc = await readStats(sup.proxy.statsPort);
          seen = requestsOf(doc);
          return seen >= expected ? doc : undefined;
        },
        10_000,
        () => `${seen} counted`,
      );
      await Bun.sleep(2500); // two more reports: the sum must not overshoot either
      expect(requestsOf(await readStats(sup.proxy.statsPort))).toBe(expected);
      expect(requestsOf(after)).toBe(expected);
      sampling = false;
      await sampler;
      const backwards = sampled.filter((x, i) => i > 0 && x.requests < sampled[i - 1]!.requests);
      expect(backwards).toEqual([]);
      expect(new Set(sampled.map((x) => x.at))).toEqual(new Set(["before the kill", "during the restart", "after the restart"]));
    } finally {
      sampling = false;
      for (const c of clients) c.client.close();
      await sup.proxy.stop();
    }
  });
  test("process_cpu_seconds_total keeps the CPU a dead worker spent: after its restart, the total less the new worker's is at least the total before", async () => {
    const port = freePort();
    const metricsPort = freePort();
    const sup = await startWorkers(config(port), WORKERS, { args: ["--metrics-port", String(metricsPort)] });
    try {
      const workers = await sup.workers();
      const cpuOf = (f: Map<string, Family>, worker: string) => value(f, "buncracker_worker_cpu_seconds_total", { worker });
      /** A scrape once both workers have reported (the victim's successor, after the kill). */
      const scrape = (what: string) => waitFor(what, async () => {
        const f = parseExposition(await (await metricsRequest(metricsPort, "/metrics")).text());
        return cpuOf(f, "0") !== undefined && cpuOf(f, "1") !== undefined ? f : undefined;
      });
      const total = (f: Map<string, Family>) => value(f, "process_cpu_seconds_total", {})!;
      const before = await scrape("both workers' CPU");
      const victim = workers[1]!;
      process.kill(victim, "SIGKILL");
      await waitFor("a new worker 1", async () => ((await sup.workers())[1] !== victim ? true : undefined));
      const after = await scrape("the new worker 1's CPU");
      // The supervisor's and worker 0's CPU only grew; the victim's stays, beside its successor's.
      expect(total(after) - cpuOf(after, "1")!).toBeGreaterThanOrEqual(total(before));
    } finally {
      await sup.proxy.stop();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("the workers' process figures across a restart", () => {
  const cpuOf = (f: Map<string, Family>, worker: string) => value(f, "buncracker_worker_cpu_seconds_total", { worker });
  const startOf = (f: Map<string, Family>, worker: string) => value(f, "buncracker_worker_start_time_seconds", { worker });
  /** A scrape once both workers have reported. */
  const scrape = (metricsPort: number, what: string) => waitFor(what, async () => {
    const f = parseExposition(await (await metricsRequest(metricsPort, "/metrics")).text());
    return cpuOf(f, "0") !== undefined && cpuOf(f, "1") !== undefined ? f : undefined;
  });

  test("each worker's start time is labelled, process_start_time_seconds stays the supervisor's; a restarted worker's is its new start", async () => {
    const port = freePort();
    const metricsPort = freePort();
    const launched = Date.now() / 1000;
    const sup = await startWorkers(config(port), WORKERS, { args: ["--metrics-port", String(metricsPort)] });
    try {
      const workers = await sup.workers();
      const listening = Date.now() / 1000;
      const before = await scrape(metricsPort, "both workers' reports");
      const supervisor = value(before, "process_start_time_seconds", {})!;
      expect(supervisor).toBeGreaterThanOrEqual(launched);
      expect(supervisor).toBeLessThanOrEqual(listening);
      const starts = ["0", "1"].map((w) => startOf(before, w));
      expect(starts).toEqual([expect.any(Number), expect.any(Number)]);
      for (const start of starts) {
        // Started by the supervisor, after its own start, before they all listened.
        expect(start).toBeGreaterThanOrEqual(supervisor);
        expect(start).toBeLessThanOrEqual(listening);
      }
      const killedAt = Date.now() / 1000;
      process.kill(workers[1]!, "SIGKILL");
      await waitFor("a new worker 1", async () => ((await sup.workers())[1] !== workers[1] ? true : undefined));
      const after = await scrape(metricsPort, "the new worker 1's report");
      const restartedSeen = Date.now() / 1000;
      expect(startOf(after, "0")).toBe(starts[0]!);
      expect(startOf(after, "1")).toBeGreaterThanOrEqual(killedAt);
      expect(startOf(after, "1")).toBeLessThanOrEqual(restartedSeen);
      expect(value(after, "process_start_time_seconds", {})).toBe(supervisor);
    } finally {
      await sup.proxy.stop();
    }
  });

  test("process_cpu_seconds_total has all the CPU a killed worker spent, not only what it had reported", async () => {
    const port = freePort();
    const metricsPort = freePort();
    const sup = await startWorkers(config(port), WORKERS, { args: ["--metrics-port", String(metricsPort)] });
    let clients: OwnedClient[] = [];
    let busy = true;
    try {
      const workers = await sup.workers();
      const victim = workers[1]!;
      clients = await ownedClients(port, 16, workers);
      const onVictim = clients.filter((c) => c.owner === victim);
      expect(onVictim.length).toBeGreaterThan(0);
      // Worker 1 burns CPU serving pipelined GETs until it is stopped.
      const burn = Promise.all(onVictim.map(async (c) => {
        const batch = Buffer.concat(Array.from({ length: 200 }, () => command("GET", "k")));
        try {
          while (busy) {
            await c.client.send(batch);
            await c.client.readReplies(200, respFrame);
          }
        } catch {
          // closed with its worker
        }
      }));
      // Half a second after one of its reports, CPU it has not reported yet: stopped there.
      const reported = cpuOf(await scrape(metricsPort, "both workers' CPU"), "1")!;
      await waitFor("a later report of worker 1", async () => (cpuOf(await scrape(metricsPort, "worker 1's CPU"), "1")! > reported ? true : undefined));
      await Bun.sleep(500);
      process.kill(victim, "SIGSTOP");
      const spent = cpuTicks(victim) / 100; // whole ticks: at most what it spent
      busy = false;
      process.kill(victim, "SIGKILL");
      await burn;
      await waitFor("a new worker 1", async () => ((await sup.workers())[1] !== victim ? true : undefined));
      const supervisorBefore = cpuTicks(sup.proxy.pid) / 100; // at most its own figure in the scrape
      const after = await scrape(metricsPort, "the new worker 1's CPU");
      // The total less the live workers' and what /proc said of the supervisor before the
      // scrape is the dead worker's CPU plus the supervisor's few ms since (its own figure is
      // exact, /proc's rounded down): at least what /proc said of the victim as it was stopped.
      const dead = value(after, "process_cpu_seconds_total", {})! - cpuOf(after, "0")! - cpuOf(after, "1")! - supervisorBefore;
      expect(dead).toBeGreaterThanOrEqual(spent);
    } finally {
      busy = false;
      for (const c of clients) c.client.close();
      await sup.proxy.stop();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("a worker that keeps dying", () => {
  test("is restarted after a backoff that doubles: 500, 1000, 2000 ms (logged), serving again each time", async () => {
    const port = freePort();
    const logPath = dir.file("backoff.log");
    const sup = await startWorkers(config(port), WORKERS, { args: ["-o", logPath] });
    try {
      // A worker listens before its first report reaches the supervisor, which until every
      // worker has reported takes one that dies for one that could not start (and exits): the
      // first kill waits for the supervisor's word that all are listening.
      await waitForLines(() => fileText(logPath), new RegExp(`all ${WORKERS} workers listening`));
      let workers = await sup.workers();
      for (const [n, delay] of [500, 1000, 2000].entries()) {
        const victim = workers[0]!;
        process.kill(victim, "SIGKILL");
        await waitForLines(() => fileText(logPath), new RegExp(`worker 0 exited \\(SIGKILL\\); restarting it in ${delay} ms`));
        workers = await waitFor(`worker 0 restarted (${n + 1})`, async () => {
          const now = await sup.workers();
          return now[0] !== victim && now.length === WORKERS ? now : undefined;
        }, 10_000);
        await waitForListeners(port, WORKERS);
      }
      // Each restart was logged once, with its own delay.
      const delays = [...fileText(logPath).matchAll(/worker 0 exited \(SIGKILL\); restarting it in (\d+) ms/g)].map((m) => Number(m[1]));
      expect(delays).toEqual([500, 1000, 2000]);
      const client = await RawClient.connect({ host: "127.0.0.1", port });
      expect(await get(client)).toBe(THE_VALUE);
      client.close();
    } finally {
      await sup.proxy.stop();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("stopping", () => {
  test("SIGTERM drains every worker: requests in flight on both complete, then the supervisor exits 0", async () => {
    const port = freePort();
    const sup = await startWorkers(config(port), WORKERS, { args: ["--drain-timeout", "60000"] });
    let clients: OwnedClient[] = [];
    try {
      const workers = await sup.workers();
      clients = await ownedClients(port, 16, workers);
      expect(new Set(clients.map((c) => c.owner))).toEqual(new Set(workers));
      await redis.process.freeze();
      for (const c of clients) await c.client.send(command("GET", "k"));
      await waitFor("every GET forwarded", async () => requestsOf(await readStats(sup.proxy.statsPort)) === 16);
      sup.proxy.signal("SIGTERM");
      await waitForLines(sup.proxy.stderr, /signal 15 \(SIGTERM\) received, draining/, WORKERS);
      await waitFor("the workers to stop accepting", () => listenerCount(port) === 0);
      expect(sup.proxy.process.running).toBe(true);
      redis.process.signal("SIGCONT");
      for (const c of clients) expect((await c.client.readReply(respFrame)).toString()).toBe(THE_VALUE);
      expect(await sup.proxy.process.exited).toBe(0);
      expect(workers.filter(isAlive)).toEqual([]);
      await waitForLines(sup.proxy.stderr, /all workers exited/);
    } finally {
      redis.process.signal("SIGCONT");
      for (const c of clients) c.client.close();
      await sup.proxy.stop();
    }
  });

  test("a supervisor that is killed takes its workers down (they drain and exit)", async () => {
    const port = freePort();
    const sup = await startWorkers(config(port), WORKERS);
    const workers = await sup.workers();
    try {
      sup.proxy.signal("SIGKILL");
      await waitFor("the orphaned workers to exit", () => workers.every((pid) => !isAlive(pid)));
      expect(listenerCount(port)).toBe(0);
    } finally {
      for (const pid of workers.filter(isAlive)) process.kill(pid, "SIGKILL");
      await sup.proxy.stop();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("starting", () => {
  test("-d --workers 2: the parent exits 0 once every worker listens", async () => {
    const port = freePort();
    const confPath = dir.file("daemon.yml");
    const pidPath = dir.file("daemon.pid");
    writeFileSync(confPath, config(port));
    const argv = [...proxyCommand("buncracker"), "-d", "--workers", "2", "-c", confPath, "-s", String(freePort()), "-a", "127.0.0.1", "-p", pidPath];
    const run = await runToEnd(argv, 60_000);
    const supervisor = existsSync(pidPath) ? Number(readFileSync(pidPath, "utf8")) : null;
    const workers = supervisor === null ? [] : childPids(supervisor);
    try {
      expect(run.code).toBe(0);
      expect(listenerCount(port)).toBe(WORKERS);
      expect(workers).toHaveLength(WORKERS);
      const client = await RawClient.connect({ host: "127.0.0.1", port });
      expect(await get(client)).toBe(THE_VALUE);
      client.close();
      process.kill(supervisor!, "SIGTERM");
      await waitFor("the daemon and its workers to exit", () => [supervisor!, ...workers].every((pid) => !isAlive(pid)));
      expect(existsSync(pidPath)).toBe(false);
    } finally {
      for (const pid of [supervisor, ...workers]) {
        if (pid !== null && isAlive(pid)) process.kill(pid, "SIGKILL");
      }
    }
  });

  test("a stats port in use: the supervisor exits 1 with the reason before it starts any worker", async () => {
    const port = freePort();
    const statsPort = freePort();
    const holder = Bun.listen({ hostname: "127.0.0.1", port: statsPort, socket: { data() {} } });
    try {
      const confPath = dir.file("stats-in-use.yml");
      writeFileSync(confPath, config(port));
      const run = await runToEnd([...proxyCommand("buncracker"), "--workers", "2", "-c", confPath, "-s", String(statsPort), "-a", "127.0.0.1"], 60_000);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(new RegExp(`stats: cannot listen on 127\\.0\\.0\\.1:${statsPort}`));
      expect(run.stderr).not.toContain("listening on");
    } finally {
      holder.stop(true);
    }
  });

  test("a worker that cannot listen stops the supervisor with the reason (exit 1, no restart loop)", async () => {
    const port = freePort();
    const holder = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }); // no SO_REUSEPORT
    try {
      const confPath = dir.file("in-use.yml");
      writeFileSync(confPath, config(port));
      const run = await runToEnd([...proxyCommand("buncracker"), "--workers", "2", "-c", confPath, "-s", String(freePort()), "-a", "127.0.0.1"], 60_000);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(new RegExp(`worker \\d could not start: .*${port}`));
      expect(run.stderr).not.toContain("restarting it");
    } finally {
      holder.stop(true);
    }
  });
});
