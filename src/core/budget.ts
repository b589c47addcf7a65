// The buffer budget (--buffer-budget): bytes the proxy holds on behalf of its clients, over all
// pools. Each client reports what it holds (ClientConn.account): the bytes of an incomplete
// request it is sending, the requests waiting for replies, the replies it has not read, and an
// estimate of the replies still to come for its requests in flight. From that total:
//
// - Incomplete requests may hold at most PARTIAL_SHARE of the budget. Past it, the largest one
//   is refused (an error reply, then the connection closes): a request that cannot be completed
//   within the budget would otherwise hold its bytes for ever, and pausing every large sender
//   would leave none able to finish.
// - Past the whole budget, a client holding more than an even share stops being read (its
//   requests are no longer parsed, so no new replies are owed to it either) until the total
//   falls below RESUME_SHARE. Small clients keep being served.
//
// The runtime's collector is also run from here when large buffers are let go, so that the
// resident memory follows what is held (see collectSoon).

import { log } from "../log.ts";

/** What a client connection gives the budget. */
export interface BudgetHolder {
  /** Bytes and incomplete-request bytes as last reported (kept by the budget). */
  budgeted: number;
  budgetedPartial: number;
  /** Stopped by the budget; resumed by it. */
  budgetPaused: boolean;
  /** Stop reading (called once, when it becomes budgetPaused). */
  pauseForBudget(): void;
  /** Read again (called once, when budgetPaused is cleared). */
  resumeFromBudget(): void;
  /** Refuse its incomplete request: error reply, close. */
  refuseForBudget(): void;
}

/** Incomplete requests' part of the budget: the rest is room for what they become once whole
 *  (forwarded, waiting for the reply) and for buffers outgrown but not yet collected. */
const PARTIAL_SHARE = 0.5;
const RESUME_SHARE = 0.75;
/** Over half the budget, garbage (read chunks, outgrown buffers) is collected this often, so
 *  that the resident memory follows what is held rather than the collector's own pace. */
const COLLECT_EVERY_MS = 100;
/** A fall from a peak below this is not worth a collection. */
const COLLECT_MIN = 32 << 20;

export class BufferBudget {
  /** Bytes held now, and of them by incomplete requests. */
  total = 0;
  partial = 0;
  /** Clients holding any bytes (for the even share). */
  private holding = 0;
  private readonly paused = new Set<BudgetHolder>();
  private readonly partials = new Set<BudgetHolder>();
  /** The most held since the last collection triggered by a fall. */
  private peak = 0;
  /** Past the limit since the last time it fell below RESUME_SHARE (logged once per episode). */
  private reached = false;

  constructor(public limit: number) {}

  /** `h` holds `bytes` now, `partial` of them an incomplete request's. */
  report(h: BudgetHolder, bytes: number, partial: number): void {
    const was = h.budgeted;
    if (was === bytes && h.budgetedPartial === partial) return;
    this.total += bytes - was;
    this.partial += partial - h.budgetedPartial;
    if (was === 0 && bytes > 0) this.holding++;
    else if (was > 0 && bytes === 0) this.holding--;
    if (partial > 0) this.partials.add(h);
    else if (h.budgetedPartial > 0) this.partials.delete(h);
    h.budgeted = bytes;
    h.budgetedPartial = partial;
    if (this.total > this.limit / 2) collectEvery(COLLECT_EVERY_MS);
    if (this.total > this.peak) this.peak = this.total;
    else if (this.peak > COLLECT_MIN && this.total < this.peak / 2) {
      // Half of what was held is let go (clients read their replies, or left): give it back.
      this.peak = this.total;
      collectSoon();
    }
    if (this.partial > this.limit * PARTIAL_SHARE) this.refuseLargestPartial();
    else if (this.total > this.limit && !h.budgetPaused && bytes > this.share) {
      if (!this.reached) {
        this.reached = true;
        log.warn(`buffer budget reached: ${Math.round(this.total)} bytes held for clients (--buffer-budget ${this.limit}); the clients holding the most are read no further until it drains`);
      }
      h.budgetPaused = true;
      this.paused.add(h);
      h.pauseForBudget();
      // What was read and copied on the way here is garbage: collect it before it counts twice.
      collectSoon();
    } else if (this.paused.size > 0 && this.total < this.limit * RESUME_SHARE) this.resumeAll();
  }

  /** `h` is gone: forget what it held. */
  remove(h: BudgetHolder): void {
    // Out of the paused set first: the report may resume the others, never `h` again.
    if (h.budgetPaused) {
      h.budgetPaused = false;
      this.paused.delete(h);
    }
    this.report(h, 0, 0);
  }

  /** Past the budget now (clients check it before taking another request). */
  get over(): boolean {
    return this.total > this.limit;
  }

  /** An even share of the budget among the clients holding anything. */
  get share(): number {
    return this.limit / Math.max(1, this.holding);
  }

  private refuseLargestPartial(): void {
    let largest: BudgetHolder | null = null;
    for (const h of this.partials) if (largest === null || h.budgetedPartial > largest.budgetedPartial) largest = h;
    if (largest === null) return;
    this.partials.delete(largest);
    largest.refuseForBudget();
    collectSoon();
  }

  private resumeAll(): void {
    if (this.reached) {
      this.reached = false;
      log.notice(`buffer budget drained: ${Math.round(this.total)} bytes held; ${this.paused.size} clients read again`);
    }
    const resumed = [...this.paused];
    this.paused.clear();
    for (const h of resumed) {
      h.budgetPaused = false;
      h.resumeFromBudget();
    }
  }
}

let collecting = false;
let collectedAt = 0;

/** collectSoon, unless the last collection was less than `ms` ago. */
function collectEvery(ms: number): void {
  if (collecting) return;
  const now = performance.now();
  if (now - collectedAt >= ms) collectSoon();
}

/** Large buffers were let go (a refused request, a carry-over outgrown): collect them now
 *  rather than when the allocator next asks, so that the memory is back before the clients
 *  that remain fill it again. At most once per loop turn. */
export function collectSoon(): void {
  if (collecting) return;
  collecting = true;
  setImmediate(() => {
    collecting = false;
    Bun.gc(true);
    collectedAt = performance.now();
  });
}

/** The process's budget (set from --buffer-budget at start). */
export const bufferBudget = new BufferBudget(2 * 1024 ** 3);
