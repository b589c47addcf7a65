// Split planning: which keys of a multi-key request go to which server, as a pure computation
// on arrays (planSplit), and what a split request remembers until its fragments have replied
// (SplitState, handed to Codec.merge). The dispatcher routes the keys and writes the fragments;
// nothing here touches sockets or the router.

import type { ByteWriter } from "../lib/bytes.ts";
import { Route, type Split } from "../proto/codec.ts";

/** The reply of a fragment that got none (Route.All). */
const NO_REPLY = new Uint8Array(0);

/** What a parent remembers to merge its fragments' replies (see Codec.merge). */
export class SplitState implements Split {
  /** Fragments still waiting for a reply. */
  pending: number;
  /** First proxy-made error of any fragment: the whole request gets it. */
  error: string | null = null;
  /** Fragments that got a proxy-made error (Route.All). */
  private failures = 0;
  readonly fragBuf: Uint8Array[];
  readonly fragPos: Int32Array;
  /** A planned fan-out's merge (Plan.All, Plan.Fanout), used instead of Codec.merge. */
  mergeWith: ((replies: Split, out: ByteWriter) => Uint8Array | null) | null = null;

  constructor(
    readonly route: Route,
    readonly bytes: Uint8Array,
    readonly nkeys: number,
    readonly keys: Int32Array,
    readonly nfrags: number,
  ) {
    this.pending = nfrags;
    this.fragBuf = new Array<Uint8Array>(nfrags);
    this.fragPos = new Int32Array(2 * nfrags);
  }

  /** Fragment f's reply is buf[start, end); true when it was the last one missing. */
  fill(f: number, buf: Uint8Array, start: number, end: number): boolean {
    this.fragBuf[f] = buf;
    this.fragPos[2 * f] = start;
    this.fragPos[2 * f + 1] = end;
    return --this.pending === 0;
  }

  /** Fragment f got a proxy-made error; true when it was the last one missing. A request sent
   *  to every server (Route.All) is merged from the replies there are (fragment f's is empty),
   *  and fails only when every server failed. */
  failed(reason: string, f: number): boolean {
    if (this.route !== Route.All) this.error ??= reason;
    else if (++this.failures === this.nfrags) this.error = reason;
    else {
      this.fragBuf[f] = NO_REPLY;
      this.fragPos[2 * f] = this.fragPos[2 * f + 1] = 0;
    }
    return --this.pending === 0;
  }
}

/** The grouping of a split request's keys by server: input and result of planSplit, reused by
 *  every split of a pool (as Req is by every parse), valid until the next planSplit. */
export class SplitPlan {
  /** Input: the server of key i, for i in [0, n). */
  keyServer = new Int32Array(64);
  /** Fragment f goes to server fragServer[f]. */
  readonly fragServer: Int32Array;
  /** The keys grouped by fragment, each group in key order: fragment f's keys are
   *  order[fragStart[f], fragEnd(f)). */
  order = new Int32Array(64);
  readonly fragStart: Int32Array;
  /** Keys planned last. */
  private n = 0;
  private nfrags = 0;
  /** Server -> its fragment, -1 for none: all -1 between plans (reset entry by entry;
   *  TypedArray#fill is a native call that costs more than a small split's loops). */
  private readonly fragOf: Int32Array;

  /** For a pool of `servers` servers. */
  constructor(servers: number) {
    this.fragServer = new Int32Array(servers);
    this.fragStart = new Int32Array(servers);
    this.fragOf = new Int32Array(servers).fill(-1);
  }

  /** Room for n keys (keyServer may be replaced: fill it after this). */
  reserve(n: number): void {
    if (this.keyServer.length >= n) return;
    this.keyServer = new Int32Array(n * 2);
    this.order = new Int32Array(n * 2);
  }

  /** Where fragment f's keys end in `order`. */
  fragEnd(f: number): number {
    return f + 1 < this.nfrags ? this.fragStart[f + 1]! : this.n;
  }

  /** Group keys [0, n) by keyServer into fragments, numbered in the order of their first key;
   *  key i's fragment is written to keys[3i + 2] (Split.keys). Returns the number of fragments. */
  plan(n: number, keys: Int32Array): number {
    const { keyServer, fragOf, fragServer, fragStart, order } = this;
    let nfrags = 0;
    for (let i = 0; i < n; i++) {
      const s = keyServer[i]!;
      let f = fragOf[s]!;
      if (f < 0) {
        f = fragOf[s] = nfrags++;
        fragServer[f] = s;
      }
      keys[3 * i + 2] = f;
    }
    for (let f = 0; f < nfrags; f++) fragOf[fragServer[f]!] = -1;
    // Group the keys by fragment in one pass (a counting sort; keys keep their order). Counts,
    // then their running sums (each fragment's end), then each key placed from the end:
    // fragStart[f] ends as the start of fragment f's keys in `order`.
    for (let f = 0; f < nfrags; f++) fragStart[f] = 0;
    for (let i = 0; i < n; i++) fragStart[keys[3 * i + 2]!]!++;
    for (let f = 1; f < nfrags; f++) fragStart[f]! += fragStart[f - 1]!;
    for (let i = n - 1; i >= 0; i--) order[--fragStart[keys[3 * i + 2]!]!] = i;
    this.n = n;
    this.nfrags = nfrags;
    return nfrags;
  }
}
