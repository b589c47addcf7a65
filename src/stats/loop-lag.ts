// Event-loop lag probe: a timer that should fire every PROBE_MS; how late it fires is how long
// the loop was busy. Unref'd, so it never keeps the process alive. A worker of --workers reports
// the worst since its last report (one a second), so a stall between two reports is not missed.

const PROBE_MS = 500;

export class EventLoopLag {
  /** How late the last probe fired, seconds. */
  seconds = 0;
  /** The latest probe since the last takeWorst(), seconds. */
  private worst = 0;
  private timer: Timer | null = null;

  start(): void {
    if (this.timer !== null) return;
    let expected = performance.now() + PROBE_MS;
    this.timer = setInterval(() => {
      const now = performance.now();
      this.seconds = Math.round(Math.max(0, now - expected) * 1000) / 1e6; // whole µs
      this.worst = Math.max(this.worst, this.seconds);
      expected = now + PROBE_MS;
    }, PROBE_MS);
    this.timer.unref();
  }

  /** The worst lag since the previous call (0 at first), seconds. */
  takeWorst(): number {
    const worst = this.worst;
    this.worst = 0;
    return worst;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
