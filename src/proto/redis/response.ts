// The response parser: one complete reply at buf[pos, end), RESP2 or RESP3, of any type, nested
// to any depth. Iterative: instead of recursing into aggregates it counts the values still to
// read (an array or set of N adds N, a map N pairs, an attribute N pairs before the value it
// annotates), so depth costs nothing. RESP3's streamed values (`$?`, `*?`, `%?`, `~?`, `>?`,
// which redis itself never sends) open a frame whose parts are read until their terminator
// (`;0` or `.`). On incomplete input `need` is a lower bound of the reply's size from `pos`
// (every value not seen yet counts as 3 bytes, the smallest one; see MAX_UNSEEN). The data of a
// bulk, verbatim or blob error string that has not fully arrived ends an opaque prefix
// (Rsp.opaque) when no streamed value is open; `next` then counts what is left: its CRLF, then
// the values still to read.

import { fatal, needMore, type Rsp } from "../codec.ts";
import {
  BANG,
  COLON,
  COMMA,
  CR,
  DOLLAR,
  DOT,
  EQUALS,
  GREATER,
  HASH,
  LF,
  MAX_BULK,
  MAX_COUNT,
  MAX_UNSEEN,
  MINUS,
  NUMBER_INCOMPLETE,
  NUMBER_INVALID,
  numberValue,
  PAREN,
  PERCENT,
  PIPE,
  PLUS,
  QUESTION,
  readNumber,
  SEMICOLON,
  STAR,
  TILDE,
  UNDERSCORE,
} from "./resp.ts";

/** The smallest value, `+\r\n` or `_\r\n`. */
const MIN_VALUE = 3;

/** Kinds of open streamed values (the frame stack's second slot). */
const STREAMED_STRING = 0;
const STREAMED_AGGREGATE = 1;

export function parseResponse(buf: Uint8Array, pos: number, end: number, rsp: Rsp): number {
  const resume = rsp.resume;
  rsp.reset(pos);
  let p = pos;
  let pending = 1; // values still to read in the innermost frame, the one at p included
  if (resume !== 0) {
    // After the streamed data of a bulk string: its CRLF, then the values that followed it.
    if (p + 2 > end) return needMore(rsp, pos, p + 2 + unseen(resume - 1));
    if (buf[p] !== CR || buf[p + 1] !== LF) return fatal(rsp, "bulk data not followed by CRLF");
    p += 2;
    pending = resume - 1;
  }
  // Open streamed values, innermost last, two slots each: the values pending after it in the
  // enclosing frame, and its kind. Allocated only when a reply has one.
  let frames: number[] | null = null;
  while (pending > 0 || (frames !== null && frames.length > 0)) {
    if (p >= end) return needMore(rsp, pos, p + MIN_VALUE + unseen(pending - 1));
    const type = buf[p]!;
    if (pending === 0) {
      // Between the parts of a streamed value: a part, or the value's end.
      const f = frames!;
      if (f[f.length - 1] === STREAMED_STRING) {
        if (type !== SEMICOLON) return fatal(rsp, "streamed string part without ';'");
        const next = readNumber(buf, p + 1, end);
        if (next === NUMBER_INCOMPLETE) return needMore(rsp, pos, Math.max(end + 1, p + 4));
        const length = next === NUMBER_INVALID ? -1 : numberValue(buf, p + 1);
        if (length < 0 || length > MAX_BULK) return fatal(rsp, "invalid streamed string part length");
        p = next;
        if (length === 0) {
          f.pop();
          pending = f.pop()!;
          continue;
        }
        const stop = p + length;
        if (stop + 2 > end) return needMore(rsp, pos, stop + 2 + MIN_VALUE);
        if (buf[stop] !== CR || buf[stop + 1] !== LF) return fatal(rsp, "streamed string part not followed by CRLF");
        p = stop + 2;
        continue;
      }
      if (type === DOT) {
        if (p + 3 > end) return needMore(rsp, pos, p + 3);
        if (buf[p + 1] !== CR || buf[p + 2] !== LF) return fatal(rsp, "invalid end of a streamed aggregate");
        p += 3;
        f.pop();
        pending = f.pop()!;
        continue;
      }
      pending = 1; // the next element
    }
    switch (type) {
      case PLUS:
      case MINUS:
      case COMMA:
      case PAREN: {
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
        break;
      }
      case UNDERSCORE:
        if (p + 3 > end) return needMore(rsp, pos, p + 3 + unseen(pending - 1));
        if (buf[p + 1] !== CR || buf[p + 2] !== LF) return fatal(rsp, "invalid null");
        p += 3;
        break;
      case HASH: {
        if (p + 4 > end) return needMore(rsp, pos, p + 4 + unseen(pending - 1));
        const b = buf[p + 1];
        if ((b !== 116 && b !== 102) || buf[p + 2] !== CR || buf[p + 3] !== LF) return fatal(rsp, "invalid boolean");
        p += 4;
        break;
      }
      case COLON: {
        const next = readNumber(buf, p + 1, end);
        if (next === NUMBER_INCOMPLETE) return needMore(rsp, pos, Math.max(end + 1, p + 4) + unseen(pending - 1));
        if (next === NUMBER_INVALID) return fatal(rsp, "invalid integer");
        p = next;
        break;
      }
      case DOLLAR:
      case EQUALS:
      case BANG: {
        if (type === DOLLAR && buf[p + 1] === QUESTION) {
          const next = streamStart(buf, p, end);
          if (next === NEED_LINE) return needMore(rsp, pos, Math.max(end + 1, p + 4) + unseen(pending - 1));
          if (next < 0) return fatal(rsp, "invalid streamed string");
          frames = open(frames, pending - 1, STREAMED_STRING);
          pending = 0;
          p = next;
          continue;
        }
        const next = readNumber(buf, p + 1, end);
        if (next === NUMBER_INCOMPLETE) return needMore(rsp, pos, Math.max(end + 1, p + 5) + unseen(pending - 1));
        const least = type === DOLLAR ? -1 : 0; // only a bulk string can be null
        const length = next === NUMBER_INVALID ? -2 : numberValue(buf, p + 1);
        if (length < least || length > MAX_BULK) return fatal(rsp, "invalid bulk length");
        if (type === BANG && p === pos) rsp.isError = true;
        p = next;
        if (length >= 0) {
          const stop = p + length;
          if (stop + 2 > end) {
            if (frames === null || frames.length === 0) {
              rsp.opaque = stop - pos;
              rsp.next = pending; // this bulk's CRLF, then pending - 1 values
            }
            return needMore(rsp, pos, stop + 2 + unseen(pending - 1));
          }
          if (buf[stop] !== CR || buf[stop + 1] !== LF) return fatal(rsp, "bulk data not followed by CRLF");
          p = stop + 2;
        }
        break;
      }
      case STAR:
      case TILDE:
      case GREATER:
      case PERCENT:
      case PIPE: {
        if (buf[p + 1] === QUESTION && type !== PIPE) {
          const next = streamStart(buf, p, end);
          if (next === NEED_LINE) return needMore(rsp, pos, Math.max(end + 1, p + 4) + unseen(pending - 1));
          if (next < 0) return fatal(rsp, "invalid streamed aggregate");
          frames = open(frames, pending - 1, STREAMED_AGGREGATE);
          pending = 0;
          p = next;
          continue;
        }
        const next = readNumber(buf, p + 1, end);
        if (next === NUMBER_INCOMPLETE) return needMore(rsp, pos, Math.max(end + 1, p + 4) + unseen(pending - 1));
        const least = type === STAR ? -1 : 0; // only an array can be null
        const count = next === NUMBER_INVALID ? -2 : numberValue(buf, p + 1);
        if (count < least || count > MAX_COUNT) return fatal(rsp, "invalid aggregate length");
        p = next;
        const pairs = type === PERCENT || type === PIPE;
        if (count > 0) pending += pairs ? 2 * count : count;
        // An attribute is not a value of its own: the value it describes follows its pairs.
        if (type === PIPE) continue;
        break;
      }
      default:
        return fatal(rsp, `unknown reply type byte ${type}`);
    }
    pending--;
  }
  rsp.end = p;
  return p;
}

/** The least size of `count` values not seen yet (see MAX_UNSEEN). */
function unseen(count: number): number {
  return count > 0 ? Math.min(count * MIN_VALUE, MAX_UNSEEN) : 0;
}

const NEED_LINE = -1;

/** The position after a streamed value's header `<type>?\r\n` at buf[p], NEED_LINE, or -2 when it
 *  is not one. */
function streamStart(buf: Uint8Array, p: number, end: number): number {
  if (p + 4 > end) return NEED_LINE;
  return buf[p + 2] === CR && buf[p + 3] === LF ? p + 4 : -2;
}

/** Pushes a streamed value's frame: what is pending after it, and its kind. */
function open(frames: number[] | null, after: number, kind: number): number[] {
  const f = frames ?? [];
  f.push(after, kind);
  return f;
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
