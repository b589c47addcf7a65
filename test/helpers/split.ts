// Split requests as the core builds them, for codec tests and benchmarks: the keys grouped by
// the core's own planner (core/split.ts), the Split handed to Codec.merge, and merge results as
// one buffer.

import { SplitPlan } from "../../src/core/split.ts";
import { ByteWriter } from "../../src/lib/bytes.ts";
import type { Codec, Outbound, Req, Route, Session, Split } from "../../src/proto/codec.ts";

/** Requests as a server connection's queue holds them, oldest first, request i with values[i]
 *  values in its reply (Outbound.values) and each after the first joined to the one before it
 *  (coalesce_gets). One entry, 0 values: a request written alone. */
export function outbounds(values: readonly number[]): Outbound[] {
  const queue: Outbound[] = [];
  for (let i = values.length - 1; i >= 0; i--) {
    const snext = queue[0] ?? null;
    queue.unshift({ bytes: 0, joined: i > 0, snext, keyBuf: null, keys: null, keyGroup: 0, keyStart: 0, keyEnd: 0, values: values[i]! });
  }
  return queue;
}

/** A split request as the core plans it, before any fragment replied. */
export interface Planned {
  readonly split: Split;
  /** Fragment f carries req's keys fragKeys[f] (the core's `order[from, from + n)`). */
  readonly fragKeys: Int32Array[];
  /** Fragment f goes to "server" fragServer[f] (fragments are numbered in order of first use). */
  readonly fragServer: number[];
}

/** The split of `req` (parsed from `bytes`) whose key i goes to server keyServer[i] (any
 *  non-negative numbers), planned by the core's SplitPlan. */
export function planned(route: Route, bytes: Uint8Array, req: Req, keyServer: ArrayLike<number>): Planned {
  const n = req.nkeys;
  let servers = 0;
  for (let i = 0; i < n; i++) servers = Math.max(servers, keyServer[i]! + 1);
  const plan = new SplitPlan(servers);
  plan.reserve(n);
  for (let i = 0; i < n; i++) plan.keyServer[i] = keyServer[i]!;
  const keys = new Int32Array(3 * n);
  for (let i = 0; i < n; i++) {
    keys[3 * i] = req.keyStart(i);
    keys[3 * i + 1] = req.keyEnd(i);
  }
  const nfrags = plan.plan(n, keys);
  const fragKeys = Array.from({ length: nfrags }, (_, f) => plan.order.slice(plan.fragStart[f]!, plan.fragEnd(f)));
  const fragServer = Array.from(plan.fragServer.subarray(0, nfrags));
  return { split: { route, bytes, nkeys: n, keys, ...placed([]) }, fragKeys, fragServer };
}

/** Bytes that must never show up in a merged reply: fragment replies sit between them, as they
 *  sit inside larger read buffers in the proxy. */
const PAD_BEFORE = new TextEncoder().encode("<pad>");
const PAD_AFTER = new TextEncoder().encode("</pad>");

/** Fragment replies as the core records them: each at an offset inside a larger buffer. */
function placed(frags: readonly Uint8Array[]): Pick<Split, "nfrags" | "fragBuf" | "fragPos"> {
  const fragPos = new Int32Array(2 * frags.length);
  const fragBuf = frags.map((reply, f) => {
    const b = new Uint8Array(PAD_BEFORE.length + reply.length + PAD_AFTER.length);
    b.set(PAD_BEFORE);
    b.set(reply, PAD_BEFORE.length);
    b.set(PAD_AFTER, PAD_BEFORE.length + reply.length);
    fragPos[2 * f] = PAD_BEFORE.length;
    fragPos[2 * f + 1] = PAD_BEFORE.length + reply.length;
    return b;
  });
  return { nfrags: frags.length, fragBuf, fragPos };
}

/** The Split for `req` (parsed from `bytes`) whose key i went to server keyServer[i], with
 *  server s's reply frags[s]. */
export function splitOf(route: Route, bytes: Uint8Array, req: Req, keyServer: ArrayLike<number>, frags: readonly Uint8Array[]): Split {
  const { split, fragServer } = planned(route, bytes, req, keyServer);
  return withReplies(split, fragServer.map((s) => frags[s]!));
}

/** The same split with fragment f's reply frags[f]. */
export const withReplies = (split: Split, frags: readonly Uint8Array[]): Split => ({ ...split, ...placed(frags) });

const EARLIER = new TextEncoder().encode("+earlier reply\r\n");

/** The client's reply from Codec.merge, as the core would send it. Merging appends to a writer
 *  that already holds an earlier reply, which must stay as it was whatever merge does. */
export function mergeReply(codec: Codec, split: Split, session: Session = {}): Uint8Array {
  const w = new ByteWriter(16);
  w.bytes(EARLIER);
  const own = codec.merge(split, w, session);
  const all = w.take();
  for (let i = 0; i < EARLIER.length; i++) if (all[i] !== EARLIER[i]) throw new Error("merge changed earlier output");
  if (own !== null && all.length !== EARLIER.length) throw new Error("merge returned a reply and also appended one");
  return own ?? all.subarray(EARLIER.length);
}
