// Split requests as the core builds them (core/pool.ts split), for codec tests and benchmarks:
// the Split handed to Codec.merge, fragment key lists, and merge results as one buffer.

import { ByteWriter } from "../../src/core/bytes.ts";
import type { Codec, Req, Route, Split } from "../../src/proto/codec.ts";

/** The keys of fragment f, in request order (the core's `order[from, from + n)`). */
export function fragmentKeys(keyFrag: ArrayLike<number>, f: number): Int32Array {
  return Int32Array.from(Array.from(keyFrag).flatMap((g, i) => (g === f ? [i] : [])));
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

/** The Split for `req` (parsed from `bytes`) whose key i went to fragment keyFrag[i], with
 *  fragment f's reply frags[f]. */
export function splitOf(route: Route, bytes: Uint8Array, req: Req, keyFrag: ArrayLike<number>, frags: readonly Uint8Array[]): Split {
  const n = req.nkeys;
  const keys = new Int32Array(3 * n);
  for (let i = 0; i < n; i++) {
    keys[3 * i] = req.keyStart(i);
    keys[3 * i + 1] = req.keyEnd(i);
    keys[3 * i + 2] = keyFrag[i]!;
  }
  return { route, bytes, nkeys: n, keys, ...placed(frags) };
}

/** The same split with other fragment replies. */
export const withReplies = (split: Split, frags: readonly Uint8Array[]): Split => ({ ...split, ...placed(frags) });

const EARLIER = new TextEncoder().encode("+earlier reply\r\n");

/** The client's reply from Codec.merge, as the core would send it. Merging appends to a writer
 *  that already holds an earlier reply, which must stay as it was whatever merge does. */
export function mergeReply(codec: Codec, split: Split): Uint8Array {
  const w = new ByteWriter(16);
  w.bytes(EARLIER);
  const own = codec.merge(split, w);
  const all = w.take();
  for (let i = 0; i < EARLIER.length; i++) if (all[i] !== EARLIER[i]) throw new Error("merge changed earlier output");
  if (own !== null && all.length !== EARLIER.length) throw new Error("merge returned a reply and also appended one");
  return own ?? all.subarray(EARLIER.length);
}
