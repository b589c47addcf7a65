// The markdown report: machine, method, the results table, ratios, the targets.

import { cpus, totalmem } from "node:os";
import { readFileSync } from "node:fs";
import { TARGETS, type TargetName } from "./cluster.ts";
import { type Cell, type Run, type Spread, cell, cpuOf, opsOf, p99Of, ratio, spread } from "./summary.ts";
import { compact } from "./svg.ts";
import { type Workload, describe } from "./workloads.ts";

export interface ReportInput {
  command: string;
  date: string;
  repeats: number;
  seconds: number;
  mcloadProcs: number;
  nice: number;
  versions: Record<string, string>;
  loadAverage: { start: string; end: string };
  workloads: readonly Workload[];
  runs: Run[];
  /** Targets not measured, with the reason. */
  skipped: Partial<Record<TargetName, string>>;
  direct: { redis: string; memcached: string };
  config: string;
  svgName: string;
  /** Extra findings to print under "Notes". */
  notes: string[];
}

/** Median CPU of unrelated processes above which the report warns (% of one core). */
const BUSY_PCT = 25;

function machine(): Record<string, string> {
  const kernel = readFileSync("/proc/version", "utf8").split(" ").slice(0, 3).join(" ");
  return {
    nproc: String(navigator.hardwareConcurrency),
    "CPU model": cpus()[0]?.model ?? "?",
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel,
  };
}

const fmtOps = (s: Spread | null): string => (s === null ? "—" : `${compact(s.median)} [${compact(s.min)}..${compact(s.max)}]`);
const fmtNum = (s: Spread | null, digits: number, prefix = ""): string => (s === null ? "—" : `${prefix}${s.median.toFixed(digits)}`);
const fmtRatio = (s: Spread | null): string => (s === null ? "—" : `${s.median.toFixed(2)}x [${s.min.toFixed(2)}..${s.max.toFixed(2)}]`);

function resultsTable(input: ReportInput, measured: TargetName[]): string[] {
  const lines = [
    "| workload | target | ops/s median [min..max] | p50 ms | p99 ms | proxy CPU µs/req | generator CPU % | other CPU % | notes |",
    "|---|---|---|---|---|---|---|---|---|",
  ];
  for (const w of input.workloads) {
    for (const target of measured) {
      const c: Cell = cell(input.runs, w.name, target);
      const bound = c.latencyUpperBound ? "≤" : "";
      const notes = [
        ...(c.missRate && c.missRate.median > 0.001 ? [`misses ${(c.missRate.median * 100).toFixed(1)}%`] : []),
        ...c.problems.map((p) => p.replace(/\|/g, "/").replace(/\s+/g, " ").slice(0, 160)),
      ].join("; ");
      lines.push(
        `| ${w.name} | ${target} | ${fmtOps(c.ops)} | ${fmtNum(c.p50Ms, 3, bound)} | ${fmtNum(c.p99Ms, 3, bound)} | ` +
          `${target === "direct" ? "—" : fmtNum(c.cpuUsPerRequest, 2)} | ${fmtNum(c.generatorCpuPct, 0)} | ${fmtNum(c.otherCpuPct, 0)} | ${notes} |`,
      );
    }
  }
  return lines;
}

function ratioTable(input: ReportInput): string[] {
  const lines = [
    "| workload | buncracker/nutcracker ops/s | buncracker/direct ops/s | buncracker/nutcracker p99 | buncracker/nutcracker CPU per request |",
    "|---|---|---|---|---|",
  ];
  for (const w of input.workloads) {
    const r = (num: TargetName, den: TargetName, pick: (run: Run) => number | undefined) => fmtRatio(ratio(input.runs, w.name, num, den, pick));
    lines.push(
      `| ${w.name} | ${r("buncracker", "nutcracker", opsOf)} | ${r("buncracker", "direct", opsOf)} | ` +
        `${r("buncracker", "nutcracker", p99Of)} | ${r("buncracker", "nutcracker", cpuOf)} |`,
    );
  }
  return lines;
}

/** Issue 7's targets that this suite measures: [label, workloads, what, goal, higher is better]. */
const GOALS: Array<[string, string[], "ops" | "p99" | "cpu", number]> = [
  ["redis GET/SET pipeline 1 ops/s >= 1.0x nutcracker", ["redis-get-p1", "redis-set-p1"], "ops", 1.0],
  ["redis GET/SET pipeline 16 ops/s >= 1.3x nutcracker", ["redis-get-p16", "redis-set-p16"], "ops", 1.3],
  ["redis MGET/MSET 10 keys pipeline 16 ops/s >= 1.5x nutcracker", ["redis-mget10-p16", "redis-mset10-p16"], "ops", 1.5],
  ["memcached get/set pipeline 1 ops/s >= 1.0x nutcracker", ["mc-get-p1", "mc-set-p1", "memaslap-get-p1"], "ops", 1.0],
  ["memcached 10-key multi-get ops/s >= 1.2x nutcracker", ["mc-mget10-p1", "mc-mget10-p16", "memaslap-mget10-p1"], "ops", 1.2],
  ["proxy CPU per request at pipeline 16 <= 0.8 µs", ["redis-get-p16", "redis-set-p16", "mc-get-p16", "mc-set-p16"], "cpu", 0.8],
  ["p99 latency at pipeline 1 <= 1.2x nutcracker", ["redis-get-p1", "redis-set-p1", "mc-get-p1", "mc-set-p1"], "p99", 1.2],
];

function goalLines(input: ReportInput): string[] {
  const names = new Set(input.workloads.map((w) => w.name));
  const lines: string[] = [];
  for (const [label, workloads, kind, goal] of GOALS) {
    const parts: string[] = [];
    for (const name of workloads.filter((n) => names.has(n))) {
      const value =
        kind === "cpu" ? cell(input.runs, name, "buncracker").cpuUsPerRequest : ratio(input.runs, name, "buncracker", "nutcracker", kind === "ops" ? opsOf : p99Of);
      if (value === null) continue;
      const met = kind === "ops" ? value.median >= goal : value.median <= goal;
      parts.push(`${name} ${value.median.toFixed(2)}${kind === "cpu" ? " µs" : "x"} ${met ? "met" : "**not met**"}`);
    }
    if (parts.length > 0) lines.push(`- ${label}: ${parts.join("; ")}`);
  }
  return lines;
}

export function markdown(input: ReportInput): string {
  const measured = TARGETS.filter((t) => input.runs.some((r) => r.target === t));
  const kv = (record: Record<string, string>): string[] => Object.entries(record).map(([k, v]) => `| ${k} | ${v} |`);
  const out: string[] = [
    "# Side-by-side benchmark: direct vs nutcracker vs buncracker",
    "",
    `Generated by \`${input.command}\` on ${input.date}: ${input.repeats} repeat(s) of ${input.seconds} s per run, ` +
      "targets interleaved within each workload and their order rotated per repeat.",
    "",
    "## Machine",
    "",
    "| | |",
    "|---|---|",
    ...kv(machine()),
    ...kv(input.versions),
    `| load average (start / end) | ${input.loadAverage.start} / ${input.loadAverage.end} |`,
    "",
  ];
  const skipped = Object.entries(input.skipped);
  if (skipped.length > 0) {
    out.push("**Not measured:**", "", ...skipped.map(([t, why]) => `- ${t}: ${why}`), "");
  }
  const busy = spread(input.runs.flatMap((r) => (r.otherCpuPct === undefined ? [] : [r.otherCpuPct])));
  if (busy !== null && busy.median > BUSY_PCT) {
    out.push(
      `**Caution:** unrelated processes used a median ${busy.median.toFixed(0)}% of a core (of ${navigator.hardwareConcurrency * 100}%) during the runs ` +
        `[${busy.min.toFixed(0)}..${busy.max.toFixed(0)}]: the targets competed with that work for CPU. Absolute numbers are depressed and ` +
        "noisy; only large, consistent ratios are meaningful.",
      "",
    );
  }
  out.push(
    "## Results",
    "",
    "Medians over repeats; ops/s also shows [min..max]. A 10-key MGET/MSET/multi-get counts as one request. " +
      "*proxy CPU* is utime+stime of the proxy process (and descendants) from /proc/<pid>/stat over the run, divided by requests. " +
      "*generator CPU* is the load tool's own CPU (100 = one core); *other CPU* is CPU used on the machine by processes outside this benchmark during the run (this machine is shared).",
    "",
    ...resultsTable(input, measured),
    "",
    `![ops/s per workload](${input.svgName})`,
    "",
  );
  if (measured.includes("buncracker")) {
    out.push("## Ratios (computed within each repeat; median [min..max])", "", ...ratioTable(input), "");
    const goals = goalLines(input);
    if (goals.length > 0) out.push("## Issue 7 targets (medians of the ratios)", "", ...goals, "");
  }
  out.push(
    "## Method",
    "",
    `- *direct* is one backend, the reference point: redis ${input.direct.redis}, memcached ${input.direct.memcached} ` +
      "(the first server of each 4-server pool, and the only server of the 1-server pools). For a 4-server pool it serves all keys itself.",
    "- Both proxies run with `-v 4` on the same config (below; only listen ports differ), each a single process. " +
      "Before measuring, every key a workload reads is written through each target, so gets hit.",
    `- Load tools: redis-benchmark (run length set with -n from the target's rate in the warm-up), memaslap (memcaslap; -T 2, window 1k), ` +
      `and bench/compare/mcload.ts, a pipelined closed-loop memcached generator in Bun (${input.mcloadProcs} process(es) per run).`,
    ...(input.nice === 0
      ? []
      : [`- Backends, proxies and load tools ran at nice ${input.nice}, ahead of the unrelated work on this shared machine (all targets alike).`]),
    "",
    "| workload | what |",
    "|---|---|",
    ...input.workloads.map((w) => `| ${w.name} | ${describe(w)} |`),
    "",
    "Proxy config (nutcracker and buncracker):",
    "",
    "```yaml",
    input.config.trimEnd(),
    "```",
    "",
  );
  if (input.notes.length > 0) out.push("## Notes", "", ...input.notes.map((n) => `- ${n}`), "");
  return out.join("\n");
}
