// What the checker counts. Every request ends in exactly one of: ok, a proxy error (by reason),
// unexpected (a reply that is neither), misordered (the reply of another request of the same
// client, or the wrong shape for this one), foreign (another client's value), lost (never
// answered), or abandoned (still waiting when its connection desynchronised); or it has no
// reply at all (memcached noreply). Replies that answer no request are duplicated.

export class Report {
  requests = 0;
  /** Requests that have no reply (memcached noreply). */
  noreply = 0;
  replies = 0;
  ok = 0;
  /** Proxy-made error replies, by reason ("Connection refused", ...). */
  readonly errors: Record<string, number> = {};
  unexpected = 0;
  misordered = 0;
  foreign = 0;
  duplicated = 0;
  lost = 0;
  abandoned = 0;
  /** The proxy closed a checker connection (it never should). */
  disconnects = 0;
  /** A reply stream that could not be framed any more. */
  desyncs = 0;
  /** Faults injected, by kind, and garbage messages sent on side connections. */
  readonly faults: Record<string, number> = {};
  garbage = 0;
  /** The first problems, described. */
  readonly samples: string[] = [];

  problem(counter: "unexpected" | "misordered" | "foreign" | "duplicated" | "desyncs", what: string): void {
    this[counter]++;
    if (this.samples.length < 20) this.samples.push(`${counter}: ${what}`);
  }

  error(reason: string): void {
    this.errors[reason] = (this.errors[reason] ?? 0) + 1;
  }

  fault(kind: string): void {
    this.faults[kind] = (this.faults[kind] ?? 0) + 1;
  }

  get errorCount(): number {
    return Object.values(this.errors).reduce((a, b) => a + b, 0);
  }

  /** Nothing lost, misordered, foreign, duplicated, unexpected; no connection dropped. */
  get clean(): boolean {
    return (
      this.lost + this.misordered + this.foreign + this.duplicated + this.unexpected + this.abandoned + this.disconnects + this.desyncs === 0
    );
  }

  toJSON(): Record<string, unknown> {
    return {
      requests: this.requests,
      noreply: this.noreply,
      replies: this.replies,
      ok: this.ok,
      errors: this.errors,
      unexpected: this.unexpected,
      lost: this.lost,
      misordered: this.misordered,
      foreign: this.foreign,
      duplicated: this.duplicated,
      abandoned: this.abandoned,
      disconnects: this.disconnects,
      desyncs: this.desyncs,
      faults: this.faults,
      garbage: this.garbage,
      samples: this.samples,
    };
  }

  /** A few lines for a person. */
  summary(seconds: number): string {
    const errors = Object.entries(this.errors)
      .map(([reason, n]) => `${reason}: ${n}`)
      .join(", ");
    return [
      `requests ${this.requests} in ${seconds.toFixed(0)} s (${Math.round(this.requests / seconds)}/s), ${this.noreply} of them noreply; ` +
        `replies ${this.replies}, ok ${this.ok}`,
      `proxy errors ${this.errorCount}${errors === "" ? "" : ` (${errors})`}`,
      `lost ${this.lost}, misordered ${this.misordered}, foreign ${this.foreign}, duplicated ${this.duplicated}, unexpected ${this.unexpected}, ` +
        `abandoned ${this.abandoned}, disconnects ${this.disconnects}, desyncs ${this.desyncs}`,
      `faults ${JSON.stringify(this.faults)}, garbage messages ${this.garbage}`,
      ...this.samples.map((s) => `  ${s}`),
    ].join("\n");
  }
}
