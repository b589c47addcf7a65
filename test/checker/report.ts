// What the checker counts. Every request ends in exactly one of: ok, a proxy error (by reason),
// or a problem: unexpected (a reply that is neither), misordered (the reply of another request of
// the same client, or the wrong shape for this one), foreign (another client's value), missing
// (nil where the lane's own acknowledged write must be), wrong (a value or count the lane's model
// of its keys rules out: a deleted key's value, a DEL or EXISTS that counts the wrong keys), lost
// (never answered) or abandoned (still waiting when its connection desynchronised); or it has no
// reply at all (memcached noreply). Replies that answer no request are duplicated, and a proxy
// error that no injected fault explains (the request was sent and answered while nothing was
// disturbed) is unexplained as well as counted by its reason.

/** The problems a single reply can show. */
export type Problem = "unexpected" | "misordered" | "foreign" | "missing" | "wrong" | "duplicated" | "desyncs";

export class Report {
  requests = 0;
  /** Reads (and counts) of keys a lane wrote that were held to its book: no fault could explain a miss. */
  certain = 0;
  /** Requests that have no reply (memcached noreply). */
  noreply = 0;
  replies = 0;
  ok = 0;
  /** Proxy-made error replies, by reason ("Connection refused", ...). */
  readonly errors: Record<string, number> = {};
  /** Of those, the ones no injected fault explains, by reason. */
  readonly unexplained: Record<string, number> = {};
  unexpected = 0;
  misordered = 0;
  foreign = 0;
  missing = 0;
  wrong = 0;
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

  problem(counter: Problem, what: string): void {
    this[counter]++;
    this.sample(`${counter}: ${what}`);
  }

  sample(what: string): void {
    if (this.samples.length < 20) this.samples.push(what);
  }

  /** A proxy error reply; `explained` when a fault was under way while it was in flight. */
  error(reason: string, explained: boolean): void {
    this.errors[reason] = (this.errors[reason] ?? 0) + 1;
    if (!explained) {
      this.unexplained[reason] = (this.unexplained[reason] ?? 0) + 1;
      this.sample(`unexplained error: ${reason}`);
    }
  }

  fault(kind: string): void {
    this.faults[kind] = (this.faults[kind] ?? 0) + 1;
  }

  get errorCount(): number {
    return sum(this.errors);
  }

  get unexplainedCount(): number {
    return sum(this.unexplained);
  }

  /**
   * Something succeeded; nothing lost, misordered, foreign, missing, wrong, duplicated or
   * unexpected; no connection dropped; no proxy error outside the injected faults.
   */
  get clean(): boolean {
    return (
      this.ok > 0 &&
      this.lost + this.misordered + this.foreign + this.missing + this.wrong + this.duplicated + this.unexpected +
        this.abandoned + this.disconnects + this.desyncs + this.unexplainedCount === 0
    );
  }

  toJSON(): Record<string, unknown> {
    return {
      requests: this.requests,
      certain: this.certain,
      noreply: this.noreply,
      replies: this.replies,
      ok: this.ok,
      errors: this.errors,
      unexplained: this.unexplained,
      unexpected: this.unexpected,
      lost: this.lost,
      misordered: this.misordered,
      foreign: this.foreign,
      missing: this.missing,
      wrong: this.wrong,
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
    const list = (r: Record<string, number>): string =>
      Object.entries(r)
        .map(([reason, n]) => `${reason}: ${n}`)
        .join(", ");
    return [
      `requests ${this.requests} in ${seconds.toFixed(0)} s (${Math.round(this.requests / seconds)}/s), ${this.noreply} of them noreply; ` +
        `replies ${this.replies}, ok ${this.ok}; reads of written keys held to the lane's writes ${this.certain}`,
      `proxy errors ${this.errorCount}${this.errorCount === 0 ? "" : ` (${list(this.errors)})`}, ` +
        `unexplained by the faults ${this.unexplainedCount}${this.unexplainedCount === 0 ? "" : ` (${list(this.unexplained)})`}`,
      `lost ${this.lost}, misordered ${this.misordered}, foreign ${this.foreign}, missing ${this.missing}, wrong ${this.wrong}, ` +
        `duplicated ${this.duplicated}, unexpected ${this.unexpected}, abandoned ${this.abandoned}, disconnects ${this.disconnects}, desyncs ${this.desyncs}`,
      `faults ${JSON.stringify(this.faults)}, garbage messages ${this.garbage}`,
      ...(this.ok === 0 ? ["NO REQUEST SUCCEEDED"] : []),
      ...this.samples.map((s) => `  ${s}`),
    ].join("\n");
  }
}

const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);
