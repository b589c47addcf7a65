// The measured window of the load generators that count their own requests (redisload.ts,
// pubsub.ts, cluster-mget.ts): a settling time, then `seconds` during which `measuring` is true
// (only then are requests counted), then `stopping` (no new batches; closed connections are
// expected).

export class LoadWindow {
  measuring = false;
  stopping = false;

  /** Runs the window; the seconds measured and the process's CPU time (µs) in them. */
  async run(seconds: number): Promise<{ elapsed: number; cpuUs: number }> {
    await Bun.sleep(Math.min(1000, seconds * 200)); // settle: every connection has had its first replies
    this.measuring = true;
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    await Bun.sleep(seconds * 1000);
    this.measuring = false;
    const elapsed = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpuStart);
    this.stopping = true;
    return { elapsed, cpuUs: cpu.user + cpu.system };
  }
}
