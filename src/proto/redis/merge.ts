// The client's reply to a split request, from its fragments' replies: MGET -> the values in the
// original key order, DEL/UNLINK/TOUCH/EXISTS -> the sum, MSET -> +OK. If a fragment's reply is
// an error (`-` or RESP3's `!`), the whole request gets the first such error. The reply is built
// in the client's protocol: a fragment's null value is written as the client's null (`$-1` in
// RESP2, `_` in RESP3) whichever protocol its server connection spoke; every other value is
// copied as the server sent it.

import type { ByteWriter } from "../../lib/bytes.ts";
import { Route, Rsp, type Split } from "../codec.ts";
import { firstError } from "./pool-merge.ts";
import { errorReply, OK } from "./replies.ts";
import { writeNull, type Proto } from "./reply.ts";
import { COLON, DOLLAR, MINUS, numberValue, readNumber, STAR, UNDERSCORE } from "./resp.ts";
import { parseResponse } from "./response.ts";

const UNEXPECTED = errorReply("unexpected reply from a server to a split request");

const rsp = new Rsp();
/** Per fragment: how many keys it carried, and where its next value starts. */
let carried = new Int32Array(64);
let cursor = new Int32Array(64);

/** The merged reply for a client speaking `proto`. */
export function merge(split: Split, out: ByteWriter, proto: Proto = 2): Uint8Array | null {
  const error = firstError(split);
  if (error !== null) return error;
  const { fragBuf, fragPos, nfrags } = split;
  switch (split.route) {
    case Route.Get:
      return mergeValues(split, out, proto);
    case Route.Sum:
      return mergeSum(split, out);
    case Route.Set:
      for (let f = 0; f < nfrags; f++) if (!isOk(fragBuf[f]!, fragPos[2 * f]!, fragPos[2 * f + 1]!)) return UNEXPECTED;
      return OK;
    default:
      return UNEXPECTED;
  }
}

function mergeValues(split: Split, out: ByteWriter, proto: Proto): Uint8Array | null {
  const { fragBuf, fragPos, nfrags, keys, nkeys } = split;
  if (cursor.length < nfrags) {
    cursor = new Int32Array(nfrags * 2);
    carried = new Int32Array(nfrags * 2);
  }
  for (let f = 0; f < nfrags; f++) carried[f] = 0;
  for (let i = 0; i < nkeys; i++) carried[keys[3 * i + 2]!]!++;
  for (let f = 0; f < nfrags; f++) {
    const reply = fragBuf[f]!;
    const start = fragPos[2 * f]!;
    if (reply[start] !== STAR) {
      // A fragment joined with others (coalesce_gets): its values without an array header; the
      // loops below check that it has exactly one per key.
      cursor[f] = start;
      continue;
    }
    const next = readNumber(reply, start + 1, fragPos[2 * f + 1]!);
    if (next < 0 || numberValue(reply, start + 1) !== carried[f]) return UNEXPECTED;
    cursor[f] = next;
  }
  const mark = out.size;
  out.byte(STAR);
  out.int(nkeys);
  out.crlf();
  // Consecutive keys of one fragment have their values side by side in its reply: each run of
  // them is one copy, fragment run's reply[runStart, cursor[run]) (-1: none open). A null is
  // written alone, in the client's protocol.
  let run = -1;
  let runStart = 0;
  for (let i = 0; i < nkeys; i++) {
    const f = keys[3 * i + 2]!;
    const reply = fragBuf[f]!;
    const start = cursor[f]!;
    const next = valueEnd(reply, start, fragPos[2 * f + 1]!);
    if (next < 0) {
      out.truncate(mark);
      return UNEXPECTED;
    }
    const nil = isNull(reply, start);
    if (run >= 0 && (f !== run || nil)) {
      out.bytes(fragBuf[run]!, runStart, cursor[run]!);
      run = -1;
    }
    if (nil) writeNull(out, proto);
    else if (run < 0) {
      run = f;
      runStart = start;
    }
    cursor[f] = next;
  }
  if (run >= 0) out.bytes(fragBuf[run]!, runStart, cursor[run]!);
  // Every value of every fragment used exactly once.
  for (let f = 0; f < nfrags; f++) {
    if (cursor[f] !== fragPos[2 * f + 1]) {
      out.truncate(mark);
      return UNEXPECTED;
    }
  }
  return null;
}

/** The end of the value at reply[start] (before `end`): MGET's are bulk strings or nulls;
 *  anything else is parsed in full. -1 when it does not fit. The server connection parsed the
 *  whole reply already, so a bulk string's header is `$<digits>\r\n` or `$-1\r\n`: its
 *  length is read in one pass. */
function valueEnd(reply: Uint8Array, start: number, end: number): number {
  if (reply[start] !== DOLLAR) {
    const next = parseResponse(reply, start, end, rsp);
    return next >= 0 ? next : -1;
  }
  let p = start + 1;
  if (reply[p] === MINUS) return p + 4 <= end ? p + 4 : -1;
  let length = 0;
  for (let c = reply[p]! - 48; c >= 0 && c <= 9; c = reply[++p]! - 48) length = length * 10 + c;
  const stop = p + 2 + length + 2;
  return stop <= end ? stop : -1;
}

/** The value at reply[start] (complete) is a null: `$-1` or `_`. */
function isNull(reply: Uint8Array, start: number): boolean {
  const type = reply[start];
  return type === UNDERSCORE || (type === DOLLAR && reply[start + 1] === MINUS);
}

function mergeSum(split: Split, out: ByteWriter): Uint8Array | null {
  const { fragBuf, fragPos, nfrags } = split;
  let total = 0;
  for (let f = 0; f < nfrags; f++) {
    const reply = fragBuf[f]!;
    const end = fragPos[2 * f + 1]!;
    const start = fragPos[2 * f]!;
    if (reply[start] !== COLON || readNumber(reply, start + 1, end) !== end) return UNEXPECTED;
    total += numberValue(reply, start + 1);
  }
  out.byte(COLON);
  out.int(total);
  out.crlf();
  return null;
}

function isOk(reply: Uint8Array, start: number, end: number): boolean {
  if (end - start !== OK.length) return false;
  for (let i = 0; i < OK.length; i++) if (reply[start + i] !== OK[i]) return false;
  return true;
}
