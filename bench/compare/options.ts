// Command-line options of the side-by-side comparison.

import { TARGETS, type TargetName } from "./cluster.ts";
import { MEMORY_PHASE } from "./memory.ts";
import { OPTIONAL_PHASES, type OptionalName } from "./optional.ts";
import { predixyBinary } from "./predixy.ts";
import { WORKLOADS, type Workload } from "./workloads.ts";

export interface Options {
  repeats: number;
  seconds: number;
  /** Seconds per warm-up run (also calibrates redis-benchmark's -n). */
  warmSeconds: number;
  quick: boolean;
  workloads: Workload[];
  /** Run the memory phase (pseudo-workload \`memory\`, after the workloads). */
  memory: boolean;
  /** The optional phases to run (optional.ts: they skip themselves when the tree lacks the feature). */
  optional: OptionalName[];
  targets: TargetName[];
  mcloadProcs: number;
  /** Nice value for every started process (0 = unchanged). */
  nice: number;
  /** Where RESULTS.md and results.svg go; null = bench/ for a full run, the run folder otherwise. */
  out: string | null;
  /** The predixy binary to measure beside the others (--predixy, else $PREDIXY_BIN); null: not measured. */
  predixy: string | null;
  /** One extra run per workload and proxy under `perf record`, split by where the CPU goes (profile.ts). */
  profile: boolean;
}

export const USAGE = `usage: bun run bench:compare [options]
  --repeats N        repeats of every (workload, target) run (default 3; --quick: 1)
  --duration S       seconds per run (default 3; --quick: 1)
  --quick            smoke test: the quick workloads, 1 repeat, 1 s runs (under 2 minutes)
  --only A,B         only these workloads (names or prefixes, e.g. redis-get-p16,mc- or memory)
  --targets A,B      among ${TARGETS.join(",")} (default all; buncracker is skipped when it cannot
                     start, predixy when no binary is given)
  --gen-procs N      Bun processes per mcload run (default 1)
  --nice N           run backends, proxies and load tools at this nice value (default 0); on a
                     machine busy with other work, e.g. -10 keeps that work from skewing the runs
  --out DIR          write RESULTS.md and results.svg there (default: bench/ for a full run of
                     every workload, the run's temporary folder otherwise)
  --predixy PATH     also measure this predixy binary (default: $PREDIXY_BIN; neither: predixy is
                     not measured, and the report says so). Build it from predixy's own source
                     by its own instructions; this suite never fetches or builds it
  --profile          after the measured repeats, one more run per workload and proxy sampled by
                     perf (Debian: linux-perf, installed when missing; root), and a report section
                     with each proxy's CPU per request split into kernel, native code, libc,
                     JavaScript (by function) and WASM
  --list             list the workloads and exit
workloads: ${[...WORKLOADS.map((w) => w.name), MEMORY_PHASE.name, ...OPTIONAL_PHASES.map((p) => p.name)].join(" ")}`;

function positive(name: string, value: string | undefined): number {
  const n = Number(value);
  if (value === undefined || !Number.isFinite(n) || n <= 0) throw new Error(`${name} needs a positive number, got ${value ?? "nothing"}`);
  return n;
}

export function parseOptions(argv: string[]): Options | "list" {
  let repeats: number | null = null;
  let seconds: number | null = null;
  let quick = false;
  let only: string[] | null = null;
  let targets: TargetName[] = [...TARGETS];
  let mcloadProcs = 1;
  let nice = 0;
  let out: string | null = null;
  let predixy: string | null = null;
  let profile = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string | undefined => argv[++i];
    switch (arg) {
      case "--repeats":
        repeats = Math.round(positive(arg, value()));
        break;
      case "--duration":
        seconds = positive(arg, value());
        break;
      case "--quick":
        quick = true;
        break;
      case "--only":
        only = (value() ?? "").split(",").filter(Boolean);
        break;
      case "--targets": {
        const names = (value() ?? "").split(",").filter(Boolean);
        const unknown = names.filter((n) => !TARGETS.includes(n as TargetName));
        if (unknown.length > 0 || names.length === 0) throw new Error(`--targets: unknown target(s) ${unknown.join(",")}`);
        targets = TARGETS.filter((t) => names.includes(t));
        break;
      }
      case "--gen-procs":
        mcloadProcs = Math.round(positive(arg, value()));
        break;
      case "--nice": {
        const raw = value();
        nice = Number(raw);
        if (!Number.isInteger(nice) || nice < -20 || nice > 19) throw new Error(`--nice needs an integer in -20..19, got ${raw}`);
        break;
      }
      case "--out":
        out = value() ?? null;
        break;
      case "--predixy": {
        const path = value();
        if (path === undefined || path === "") throw new Error("--predixy needs the path of a predixy binary");
        predixy = path;
        break;
      }
      case "--profile":
        profile = true;
        break;
      case "--list":
        return "list";
      default:
        throw new Error(`unknown option ${arg}`);
    }
  }
  const selected = (name: string, inQuick: boolean): boolean =>
    only !== null ? only.some((o) => name === o || name.startsWith(o)) : !quick || inQuick;
  const workloads = WORKLOADS.filter((w) => selected(w.name, w.quick));
  const memory = selected(MEMORY_PHASE.name, false);
  const optional = OPTIONAL_PHASES.map((p) => p.name).filter((name) => selected(name, true));
  if (workloads.length === 0 && !memory && optional.length === 0) throw new Error(`--only ${only?.join(",")}: no such workload`);
  return {
    repeats: repeats ?? (quick ? 1 : 3),
    seconds: seconds ?? (quick ? 1 : 3),
    warmSeconds: quick ? 0.5 : 1,
    quick,
    workloads,
    memory,
    optional,
    targets,
    mcloadProcs,
    nice,
    out,
    predixy: predixyBinary(predixy),
    profile,
  };
}
