// Split retrieval requests (get/gets/gat/gats) into one request per server and merge the
// replies into the one memcached itself would give: the hits in the request's key order, END.

import type { Req, Split } from "../codec.ts";
import { equalBytes, type ByteWriter } from "../../lib/bytes.ts";
import { classifyLine, lengthAfterKey, Line, valueKey, valueLength } from "./response.ts";
import { findLF, lineContentEnd, SP, startsWith, tokenEnd } from "./scan.ts";

/** `<cmd> [<exptime>] <key>...` with the request's command (and gat's exptime) and the keys
 *  order[from, from + n). */
export function buildFragment(buf: Uint8Array, req: Req, order: Int32Array, from: number, n: number, w: ByteWriter): void {
  // Every token before the first key: the command name, and gat/gats' exptime.
  const firstKeyArg = req.keyArg[0]!;
  for (let i = 0; i < firstKeyArg; i++) {
    w.bytes(buf, req.argStart[i]!, req.argEnd[i]!);
    w.byte(SP);
  }
  for (let j = from; j < from + n; j++) {
    if (j > from) w.byte(SP);
    const k = order[j]!;
    w.bytes(buf, req.keyStart(k), req.keyEnd(k));
  }
  w.crlf();
}

const END = new TextEncoder().encode("END\r\n");
const VALUE = new TextEncoder().encode("VALUE ");
/** Per fragment: where its next unconsumed item starts. */
let cursors = new Int32Array(16);

/** Each fragment lists its hits in its own key order and omits misses, so one cursor per
 *  fragment, advanced only when its next VALUE names the key being placed, yields the hits in
 *  the original order (duplicate keys included, as memcached repeats them). */
export function merge(split: Split, out: ByteWriter): Uint8Array | null {
  const { fragBuf, fragPos, nfrags, bytes, keys, nkeys } = split;
  if (cursors.length < nfrags) cursors = new Int32Array(nfrags * 2);
  for (let f = 0; f < nfrags; f++) cursors[f] = fragPos[2 * f]!;
  const mark = out.size;
  for (let i = 0; i < nkeys; i++) {
    const f = keys[3 * i + 2]!;
    const frag = fragBuf[f]!;
    const at = cursors[f]!;
    const itemEnd = valueFor(frag, at, fragPos[2 * f + 1]!, bytes, keys[3 * i]!, keys[3 * i + 1]!);
    if (itemEnd < 0) continue;
    out.bytes(frag, at, itemEnd);
    cursors[f] = itemEnd;
  }
  // A fragment that failed ends in an error line instead of END: that error is the reply.
  for (let f = 0; f < nfrags; f++) {
    const end = fragPos[2 * f + 1]!;
    const error = errorLineFrom(fragBuf[f]!, cursors[f]!, end);
    if (error >= 0) {
      out.truncate(mark);
      return fragBuf[f]!.subarray(error, end);
    }
  }
  out.bytes(END);
  return null;
}

/** End of the VALUE item at frag[at] (before `end`) if it is for key bytes[keyStart, keyEnd),
 *  else -1. The fragment already passed parseResponse, so its items are well formed. */
function valueFor(frag: Uint8Array, at: number, end: number, bytes: Uint8Array, keyStart: number, keyEnd: number): number {
  if (!startsWith(frag, at, end, VALUE)) return -1;
  const key = valueKey(frag, at, end);
  const afterKey = tokenEnd(frag, key, end);
  if (!equalBytes(frag, key, afterKey, bytes, keyStart, keyEnd)) return -1;
  const lf = findLF(frag, afterKey, end);
  return lf + 1 + lengthAfterKey(frag, afterKey, lineContentEnd(frag, at, lf)) + 2;
}

/** Start of the error line that ends the fragment frag[.., end) (after any items left at
 *  `at`), or -1. */
function errorLineFrom(frag: Uint8Array, at: number, end: number): number {
  if (startsWith(frag, at, end, END)) return -1;
  for (;;) {
    const lf = findLF(frag, at, end);
    if (lf < 0) return -1;
    const lineEnd = lineContentEnd(frag, at, lf);
    const kind = classifyLine(frag, at, lineEnd);
    if (kind === Line.Error) return at;
    if (kind !== Line.Value) return -1;
    at = lf + 1 + valueLength(frag, at, lineEnd) + 2;
  }
}
