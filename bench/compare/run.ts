// Side-by-side benchmark: direct-to-backend vs nutcracker vs buncracker, and predixy when a binary
// is given (`bun run bench:compare`). Starts everything it measures, runs every workload against
// every target (interleaved, repeated, order rotated per repeat), then the memory phase and the
// optional phases (optional.ts), writes RESULTS.md and results.svg, and stops every process it
// started, whatever happens. Options: `bun run bench:compare --help`.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import {
  type Cluster,
  type TargetName,
  buncrackerMissing,
  directBackend,
  endpoint,
  listenPort,
  proxyLaunches,
  running,
  startBackends,
  startProxy,
} from "./cluster.ts";
import { cpuPer, cpuSince, cpuTimes, cpuTotal } from "./cpu.ts";
import { PROFILER, ensureTools, toolVersions } from "./install.ts";
import { MEMORY_PHASE, measureMemory, memoryLaunches } from "./memory.ts";
import { OPTIONAL_PHASES, runOptional } from "./optional.ts";
import { type Options, USAGE, parseOptions } from "./options.ts";
import { PREDIXY_NOT_SERVED, predixyVersion, startPredixy } from "./predixy.ts";
import { prefill } from "./prefill.ts";
import { type ProfileRow, analyse, startPerf, stopPerf, withJitDump } from "./profile.ts";
import { installSignalHandlers, runTool, setNiceness, stopAll } from "./procs.ts";
import { markdown } from "./report.ts";
import { type Run, cell } from "./summary.ts";
import { barChart } from "./svg.ts";
import { type Measurement, type ToolPaths, guessRate, measure } from "./tools.ts";
import { WORKLOADS, type Workload, describe, isRedis } from "./workloads.ts";

const REPO = resolve(import.meta.dir, "../..");
const PINNED_BUN = join(REPO, "node_modules/.bin/bun");
const BUN = existsSync(PINNED_BUN) ? PINNED_BUN : process.execPath;

const NOTES = [
  "All processes share this machine's cores: the load tool, the proxy and the backends compete for CPU, so absolute numbers " +
    "are lower than on a dedicated client/proxy/server setup. Compare targets through the within-repeat ratios; *other CPU* shows " +
    "how busy the machine was with unrelated work during each run.",
  "*direct* pipeline-1 numbers are bounded by the load tool itself (generator CPU near 100% of a core) rather than by the backend.",
  "memaslap reports latency only as a log2 histogram: its p50/p99 are bucket upper bounds (marked ≤) and are left out of the ratios. " +
    "For get workloads memaslap first fills its key window with sets (50 connections × 1k keys), and counts them in its ops/s.",
  "memaslap's keys start with 8 bytes of 0x10 (a control character): memcached and nutcracker accept them; a proxy that " +
    "rejects control characters in keys answers CLIENT_ERROR, and such runs are recorded as failed.",
  "memcached 1.6 sends one write per get command, pipelined or not (replies to sets are batched), so pipelining gets helps " +
    "direct memcached little. nutcracker forwards each get (or fragment) as its own command; buncracker joins the gets a " +
    "server gets in one event-loop turn into one command line (`coalesce_gets`, on by default), which saves memcached " +
    "most of those writes: that is most of its lead on memcached get workloads, and why it can beat *direct* there.",
  "redis-benchmark prints `WARNING: Could not fetch server CONFIG` through a proxy (CONFIG is not proxied); that does not affect the run.",
  "nutcracker runs with `-v 4`, not Debian's default `-v 5`, whose extra log-level checks are reported to cost it CPU per request.",
];

function machineBusyMicros(): number {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = fields as [number, number, number, number, number, number, number, number];
  return (user + nice + system + irq + softirq + steal) * 10_000; // USER_HZ = 100
}

const loadAverage = (): string => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

/** Everything started here, as (pid) for CPU accounting. */
const backendPids = (cluster: Cluster): number[] => [...cluster.redis, ...cluster.memcached].map((b) => b.proc.pid);

/** Backends first (see Bench.measure), then proxies. */
function ourPids(cluster: Cluster): number[] {
  return [...backendPids(cluster), ...Object.values(cluster.proxies).map((p) => p.pid)];
}

class Bench {
  /** Last measured ops/s per workload and target, to size redis-benchmark's -n. */
  private readonly rates = new Map<string, number>();

  constructor(
    private readonly cluster: Cluster,
    private readonly paths: ToolPaths,
  ) {}

  /** One bounded run; never throws (failures are recorded in the Run). */
  async once(w: Workload, target: TargetName, seconds: number, repeat: number): Promise<Run> {
    const run: Run = { workload: w.name, target, repeat };
    const proxy = target === "direct" ? null : this.cluster.proxies[target];
    const broken = target === "direct" ? undefined : this.cluster.brokenPools[target]?.[w.pool];
    if (proxy === undefined || (proxy !== null && !running(proxy))) {
      run.error = `${target} is not running`;
      return run;
    }
    if (proxy !== null && listenPort(proxy, w.pool) === undefined) {
      run.error = `${target} does not serve pool ${w.pool}: ${PREDIXY_NOT_SERVED}`;
      return run;
    }
    const unsupported = w.unsupported[target];
    if (unsupported !== undefined) {
      run.error = unsupported;
      return run;
    }
    if (broken !== undefined) {
      run.error = `pool ${w.pool} failed its set/get probe: ${broken}`;
      return run;
    }
    const key = `${w.name}/${target}`;
    const pids = ourPids(this.cluster);
    const before = pids.map(cpuTimes);
    const busyBefore = machineBusyMicros();
    const start = performance.now();
    let m: Measurement;
    try {
      m = await measure(w, endpoint(this.cluster, target, w.pool), seconds, this.rates.get(key) ?? guessRate(w), this.paths);
    } catch (error) {
      run.error = (error as Error).message.split("\n")[0];
      return run;
    }
    const wallUs = (performance.now() - start) * 1000;
    const deltas = pids.map((pid, i) => cpuSince(before[i]!, cpuTimes(pid)));
    const ours = deltas.reduce((sum, d) => sum + cpuTotal(d), 0) + m.toolCpuUs;
    run.measurement = m;
    run.otherCpuPct = Math.max(0, ((machineBusyMicros() - busyBefore - ours) / wallUs) * 100);
    if (proxy !== null) run.proxyCpu = cpuPer(deltas[pids.indexOf(proxy.pid)]!, m.requests);
    const backends = deltas.slice(0, backendPids(this.cluster).length);
    run.backendCpuUsPerRequest = backends.reduce((sum, d) => sum + cpuTotal(d), 0) / m.requests;
    this.rates.set(key, m.opsPerSec);
    return run;
  }
}

function progress(prefix: string, run: Run): void {
  const m = run.measurement;
  if (m === undefined) {
    console.log(`${prefix} ${run.workload} ${run.target}: FAILED: ${run.error}`);
    return;
  }
  const cpu =
    run.proxyCpu === undefined
      ? ""
      : ` proxy ${cpuTotal(run.proxyCpu).toFixed(2)} us/req (user ${run.proxyCpu.userUs.toFixed(2)})`;
  const miss = m.missRate ? ` miss ${(m.missRate * 100).toFixed(1)}%` : "";
  console.log(
    `${prefix} ${run.workload.padEnd(20)} ${run.target.padEnd(10)} ${Math.round(m.opsPerSec).toString().padStart(8)} ops/s ` +
      `p50 ${m.p50Ms.toFixed(3)} p99 ${m.p99Ms.toFixed(3)} ms${cpu} gen ${m.generatorCpuPct.toFixed(0)}% other ${run.otherCpuPct?.toFixed(0)}%${miss}` +
      (m.warning ? ` [${m.warning}]` : ""),
  );
}

/** predixy, when a binary was given (see predixy.ts); otherwise the report says it was not measured. */
async function startPredixyTarget(cluster: Cluster, options: Options, dir: string): Promise<void> {
  if (!options.targets.includes("predixy")) return;
  if (options.predixy === null) {
    cluster.skipped.predixy = "no predixy binary given (`PREDIXY_BIN=/path/to/predixy` or `--predixy /path/to/predixy`)";
    console.log(`predixy: SKIPPED: ${cluster.skipped.predixy}`);
    return;
  }
  try {
    const { proxy, broken } = await startPredixy(cluster, options.predixy, dir);
    cluster.proxies.predixy = proxy;
    cluster.brokenPools.predixy = broken;
    console.log(`predixy: pid ${proxy.pid}, pools ${JSON.stringify(proxy.listen)}, config ${proxy.config}`);
    if (broken.redis4 !== undefined) console.log(`predixy: pool redis4 FAILED its probe: ${broken.redis4}`);
  } catch (error) {
    const log = join(dir, "predixy.log");
    const tail = existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").slice(-5).join(" | ") : "";
    cluster.skipped.predixy = `${options.predixy} did not start: ${(error as Error).message}${tail ? `; log: ${tail}` : ""}`;
    console.log(`predixy: SKIPPED: ${cluster.skipped.predixy}`);
  }
}

/** Where buncracker writes its jitdump under --profile. */
const jitDumpDir = (dir: string): string => join(dir, "jitdump");

async function startTargets(cluster: Cluster, options: Options, tools: Record<string, string>, dir: string): Promise<void> {
  for (const plain of proxyLaunches(tools, REPO, BUN)) {
    if (!options.targets.includes(plain.target)) continue;
    const launch = options.profile && plain.target === "buncracker" ? withJitDump(plain, jitDumpDir(dir)) : plain;
    const missing = launch.target === "buncracker" ? buncrackerMissing(REPO) : null;
    if (missing !== null) {
      cluster.skipped[launch.target] = missing;
      console.log(`${launch.target}: SKIPPED: ${missing}`);
      continue;
    }
    try {
      const { proxy, broken } = await startProxy(cluster, launch, dir);
      cluster.proxies[launch.target] = proxy;
      cluster.brokenPools[launch.target] = broken;
      console.log(`${launch.target}: pid ${proxy.pid}, pools ${JSON.stringify(proxy.listen)}, config ${proxy.config}`);
      for (const [pool, why] of Object.entries(broken)) console.log(`${launch.target}: pool ${pool} FAILED its probe: ${why}`);
    } catch (error) {
      const log = join(dir, `${launch.target}.log`);
      const tail = existsSync(log) ? readFileSync(log, "utf8").trim().split("\n").slice(-5).join(" | ") : "";
      cluster.skipped[launch.target] = `did not start: ${(error as Error).message}${tail ? `; log: ${tail}` : ""}`;
      console.log(`${launch.target}: SKIPPED: ${cluster.skipped[launch.target]}`);
    }
  }
}

/** Writes every key the selected workloads read, through every target that stores them apart. */
async function prefillAll(cluster: Cluster, workloads: Workload[]): Promise<void> {
  const started = performance.now();
  const keySets = new Map<string, Workload>();
  for (const w of workloads) keySets.set(`${isRedis(w.pool)}/${w.prefix}`, w);
  for (const w of keySets.values()) {
    const redis = isRedis(w.pool);
    const ports = [directBackend(cluster, w.pool).port];
    for (const [target, proxy] of Object.entries(cluster.proxies)) {
      const pool = redis ? "redis4" : "mc4";
      const port = listenPort(proxy, pool);
      if (port !== undefined && cluster.brokenPools[target as TargetName]?.[pool] === undefined) ports.push(port);
    }
    for (const port of ports) await prefill(port, redis, w);
  }
  console.log(`prefilled ${keySets.size} key set(s) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

/** --profile: one more run per workload and proxy, sampled by perf (profile.ts); not among `runs`,
 *  whose median CPU per request the profile's shares are applied to. */
async function profileAll(
  bench: Bench,
  cluster: Cluster,
  options: Options,
  targets: TargetName[],
  runs: Run[],
  perf: string,
  dir: string,
): Promise<ProfileRow[]> {
  const rows: ProfileRow[] = [];
  for (const w of options.workloads) {
    for (const target of targets) {
      const proxy = target === "direct" ? undefined : cluster.proxies[target];
      if (proxy === undefined || listenPort(proxy, w.pool) === undefined) continue;
      const file = join(dir, `perf-${w.name}-${target}.data`);
      const cpuUs = cell(runs, w.name, target).cpuUsPerRequest?.median ?? null;
      const recorder = await startPerf(perf, proxy.pid, file, join(dir, "perf.log"));
      const run = await bench.once(w, target, options.seconds, -1);
      await stopPerf(recorder);
      const row: ProfileRow = { workload: w.name, target, cpuUs, profile: null };
      if (run.measurement === undefined) row.error = run.error;
      else {
        try {
          row.profile = await analyse(perf, file, proxy.pid, target === "buncracker" ? jitDumpDir(dir) : null);
        } catch (error) {
          row.error = (error as Error).message;
        }
      }
      rows.push(row);
      const shares = row.profile === null ? row.error : Object.entries(row.profile.shares).map(([c, v]) => `${c} ${(v * 100).toFixed(0)}%`).join(", ");
      console.log(`[profile] ${w.name.padEnd(20)} ${target.padEnd(10)} ${shares}`);
    }
  }
  return rows;
}

async function benchmark(options: Options, dir: string, command: string): Promise<void> {
  const tools = await ensureTools(options.profile ? PROFILER : {});
  setNiceness(options.nice);
  const versions = await toolVersions(tools, BUN);
  const loadStart = loadAverage();
  const cluster: Cluster = { ...(await startBackends(tools, dir)), proxies: {}, skipped: {}, brokenPools: {} };
  await startTargets(cluster, options, tools, dir);
  await startPredixyTarget(cluster, options, dir);
  if (cluster.proxies.predixy !== undefined && options.predixy !== null) versions.predixy = await predixyVersion(options.predixy);
  if (cluster.proxies.buncracker !== undefined) {
    const banner = await runTool([BUN, join(REPO, "src/main.ts"), "-V"], 10_000);
    versions.buncracker = `${banner.stdout}${banner.stderr}`.trim().split("\n")[0] ?? "?";
  }
  const targets = options.targets.filter((t) => t === "direct" || cluster.proxies[t] !== undefined);
  await prefillAll(cluster, options.workloads);

  const bench = new Bench(cluster, {
    redisBenchmark: tools["redis-benchmark"]!,
    memaslap: tools.memcaslap!,
    bun: BUN,
    mcload: join(import.meta.dir, "mcload.ts"),
    redisload: join(import.meta.dir, "redisload.ts"),
    pubsub: join(import.meta.dir, "pubsub.ts"),
    dir,
    mcloadProcs: options.mcloadProcs,
  });

  // Warm-up, not recorded: every redis-benchmark workload (its rate sizes -n later) and the
  // first mcload workload (which also warms the memcached paths for memaslap), on every target.
  const warmups = options.workloads.filter(
    (w) => w.tool === "redis-benchmark" || w === options.workloads.find((o) => o.tool === "mcload"),
  );
  for (const w of warmups) {
    for (const target of targets) progress("[warm-up]", await bench.once(w, target, options.warmSeconds, -1));
  }

  const runs: Run[] = [];
  for (let repeat = 0; repeat < options.repeats; repeat++) {
    const order = targets.map((_, i) => targets[(i + repeat) % targets.length]!);
    for (const w of options.workloads) {
      for (const target of order) {
        const run = await bench.once(w, target, options.seconds, repeat);
        runs.push(run);
        progress(`[${repeat + 1}/${options.repeats}]`, run);
      }
    }
  }

  const profiles = options.profile ? await profileAll(bench, cluster, options, targets, runs, tools.perf!, dir) : [];

  // Fresh proxies of its own, for the targets that started (see memory.ts).
  const launches = memoryLaunches(proxyLaunches(tools, REPO, BUN).filter((l) => cluster.proxies[l.target] !== undefined), REPO);
  const memory = options.memory ? await measureMemory(cluster, launches, BUN, dir) : { runs: [], runtime: null };

  const optional = await runOptional(options.optional, {
    bun: BUN,
    repo: REPO,
    dir,
    redisBenchmark: tools["redis-benchmark"]!,
    repeats: options.repeats,
    quick: options.quick,
  });

  const fullRun = !options.quick && options.workloads.length === WORKLOADS.length && options.memory;
  const outDir = options.out ?? (fullRun ? join(REPO, "bench") : dir);
  mkdirSync(outDir, { recursive: true });
  const svgName = "results.svg";
  const groups = options.workloads.map((w) => ({
    name: w.name,
    bars: targets.map((target) => {
      const ops = cell(runs, w.name, target).ops;
      return { target, value: ops?.median ?? null, ...(ops ? { min: ops.min, max: ops.max } : {}) };
    }),
  }));
  writeFileSync(join(outDir, svgName), barChart(`ops/s per workload (${new Date().toISOString().slice(0, 10)})`, groups));
  const report = markdown({
    command,
    date: new Date().toISOString().replace("T", " ").slice(0, 16) + " UTC",
    repeats: options.repeats,
    seconds: options.seconds,
    mcloadProcs: options.mcloadProcs,
    nice: options.nice,
    versions,
    loadAverage: { start: loadStart, end: loadAverage() },
    workloads: options.workloads,
    runs,
    memory,
    optional,
    profiles,
    skipped: cluster.skipped,
    direct: {
      redis: `${cluster.redis[0]!.name} (127.0.0.1:${cluster.redis[0]!.port})`,
      memcached: `${cluster.memcached[0]!.name} (127.0.0.1:${cluster.memcached[0]!.port})`,
    },
    config: readFileSync((cluster.proxies.nutcracker ?? cluster.proxies.buncracker)?.config ?? "/dev/null", "utf8"),
    predixyConfig: cluster.proxies.predixy === undefined ? null : readFileSync(cluster.proxies.predixy.config, "utf8"),
    svgName,
    notes: NOTES,
  });
  writeFileSync(join(outDir, "RESULTS.md"), report);
  writeFileSync(join(dir, "runs.json"), JSON.stringify(runs, null, 1));
  console.log(`\n${report}\nwrote ${join(outDir, "RESULTS.md")} and ${join(outDir, svgName)}; raw runs in ${join(dir, "runs.json")}`);
}

async function main(): Promise<void> {
  installSignalHandlers();
  const argv = Bun.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(USAGE);
    return;
  }
  let options: Options | "list";
  try {
    options = parseOptions(argv);
  } catch (error) {
    console.error(`bench:compare: ${(error as Error).message}\n${USAGE}`);
    process.exit(1);
  }
  if (options === "list") {
    for (const w of WORKLOADS) console.log(`${w.name.padEnd(20)} ${w.quick ? "quick " : "      "}${describe(w)}`);
    console.log(`${MEMORY_PHASE.name.padEnd(20)}       ${MEMORY_PHASE.what}`);
    for (const p of OPTIONAL_PHASES) console.log(`${p.name.padEnd(20)} quick ${p.what}`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "buncracker-compare-"));
  console.log(`run folder: ${dir}`);
  const started = performance.now();
  const command = ["bun run bench:compare", ...argv].join(" ");
  try {
    await benchmark(options, dir, command);
  } catch (error) {
    console.error(`bench:compare failed: ${(error as Error).stack ?? error}`);
    process.exitCode = 1;
  } finally {
    await stopAll();
    console.log(`bench:compare took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
}

await main();
