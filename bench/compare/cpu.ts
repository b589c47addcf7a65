// CPU time of a running process from /proc/<pid>/stat (utime + stime, all threads), summed over
// the process and its live descendants (so a proxy that forks workers is still measured whole).

import { readdirSync, readFileSync } from "node:fs";

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ; Linux reports /proc times in these on every arch we run

/** CPU time in microseconds, split as the kernel accounts it. */
export interface CpuTimes {
  userUs: number;
  systemUs: number;
}

const TICK_US = 1e6 / CLOCK_TICKS_PER_SECOND;

function addOwnTicks(pid: number, into: CpuTimes): void {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  into.userUs += Number(fields[11]) * TICK_US; // utime (field 14)
  into.systemUs += Number(fields[12]) * TICK_US; // stime (field 15)
}

function children(pid: number): number[] {
  const found: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
    if (text !== "") for (const child of text.split(" ")) found.push(Number(child));
  }
  return found;
}

function addTreeTicks(pid: number, into: CpuTimes): void {
  let found: number[];
  try {
    addOwnTicks(pid, into);
    found = children(pid);
  } catch {
    return; // gone (a child may exit while the tree is read): the rest of the tree still counts
  }
  for (const child of found) addTreeTicks(child, into);
}

/** CPU time used so far by `pid` and its live descendants; zero for a pid that is gone. */
export function cpuTimes(pid: number): CpuTimes {
  const times = { userUs: 0, systemUs: 0 };
  addTreeTicks(pid, times);
  return times;
}

export const cpuSince = (earlier: CpuTimes, later: CpuTimes): CpuTimes => ({
  userUs: later.userUs - earlier.userUs,
  systemUs: later.systemUs - earlier.systemUs,
});

export const cpuPer = (t: CpuTimes, count: number): CpuTimes => ({ userUs: t.userUs / count, systemUs: t.systemUs / count });

export const cpuTotal = (t: CpuTimes): number => t.userUs + t.systemUs;

/** The process's command line, for checking that a pid is the program we mean to measure. */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    return "";
  }
}
