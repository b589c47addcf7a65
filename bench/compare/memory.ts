// The memory phase (pseudo-workload `memory`): for each proxy (nutcracker, buncracker from source,
// and the shipped executable dist/buncracker when it is built), a fresh process (the cluster's
// long-running proxies carry the whole benchmark in their heaps) on one redis pool over the 4
// redis backends, at its default buffer sizes. Its memory from /proc/<pid>/status at idle, with
// 1,000 and then 10,000 idle clients connected that each made one request, during a burst of
// large values, and 1, 5 and 10 s after it: nutcracker keeps the mbufs a burst made it allocate,
// buncracker should not. The Bun runtime alone, a trivial server, takes the same crowds: the
// floor under buncracker's idle and per-client figures.

import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { limitedArgv } from "../../test/helpers/fault.ts";
import { type Cluster, type Proxy, type ProxyLaunch, startProxy } from "./cluster.ts";
import { freePort, isAlive, startService, stop, waitListening } from "./procs.ts";
import { WireClient } from "./wire.ts";

/** The phase's parameters (the report describes the method from them). */
export const MEMORY_SETUP = {
  /** The crowds, one after the other; the last is the "with clients" figure. */
  crowds: [1_000, 10_000],
  /** Soft open-file limit of the proxy and of the crowd: the clients plus backends and spare. */
  nofile: 20_000,
  /** Clients connecting at a time. */
  crowdBatch: 500,
  burstConnections: 32,
  burstValueBytes: 4 * 1024 * 1024,
  /** /proc sampling interval during the burst. */
  sampleMs: 50,
  afterSeconds: [1, 5, 10],
  /** A first crowd of this size warms the proxy up (JIT, backend connections, pooled buffers)
   *  before the measured ones; each crowd's increment is counted from RSS right before it. */
  warmClients: 100,
  /** How long a crowd's clients are connected and idle before the proxy is read. */
  idleMs: 2000,
  /** Pause after a crowd left (the proxy closes its connections). */
  settleMs: 1000,
  /** At the end, the process's clean file pages are paged out (pageout.py): its RSS this much
   *  later is what it needs resident while idle, without the pages once touched and now unused. */
  pageoutSettleMs: 3000,
  /** How long the bare runtime idles before it is read, as a proxy idles while started and probed. */
  runtimeSettleMs: 1000,
} as const;
const { nofile: NOFILE, burstConnections: BURST_CONNECTIONS, burstValueBytes: BURST_VALUE_BYTES } = MEMORY_SETUP;

export const MEMORY_PHASE = {
  name: "memory",
  what:
    `fresh proxy per target (and dist/buncracker): RSS idle, with ${MEMORY_SETUP.crowds.join(" / ")} connected clients (one SET+GET each), ` +
    `during and after ${BURST_CONNECTIONS} × ${BURST_VALUE_BYTES >> 20} MB SET+GET`,
};

const CROWD = join(import.meta.dir, "../../test/helpers/fault-crowd.ts");
const PAGEOUT = join(import.meta.dir, "pageout.py");
/** How long the crowd keeps its connections after reporting (we read /proc meanwhile). */
const CROWD_HOLD_MS = MEMORY_SETUP.idleMs + 2000;
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

/** One crowd: its clients all connected and idle. */
export interface CrowdRun {
  clients: number;
  /** Right before the crowd connected (after the previous one left). */
  before: MemoryStatus;
  /** While all its clients are connected. */
  status: MemoryStatus;
  /** Client connections that opened (of `clients`). */
  connected: number;
}

/** A proxy the phase measures: the cluster's launch, or the shipped executable. */
export interface MemoryLaunch extends ProxyLaunch {
  /** The report's row name. */
  label: string;
}

export interface MemoryRun {
  target: ProxyLaunch["target"];
  label: string;
  /** Size of the proxy's executable (nutcracker, or the bun binary), bytes: what RssFile maps. */
  executableBytes?: number;
  idle?: MemoryStatus;
  /** After the warm-up crowd left. */
  warm?: MemoryStatus;
  /** MEMORY_SETUP.crowds, in order. */
  crowds: CrowdRun[];
  /** While all of the last crowd's clients are connected. */
  crowd?: MemoryStatus;
  /** Client connections of the last crowd that opened. */
  connected?: number;
  /** After the crowd left, right before the burst. */
  beforeBurst?: MemoryStatus;
  /** The sample with the highest VmRSS during the burst; its hwm is VmHWM when the burst ended. */
  burstPeak?: MemoryStatus;
  after: Array<{ seconds: number; status: MemoryStatus }>;
  /** At the end, MEMORY_SETUP.pageoutSettleMs after its clean file pages were paged out (pageOut). */
  pagedOut?: MemoryStatus;
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

/** `clients` clients (test/helpers/fault-crowd.ts, a process of its own) on `port`: the memory of
 *  `pid` once all are connected and have been idle for MEMORY_SETUP.idleMs. */
async function crowd(
  clients: number,
  port: number,
  pid: number,
  run: { label: string; problems: string[] },
  bun: string,
  dir: string,
): Promise<{ status: MemoryStatus; connected: number }> {
  const log = join(dir, `${run.label.replace(/[^a-z0-9.-]+/gi, "_")}-memory-crowd-${clients}.log`);
  const args = [port, clients, MEMORY_SETUP.crowdBatch, CROWD_HOLD_MS].map(String);
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
    await Bun.sleep(MEMORY_SETUP.idleMs);
    const status = memoryStatus(pid);
    if (report.answered !== clients) {
      run.problems.push(`${report.answered} of ${clients} clients answered, ${report.failed} failed: ${report.samples.join("; ")}`);
    }
    await Promise.race([proc.exited, Bun.sleep(CROWD_HOLD_MS + 10_000)]);
    return { status, connected: report.connected };
  } finally {
    await stop(proc);
    await Bun.sleep(MEMORY_SETUP.settleMs); // let the proxy close the crowd's connections
  }
}

/** The idle process's clean file pages (executable code, read-only data) paged out by
 *  pageout.py, then its memory once it idled MEMORY_SETUP.pageoutSettleMs: start-up and traffic
 *  touch much of Bun's binary (module loading, parser, JIT compilers), which stays resident,
 *  unused, until the kernel needs the memory; this is what idling needs. Pages that other
 *  processes map too stay (the bun binary of the source run is every Bun process's). Null (and
 *  a problem) when it fails. */
async function pageOut(pid: number, run: { problems: string[] }): Promise<MemoryStatus | null> {
  const proc = Bun.spawn(["python3", PAGEOUT, String(pid)], { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill(), 10_000);
  try {
    const [code, err] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    if (code !== 0) {
      run.problems.push(`page-out failed (${code}): ${err.trim().slice(0, 200)}`);
      return null;
    }
  } finally {
    clearTimeout(timer);
  }
  await Bun.sleep(MEMORY_SETUP.pageoutSettleMs);
  return memoryStatus(pid);
}

/** The warm-up crowd, then every crowd of MEMORY_SETUP.crowds, into `run`. */
async function crowds(run: MemoryRun | RuntimeRun, port: number, pid: number, bun: string, dir: string): Promise<void> {
  await crowd(MEMORY_SETUP.warmClients, port, pid, run, bun, dir);
  run.warm = memoryStatus(pid);
  for (const clients of MEMORY_SETUP.crowds) {
    const before = memoryStatus(pid);
    const { status, connected } = await crowd(clients, port, pid, run, bun, dir);
    run.crowds.push({ clients, before, status, connected });
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

async function measureTarget(cluster: Cluster, launch: MemoryLaunch, bun: string, dir: string): Promise<MemoryRun> {
  const run: MemoryRun = { target: launch.target, label: launch.label, crowds: [], after: [], problems: [] };
  let proxy: Proxy<"redis4"> | null = null;
  try {
    const started = await startProxy(cluster, launch, dir, {
      tag: `${launch.label.replace(/[^a-z0-9.-]+/gi, "_")}-memory`,
      pools: ["redis4"],
      wrap: (argv) => limitedArgv(NOFILE, argv),
    });
    proxy = started.proxy;
    if (started.broken.redis4 !== undefined) throw new Error(`set/get probe failed: ${started.broken.redis4}`);
    await ping(proxy.listen.redis4);
    run.executableBytes = statSync(`/proc/${proxy.pid}/exe`).size;
    run.idle = memoryStatus(proxy.pid);
    await crowds(run, proxy.listen.redis4, proxy.pid, bun, dir);
    const last = run.crowds[run.crowds.length - 1];
    if (last !== undefined) {
      run.crowd = last.status;
      run.connected = last.connected;
    }
    run.beforeBurst = memoryStatus(proxy.pid);
    await burst(run, proxy);
    const ended = Date.now();
    for (const seconds of MEMORY_SETUP.afterSeconds) {
      await Bun.sleep(ended + seconds * 1000 - Date.now());
      run.after.push({ seconds, status: memoryStatus(proxy.pid) });
    }
    run.pagedOut = (await pageOut(proxy.pid, run)) ?? undefined;
  } catch (error) {
    run.problems.push((error as Error).message);
  } finally {
    if (proxy !== null) await stop(proxy.proc);
  }
  return run;
}

const mb = (kb: number): string => `${(kb / 1024).toFixed(1)} MB`;

/** KB per client a crowd added, counted from right before it. */
export const perClient = (c: CrowdRun): number => (c.status.rss - c.before.rss) / Math.max(1, c.connected);

const crowdText = (c: CrowdRun): string => `${c.clients} clients ${mb(c.status.rss)} (${perClient(c).toFixed(2)} KB each)`;

function progress(run: MemoryRun): void {
  const parts = [
    run.idle && `idle ${mb(run.idle.rss)}`,
    run.pagedOut && `paged out at the end ${mb(run.pagedOut.rss)}`,
    ...run.crowds.map(crowdText),
    run.burstPeak && `burst peak ${mb(run.burstPeak.rss)}`,
    ...run.after.map((a) => `+${a.seconds} s ${mb(a.status.rss)}`),
    ...run.problems.map((p) => `PROBLEM: ${p}`),
  ];
  console.log(`[memory] ${run.label}: ${parts.filter(Boolean).join(", ")}`);
}

/** The Bun runtime alone, with the crowds it took. */
export interface RuntimeRun {
  label: string;
  idle: MemoryStatus;
  pagedOut?: MemoryStatus;
  warm?: MemoryStatus;
  crowds: CrowdRun[];
  problems: string[];
}

/** The floor under buncracker's RSS: a Bun process with one listening socket and no other code
 *  than answering the crowd's SET+GET (sent in one write: +OK and the SET's value, the 7th
 *  line), so that it takes the same crowds. */
const RUNTIME_SERVER = (port: number): string =>
  `Bun.listen({ hostname: "127.0.0.1", port: ${port}, socket: { data(s, d) { ` +
  `const v = Buffer.from(d).toString("latin1").split("\\r\\n")[6] ?? ""; ` +
  `s.write("+OK\\r\\n$" + v.length + "\\r\\n" + v + "\\r\\n"); } } });`;

async function runtimeAlone(bun: string, dir: string): Promise<RuntimeRun | null> {
  const port = freePort();
  const proc = startService(limitedArgv(NOFILE, [bun, "--eval", RUNTIME_SERVER(port)]), join(dir, "bun-runtime-memory.log"));
  try {
    await waitListening(proc, port, "bare bun");
    await Bun.sleep(MEMORY_SETUP.runtimeSettleMs);
    const run: RuntimeRun = { label: "bun runtime alone", idle: memoryStatus(proc.pid), crowds: [], problems: [] };
    await crowds(run, port, proc.pid, bun, dir);
    run.pagedOut = (await pageOut(proc.pid, run)) ?? undefined;
    return run;
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
  runtime: RuntimeRun | null;
}

/** The executable `npm run build` makes, when it is there. */
export const EXECUTABLE = "dist/buncracker";

/** The cluster's launches, labelled, and buncracker's shipped executable (dist/buncracker, as
 *  `bash scripts/build.sh` leaves it) after its source run, when it is built. */
export function memoryLaunches(launches: ProxyLaunch[], repo: string): MemoryLaunch[] {
  const out: MemoryLaunch[] = [];
  for (const launch of launches) {
    if (launch.target !== "buncracker") {
      out.push({ ...launch, label: launch.target });
      continue;
    }
    out.push({ ...launch, label: "buncracker (bun src/main.ts)" });
    const exe = join(repo, EXECUTABLE);
    if (existsSync(exe)) out.push({ ...launch, label: `buncracker (${EXECUTABLE})`, command: [exe], cwd: repo, mustRun: EXECUTABLE });
    else console.log(`[memory] ${EXECUTABLE} is not built (npm run build): only the source run is measured`);
  }
  return out;
}

/** The memory phase, one target after the other (never two proxies under load at once). */
export async function measureMemory(cluster: Cluster, launches: MemoryLaunch[], bun: string, dir: string): Promise<MemoryPhase> {
  const runs: MemoryRun[] = [];
  for (const launch of launches) {
    const run = await measureTarget(cluster, launch, bun, dir);
    progress(run);
    runs.push(run);
  }
  const runtime = await runtimeAlone(bun, dir);
  if (runtime !== null) {
    const idle = `${mb(runtime.idle.rss)} (anon ${mb(runtime.idle.anon)}, file ${mb(runtime.idle.file)})`;
    const paged = runtime.pagedOut === undefined ? "" : `, paged out at the end ${mb(runtime.pagedOut.rss)}`;
    console.log(`[memory] bare bun runtime: idle ${idle}${paged}, ${runtime.crowds.map(crowdText).join(", ")}`);
  }
  return { runs, runtime };
}
