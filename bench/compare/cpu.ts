// CPU time of a running process from /proc/<pid>/stat (utime + stime, all threads), summed over
// the process and its live descendants (so a proxy that forks workers is still measured whole).

import { readdirSync, readFileSync } from "node:fs";

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ; Linux reports /proc times in these on every arch we run

function ownCpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]); // utime (field 14) + stime (field 15)
}

function children(pid: number): number[] {
  const found: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
    if (text !== "") for (const child of text.split(" ")) found.push(Number(child));
  }
  return found;
}

function treeTicks(pid: number): number {
  let ticks = ownCpuTicks(pid);
  for (const child of children(pid)) ticks += treeTicks(child);
  return ticks;
}

/** CPU microseconds used so far by `pid` and its live descendants; 0 for a pid that is gone. */
export function cpuMicros(pid: number): number {
  try {
    return treeTicks(pid) * (1e6 / CLOCK_TICKS_PER_SECOND);
  } catch {
    return 0;
  }
}

/** The process's command line, for checking that a pid is the program we mean to measure. */
export function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
  } catch {
    return "";
  }
}
