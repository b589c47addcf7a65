// Split retrieval requests (get/gets/gat/gats) into one request per server and merge the
// replies into the one memcached itself would give: the hits in the request's key order, END.

import type { Req, Split } from "../codec.ts";
import { ByteWriter } from "../../core/bytes.ts";
import { classifyLine, Line, valueLength } from "./response.ts";
import { findLF, LF, lineContentEnd, SP, startsWith } from "./scan.ts";

/** `<cmd> [<exptime>] <key>...` with the request's command (and gat's exptime) and the given keys. */
export function buildFragment(buf: Uint8Array, req: Req, keys: Int32Array, n: number, w: ByteWriter): void {
  // Every token before the first key: the command name, and gat/gats' exptime.
  const firstKeyArg = req.keyArg[0]!;
  for (let i = 0; i < firstKeyArg; i++) {
    w.bytes(buf, req.argStart[i]!, req.argEnd[i]!);
    w.byte(SP);
  }
  for (let j = 0; j < n; j++) {
    if (j > 0) w.byte(SP);
    const k = keys[j]!;
    w.bytes(buf, req.keyStart(k), req.keyEnd(k));
  }
  w.crlf();
}

const END = new TextEncoder().encode("END\r\n");
const VALUE = new TextEncoder().encode("VALUE ");
/** Reused for every merge; a buffer grown past MERGED_KEEP by a huge multi-get is dropped. */
let merged = new ByteWriter(4096);
const MERGED_KEEP = 1 << 20;
/** Per fragment: where its next unconsumed item starts. */
let cursors = new Int32Array(16);

/** Each fragment lists its hits in its own key order and omits misses, so one cursor per
 *  fragment, advanced only when its next VALUE names the key being placed, yields the hits in
 *  the original order (duplicate keys included, as memcached repeats them). */
export function merge(split: Split): Uint8Array {
  const { frags, bytes, argStart, argEnd, keyArg, keyFrag } = split;
  if (cursors.length < frags.length) cursors = new Int32Array(frags.length * 2);
  for (let f = 0; f < frags.length; f++) cursors[f] = 0;
  merged.reset();
  for (let i = 0; i < split.nkeys; i++) {
    const f = keyFrag[i]!;
    const frag = frags[f]!;
    const at = cursors[f]!;
    const itemEnd = valueFor(frag, at, bytes, argStart[keyArg[i]!]!, argEnd[keyArg[i]!]!);
    if (itemEnd < 0) continue;
    merged.bytes(frag, at, itemEnd);
    cursors[f] = itemEnd;
  }
  // A fragment that failed ends in an error line instead of END: that error is the reply.
  for (let f = 0; f < frags.length; f++) {
    const error = errorLineFrom(frags[f]!, cursors[f]!);
    if (error >= 0) return frags[f]!.slice(error);
  }
  merged.bytes(END);
  const reply = merged.take();
  if (merged.buf.length > MERGED_KEEP) merged = new ByteWriter(4096);
  return reply;
}

/** End of the VALUE item at frag[at] if it is for key bytes[keyStart, keyEnd), else -1. One
 *  pass over the line: the fragment already passed parseResponse, so its items are well formed. */
function valueFor(frag: Uint8Array, at: number, bytes: Uint8Array, keyStart: number, keyEnd: number): number {
  if (!startsWith(frag, at, frag.length, VALUE)) return -1;
  let i = at + VALUE.length;
  while (frag[i] === SP) i++;
  for (let k = keyStart; k < keyEnd; k++, i++) if (frag[i] !== bytes[k]) return -1;
  if (frag[i] !== SP) return -1;
  const end = frag.length;
  while (frag[i] === SP) i++;
  while (i < end && frag[i] !== SP) i++; // flags
  while (frag[i] === SP) i++;
  let length = 0;
  for (let d = frag[i]! - 0x30; d >= 0 && d <= 9; d = frag[++i]! - 0x30) length = length * 10 + d;
  while (i < end && frag[i] !== LF) i++; // the optional cas unique, CR
  return i + 1 + length + 2;
}

/** Start of the error line that ends the fragment (after any items left at `at`), or -1. */
function errorLineFrom(frag: Uint8Array, at: number): number {
  if (startsWith(frag, at, frag.length, END)) return -1;
  for (;;) {
    const lf = findLF(frag, at, frag.length);
    if (lf < 0) return -1;
    const lineEnd = lineContentEnd(frag, at, lf);
    const kind = classifyLine(frag, at, lineEnd);
    if (kind === Line.Error) return at;
    if (kind !== Line.Value) return -1;
    at = lf + 1 + valueLength(frag, at, lineEnd) + 2;
  }
}
