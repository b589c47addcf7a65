// The memory phase (pseudo-workload `memory`): for each proxy, a fresh process (the cluster's
// long-running proxies carry the whole benchmark in their heaps) on one redis pool over the 4
// redis backends, at its default buffer sizes. Its memory from /proc/<pid>/status at idle, with
// 10,000 clients connected that each made one request, during a burst of large values, and 1, 5
// and 10 s after it: nutcracker keeps the mbufs a burst made it allocate, buncracker should not.

import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { limitedArgv } from "../../test/helpers/fault.ts";
import { type Cluster, type Proxy, type ProxyLaunch, startProxy } from "./cluster.ts";
import { freePort, isAlive, startService, stop, waitListening } from "./procs.ts";
import { WireClient } from "./wire.ts";

/** The phase's parameters (the report describes the method from them). */
export const MEMORY_SETUP = {
  clients: 10_000,
  /** Soft open-file limit of the proxy and of the crowd: the clients plus backends and spare. */
  nofile: 20_000,
  /** Clients connecting at a time. */
  crowdBatch: 500,
  burstConnections: 32,
  burstValueBytes: 4 * 1024 * 1024,
  /** /proc sampling interval during the burst. */
  sampleMs: 50,
  afterSeconds: [1, 5, 10],
  /** How long the bare runtime idles before it is read, as a proxy idles while started and probed. */
  runtimeSettleMs: 1000,
} as const;
const { clients: CLIENTS, nofile: NOFILE, burstConnections: BURST_CONNECTIONS, burstValueBytes: BURST_VALUE_BYTES } = MEMORY_SETUP;

export const MEMORY_PHASE = {
  name: "memory",
  what:
    `fresh proxy per target: RSS idle, with ${CLIENTS} connected clients (one SET+GET each), ` +
    `during and after ${BURST_CONNECTIONS} × ${BURST_VALUE_BYTES >> 20} MB SET+GET`,
};

const CROWD = join(import.meta.dir, "../../test/helpers/fault-crowd.ts");
/** How long the crowd keeps its connections after reporting (we read /proc meanwhile). */
const CROWD_HOLD_MS = 3000;
const CROWD_TIMEOUT_MS = 120_000;
const BURST_TIMEOUT_MS = 60_000;

/** A process's memory from /proc/<pid>/status, in KB. */
export interface MemoryStatus {
  /** VmRSS = anon + file (+ shmem). */
  rss: number;
  /** RssAnon: the process's private memory (heaps, buffers). */
  anon: number;
  /** RssFile: mapped file pages, mostly the executable; shared with other processes. */
  file: number;
  /** VmHWM: the highest VmRSS so far. */
  hwm: number;
}

export interface MemoryRun {
  target: ProxyLaunch["target"];
  /** Size of the proxy's executable (nutcracker, or the bun binary), bytes: what RssFile maps. */
  executableBytes?: number;
  idle?: MemoryStatus;
  /** While all clients are connected. */
  crowd?: MemoryStatus;
  /** Client connections that opened (of CLIENTS). */
  connected?: number;
  /** After the crowd left, right before the burst. */
  beforeBurst?: MemoryStatus;
  /** The sample with the highest VmRSS during the burst; its hwm is VmHWM when the burst ended. */
  burstPeak?: MemoryStatus;
  after: Array<{ seconds: number; status: MemoryStatus }>;
  /** What went wrong: clients or burst connections that failed, or the step that stopped the phase early. */
  problems: string[];
}

export function memoryStatus(pid: number): MemoryStatus {
  const text = readFileSync(`/proc/${pid}/status`, "latin1");
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text);
    if (m === null) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(m[1]);
  };
  return { rss: field("VmRSS"), anon: field("RssAnon"), file: field("RssFile"), hwm: field("VmHWM") };
}

const redisCommand = (...args: string[]): string => `*${args.length}\r\n${args.map((a) => `$${a.length}\r\n${a}\r\n`).join("")}`;

async function ping(port: number): Promise<void> {
  const client = await WireClient.open(port);
  try {
    const reply = await client.send(new TextEncoder().encode(redisCommand("PING")), (text) => text.includes("\r\n"), 3000);
    if (reply !== "+PONG\r\n") throw new Error(`PING answered ${JSON.stringify(reply)}`);
  } finally {
    client.close();
  }
}

interface CrowdReport {
  connected: number;
  answered: number;
  failed: number;
  samples: string[];
}

/** The crowd's JSON line from its log, once written. */
function crowdReport(log: string): CrowdReport | null {
  const line = readFileSync(log, "utf8").split("\n").find((l) => l.startsWith("{"));
  return line === undefined ? null : (JSON.parse(line) as CrowdReport);
}

/** The clients (test/helpers/fault-crowd.ts, a process of its own): the proxy's memory while all are connected. */
async function crowd(run: MemoryRun, proxy: Proxy<"redis4">, bun: string, dir: string): Promise<void> {
  const log = join(dir, `${run.target}-memory-crowd.log`);
  const args = [proxy.listen.redis4, CLIENTS, MEMORY_SETUP.crowdBatch, CROWD_HOLD_MS].map(String);
  const argv = [bun, CROWD, "127.0.0.1", ...args];
  // `&&`, not procs.ts's `;`: a limit that cannot be raised must fail the run, not skew it.
  const proc = startService(limitedArgv(NOFILE, argv), log);
  try {
    const deadline = Date.now() + CROWD_TIMEOUT_MS;
    let report = crowdReport(log);
    while (report === null) {
      if (!isAlive(proc)) throw new Error(`the crowd exited (${proc.exitCode ?? proc.signalCode}) without a report; see ${log}`);
      if (Date.now() > deadline) throw new Error(`the crowd did not report within ${CROWD_TIMEOUT_MS / 1000} s`);
      await Bun.sleep(MEMORY_SETUP.sampleMs);
      report = crowdReport(log);
    }
    run.crowd = memoryStatus(proxy.pid);
    run.connected = report.connected;
    if (report.answered !== CLIENTS) {
      run.problems.push(`${report.answered} of ${CLIENTS} clients answered, ${report.failed} failed: ${report.samples.join("; ")}`);
    }
    await Promise.race([proc.exited, Bun.sleep(CROWD_HOLD_MS + 10_000)]);
  } finally {
    await stop(proc);
  }
}

/** One connection: SET its 4 MB value, GET it back, check the reply's length and framing. */
async function bigSetGet(port: number, i: number): Promise<void> {
  const key = `memory-burst:${i}`;
  const encoder = new TextEncoder();
  const header = `$${BURST_VALUE_BYTES}\r\n`;
  const expected = header.length + BURST_VALUE_BYTES + 2;
  const client = await WireClient.open(port);
  try {
    const set = encoder.encode(redisCommand("SET", key, "x".repeat(BURST_VALUE_BYTES)));
    const stored = await client.send(set, (text) => text.includes("\r\n"), BURST_TIMEOUT_MS);
    if (stored !== "+OK\r\n") throw new Error(`SET ${key} answered ${JSON.stringify(stored.slice(0, 80))}`);
    const got = await client.send(
      encoder.encode(redisCommand("GET", key)),
      (text) => text.length >= expected || (text.startsWith("-") && text.includes("\r\n")),
      BURST_TIMEOUT_MS,
    );
    if (got.length !== expected || !got.startsWith(header) || !got.endsWith("x\r\n")) {
      throw new Error(`GET ${key}: ${got.length} bytes starting ${JSON.stringify(got.slice(0, 40))}, expected ${expected}`);
    }
  } finally {
    client.close();
  }
}

/** The burst's concurrent big SET+GETs, sampling the proxy's memory meanwhile. */
async function burst(run: MemoryRun, proxy: Proxy<"redis4">): Promise<void> {
  let peak = memoryStatus(proxy.pid);
  const sampler = setInterval(() => {
    try {
      const now = memoryStatus(proxy.pid);
      if (now.rss > peak.rss) peak = now;
    } catch {
      // the proxy is gone: the burst's connections fail and say so
    }
  }, MEMORY_SETUP.sampleMs);
  try {
    const outcomes = await Promise.allSettled(
      Array.from({ length: BURST_CONNECTIONS }, (_, i) => bigSetGet(proxy.listen.redis4, i)),
    );
    const failed = outcomes.flatMap((o) => (o.status === "rejected" ? [(o.reason as Error).message] : []));
    if (failed.length > 0) run.problems.push(`burst: ${failed.length} of ${BURST_CONNECTIONS} connections failed: ${failed.slice(0, 3).join("; ")}`);
  } finally {
    clearInterval(sampler);
  }
  const end = memoryStatus(proxy.pid);
  run.burstPeak = { ...(end.rss > peak.rss ? end : peak), hwm: end.hwm };
}

async function measureTarget(cluster: Cluster, launch: ProxyLaunch, bun: string, dir: string): Promise<MemoryRun> {
  const run: MemoryRun = { target: launch.target, after: [], problems: [] };
  let proxy: Proxy<"redis4"> | null = null;
  try {
    const started = await startProxy(cluster, launch, dir, {
      tag: `${launch.target}-memory`,
      pools: ["redis4"],
      wrap: (argv) => limitedArgv(NOFILE, argv),
    });
    proxy = started.proxy;
    if (started.broken.redis4 !== undefined) throw new Error(`set/get probe failed: ${started.broken.redis4}`);
    await ping(proxy.listen.redis4);
    run.executableBytes = statSync(`/proc/${proxy.pid}/exe`).size;
    run.idle = memoryStatus(proxy.pid);
    await crowd(run, proxy, bun, dir);
    await Bun.sleep(1000); // let the proxy close the crowd's connections
    run.beforeBurst = memoryStatus(proxy.pid);
    await burst(run, proxy);
    const ended = Date.now();
    for (const seconds of MEMORY_SETUP.afterSeconds) {
      await Bun.sleep(ended + seconds * 1000 - Date.now());
      run.after.push({ seconds, status: memoryStatus(proxy.pid) });
    }
  } catch (error) {
    run.problems.push((error as Error).message);
  } finally {
    if (proxy !== null) await stop(proxy.proc);
  }
  return run;
}

const mb = (kb: number): string => `${(kb / 1024).toFixed(1)} MB`;

function progress(run: MemoryRun): void {
  const parts = [
    run.idle && `idle ${mb(run.idle.rss)}`,
    run.crowd && `${CLIENTS} clients ${mb(run.crowd.rss)}`,
    run.burstPeak && `burst peak ${mb(run.burstPeak.rss)}`,
    ...run.after.map((a) => `+${a.seconds} s ${mb(a.status.rss)}`),
    ...run.problems.map((p) => `PROBLEM: ${p}`),
  ];
  console.log(`[memory] ${run.target}: ${parts.filter(Boolean).join(", ")}`);
}

/** The floor under buncracker's RSS: a Bun process with one listening socket and no other code. */
async function runtimeAlone(bun: string, dir: string): Promise<MemoryStatus | null> {
  const port = freePort();
  const script = `Bun.listen({ hostname: "127.0.0.1", port: ${port}, socket: { data() {} } });`;
  const proc = startService([bun, "--eval", script], join(dir, "bun-runtime-memory.log"));
  try {
    await waitListening(proc, port, "bare bun");
    await Bun.sleep(MEMORY_SETUP.runtimeSettleMs);
    return memoryStatus(proc.pid);
  } catch (error) {
    console.log(`[memory] bare bun runtime: PROBLEM: ${(error as Error).message}`);
    return null;
  } finally {
    await stop(proc);
  }
}

export interface MemoryPhase {
  runs: MemoryRun[];
  /** The Bun runtime alone (see runtimeAlone); null if it could not be measured. */
  runtime: MemoryStatus | null;
}

/** The memory phase, one target after the other (never two proxies under load at once). */
export async function measureMemory(cluster: Cluster, launches: ProxyLaunch[], bun: string, dir: string): Promise<MemoryPhase> {
  const runs: MemoryRun[] = [];
  for (const launch of launches) {
    const run = await measureTarget(cluster, launch, bun, dir);
    progress(run);
    runs.push(run);
  }
  const runtime = await runtimeAlone(bun, dir);
  if (runtime !== null) console.log(`[memory] bare bun runtime: ${mb(runtime.rss)} (anon ${mb(runtime.anon)}, file ${mb(runtime.file)})`);
  return { runs, runtime };
}
