// Joined retrievals (pool key coalesce_gets): consecutive get (or gets) requests to one server
// travel as one command line, `get a b` + `get c` as `get a b c`. memcached answers every
// retrieval command with a send of its own, so a line per request costs it a syscall per
// request; a joined line costs one. It answers a line's keys in order, hits only, then one END:
// each request's part is its hits, found by matching the item keys against the request's keys in
// order. The helpers here serve upstream.ts (writing lines) and response.ts (dividing replies).

import type { Req, Rsp } from "../codec.ts";
import { equalBytes, type ByteWriter } from "../../lib/bytes.ts";
import { CR, LF, skipSpaces, SP, tokenEnd } from "./scan.ts";

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

/** The length of the line end of the command line line[start, end) when the line may take
 *  more keys, else 0: a whole line (it ends in LF) without leading spaces (memcached drops a
 *  connection whose line grows past 2 KB after more than 100 of them). */
export function openLineEnd(line: Uint8Array, start: number, end: number): number {
  if (end - start < 2 || line[end - 1] !== LF || line[start] === SP) return 0;
  return line[end - 2] === CR ? 2 : 1;
}

/** Is the item key buf[start, end) the next of rsp's keys that has an item (misses have none,
 *  so keys are skipped until one matches)? Advances rsp.keyCursor past the key it matched. */
export function ownsItem(rsp: Rsp, buf: Uint8Array, start: number, end: number): boolean {
  const keys = rsp.keys;
  if (keys === null) {
    const at = findKey(rsp.keyBuf, rsp.keyStart + rsp.keyCursor, rsp.keyEnd, buf, start, end);
    if (at < 0) return false;
    rsp.keyCursor = at - rsp.keyStart;
    return true;
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

/** Where the first of the space-separated tokens of line[i, end) that equals key[keyStart,
 *  keyEnd) ends, or -1. */
function findKey(line: Uint8Array, i: number, end: number, key: Uint8Array, keyStart: number, keyEnd: number): number {
  for (i = skipSpaces(line, i, end); i < end; i = skipSpaces(line, i, end)) {
    const token = i;
    i = tokenEnd(line, i, end);
    if (equalBytes(line, token, i, key, keyStart, keyEnd)) return i;
  }
  return -1;
}

/** The keys on one command line, to keep a key from going onto a line twice for two requests:
 *  memcached would answer both in one place of the reply, and which of the two found the item
 *  could not be told (with a set landing in between, an earlier request of the same client
 *  could take the hit and a later one see a miss). A 4096-bit set of key hashes (a line holds
 *  up to a few hundred keys); a hit is checked against the line itself. Lines are given
 *  without their line end. */
export class LineKeys {
  private readonly bits = new Int32Array(128);

  /** Start over with the keys of the command line line[start, end) (after its command). */
  reset(line: Uint8Array, start: number, end: number): void {
    const bits = this.bits;
    for (let w = 0; w < 128; w++) bits[w] = 0;
    for (let i = firstKey(line, start, end); i < end; i = skipSpaces(line, i, end)) {
      const key = i;
      i = tokenEnd(line, i, end);
      this.setBit(keyHash(line, key, i));
    }
  }

  /** Add key[start, end) unless it is on the command line line[lineStart, lineEnd) already
   *  (false then). */
  add(key: Uint8Array, start: number, end: number, line: Uint8Array, lineStart: number, lineEnd: number): boolean {
    const h = keyHash(key, start, end);
    if ((this.bits[h >>> 5]! & (1 << (h & 31))) !== 0 && findKey(line, firstKey(line, lineStart, lineEnd), lineEnd, key, start, end) >= 0) {
      return false;
    }
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

/** Where the first key of the command line line[start, end) starts (past the command). */
function firstKey(line: Uint8Array, start: number, end: number): number {
  return skipSpaces(line, tokenEnd(line, skipSpaces(line, start, end), end), end);
}
