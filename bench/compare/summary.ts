// From individual runs to medians [min..max] per workload and target, and to ratios computed
// within each repeat (so that slow and fast phases of a shared machine cancel out).

import type { TargetName } from "./cluster.ts";
import { type CpuTimes, cpuTotal } from "./cpu.ts";
import type { Measurement } from "./tools.ts";

export interface Run {
  workload: string;
  target: TargetName;
  repeat: number;
  measurement?: Measurement;
  /** Proxy CPU (process and descendants, /proc/<pid>/stat) per client request. */
  proxyCpu?: CpuTimes;
  /** CPU of all the redis-server and memcached backends per client request, microseconds. */
  backendCpuUsPerRequest?: number;
  /** Machine CPU used by processes outside this benchmark during the run, % of one core. */
  otherCpuPct?: number;
  error?: string;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  count: number;
}

export function spread(values: number[]): Spread | null {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (finite.length === 0) return null;
  const mid = finite.length >> 1;
  const median = finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2;
  return { median, min: finite[0]!, max: finite[finite.length - 1]!, count: finite.length };
}

export interface Cell {
  ops: Spread | null;
  p50Ms: Spread | null;
  p99Ms: Spread | null;
  latencyUpperBound: boolean;
  cpuUsPerRequest: Spread | null;
  userCpuUsPerRequest: Spread | null;
  backendCpuUsPerRequest: Spread | null;
  generatorCpuPct: Spread | null;
  otherCpuPct: Spread | null;
  missRate: Spread | null;
  problems: string[];
}

export function cell(runs: Run[], workload: string, target: TargetName): Cell {
  const mine = runs.filter((r) => r.workload === workload && r.target === target);
  const measured = mine.flatMap((r) => (r.measurement ? [r.measurement] : []));
  const of = (pick: (m: Measurement) => number | undefined): Spread | null =>
    spread(measured.flatMap((m) => (pick(m) === undefined ? [] : [pick(m)!])));
  return {
    ops: of((m) => m.opsPerSec),
    p50Ms: of((m) => m.p50Ms),
    p99Ms: of((m) => m.p99Ms),
    latencyUpperBound: measured.some((m) => m.latencyUpperBound),
    cpuUsPerRequest: spread(mine.flatMap((r) => (r.proxyCpu === undefined ? [] : [cpuTotal(r.proxyCpu)]))),
    userCpuUsPerRequest: spread(mine.flatMap((r) => (r.proxyCpu === undefined ? [] : [r.proxyCpu.userUs]))),
    backendCpuUsPerRequest: spread(mine.flatMap((r) => (r.backendCpuUsPerRequest === undefined ? [] : [r.backendCpuUsPerRequest]))),
    generatorCpuPct: of((m) => m.generatorCpuPct),
    otherCpuPct: spread(mine.flatMap((r) => (r.otherCpuPct === undefined ? [] : [r.otherCpuPct]))),
    missRate: of((m) => m.missRate),
    problems: [
      ...new Set(mine.flatMap((r) => [...(r.error ? [r.error] : []), ...(r.measurement?.warning ? [r.measurement.warning] : [])])),
    ],
  };
}

/** `numerator`/`denominator` of `pick` per repeat where both were measured; median [min..max]. */
export function ratio(
  runs: Run[],
  workload: string,
  numerator: TargetName,
  denominator: TargetName,
  pick: (r: Run) => number | undefined,
): Spread | null {
  const values: number[] = [];
  const repeats = new Set(runs.map((r) => r.repeat));
  for (const repeat of repeats) {
    const find = (target: TargetName) => runs.find((r) => r.workload === workload && r.target === target && r.repeat === repeat);
    const top = find(numerator);
    const bottom = find(denominator);
    const a = top ? pick(top) : undefined;
    const b = bottom ? pick(bottom) : undefined;
    if (a !== undefined && b !== undefined && b > 0) values.push(a / b);
  }
  return spread(values);
}

export const opsOf = (r: Run): number | undefined => r.measurement?.opsPerSec;
export const p99Of = (r: Run): number | undefined => (r.measurement?.latencyUpperBound ? undefined : r.measurement?.p99Ms);
export const cpuOf = (r: Run): number | undefined => (r.proxyCpu === undefined ? undefined : cpuTotal(r.proxyCpu));
export const userCpuOf = (r: Run): number | undefined => r.proxyCpu?.userUs;
