// 1 worker vs 2 workers (`--workers 2`) on this machine: redis-benchmark (50 clients, 32-byte
// values, random keys from 100k) GET and SET at pipeline 16 and 1 through buncracker in front of
// 4 redis backends. For each run: ops/s and p50 from redis-benchmark, and the proxy's CPU per
// request (utime + stime of the supervisor and every worker, from /proc/<pid>/stat, before and
// after the run). Repeated REPEATS times (default 3), the order of the two setups alternating,
// and written to bench/workers/RESULTS.md with medians and ranges. It reports; it never asserts.
//
//   node_modules/.bin/bun bench/workers/run.ts            # REPEATS=3 P16_REQUESTS=600000 P1_REQUESTS=120000

import { availableParallelism, loadavg } from "node:os";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startRedis, type Backend } from "../../test/helpers/backends.ts";
import { poolYaml, serverLine } from "../../test/helpers/config.ts";
import { freePort } from "../../test/helpers/ports.ts";
import { childPids, cpuTicks } from "../../test/helpers/procfs.ts";
import { startProxy, type RunningProxy } from "../../test/helpers/proxy.ts";
import { startWorkers } from "../../test/helpers/workers.ts";

const REPEATS = Number(process.env.REPEATS ?? 3);
const P16_REQUESTS = Number(process.env.P16_REQUESTS ?? 600_000);
const P1_REQUESTS = Number(process.env.P1_REQUESTS ?? 120_000);
const CLIENTS = 50;
const TICK_MICROS = 1e6 / 100; // /proc times are in USER_HZ (100 per second)
const SETUPS = [1, 2] as const;
type Setup = (typeof SETUPS)[number];

interface Workload {
  readonly name: string;
  readonly test: "get" | "set";
  readonly pipeline: number;
  readonly requests: number;
}

// SET first in each group: it fills the keyspace the GETs then read.
const WORKLOADS: readonly Workload[] = [
  { name: "SET P16", test: "set", pipeline: 16, requests: P16_REQUESTS },
  { name: "GET P16", test: "get", pipeline: 16, requests: P16_REQUESTS },
  { name: "SET P1", test: "set", pipeline: 1, requests: P1_REQUESTS },
  { name: "GET P1", test: "get", pipeline: 1, requests: P1_REQUESTS },
];

interface Sample {
  readonly opsPerSec: number;
  readonly p50Ms: number;
  /** Proxy CPU (supervisor + workers) per request, µs. */
  readonly cpuMicrosPerRequest: number;
  /** redis-benchmark's own CPU per request, µs (it competes for the same 2 cores). */
  readonly loadgenMicrosPerRequest: number;
}

/** pid of the proxy process and of its workers (for --workers 2). */
const proxyPids = (proxy: RunningProxy): number[] => [proxy.pid, ...childPids(proxy.pid)];
const ticksOf = (pids: readonly number[]): number => pids.reduce((n, pid) => n + cpuTicks(pid), 0);

async function redisBenchmark(port: number, w: Workload, requests = w.requests): Promise<{ rps: number; p50: number; cpuMicros: number }> {
  const argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", String(port), "-c", String(CLIENTS), "-n", String(requests),
    "-P", String(w.pipeline), "-t", w.test, "-d", "32", "-r", "100000", "--csv"];
  const proc = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${err}`);
  const row = out.trim().split("\n").find((line) => line.startsWith(`"${w.test.toUpperCase()}"`));
  if (row === undefined) throw new Error(`no ${w.test} row in redis-benchmark output: ${out}`);
  const cells = row.split(",").map((c) => Number(c.replaceAll('"', "")));
  const usage = proc.resourceUsage();
  const cpuMicros = usage === undefined ? 0 : Number(usage.cpuTime.user + usage.cpuTime.system);
  return { rps: cells[1]!, p50: cells[4]!, cpuMicros };
}

async function start(setup: Setup, yamlText: string): Promise<RunningProxy> {
  const args = ["-v", "4"];
  if (setup === 1) return startProxy("buncracker", yamlText, { args });
  return (await startWorkers(yamlText, setup, { args })).proxy;
}

async function runSetup(setup: Setup, backends: readonly Backend[]): Promise<Map<string, Sample>> {
  const port = freePort();
  const yamlText = poolYaml("bench", { listen: `127.0.0.1:${port}`, redis: true, hash: "fnv1a_64", distribution: "ketama" },
    backends.map((b) => serverLine(b.address)));
  const proxy = await start(setup, yamlText);
  const samples = new Map<string, Sample>();
  try {
    await redisBenchmark(port, WORKLOADS[0]!, 50_000); // warm-up (JIT, connections)
    for (const w of WORKLOADS) {
      const pids = proxyPids(proxy);
      const before = ticksOf(pids);
      const run = await redisBenchmark(port, w);
      const used = (ticksOf(pids) - before) * TICK_MICROS;
      samples.set(w.name, {
        opsPerSec: run.rps,
        p50Ms: run.p50,
        cpuMicrosPerRequest: used / w.requests,
        loadgenMicrosPerRequest: run.cpuMicros / w.requests,
      });
      process.stderr.write(`  ${setup} worker(s) ${w.name}: ${Math.round(run.rps)} ops/s, ${(used / w.requests).toFixed(2)} µs CPU/req\n`);
    }
  } finally {
    await proxy.stop();
  }
  return samples;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (n: number, digits = 0): string => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });
const summary = (xs: readonly number[], digits = 0): string =>
  `${fmt(median(xs), digits)} [${fmt(Math.min(...xs), digits)}..${fmt(Math.max(...xs), digits)}]`;

function report(results: Map<Setup, Map<string, Sample>[]>, machine: string): string {
  const lines: string[] = [];
  const per = (setup: Setup, w: string, pick: (s: Sample) => number) => results.get(setup)!.map((r) => pick(r.get(w)!));
  lines.push("# buncracker: 1 worker vs `--workers 2`", "");
  lines.push(`Generated by \`bun bench/workers/run.ts\` on ${new Date().toISOString().slice(0, 10)}. ${machine}`, "");
  lines.push(
    `redis-benchmark, ${CLIENTS} clients, 32-byte values, random keys from 100k, ${fmt(P16_REQUESTS)} requests per P16 run and ` +
      `${fmt(P1_REQUESTS)} per P1 run, through buncracker in front of 4 redis-server backends (one ketama pool), ` +
      `${REPEATS} repeats with the order of the two setups alternating. Medians [min..max] over the repeats; ` +
      `the ratio is 2 workers / 1 worker within each repeat, then the median.`,
    "",
  );
  lines.push("| workload | workers | ops/s | ratio 2w/1w | p50 ms | proxy CPU µs/request | redis-benchmark CPU µs/request |");
  lines.push("|---|---|---|---|---|---|---|");
  for (const w of WORKLOADS) {
    const ones = per(1, w.name, (s) => s.opsPerSec);
    const twos = per(2, w.name, (s) => s.opsPerSec);
    const ratios = twos.map((t, i) => t / ones[i]!);
    for (const setup of SETUPS) {
      lines.push(
        `| ${w.name} | ${setup} | ${summary(per(setup, w.name, (s) => s.opsPerSec))} | ` +
          `${setup === 2 ? summary(ratios, 2) : ""} | ${summary(per(setup, w.name, (s) => s.p50Ms), 2)} | ` +
          `${summary(per(setup, w.name, (s) => s.cpuMicrosPerRequest), 2)} | ` +
          `${summary(per(setup, w.name, (s) => s.loadgenMicrosPerRequest), 2)} |`,
      );
    }
  }
  lines.push("", "## Reading these numbers", "");
  lines.push(
    "- On 2 cores, a second worker competes with redis-benchmark (itself about as costly per request as the " +
      "proxy at pipeline 1), the 4 redis-servers and whatever else runs: 2x is not reachable here. When the load " +
      "average printed above is far over 2, the ranges overlap and a ratio near 1 means no measurable difference.",
    "- Proxy CPU per request is the steadier figure. With 2 workers the same load is split over two event loops, " +
      "so each read/write system call carries fewer requests: CPU per request can rise even though no work is " +
      "shared between workers (the supervisor only sums a report per worker per second).",
  );
  lines.push("", "## Estimate for a 16-core host", "");
  lines.push(
    "CPU per request is what carries over to a bigger machine; ops/s here does not (the load generator, the 4 " +
      "backends and other work share these 2 cores). With 16 workers on 16 cores given to the proxy alone (load " +
      "generators and backends elsewhere), the CPU-bound ceiling is 16 × 10^6 / (proxy CPU µs per request), " +
      "using the 2-worker medians (they include the supervisor and the per-worker server connections). It ignores " +
      "the kernel's network work on other cores, NIC limits, and the backends: an upper bound, not a promise.",
    "",
  );
  lines.push("| workload | proxy CPU µs/request (2 workers) | per core, ops/s | 16 cores, ops/s |");
  lines.push("|---|---|---|---|");
  for (const w of WORKLOADS) {
    const cpu = median(per(2, w.name, (s) => s.cpuMicrosPerRequest));
    lines.push(`| ${w.name} | ${fmt(cpu, 2)} | ${fmt(1e6 / cpu)} | ${fmt((16 * 1e6) / cpu)} |`);
  }
  lines.push("");
  return lines.join("\n");
}

function machineDescription(): string {
  const model = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown CPU";
  const [one, five] = loadavg();
  return `Machine: ${availableParallelism()} cores (${model}), shared with other work: load average ${one!.toFixed(1)} (1 min), ${five!.toFixed(1)} (5 min) at the start.`;
}

async function main(): Promise<void> {
  const machine = machineDescription();
  const backends = await Promise.all([startRedis(), startRedis(), startRedis(), startRedis()]);
  const results = new Map<Setup, Map<string, Sample>[]>(SETUPS.map((s) => [s, []]));
  try {
    for (let rep = 0; rep < REPEATS; rep++) {
      const order = rep % 2 === 0 ? SETUPS : [...SETUPS].reverse();
      for (const setup of order) {
        process.stderr.write(`repeat ${rep + 1}/${REPEATS}, ${setup} worker(s)\n`);
        results.get(setup)!.push(await runSetup(setup, backends));
      }
    }
  } finally {
    await Promise.all(backends.map((b) => b.stop()));
  }
  const [one] = loadavg();
  const text = report(results, `${machine} Load average ${one!.toFixed(1)} at the end.`);
  const out = join(import.meta.dir, "RESULTS.md");
  writeFileSync(out, text);
  process.stdout.write(text);
}

await main();
