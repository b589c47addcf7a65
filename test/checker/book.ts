// One lane's record of its own keys: what each must hold, from the lane's acknowledged writes and
// deletes (every key belongs to one lane, so nothing else changes it). A read is held to the
// record when it is certain: the key's last change was acknowledged with no other change of it in
// flight, nothing changed it while the read was in flight, and no fault happened from the
// change's sending to the read's reply (calm.ts). Then nil for a written key is missing data and a
// value for a deleted key is wrong. Otherwise a read may find nil or the key's own value, never
// anything else; a key the lane never wrote must always read nil.

import type { Calm } from "./calm.ts";

/** What a key holds as far as the lane knows. */
type Held = "value" | "none";

interface KeyState {
  held: Held;
  /** False while the outcome of a change is unknown (error reply, no reply, overlapping changes). */
  known: boolean;
  /** Epoch at which the change that made `held` true was sent. */
  since: number;
  /** When `held` became "value" (ms), for the write's expiry. */
  writtenAt: number;
  /** Changes sent and not answered yet. */
  pending: number;
  /** Count of changes sent so far; a read compares it before and after its flight. */
  changes: number;
}

/** A read's view of one key at sending: null when the key was never written by the lane. */
export interface Sight {
  readonly key: string;
  readonly state: KeyState | null;
  /** state.changes when the read was sent, or -1 when a change was in flight then. */
  readonly changes: number;
}

/** A change sent: settle it with done(held) or unknown() (the first call counts). */
export interface Change {
  done(held: Held): void;
  unknown(): void;
}

/** What a certain read must find, or "either" when only the key's own value or nil may be found. */
export type Expect = "value" | "none" | "either";

export class KeyBook {
  private readonly keys = new Map<string, KeyState>();

  constructor(
    private readonly calm: Calm,
    /** The writes' expiry (ms): a value older than this (less a margin) may have gone. */
    private readonly ttlMs: number,
  ) {}

  /** The key is never read again: forget it. */
  retire(key: string): void {
    this.keys.delete(key);
  }

  /**
   * A read of `key` is being sent; or a delete, which sends `own` changes of the key right after
   * (its count is of what the key held before them).
   */
  see(key: string, own = 0): Sight {
    const state = this.keys.get(key) ?? null;
    return { key, state, changes: state === null || state.pending > 0 ? -1 : state.changes + own };
  }

  /** What the read seen by `sight` must find now that its reply is here. */
  expect(sight: Sight): Expect {
    const s = sight.state;
    if (s === null) return "none"; // never written, and never will be: fresh keys are written at once
    if (sight.changes !== s.changes || !s.known || !this.calm.undisturbedSince(s.since)) return "either";
    if (s.held === "value" && Date.now() - s.writtenAt > this.ttlMs - 10_000) return "either";
    return s.held;
  }

  /**
   * A write or delete of `key` is being sent (at the current epoch). Null for the delete of a key
   * the lane never wrote: it stays never written.
   */
  change(key: string, kind: "write" | "delete"): Change | null {
    let s = this.keys.get(key);
    if (s === undefined) {
      if (kind === "delete") return null;
      s = { held: "none", known: true, since: this.calm.epoch, writtenAt: 0, pending: 0, changes: 0 };
      this.keys.set(key, s);
    }
    const state = s;
    const alone = state.pending === 0;
    const mine = ++state.changes;
    const sent = this.calm.epoch;
    state.pending++;
    let settled = false;
    return {
      done: (held) => {
        if (settled) return;
        settled = true;
        state.pending--;
        // Another change of the key crossed this one: which landed last is unknown.
        if (!alone || state.changes !== mine) {
          state.known = false;
          return;
        }
        state.held = held;
        state.known = true;
        state.since = sent;
        if (held === "value") state.writtenAt = Date.now();
      },
      unknown: () => {
        if (settled) return;
        settled = true;
        state.pending--;
        state.known = false;
      },
    };
  }
}
