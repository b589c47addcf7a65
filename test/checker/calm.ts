// When faults are under way, as an epoch number every lane can compare. The epoch is even while
// nothing is disturbed and odd while at least one fault is under way (from its start until
// `settleMs` after its end, the time a proxy takes to put an ejected server back). A request sent
// and answered in the same even epoch saw no fault: its reply must be exact (a key's acknowledged
// value, no proxy error). Anything whose flight spans an epoch change may have met a fault, and
// the lanes forgive what a fault explains (nil for a key on a restarted or ejected server, an
// error reply), never a wrong value.

export class Calm {
  /** Even: nothing disturbed; odd: a fault is under way. Only ever grows. */
  private current = 0;
  private active = 0;
  /** Settling periods still running (the checker waits for them before it winds down). */
  private settling = new Set<Promise<void>>();

  get epoch(): number {
    return this.current;
  }

  /** True when something sent at epoch `sent` and answered now met no fault. */
  undisturbedSince(sent: number): boolean {
    return sent === this.current && sent % 2 === 0;
  }

  /** A fault starts now. */
  begin(): void {
    if (this.active++ === 0) this.current++;
  }

  /** The fault that began last ends now; its effects may last `settleMs` more. */
  end(settleMs: number): void {
    const done = (): void => {
      if (--this.active === 0) this.current++;
    };
    if (settleMs <= 0) return done();
    const settled: Promise<void> = new Promise<void>((resolve) => setTimeout(resolve, settleMs)).then(() => {
      this.settling.delete(settled);
      done();
    });
    this.settling.add(settled);
  }

  /** Resolves when every fault has ended and settled. */
  async settled(): Promise<void> {
    while (this.settling.size > 0) await Promise.all(this.settling);
  }
}
