// `--workers 2` serving for real: both workers accept clients on the shared port (SO_REUSEPORT),
// each opens its own server connections, the stats port and /metrics of the supervisor show the
// sum (each request counted once) and each worker's event-loop lag, memory and CPU (the process
// totals adding the supervisor's own to the workers'), the unix-socket pool is served by worker 0
// alone, and SIGUSR1 to the supervisor reaches both workers (a pool added by the reload is served
// by both).

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { redisCall, stopAll } from "../helpers/direct.ts";
import { residentBytes } from "../helpers/hostile.ts";
import { metricsRequest, readStats, serverOf, waitFor, waitForLines, type StatsDoc } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { cpuTicks, environOf, unixListenerOwner } from "../helpers/procfs.ts";
import { parseExposition, value, type Family } from "../helpers/prometheus.ts";
import { TARGET } from "../helpers/proxy.ts";
import { bulk, command, OK, pipeline, respFrame, type RespValue, decode } from "../helpers/resp.ts";
import { makeTempDir, type TempDir } from "../helpers/tmp.ts";
import { ownedClients, startWorkers, waitForListeners, type OwnedClient, type Supervised } from "../helpers/workers.ts";

setDefaultTimeout(60_000);

const WORKERS = 2;
const CLIENTS = 16;
/** Keys each client touches: enough that every worker reaches both servers. */
const KEYS_PER_CLIENT = 12;

describe.skipIf(TARGET !== "buncracker")("--workers 2", () => {
  let r1: Backend, r2: Backend;
  let dir: TempDir;
  let sup: Supervised;
  let workers: number[];
  let metricsPort: number;
  let alphaPort: number;
  let gammaPort: number;
  let sockPath: string;
  let clients: OwnedClient[] = [];

  const config = (withGamma: boolean): string =>
    poolYaml("alpha", { listen: `127.0.0.1:${alphaPort}`, redis: true, server_connections: 1 }, [
      serverLine(r1.address, 1, "r1"),
      serverLine(r2.address, 1, "r2"),
    ]) +
    poolYaml("sock", { listen: sockPath, redis: true }, [serverLine(r1.address, 1, "r1")]) +
    (withGamma ? poolYaml("gamma", { listen: `127.0.0.1:${gammaPort}`, redis: true }, [serverLine(r2.address, 1, "r2")]) : "");

  /** Requests `client` sends, and their replies: SET then GET of its own keys. */
  async function useKeys(client: RawClient, tag: string): Promise<void> {
    const keys = Array.from({ length: KEYS_PER_CLIENT }, (_, i) => `${tag}:${i}`);
    await client.send(pipeline([...keys.map((k) => ["SET", k, `v-${k}`]), ...keys.map((k) => ["GET", k])]));
    const replies = await client.readReplies(2 * keys.length, respFrame);
    expect(replies.map(String)).toEqual([...keys.map(() => OK.toString()), ...keys.map((k) => bulk(`v-${k}`).toString())]);
  }

  const requestsOf = (doc: StatsDoc, pool = "alpha", names = ["r1", "r2"]) =>
    names.reduce((n, s) => n + (serverOf(doc, pool, s).requests as number), 0);

  beforeAll(async () => {
    [r1, r2] = await Promise.all([startRedis(), startRedis()]);
    dir = makeTempDir("bct-wk-");
    alphaPort = freePort();
    gammaPort = freePort();
    sockPath = dir.file("sock.sock");
    metricsPort = freePort();
    sup = await startWorkers(config(false), WORKERS, { args: ["-i", "100", "--metrics-port", String(metricsPort)] });
    workers = await sup.workers();
    clients = await ownedClients(alphaPort, CLIENTS, workers);
  });

  afterAll(async () => {
    for (const c of clients) c.client.close();
    await sup?.proxy.stop();
    await stopAll([r1, r2].filter(Boolean));
    dir?.remove();
  });

  test("the supervisor says when every worker listens", async () => {
    await waitForLines(sup.proxy.stderr, /all 2 workers listening/);
    expect(workers).toHaveLength(WORKERS);
  });

  test("both workers accept clients on the shared port, and every client is answered", async () => {
    expect(new Set(clients.map((c) => c.owner))).toEqual(new Set(workers));
    await Promise.all(clients.map((c, i) => useKeys(c.client, `spread-${i}`)));
  });

  test("each worker opens its own server connections: server_connections counts them all", async () => {
    // Every worker has sent to both servers (each client touched 12 keys): one connection each.
    const fromProxy = async (redis: Backend) => {
      const list = (await redisCall(redis, "CLIENT", "LIST")) as Buffer;
      return list.toString().trim().split("\n").filter((line) => !line.includes("cmd=client")).length;
    };
    expect(await fromProxy(r1)).toBe(WORKERS);
    expect(await fromProxy(r2)).toBe(WORKERS);
    const stats = await waitFor("both workers' reports", async () => {
      const doc = await readStats(sup.proxy.statsPort);
      return serverOf(doc, "alpha", "r1").server_connections === WORKERS ? doc : undefined;
    });
    expect(serverOf(stats, "alpha", "r2").server_connections).toBe(WORKERS);
    expect(stats.curr_connections as number).toBeGreaterThanOrEqual(CLIENTS + 2 * WORKERS);
  });

  test("the stats port shows the sum over the workers: each request counted once", async () => {
    const before = requestsOf(await settled());
    await Promise.all(clients.map((c, i) => useKeys(c.client, `count-${i}`)));
    const sent = CLIENTS * 2 * KEYS_PER_CLIENT;
    const after = await settled((doc) => requestsOf(doc) >= before + sent);
    expect(requestsOf(after) - before).toBe(sent);
    const responses = ["r1", "r2"].reduce((n, s) => n + (serverOf(after, "alpha", s).responses as number), 0);
    expect(responses).toBe(requestsOf(after));
    expect((after.alpha as StatsDoc).client_connections).toBe(CLIENTS);
  });

  test("/metrics serves the same sums; /healthz merges the workers' pools", async () => {
    const doc = await settled();
    const families = parseExposition(await (await metricsRequest(metricsPort, "/metrics")).text());
    for (const server of ["r1", "r2"]) {
      const s = serverOf(doc, "alpha", server);
      expect(value(families, "buncracker_server_requests_total", { pool: "alpha", server })).toBe(s.requests as number);
      expect(value(families, "buncracker_server_connections", { pool: "alpha", server })).toBe(WORKERS);
    }
    expect(value(families, "buncracker_pool_client_connections", { pool: "alpha" })).toBe(CLIENTS);
    const latency = value(families, "buncracker_pool_request_duration_seconds", { pool: "alpha" }, "buncracker_pool_request_duration_seconds_count");
    expect(latency).toBe(requestsOf(doc)); // single-key requests: one per server request
    const health = await metricsRequest(metricsPort, "/healthz");
    expect(health.status).toBe(200);
    const body = (await health.json()) as { pools: { name: string; listening: boolean; live: string[] }[] };
    expect(body.pools.map((p) => [p.name, p.listening, p.live])).toEqual([
      ["alpha", true, ["r1", "r2"]],
      ["sock", true, ["r1"]],
    ]);
  });

  test("/metrics' event-loop lag is the workers': one stopped for 1.5 s shows it, per worker and as the highest", async () => {
    // A probe due every 0.5 s fires at least 1 s late after the stop: the worker reports the
    // worst lag since its last report, so the next report carries it.
    const stalled = workers[1]!;
    process.kill(stalled, "SIGSTOP");
    await Bun.sleep(1500);
    process.kill(stalled, "SIGCONT");
    const lagOf = (f: Map<string, Family>, worker: string) => value(f, "buncracker_worker_event_loop_lag_seconds", { worker });
    const families = await waitFor("worker 1's stall in /metrics", async () => {
      const f = parseExposition(await (await metricsRequest(metricsPort, "/metrics")).text());
      return (lagOf(f, "1") ?? 0) >= 1 ? f : undefined;
    });
    const perWorker = [lagOf(families, "0"), lagOf(families, "1")];
    expect(perWorker[0]).toBeNumber();
    expect(value(families, "buncracker_event_loop_lag_seconds", {})).toBe(Math.max(...(perWorker as number[])));
  });

  test("/metrics shows each worker's memory and CPU, read from the worker; process_* are the supervisor's plus the workers'", async () => {
    // Worker 1 serves a round of requests first, so the workers' CPU is not near the supervisor's.
    await Promise.all(clients.filter((c) => c.owner === workers[1]).map((c, i) => useKeys(c.client, `cpu-${i}`)));
    const pids = [sup.proxy.pid, ...workers];
    const seconds = (pid: number) => cpuTicks(pid) / 100; // whole ticks: at most the CPU spent so far
    const before = pids.map(seconds);
    // A report taken after `before` was read: each worker's CPU is at least what /proc said then.
    const cpuOf = (f: Map<string, Family>, worker: number) => value(f, "buncracker_worker_cpu_seconds_total", { worker: String(worker) });
    const families = await waitFor("reports taken after the CPU was read", async () => {
      const f = parseExposition(await (await metricsRequest(metricsPort, "/metrics")).text());
      return workers.every((_, i) => (cpuOf(f, i) ?? -1) >= before[i + 1]!) ? f : undefined;
    });
    const after = pids.map(seconds);
    const rss = pids.map(residentBytes);
    // /proc gives utime and stime each rounded down to a 10 ms tick, the process's own
    // getrusage() is exact: up to two ticks apart, three allowed.
    const TICK = 0.03;
    let workersCpu = 0;
    let workersRss = 0;
    workers.forEach((_, i) => {
      const cpu = cpuOf(families, i)!;
      expect(cpu).toBeLessThanOrEqual(after[i + 1]! + TICK);
      const resident = value(families, "buncracker_worker_resident_memory_bytes", { worker: String(i) })!;
      expect(resident).toBeGreaterThan(rss[i + 1]! / 2);
      expect(resident).toBeLessThan(rss[i + 1]! * 2);
      workersCpu += cpu;
      workersRss += resident;
    });
    // The totals are the supervisor's own (measured as it answered) plus the workers'.
    const supervisorCpu = value(families, "process_cpu_seconds_total", {})! - workersCpu;
    expect(supervisorCpu).toBeGreaterThanOrEqual(before[0]! - 1e-6);
    expect(supervisorCpu).toBeLessThanOrEqual(after[0]! + TICK);
    const supervisorRss = value(families, "process_resident_memory_bytes", {})! - workersRss;
    expect(supervisorRss).toBeGreaterThan(rss[0]! / 2);
    expect(supervisorRss).toBeLessThan(rss[0]! * 2);
  });

  test("/dashboard.json lists each worker (pid, memory, CPU, start time); its memory is the supervisor's plus the workers'", async () => {
    const d = (await (await metricsRequest(metricsPort, "/dashboard.json")).json()) as {
      memory: { rssBytes: number };
      workers?: { index: number; pid: number; rssBytes: number; cpuSeconds: number; startedAt: string }[];
    };
    // The instant /metrics gives as each worker's start time.
    const families = parseExposition(await (await metricsRequest(metricsPort, "/metrics")).text());
    expect(d.workers?.map((w) => Date.parse(w.startedAt) / 1000)).toEqual(
      workers.map((_, i) => value(families, "buncracker_worker_start_time_seconds", { worker: String(i) })!),
    );
    const rss = [sup.proxy.pid, ...workers].map(residentBytes);
    expect(d.workers?.map((w) => [w.index, w.pid])).toEqual(workers.map((pid, i) => [i, pid]));
    let workersRss = 0;
    d.workers!.forEach((w, i) => {
      expect(w.rssBytes).toBeGreaterThan(rss[i + 1]! / 2);
      expect(w.rssBytes).toBeLessThan(rss[i + 1]! * 2);
      // As above: /proc's ticks are up to two behind the worker's own figure.
      expect(w.cpuSeconds).toBeLessThanOrEqual(cpuTicks(workers[i]!) / 100 + 0.03);
      workersRss += w.rssBytes;
    });
    const supervisorRss = d.memory.rssBytes - workersRss;
    expect(supervisorRss).toBeGreaterThan(rss[0]! / 2);
    expect(supervisorRss).toBeLessThan(rss[0]! * 2);
  });

  test("the unix-socket pool is served, by worker 0 alone", async () => {
    const owner = unixListenerOwner(sockPath, workers);
    expect(owner).not.toBeNull();
    expect(environOf(owner!, "BUNCRACKER_WORKER")).toBe("0");
    for (let i = 0; i < 4; i++) {
      const client = await RawClient.connect({ path: sockPath });
      await client.send(pipeline([["SET", `sock:${i}`, `via-socket-${i}`], ["GET", `sock:${i}`]]));
      expect((await client.readReplies(2, respFrame)).map(String)).toEqual([OK.toString(), bulk(`via-socket-${i}`).toString()]);
      client.close();
      expect(String(await redisCall(r1, "GET", `sock:${i}`))).toBe(`via-socket-${i}`);
    }
  });

  test("SIGUSR1 to the supervisor reaches both workers: a pool added by the reload is served by both", async () => {
    writeFileSync(sup.proxy.configPath, config(true));
    sup.proxy.signal("SIGUSR1");
    await waitForLines(sup.proxy.stderr, /reloaded '.*' \(generation 2\): \+pool gamma/, WORKERS);
    await waitForListeners(gammaPort, WORKERS);
    const onGamma = await ownedClients(gammaPort, CLIENTS, workers);
    try {
      expect(new Set(onGamma.map((c) => c.owner))).toEqual(new Set(workers));
      for (const { client } of onGamma) {
        await client.send(command("GET", "spread-1:1"));
        const reply: RespValue = decode(await client.readReply(respFrame));
        // gamma's only server is r2: the key is there or not, never an error.
        expect(reply === null || String(reply) === "v-spread-1:1").toBe(true);
      }
    } finally {
      for (const c of onGamma) c.client.close();
    }
    // The existing clients kept working across the reload.
    await useKeys(clients[0]!.client, "after-reload");
  });

  /** The supervisor's stats once two reads a report interval apart agree (and `until` holds). */
  async function settled(until: (doc: StatsDoc) => boolean = () => true): Promise<StatsDoc> {
    let previous = "";
    return waitFor("the summed stats to settle", async () => {
      await Bun.sleep(1100);
      const doc = await readStats(sup.proxy.statsPort);
      const now = JSON.stringify({ ...doc, uptime: 0, timestamp: 0 });
      const done = now === previous && until(doc);
      previous = now;
      return done ? doc : undefined;
    }, 20_000);
  }
});
