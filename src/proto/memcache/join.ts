// Joined retrievals (Codec.join): consecutive get (or gets) requests to one server travel as one
// command line, `get a b` + `get c` as `get a b c`. memcached answers every retrieval command
// with a send of its own, so a line per request costs it a syscall per request; a joined line
// costs one. It answers a line's keys in order, hits only, then one END: each request's part is
// its hits, found by matching the item keys against the request's keys in order.

import type { Req, Rsp } from "../codec.ts";
import type { ByteWriter } from "../../core/bytes.ts";
import { SP } from "./scan.ts";

/** ` <key>...` and CRLF for the keys order[from, from + n) of req, onto a line without its end. */
export function appendKeys(buf: Uint8Array, req: Req, order: Int32Array, from: number, n: number, w: ByteWriter): void {
  for (let j = from; j < from + n; j++) {
    w.byte(SP);
    const k = order[j]!;
    w.bytes(buf, req.keyStart(k), req.keyEnd(k));
  }
  w.crlf();
}

/** ` <key>...` and CRLF for all of req's keys, copied as they stand (they are separated by
 *  spaces only). */
export function appendAllKeys(buf: Uint8Array, req: Req, w: ByteWriter): void {
  w.byte(SP);
  w.bytes(buf, req.keyStart(0), req.keyEnd(req.nkeys - 1));
  w.crlf();
}

/** Is the item key buf[start, end) the next of rsp's keys that has an item (misses have none,
 *  so keys are skipped until one matches)? Advances rsp.keyCursor past the key it matched. */
export function ownsItem(rsp: Rsp, buf: Uint8Array, start: number, end: number): boolean {
  const keys = rsp.keys;
  if (keys === null) {
    const line = rsp.keyBuf;
    const lineEnd = rsp.keyEnd;
    let i = rsp.keyStart + rsp.keyCursor;
    while (i < lineEnd) {
      while (i < lineEnd && line[i] === SP) i++;
      const key = i;
      while (i < lineEnd && line[i] !== SP) i++;
      if (key < i && equalBytes(buf, start, end, line, key, i)) {
        rsp.keyCursor = i - rsp.keyStart;
        return true;
      }
    }
    return false;
  }
  const group = rsp.keyGroup;
  for (let i = rsp.keyCursor; 3 * i < keys.length; i++) {
    if (keys[3 * i + 2] === group && equalBytes(buf, start, end, rsp.keyBuf, keys[3 * i]!, keys[3 * i + 1]!)) {
      rsp.keyCursor = i + 1;
      return true;
    }
  }
  return false;
}

function equalBytes(a: Uint8Array, aStart: number, aEnd: number, b: Uint8Array, bStart: number, bEnd: number): boolean {
  const n = aEnd - aStart;
  if (n !== bEnd - bStart) return false;
  for (let k = 0; k < n; k++) if (a[aStart + k] !== b[bStart + k]) return false;
  return true;
}
