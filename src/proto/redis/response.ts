// The response parser: one complete RESP2 reply at buf[pos, end), of any type, arrays nested to
// any depth. Iterative: instead of recursing into arrays it counts the values still to read
// (an array of N adds N), so depth costs nothing. On incomplete input `need` is a lower bound of
// the reply's size from `pos` (every value not seen yet counts as 3 bytes, the smallest one; see
// MAX_UNSEEN). The data of a bulk string that has not fully arrived ends an opaque prefix
// (Rsp.opaque); `next` then counts what is left: its CRLF, then the values still to read.

import { fatal, needMore, type Rsp } from "../codec.ts";
import {
  COLON,
  CR,
  DOLLAR,
  LF,
  MAX_BULK,
  MAX_COUNT,
  MAX_UNSEEN,
  MINUS,
  NUMBER_INCOMPLETE,
  NUMBER_INVALID,
  numberValue,
  PLUS,
  readNumber,
  STAR,
} from "./resp.ts";

/** The smallest value, `+\r\n`. */
const MIN_VALUE = 3;

export function parseResponse(buf: Uint8Array, pos: number, end: number, rsp: Rsp): number {
  const resume = rsp.resume;
  rsp.reset(pos);
  let p = pos;
  let pending = 1; // values still to read, the one at p included
  if (resume !== 0) {
    // After the streamed data of a bulk string: its CRLF, then the values that followed it.
    if (p + 2 > end) return needMore(rsp, pos, p + 2 + unseen(resume - 1));
    if (buf[p] !== CR || buf[p + 1] !== LF) return fatal(rsp, "bulk data not followed by CRLF");
    p += 2;
    pending = resume - 1;
  }
  while (pending > 0) {
    if (p >= end) return needMore(rsp, pos, p + MIN_VALUE + unseen(pending - 1));
    const type = buf[p]!;
    if (type === PLUS || type === MINUS) {
      let q = p + 1;
      const limit = end - q > MAX_BULK ? q + MAX_BULK : end;
      while (q < limit && buf[q] !== CR) q++;
      if (q === limit && limit !== end) return fatal(rsp, "line too long");
      if (q + 1 >= end) return needMore(rsp, pos, Math.max(q + 2, p + MIN_VALUE) + unseen(pending - 1));
      if (buf[q + 1] !== LF) return fatal(rsp, "CR without LF in a line");
      if (type === MINUS && p === pos) {
        rsp.isError = true;
        rsp.failure = isFailure(buf, p + 1, q);
        rsp.demoted = startsWithWord(buf, p + 1, q, READONLY);
      }
      p = q + 2;
    } else if (type === COLON) {
      const next = readNumber(buf, p + 1, end);
      if (next === NUMBER_INCOMPLETE) return needMore(rsp, pos, Math.max(end + 1, p + 4) + unseen(pending - 1));
      if (next === NUMBER_INVALID) return fatal(rsp, "invalid integer");
      p = next;
    } else if (type === DOLLAR) {
      const next = readNumber(buf, p + 1, end);
      if (next === NUMBER_INCOMPLETE) return needMore(rsp, pos, Math.max(end + 1, p + 5) + unseen(pending - 1));
      const length = next === NUMBER_INVALID ? -2 : numberValue(buf, p + 1);
      if (length < -1 || length > MAX_BULK) return fatal(rsp, "invalid bulk length");
      p = next;
      if (length >= 0) {
        const stop = p + length;
        if (stop + 2 > end) {
          rsp.opaque = stop - pos;
          rsp.next = pending; // this bulk's CRLF, then pending - 1 values
          return needMore(rsp, pos, stop + 2 + unseen(pending - 1));
        }
        if (buf[stop] !== CR || buf[stop + 1] !== LF) return fatal(rsp, "bulk data not followed by CRLF");
        p = stop + 2;
      }
    } else if (type === STAR) {
      const next = readNumber(buf, p + 1, end);
      if (next === NUMBER_INCOMPLETE) return needMore(rsp, pos, Math.max(end + 1, p + 4) + unseen(pending - 1));
      const count = next === NUMBER_INVALID ? -2 : numberValue(buf, p + 1);
      if (count < -1 || count > MAX_COUNT) return fatal(rsp, "invalid array length");
      p = next;
      if (count > 0) pending += count;
    } else {
      return fatal(rsp, `unknown reply type byte ${type}`);
    }
    pending--;
  }
  rsp.end = p;
  return p;
}

/** The least size of `count` values not seen yet (see MAX_UNSEEN). */
function unseen(count: number): number {
  return Math.min(count * MIN_VALUE, MAX_UNSEEN);
}


// Replies that say the server itself is failing (twemproxy counts them toward ejection):
// the error's first word is OOM, BUSY or LOADING (not BUSYKEY).
const FAILURES = ["OOM", "BUSY", "LOADING"].map((word) => new TextEncoder().encode(word));

/** A replica refusing a write: the server was a master and has been demoted (a failover). */
const READONLY = new TextEncoder().encode("READONLY");

function isFailure(buf: Uint8Array, start: number, end: number): boolean {
  for (const word of FAILURES) if (startsWithWord(buf, start, end, word)) return true;
  return false;
}

/** The line buf[start, end) is `word`, or starts with `word` and a space. */
function startsWithWord(buf: Uint8Array, start: number, end: number, word: Uint8Array): boolean {
  const stop = start + word.length;
  if (stop > end || (stop < end && buf[stop] !== 32)) return false;
  let i = 0;
  while (i < word.length && buf[start + i] === word[i]) i++;
  return i === word.length;
}
