// The markdown report: machine, method, the results table, ratios, the issue's targets.

import { cpus, totalmem } from "node:os";
import { readFileSync } from "node:fs";
import { TARGETS, type TargetName } from "./cluster.ts";
import type { OptionalResult } from "./optional.ts";
import { type ProfileRow, profileSection } from "./profile.ts";
import { EXECUTABLE, MEMORY_SETUP, perClient, type CrowdRun, type MemoryPhase, type MemoryRun, type MemoryStatus, type RuntimeRun } from "./memory.ts";
import { type Cell, type Run, type Spread, cell, cpuOf, opsOf, p99Of, ratio, spread, userCpuOf } from "./summary.ts";
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
  /** The memory phase: one run per proxy (none when it was not selected) and the bare runtime. */
  memory: MemoryPhase;
  /** The optional phases (optional.ts): a table each, or why it was skipped. */
  optional: OptionalResult[];
  /** --profile's rows (profile.ts), empty without it. */
  profiles: ProfileRow[];
  /** Targets not measured, with the reason. */
  skipped: Partial<Record<TargetName, string>>;
  direct: { redis: string; memcached: string };
  /** nutcracker's and buncracker's config (empty when neither ran). */
  config: string;
  /** predixy's own config, when it ran. */
  predixyConfig: string | null;
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
    "| workload | target | ops/s median [min..max] | p50 ms | p99 ms | proxy CPU µs/req (user) | backend CPU µs/req | generator CPU % | other CPU % | notes |",
    "|---|---|---|---|---|---|---|---|---|---|",
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
          `${target === "direct" ? "—" : `${fmtNum(c.cpuUsPerRequest, 2)} (${fmtNum(c.userCpuUsPerRequest, 2)})`} | ` +
          `${fmtNum(c.backendCpuUsPerRequest, 2)} | ${fmtNum(c.generatorCpuPct, 0)} | ${fmtNum(c.otherCpuPct, 0)} | ${notes} |`,
      );
    }
  }
  return lines;
}

function ratioTable(input: ReportInput, measured: TargetName[]): string[] {
  const predixy = measured.includes("predixy");
  const lines = [
    "| workload | buncracker/nutcracker ops/s | buncracker/direct ops/s | buncracker/nutcracker p99 | buncracker/nutcracker CPU per request | the same, user CPU only |" +
      (predixy ? " buncracker/predixy ops/s | buncracker/predixy CPU per request |" : ""),
    `|---|---|---|---|---|---|${predixy ? "---|---|" : ""}`,
  ];
  for (const w of input.workloads) {
    const r = (num: TargetName, den: TargetName, pick: (run: Run) => number | undefined) => fmtRatio(ratio(input.runs, w.name, num, den, pick));
    lines.push(
      `| ${w.name} | ${r("buncracker", "nutcracker", opsOf)} | ${r("buncracker", "direct", opsOf)} | ` +
        `${r("buncracker", "nutcracker", p99Of)} | ${r("buncracker", "nutcracker", cpuOf)} | ${r("buncracker", "nutcracker", userCpuOf)} |` +
        (predixy ? ` ${r("buncracker", "predixy", opsOf)} | ${r("buncracker", "predixy", cpuOf)} |` : ""),
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

/** User CPU beside the total, and nutcracker's, since kernel time dominates at pipeline 16. */
function cpuDetail(runs: Run[], workload: string): string {
  const ours = cell(runs, workload, "buncracker");
  const theirs = cell(runs, workload, "nutcracker");
  const nut = theirs.cpuUsPerRequest === null ? "" : `; nutcracker ${fmtNum(theirs.cpuUsPerRequest, 2)}, user ${fmtNum(theirs.userCpuUsPerRequest, 2)}`;
  return ` (user ${fmtNum(ours.userCpuUsPerRequest, 2)}${nut})`;
}

/** Issue 24's throughput targets: [label, workloads, the target buncracker is divided by, goal]. */
const REDIS4 = ["redis-get-p1", "redis-set-p1", "redis-get-p16", "redis-set-p16", "redis-mget10-p16", "redis-mset10-p16",
  "redis-get-c1000", "redis-get-100k", "redis-set-100k", "redis-mix80-p4-c500", "redis-pubsub-100",
  "redis-pubsub-100-shared"];
const GOALS_24: Array<[string, string[], TargetName, number]> = [
  ["100 KB GET/SET ops/s >= 1.1x nutcracker", ["redis-get-100k", "redis-set-100k", "mc-get-100k", "mc-set-100k"], "nutcracker", 1.1],
  ["pipeline 1 GET/SET ops/s >= 1.15x nutcracker", ["redis-get-p1", "redis-set-p1", "mc-get-p1", "mc-set-p1"], "nutcracker", 1.15],
  ["pipeline 1 redis GET/SET ops/s >= 1.1x predixy", ["redis-get-p1", "redis-set-p1"], "predixy", 1.1],
  ["GET/SET pipeline 16, 4-server pool, ops/s >= 0.75x direct (0.8x the goal)", ["redis-get-p16", "redis-set-p16"], "direct", 0.75],
  ["MGET of 10 keys pipeline 16 ops/s >= 3x nutcracker", ["redis-mget10-p16"], "nutcracker", 3],
  ["every redis workload ops/s >= 1.1x predixy", REDIS4, "predixy", 1.1],
];

function goalLines24(input: ReportInput): string[] {
  const names = new Set(input.workloads.map((w) => w.name));
  const lines: string[] = [];
  for (const [label, workloads, versus, goal] of GOALS_24) {
    const selected = workloads.filter((n) => names.has(n));
    if (selected.length === 0) continue;
    const parts = selected.flatMap((name) => {
      const value = ratio(input.runs, name, "buncracker", versus, opsOf);
      return value === null ? [] : [`${name} ${value.median.toFixed(2)}x ${value.median >= goal ? "met" : "**not met**"}`];
    });
    lines.push(`- ${label}: ${parts.length > 0 ? parts.join("; ") : `not measured (no ${versus} figures in this run)`}`);
  }
  return lines;
}

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
      parts.push(`${name} ${value.median.toFixed(2)}${kind === "cpu" ? ` µs${cpuDetail(input.runs, name)}` : "x"} ${met ? "met" : "**not met**"}`);
    }
    if (parts.length > 0) lines.push(`- ${label}: ${parts.join("; ")}`);
  }
  return lines;
}

const mb = (kb: number): string => `${(kb / 1024).toFixed(1)} MB`;

/** The burst "falls back" when, by the last sample after it, RSS gave back at least this share of what the burst added. */
const FALLBACK_SHARE = 0.5;
const AFTER_SECONDS = MEMORY_SETUP.afterSeconds;
const LAST_AFTER = AFTER_SECONDS[AFTER_SECONDS.length - 1];

function fallBack(run: MemoryRun | undefined): { before: number; peak: number; after: number; met: boolean } | null {
  const after = run?.after.find((a) => a.seconds === LAST_AFTER)?.status.rss;
  if (run?.beforeBurst === undefined || run.burstPeak === undefined || after === undefined) return null;
  const [before, peak] = [run.beforeBurst.rss, run.burstPeak.rss];
  return { before, peak, after, met: peak - after >= FALLBACK_SHARE * (peak - before) };
}

const CROWDS = MEMORY_SETUP.crowds;
const count = (n: number): string => n.toLocaleString("en-US");
const anonFile = (m: MemoryStatus): string => `${mb(m.rss)} (${mb(m.anon)} / ${mb(m.file)})`;
const crowdCell = (c: CrowdRun | undefined): string => (c === undefined ? "—" : `${anonFile(c.status)}, ${perClient(c).toFixed(2)} KB`);

function memoryRow(run: MemoryRun | RuntimeRun): string {
  const idle = run.idle === undefined ? "—" : anonFile(run.idle);
  const paged = run.pagedOut === undefined ? "—" : anonFile(run.pagedOut);
  const crowds = CROWDS.map((n) => crowdCell(run.crowds.find((c) => c.clients === n)));
  if (!("after" in run)) return `| ${run.label} | ${idle} | ${crowds.join(" | ")} | — | — | ${paged} |`;
  const peak = run.burstPeak === undefined ? "—" : `${mb(run.burstPeak.rss)} (VmHWM ${mb(run.burstPeak.hwm)})`;
  const after = run.after.length === 0 ? "—" : `${run.after.map((a) => (a.status.rss / 1024).toFixed(1)).join(" / ")} MB`;
  return `| ${run.label} | ${idle} | ${crowds.join(" | ")} | ${peak} | ${after} | ${paged} |`;
}

function memorySection({ runs, runtime }: MemoryPhase): string[] {
  const { nofile, crowdBatch, burstConnections, burstValueBytes, sampleMs, warmClients } = MEMORY_SETUP;
  const executables = runs.flatMap((r) => (r.executableBytes === undefined ? [] : [`${r.label} ${mb(r.executableBytes / 1024)}`]));
  const problems = [...runs, ...(runtime === null ? [] : [runtime])].flatMap((r) =>
    r.problems.map((p) => `- **${r.label}**: ${p.replace(/\|/g, "/").replace(/\s+/g, " ").slice(0, 300)}`),
  );
  return [
    "## Memory",
    "",
    "A single run, after the throughput workloads (if any). For each proxy a fresh process (not the long-running one the " +
      "workloads use, whose heap reflects the whole benchmark) with one pool, `redis4`'s config over the same 4 redis " +
      "backends, at its default buffer size (no `-m`: nutcracker's mbufs are 16384 bytes), nutcracker with `-v 4`, buncracker " +
      `a single process, from source and as the shipped executable (\`${EXECUTABLE}\`, when built), all with a soft ` +
      `open-file limit of ${count(nofile)}. Memory is read from /proc/<pid>/status: VmRSS (RssAnon / RssFile).`,
    "",
    "- *idle*: after it listens and answered one PING.",

    `- *with N clients*: ${MEMORY_SETUP.idleMs / 1000} s after N connections (test/helpers/fault-crowd.ts, a process of its own, ` +
      `${crowdBatch} connecting at a time) that each made one request (SET then GET of a key of its own) are all open and idle. First a warm-up crowd ` +
      `of ${count(warmClients)} comes and goes (JIT, backend connections, pooled buffers), then ${CROWDS.map(count).join(", then ")}; ` +
      "*KB per client* is VmRSS with the crowd minus VmRSS right before it, divided by its connections.",
    `- *burst peak*: the highest VmRSS sampled every ${sampleMs} ms while ${burstConnections} connections each SET a ` +
      `${burstValueBytes / 2 ** 20} MB value and GET it back (reply lengths checked), and VmHWM at its end (the highest RSS of ` +
      "the process's life, so maybe from the clients phase).",
    `- *after*: VmRSS ${AFTER_SECONDS.join(" s / ")} s after the burst ended, with no traffic.`,
    `- *paged out*: then, ${MEMORY_SETUP.pageoutSettleMs / 1000} s after its clean file pages (the executable's code and ` +
      "read-only data) were paged out (bench/compare/pageout.py, process_madvise MADV_PAGEOUT): what idling keeps resident, " +
      "without the pages of Bun's binary that start-up and traffic touched (module loading, parser, JIT compilers) and that " +
      "otherwise stay until the kernel needs the memory. Pages other processes map too stay: the source run's bun binary is " +
      "every Bun process's, so only the executable's figure is meaningful.",
    "- *bun runtime alone*: the floor under buncracker, a `bun --eval` process with one listening socket and no other code " +
      `than answering the crowd's SET+GET, read ${MEMORY_SETUP.runtimeSettleMs / 1000} s after it listens, then with the same crowds.`,
    "",
    `| target | idle RSS (anon / file) | ${CROWDS.map((n) => `with ${count(n)} clients, KB per client`).join(" | ")} | burst peak | ` +
      `after ${AFTER_SECONDS.join(" s / ")} s | then paged out |`,
    `|---|---|${CROWDS.map(() => "---|").join("")}---|---|---|`,
    ...runs.map(memoryRow),
    ...(runtime === null ? [] : [memoryRow(runtime)]),
    "",
    ...(problems.length > 0 ? [...problems, ""] : []),
    `Note: RssFile is the mapped pages of the executable (sizes: ${executables.join(", ")}); for Bun that is its binary, ` +
      "shared page cache, the same pages in every worker process. RssAnon is the process's private memory.",
    "",
  ];
}

/** Issue 24's memory targets for the shipped executable (the source run when it is not built). */
const IDLE_MAX_KB = 35 * 1024;
const PER_CLIENT_MAX_KB = 1.5;
const OVER_NUTCRACKER_MAX_KB = 30 * 1024;

const verdict = (met: boolean): string => (met ? "met" : "**not met**");

/** The issue's memory targets, one line from the memory phase. */
function memoryGoal({ runs, runtime }: MemoryPhase): string {
  const bun = runs.find((r) => r.label.includes(EXECUTABLE)) ?? runs.find((r) => r.target === "buncracker");
  const nut = runs.find((r) => r.target === "nutcracker");
  const last = CROWDS[CROWDS.length - 1]!;
  const floor = (n: number): string => {
    const c = runtime?.crowds.find((x) => x.clients === n);
    return c === undefined ? "" : ` (the Bun runtime alone: ${perClient(c).toFixed(2)} KB)`;
  };
  const parts: string[] = [];
  if (bun?.idle === undefined) parts.push("buncracker's idle RSS not measured");
  else {
    parts.push(
      `${bun.label} idle VmRSS ${mb(bun.idle.rss)} <= ${mb(IDLE_MAX_KB)} ${verdict(bun.idle.rss <= IDLE_MAX_KB)}` +
        (bun.pagedOut === undefined ? "" : ` (${mb(bun.pagedOut.rss)} at the end once the file pages it touched are paged out)`) +
        (runtime === null ? "" : ` (the Bun runtime alone, one listening socket and no proxy code: ${mb(runtime.idle.rss)})`),
    );
  }
  for (const n of CROWDS) {
    const c = bun?.crowds.find((x) => x.clients === n);
    parts.push(
      c === undefined
        ? `per idle client at ${count(n)} not measured`
        : `${perClient(c).toFixed(2)} KB per idle client at ${count(n)} <= ${PER_CLIENT_MAX_KB} KB ${verdict(perClient(c) <= PER_CLIENT_MAX_KB)}${floor(n)}`,
    );
  }
  const ours = bun?.crowds.find((x) => x.clients === last);
  const theirs = nut?.crowds.find((x) => x.clients === last);
  parts.push(
    ours === undefined || theirs === undefined
      ? `VmRSS with ${count(last)} clients not measured for both proxies`
      : `VmRSS with ${count(last)} clients ${mb(ours.status.rss)} <= nutcracker's ${mb(theirs.status.rss)} + 30 MB ` +
          verdict(ours.status.rss <= theirs.status.rss + OVER_NUTCRACKER_MAX_KB),
  );
  const back = fallBack(bun);
  const nutBack = fallBack(nut);
  parts.push(
    back === null
      ? "fall-back after the burst not measured"
      : `a burst of large values took it from ${mb(back.before)} to ${mb(back.peak)}, ${LAST_AFTER} s later ${mb(back.after)} ` +
          `(falls back: gives back at least ${FALLBACK_SHARE * 100}% of what the burst added) ${verdict(back.met)}` +
          (nutBack === null ? "" : ` (nutcracker ${mb(nutBack.before)} → ${mb(nutBack.peak)}, then ${mb(nutBack.after)})`),
  );
  return `- memory (single run): ${parts.join("; ")}`;
}

export function markdown(input: ReportInput): string {
  const measured = TARGETS.filter((t) => input.runs.some((r) => r.target === t));
  const kv = (record: Record<string, string>): string[] => Object.entries(record).map(([k, v]) => `| ${k} | ${v} |`);
  const throughput = input.workloads.length > 0;
  const out: string[] = [
    `# Side-by-side benchmark: direct vs nutcracker vs buncracker${measured.includes("predixy") ? " vs predixy" : ""}`,
    "",
    `Generated by \`${input.command}\` on ${input.date}: ` +
      (throughput
        ? `${input.repeats} repeat(s) of ${input.seconds} s per run, targets interleaved within each workload and their order rotated per repeat.`
        : "no throughput workload (only the memory and/or optional phases)."),
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
  if (!measured.includes("predixy") && input.skipped.predixy === undefined) {
    out.push("predixy was not measured (not among --targets).", "");
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
  if (throughput) {
    out.push(
      "## Results",
      "",
      "Medians over repeats; ops/s also shows [min..max]. A 10-key MGET/MSET/multi-get counts as one request. " +
        "*proxy CPU* is utime+stime of the proxy process (and descendants) from /proc/<pid>/stat over the run, divided by requests; in parentheses utime alone (the rest is kernel time: the socket calls). " +
        "*backend CPU* is what all the redis-server and memcached processes used, per request. " +
        "*generator CPU* is the load tool's own CPU (100 = one core); *other CPU* is CPU used on the machine by processes outside this benchmark during the run (this machine is shared).",
      "",
      ...resultsTable(input, measured),
      "",
      `![ops/s per workload](${input.svgName})`,
      "",
    );
  }
  if (measured.includes("buncracker")) out.push("## Ratios (computed within each repeat; median [min..max])", "", ...ratioTable(input, measured), "");
  if (input.optional.length > 0) {
    out.push("## Optional workloads (features that may not be in the tree yet)", "", ...input.optional.flatMap((o) => [...o.lines, ""]));
  }
  out.push(...profileSection(input.profiles));
  if (input.memory.runs.length > 0) out.push(...memorySection(input.memory), "### Memory targets (issue 24)", "", memoryGoal(input.memory), "");
  const goals = measured.includes("buncracker") ? goalLines(input) : [];
  const ofRatios = measured.includes("buncracker") ? " (throughput: medians of the ratios)" : "";
  if (goals.length > 0) out.push(`## Issue 7 targets${ofRatios}`, "", ...goals, "");
  if (measured.includes("buncracker") && throughput) {
    out.push(
      "## Issue 24 targets (throughput ratios; medians of the ratios within repeats)",
      "",
      ...goalLines24(input),
      "- CPU per request targets: see the results table, not judged here; memory targets: the memory section.",
      "",
    );
  }
  if (!throughput) return out.join("\n"); // the method and notes below are the workloads'
  out.push(
    "## Method",
    "",
    `- *direct* is one backend, the reference point: redis ${input.direct.redis}, memcached ${input.direct.memcached} ` +
      "(the first server of each 4-server pool, and the only server of the 1-server pools). For a 4-server pool it serves all keys itself.",
    "- Both proxies run with `-v 4` on the same config (below; only listen ports differ), each a single process. " +
      "Before measuring, every key a workload reads is written through each target, so gets hit.",
    ...(measured.includes("predixy")
      ? [
          "- predixy (bench/compare/predixy.ts) runs its own config: the `redis4` pool only (the same 4 redis backends, " +
            "crc16 modula: it has no ketama), one worker thread, warnings and errors logged only (as nutcracker's `-v 4`); " +
            "other pools show as not served.",
        ]
      : []),
    `- Load tools: redis-benchmark (run length set with -n from the target's rate in the warm-up), memaslap (memcaslap; -T 2, window 1k), ` +
      `and bench/compare/mcload.ts, a pipelined closed-loop memcached generator in Bun (${input.mcloadProcs} process(es) per run); ` +
      "bench/compare/redisload.ts (the same for redis, GETs and SETs mixed) and bench/compare/pubsub.ts (one publisher, many subscribers).",
    ...(input.nice === 0
      ? []
      : [`- Backends, proxies and load tools ran at nice ${input.nice}, ahead of the unrelated work on this shared machine (all targets alike).`]),
    "",
    "| workload | what |",
    "|---|---|",
    ...input.workloads.map((w) => `| ${w.name} | ${describe(w)} |`),
    "",
  );
  if (input.config !== "") out.push("Proxy config (nutcracker and buncracker):", "", "```yaml", input.config.trimEnd(), "```", "");
  if (input.predixyConfig !== null) out.push("predixy's config:", "", "```", input.predixyConfig.trimEnd(), "```", "");
  if (input.notes.length > 0) out.push("## Notes", "", ...input.notes.map((n) => `- ${n}`), "");
  return out.join("\n");
}
