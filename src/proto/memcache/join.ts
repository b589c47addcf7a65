// Joined retrievals (Codec.join): consecutive get (or gets) requests to one server travel as one
// command line, `get a b` + `get c` as `get a b c`. memcached answers every retrieval command
// with a send of its own, so a line per request costs it a syscall per request; a joined line
// costs one. It answers a line's keys in order, hits only, then one END: each request's part is
// its hits, found by matching the item keys against the request's keys in order.

import type { LineKeySet, Req, Rsp } from "../codec.ts";
import type { ByteWriter } from "../../core/bytes.ts";
import { CR, LF, SP } from "./scan.ts";

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

/** The keys on one command line, to keep a key from going onto a line twice for two requests:
 *  memcached would answer both in one place of the reply, and which of the two found the item
 *  could not be told (with a set landing in between, an earlier request of the same client
 *  could take the hit and a later one see a miss). A 4096-bit set of key hashes (a line holds
 *  up to a few hundred keys); a hit is checked against the line itself. */
export class LineKeys implements LineKeySet {
  private readonly bits = new Int32Array(128);

  /** Start over with the keys of the command line line[start, end) (after its command). */
  reset(line: Uint8Array, start: number, end: number): void {
    const bits = this.bits;
    for (let w = 0; w < 128; w++) bits[w] = 0;
    let i = tokenAfter(line, start, end); // the first key
    while (i < end && line[i] !== CR && line[i] !== LF) {
      const key = i;
      while (i < end && line[i] !== SP && line[i] !== CR && line[i] !== LF) i++;
      this.setBit(keyHash(line, key, i));
      while (i < end && line[i] === SP) i++;
    }
  }

  /** Add key[start, end) unless it is on the command line line[lineStart, lineEnd) already
   *  (false then). */
  add(key: Uint8Array, start: number, end: number, line: Uint8Array, lineStart: number, lineEnd: number): boolean {
    const h = keyHash(key, start, end);
    if ((this.bits[h >>> 5]! & (1 << (h & 31))) !== 0 && lineHasKey(line, lineStart, lineEnd, key, start, end)) return false;
    this.setBit(h);
    return true;
  }

  private setBit(h: number): void {
    this.bits[h >>> 5]! |= 1 << (h & 31);
  }
}

/** FNV-1a of the key, folded to 12 bits. */
function keyHash(buf: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return (h ^ (h >>> 12) ^ (h >>> 24)) & 4095;
}

/** Where the token after the one at line[start] (past spaces) starts. */
function tokenAfter(line: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end && line[i] === SP) i++;
  while (i < end && line[i] !== SP) i++;
  while (i < end && line[i] === SP) i++;
  return i;
}

function lineHasKey(line: Uint8Array, start: number, end: number, key: Uint8Array, keyStart: number, keyEnd: number): boolean {
  let i = tokenAfter(line, start, end);
  while (i < end && line[i] !== CR && line[i] !== LF) {
    const k = i;
    while (i < end && line[i] !== SP && line[i] !== CR && line[i] !== LF) i++;
    if (equalBytes(line, k, i, key, keyStart, keyEnd)) return true;
    while (i < end && line[i] === SP) i++;
  }
  return false;
}
