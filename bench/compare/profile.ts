// Where each proxy's CPU goes (`--profile`): `perf record` samples of one extra run per workload
// and proxy, made after the measured repeats so that sampling never touches their figures, split
// into the kernel, the program's own native code (nutcracker, predixy, or Bun's runtime for
// buncracker), libc, and for buncracker its JavaScript by function and its WASM. The shares are
// applied to the median CPU per request of the measured runs. buncracker names its JIT-compiled
// code in a JSC jitdump file (BUN_JSC_useJITDump, written when a function is compiled, not per
// request), which this file reads: perf itself sees only anonymous JIT addresses.

import type { Subprocess } from "bun";
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { ProxyLaunch } from "./cluster.ts";
import { runTool, startService, stop } from "./procs.ts";

/** Samples per second (an odd rate, so sampling does not lock onto a periodic timer). */
const PROFILE_HZ = 999;
/** How long perf gets to attach before the run starts. */
const ATTACH_MS = 500;
/** JS functions listed per profile. */
const TOP_FUNCTIONS = 6;

export const CATEGORIES = ["kernel", "native", "libc", "js", "wasm"] as const;
export type Category = (typeof CATEGORIES)[number];

export interface Profile {
  samples: number;
  /** Share of the samples per category (0..1). */
  shares: Record<Category, number>;
  /** The JS functions with the most samples, as shares of all samples, most first. */
  functions: [string, number][];
}

/** buncracker's launch, writing a jitdump into `dir` (`env` execs, so the pid stays the proxy's). */
export function withJitDump(launch: ProxyLaunch, dir: string): ProxyLaunch {
  mkdirSync(dir, { recursive: true });
  return { ...launch, command: ["env", "BUN_JSC_useJITDump=1", `BUN_JSC_jitDumpDirectory=${dir}`, ...launch.command] };
}

/** Starts sampling `pid` into `file`; resolves once perf had time to attach. Samples are timed
 *  by CLOCK_MONOTONIC (`-k mono`), the clock of JSC's jitdump records. */
export async function startPerf(perf: string, pid: number, file: string, log: string): Promise<Subprocess> {
  const proc = startService([perf, "record", "-k", "mono", "-F", String(PROFILE_HZ), "-p", String(pid), "-o", file], log);
  await Bun.sleep(ATTACH_MS);
  return proc;
}

/** Stops perf (SIGTERM: it writes its file and exits; it gets time for that). */
export const stopPerf = (proc: Subprocess): Promise<void> => stop(proc, 10_000);

/** One compiled code block of a jitdump: [start, end), its name ("JSC-FTL: parse#Abc"), and
 *  when it was loaded (CLOCK_MONOTONIC ns). */
interface JitCode {
  start: number;
  end: number;
  name: string;
  loadedAt: number;
}

const JIT_CODE_LOAD = 0;

/** The code blocks of every jitdump `pid` wrote into `dir` (the perf jitdump format: a header,
 *  then records of id, size, timestamp; a code load carries pid, tid, vma, address, size, index
 *  and a NUL-terminated name), sorted by address. */
function readJitDumps(dir: string, pid: number): JitCode[] {
  const codes: JitCode[] = [];
  for (const name of readdirSync(dir)) {
    if (!name.endsWith(`-${pid}.dump`) && !name.startsWith(`jit-${pid}-`)) continue;
    const bytes = readFileSync(join(dir, name));
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let at = view.getUint32(8, true); at + 16 <= bytes.length; ) {
      const size = view.getUint32(at + 4, true);
      if (size === 0) break;
      if (view.getUint32(at, true) === JIT_CODE_LOAD) {
        const start = Number(view.getBigUint64(at + 32, true));
        const length = Number(view.getBigUint64(at + 40, true));
        const nameAt = at + 56;
        const name = bytes.toString("utf8", nameAt, bytes.indexOf(0, nameAt));
        codes.push({ start, end: start + length, name, loadedAt: Number(view.getBigUint64(at + 8, true)) });
      }
      at += size;
    }
  }
  return codes.sort((a, b) => a.start - b.start);
}

/** The code block holding `ip` at time `at` (ns): of blocks that hold it (JSC frees code and
 *  reuses its memory), the one loaded last before the sample. */
function jitName(codes: JitCode[], ip: number, at: number): string | null {
  let lo = 0;
  let hi = codes.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (codes[mid]!.start <= ip) lo = mid + 1;
    else hi = mid;
  }
  // Blocks starting below ip may have ended before it: look back a little.
  let found: JitCode | null = null;
  for (let i = lo - 1; i >= 0 && i >= lo - 64; i--) {
    const code = codes[i]!;
    if (ip < code.end && code.loadedAt <= at && (found === null || code.loadedAt > found.loadedAt)) found = code;
  }
  return found === null ? null : found.name;
}

/** "JSC-FTL: parseRequest#Corvdk" -> "parseRequest". */
const functionName = (jit: string): string => jit.replace(/^[^:]*:\s*/, "").replace(/#\w+$/, "") || "(anonymous)";

/** Splits the samples of `file` (perf record of `pid`); `jitDir` holds its jitdump, if any. */
export async function analyse(perf: string, file: string, pid: number, jitDir: string | null): Promise<Profile> {
  const script = await runTool([perf, "script", "-i", file, "-F", "time,ip,dso", "--ns"], 120_000);
  if (script.code !== 0) throw new Error(`perf script failed (${script.code}): ${script.stderr.slice(-300).trim()}`);
  const codes = jitDir === null ? [] : readJitDumps(jitDir, pid);
  const counts: Record<Category, number> = { kernel: 0, native: 0, libc: 0, js: 0, wasm: 0 };
  const functions = new Map<string, number>();
  let samples = 0;
  for (const line of script.stdout.split("\n")) {
    // "18117.326479583:      7f3eb1a7b092 (/tmp/perf-30954.map)"
    const match = /^\s*(\d+)\.(\d{9}):\s+([0-9a-f]+)\s+\((.*)\)\s*$/.exec(line);
    if (match === null) continue;
    samples++;
    const dso = match[4]!;
    if (dso.startsWith("[kernel")) counts.kernel++;
    else if (/\/libc[.-]/.test(dso)) counts.libc++;
    else if (/\/perf-\d+\.map$/.test(dso)) {
      const at = Number(match[1]!) * 1e9 + Number(match[2]!);
      const name = jitName(codes, parseInt(match[3]!, 16), at) ?? "JIT: (unnamed)";
      if (name.startsWith("JSC-Wasm")) counts.wasm++;
      else {
        counts.js++;
        const fn = functionName(name);
        functions.set(fn, (functions.get(fn) ?? 0) + 1);
      }
    } else counts.native++;
  }
  const share = (n: number): number => (samples === 0 ? 0 : n / samples);
  return {
    samples,
    shares: Object.fromEntries(CATEGORIES.map((c) => [c, share(counts[c])])) as Record<Category, number>,
    functions: [...functions.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, TOP_FUNCTIONS)
      .map(([fn, n]) => [fn, share(n)]),
  };
}

export interface ProfileRow {
  workload: string;
  target: string;
  /** Median CPU µs per request of the measured runs (null: none). */
  cpuUs: number | null;
  profile: Profile | null;
  error?: string;
}

const CATEGORY_TITLES: Record<Category, string> = {
  kernel: "kernel",
  native: "own native code (Bun's runtime for buncracker)",
  libc: "libc",
  js: "JavaScript",
  wasm: "WASM",
};

/** The report's section: per workload and proxy, µs per request per category and the top JS. */
export function profileSection(rows: ProfileRow[]): string[] {
  if (rows.length === 0) return [];
  const us = (cpu: number | null, share: number): string => (cpu === null ? `${(share * 100).toFixed(0)}%` : `${(cpu * share).toFixed(2)}`);
  return [
    "## Where the CPU goes (--profile)",
    "",
    `One extra run per workload and proxy after the measured repeats, sampled by \`perf record -F ${PROFILE_HZ}\` (not part of the figures above). ` +
      "Each category's share of the samples times the median proxy CPU per request of the measured runs, in µs per request; " +
      `*${CATEGORY_TITLES.native}* is the program's own machine code; buncracker's JIT-compiled JavaScript and WASM are named from the jitdump it writes (BUN_JSC_useJITDump). ` +
      "The top JavaScript functions are shares of all samples (JSC inlines callees into them).",
    "",
    `| workload | target | CPU µs/req | ${CATEGORIES.map((c) => CATEGORY_TITLES[c]).join(" | ")} | samples | top JavaScript functions |`,
    `|---|---|---|${CATEGORIES.map(() => "---|").join("")}---|---|`,
    ...rows.map((r) => {
      const p = r.profile;
      if (p === null) return `| ${r.workload} | ${r.target} | — | ${CATEGORIES.map(() => "—").join(" | ")} | — | ${r.error ?? "no profile"} |`;
      const top = p.functions.map(([fn, s]) => `${fn} ${(s * 100).toFixed(1)}%`).join(", ");
      const cpu = r.cpuUs === null ? "—" : r.cpuUs.toFixed(2);
      return `| ${r.workload} | ${r.target} | ${cpu} | ${CATEGORIES.map((c) => us(r.cpuUs, p.shares[c])).join(" | ")} | ${p.samples} | ${top || "—"} |`;
    }),
    "",
  ];
}
