// The process figures /metrics and the dashboard show: resident memory, heap and CPU. Under
// --workers each worker measures its own and reports them (cluster/snapshot.ts); the supervisor,
// which serves no client, shows them per worker and adds them to its own for the totals.

/** One process's figures, as of when they were measured. */
export interface ProcessFigures {
  readonly residentBytes: number;
  readonly heapUsedBytes: number;
  /** User plus system CPU time since the process started. */
  readonly cpuSeconds: number;
}

/** A live worker of --workers, as of its last report. */
export interface WorkerFigures extends ProcessFigures {
  readonly index: number;
  readonly pid: number;
  /** Its worst event-loop lag between its last two reports (stats/loop-lag.ts takeWorst). */
  readonly loopLagSeconds: number;
  /** When the supervisor started it (ms since the epoch): a restart moves it. */
  readonly startedAt: number;
}

/** What the supervisor of --workers knows of its workers' processes. */
export interface WorkerProcesses {
  /** By index. */
  readonly live: readonly WorkerFigures[];
  /** CPU spent by the workers that died (to their end: read as each was reaped): kept in the
   *  total so it never goes back when one is restarted. */
  readonly retiredCpuSeconds: number;
}

/** This process's figures, now. */
export function ownProcessFigures(): ProcessFigures {
  const memory = process.memoryUsage();
  const cpu = process.cpuUsage();
  return { residentBytes: memory.rss, heapUsedBytes: memory.heapUsed, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

/** The whole proxy's figures: this process's, plus under --workers its workers' (the host's
 *  memory and CPU the proxy takes, not one process's). */
export function processTotals(own: ProcessFigures, workers: WorkerProcesses | undefined): ProcessFigures {
  if (workers === undefined) return own;
  let { residentBytes, heapUsedBytes, cpuSeconds } = own;
  for (const w of workers.live) {
    residentBytes += w.residentBytes;
    heapUsedBytes += w.heapUsedBytes;
    cpuSeconds += w.cpuSeconds;
  }
  return { residentBytes, heapUsedBytes, cpuSeconds: cpuSeconds + workers.retiredCpuSeconds };
}
