// Runs one workload once against one endpoint with its load tool, and reads the tool's output.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { LoadReport } from "./mcload.ts";
import { type ToolRun, runTool } from "./procs.ts";
import { type Workload, isRedis } from "./workloads.ts";

export interface Measurement {
  /** Client requests completed (an MGET or multi-get of 10 keys is one request). */
  requests: number;
  seconds: number;
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** memaslap only gives a log2 histogram: its percentiles are bucket upper bounds. */
  latencyUpperBound: boolean;
  /** Load tool CPU while it measured (memaslap: over its whole life), in % of one core. */
  generatorCpuPct: number;
  /** Load tool CPU over its whole life, microseconds. */
  toolCpuUs: number;
  /** Get keys that were not found (mcload only), as a fraction of the keys asked for. */
  missRate?: number;
  /** Error replies or warnings the tool reported. */
  warning?: string;
}

export interface ToolPaths {
  redisBenchmark: string;
  memaslap: string;
  bun: string;
  mcload: string;
  /** Where generated tool inputs (memaslap configs) go. */
  dir: string;
  /** Bun processes per mcload run. */
  mcloadProcs: number;
  redisload: string;
  pubsub: string;
}

const toolCpuPct = (run: ToolRun): number => (run.cpuUs / 1000 / run.wallMs) * 100;

/** Request rate assumed before a workload was ever measured (sizes redis-benchmark's -n). */
export function guessRate(w: Workload): number {
  if (w.valueSize > 1024) return 5_000;
  return w.pipeline > 1 ? (w.keys > 1 ? 50_000 : 200_000) : 30_000;
}

export function measure(w: Workload, port: number, seconds: number, rate: number, paths: ToolPaths): Promise<Measurement> {
  switch (w.tool) {
    case "redis-benchmark":
      return redisBenchmark(w, port, seconds, rate, paths);
    case "memaslap":
      return memaslap(w, port, seconds, paths);
    case "mcload":
      return mcload(w, port, seconds, paths);
    case "redisload":
      return bunTool(
        [paths.bun, paths.redisload, "--port", String(port), "--conns", String(w.clients), "--pipeline", String(w.pipeline),
          "--get-share", String(w.getShare), "--keyspace", String(w.keyspace), "--prefix", w.prefix,
          "--value", String(w.valueSize), "--seconds", String(seconds)],
        "redisload",
        seconds,
      );
    case "pubsub":
      return bunTool(
        [paths.bun, paths.pubsub, "--port", String(port), "--subscribers", String(w.clients), "--window", String(w.pipeline),
          "--value", String(w.valueSize), "--seconds", String(seconds)],
        "pubsub",
        seconds,
      );
  }
}

function redisCommand(w: Workload): string[] {
  const key = `${w.prefix}__rand_int__`;
  const multi = w.keys > 1;
  if (w.op === "get") return [multi ? "MGET" : "GET", ...Array<string>(w.keys).fill(key)];
  const value = "x".repeat(w.valueSize);
  return [multi ? "MSET" : "SET", ...Array.from({ length: w.keys }, () => [key, value]).flat()];
}

const CSV_TAIL = /,"([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)","([\d.]+)"\s*$/;

async function redisBenchmark(w: Workload, port: number, seconds: number, rate: number, paths: ToolPaths): Promise<Measurement> {
  if (!isRedis(w.pool)) throw new Error(`${w.name}: redis-benchmark needs a redis pool`);
  const requests = Math.max(w.clients * w.pipeline * 4, Math.round(rate * seconds));
  const run = await runTool(
    [paths.redisBenchmark, "-h", "127.0.0.1", "-p", String(port), "-c", String(w.clients), "-n", String(requests),
      "-P", String(w.pipeline), "-r", String(w.keyspace), "--csv", ...redisCommand(w)],
    Math.max(20_000, (4 * requests * 1000) / rate + 10_000),
  );
  if (run.timedOut) throw new Error(`redis-benchmark did not finish ${requests} requests in time (killed)`);
  const match = CSV_TAIL.exec(run.stdout);
  if (run.code !== 0 || match === null) {
    throw new Error(`redis-benchmark exit ${run.code}: ${(run.stderr || run.stdout).slice(-500).trim()}`);
  }
  const [rps, , , p50, , p99] = match.slice(1).map(Number) as [number, number, number, number, number, number];
  const elapsed = requests / rps;
  // redis-benchmark cannot fetch CONFIG through a proxy and says so; that is not a problem.
  const serverError = run.stderr.split("\n").find((line) => line.startsWith("Error from server"));
  return {
    requests,
    seconds: elapsed,
    opsPerSec: rps,
    p50Ms: p50,
    p99Ms: p99,
    latencyUpperBound: false,
    generatorCpuPct: toolCpuPct(run),
    toolCpuUs: run.cpuUs,
    ...(serverError === undefined ? {} : { warning: serverError }),
  };
}

/** memaslap's "Log2 Dist" rows: `   4:  a  b  c  d` counts latencies in [2^4, 2^5), ... [2^7, 2^8) us. */
function log2Quantile(section: string, q: number): number {
  const buckets: Array<[exponent: number, count: number]> = [];
  for (const row of section.matchAll(/^\s+(\d+):((?:\s+\d+)+)\s*$/gm)) {
    const first = Number(row[1]);
    row[2]!.trim().split(/\s+/).forEach((count, i) => buckets.push([first + i, Number(count)]));
  }
  const total = buckets.reduce((sum, [, count]) => sum + count, 0);
  let seen = 0;
  for (const [exponent, count] of buckets) {
    seen += count;
    if (seen >= q * total) return 2 ** (exponent + 1);
  }
  return NaN;
}

async function memaslap(w: Workload, port: number, seconds: number, paths: ToolPaths): Promise<Measurement> {
  const config = join(paths.dir, `${w.name}.cfg`);
  const getShare = w.getShare;
  writeFileSync(config, `key\n16 16 1\nvalue\n${w.valueSize} ${w.valueSize} 1\ncmd\n0 ${1 - getShare}\n1 ${getShare}\n`);
  const whole = Math.max(1, Math.round(seconds));
  const run = await runTool(
    [paths.memaslap, "-s", `127.0.0.1:${port}`, "-t", `${whole}s`, "-S", `${whole}s`, "-c", String(w.clients),
      "-T", "2", "-w", "1k", "-F", config, ...(w.keys > 1 ? ["-d", String(w.keys)] : [])],
    whole * 3000 + 20_000,
  );
  const total = /Run time: ([\d.]+)s Ops: (\d+) TPS: (\d+)/.exec(run.stdout);
  if (run.code !== 0 || total === null) throw new Error(`memaslap exit ${run.code}: ${(run.stderr || run.stdout).slice(-500).trim()}`);
  // memaslap counts rejected requests as operations; a run with error replies measured nothing.
  const rejected = /^<\d+ ((?:CLIENT_|SERVER_)?ERROR.*)$/m.exec(run.stdout);
  if (rejected !== null) throw new Error(`memaslap got error replies, first: ${rejected[1]!.trim()}`);
  const section = new RegExp(`${w.op === "get" ? "Get" : "Set"} Statistics \\(\\d+ events\\)[\\s\\S]*?Log2 Dist:\\n((?:\\s+\\d+:.*\\n)+)`).exec(run.stdout);
  const elapsed = Number(total[1]);
  const misses = /get_misses: (\d+)/.exec(run.stdout);
  return {
    requests: Number(total[2]),
    seconds: elapsed,
    opsPerSec: Number(total[3]),
    p50Ms: section ? log2Quantile(section[1]!, 0.5) / 1000 : NaN,
    p99Ms: section ? log2Quantile(section[1]!, 0.99) / 1000 : NaN,
    latencyUpperBound: true,
    generatorCpuPct: toolCpuPct(run),
    toolCpuUs: run.cpuUs,
    ...(misses && Number(misses[1]) > 0 ? { warning: `${misses[1]} get misses` } : {}),
  };
}

function mcload(w: Workload, port: number, seconds: number, paths: ToolPaths): Promise<Measurement> {
  if (w.op !== "get" && w.op !== "set") throw new Error(`${w.name}: mcload does gets or sets, not ${w.op}`);
  return bunTool(
    [paths.bun, paths.mcload, "--port", String(port), "--conns", String(w.clients), "--pipeline", String(w.pipeline),
      "--op", w.op, "--multi", String(w.keys), "--keyspace", String(w.keyspace), "--prefix", w.prefix,
      "--value", String(w.valueSize), "--seconds", String(seconds), "--procs", String(paths.mcloadProcs)],
    "mcload",
    seconds,
  );
}

/** Runs one of the suite's own Bun load tools (mcload, redisload, pubsub), which print a LoadReport. */
async function bunTool(argv: string[], name: string, seconds: number): Promise<Measurement> {
  const run = await runTool(argv, seconds * 3000 + 30_000);
  if (run.code !== 0) throw new Error(`${name} exit ${run.code}: ${run.stderr.slice(-500).trim()}`);
  const report = JSON.parse(run.stdout) as LoadReport;
  const asked = report.hits + report.misses;
  return {
    requests: report.requests,
    seconds: report.seconds,
    opsPerSec: report.requestsPerSec,
    p50Ms: report.p50us / 1000,
    p99Ms: report.p99us / 1000,
    latencyUpperBound: false,
    generatorCpuPct: (report.cpuUs / 1e6 / report.seconds) * 100,
    toolCpuUs: run.cpuUs,
    ...(asked > 0 ? { missRate: report.misses / asked } : {}),
    ...(report.errors > 0 ? { warning: `${report.errors} error replies, first: ${report.firstError}` } : {}),
  };
}
