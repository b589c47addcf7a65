// The client's reply to a split request, from its fragments' replies: MGET -> the values in the
// original key order, DEL/UNLINK/TOUCH/EXISTS -> the sum, MSET -> +OK. If a fragment's reply is
// an error, the whole request gets the first such error.

import { ascii, ByteWriter } from "../../core/bytes.ts";
import { Route, Rsp, type Split } from "../codec.ts";
import { errorReply, OK } from "./replies.ts";
import { COLON, DOLLAR, MINUS, number, NUMBER_OK, readNumber, STAR } from "./resp.ts";
import { parseResponse } from "./response.ts";

const UNEXPECTED = errorReply("unexpected reply from a server to a split request");

const rsp = new Rsp();
/** Per fragment: how many keys it carried, and where its next value starts. */
let carried = new Int32Array(64);
let cursor = new Int32Array(64);

export function merge(split: Split): Uint8Array {
  const frags = split.frags;
  for (const reply of frags) if (reply[0] === MINUS) return reply;
  switch (split.route) {
    case Route.Get:
      return mergeValues(split);
    case Route.Sum:
      return mergeSum(frags);
    case Route.Set:
      for (const reply of frags) if (!isOk(reply)) return UNEXPECTED;
      return OK;
    default:
      return UNEXPECTED;
  }
}

function mergeValues(split: Split): Uint8Array {
  const { frags, keyFrag, nkeys } = split;
  if (cursor.length < frags.length) {
    cursor = new Int32Array(frags.length * 2);
    carried = new Int32Array(frags.length * 2);
  }
  carried.fill(0, 0, frags.length);
  for (let i = 0; i < nkeys; i++) carried[keyFrag[i]!]!++;
  for (let f = 0; f < frags.length; f++) {
    const reply = frags[f]!;
    if (reply[0] !== STAR || readNumber(reply, 1, reply.length) !== NUMBER_OK || number.value !== carried[f]) {
      return UNEXPECTED;
    }
    cursor[f] = number.next;
  }
  // The values of all fragments, each used once: the merged reply's size is known up front.
  let size = String(nkeys).length + 3;
  for (let f = 0; f < frags.length; f++) size += frags[f]!.length - cursor[f]!;
  const merged = new ByteWriter(size);
  merged.byte(STAR);
  merged.int(nkeys);
  merged.crlf();
  for (let i = 0; i < nkeys; i++) {
    const f = keyFrag[i]!;
    const reply = frags[f]!;
    const start = cursor[f]!;
    const next = valueEnd(reply, start);
    if (next < 0) return UNEXPECTED;
    merged.bytes(reply, start, next);
    cursor[f] = next;
  }
  return merged.len === size ? merged.buf : UNEXPECTED;
}

/** The end of the value at reply[start]: MGET's are bulk strings or nulls; anything else is
 *  parsed in full. */
function valueEnd(reply: Uint8Array, start: number): number {
  if (reply[start] !== DOLLAR) return parseResponse(reply, start, reply.length, rsp);
  if (readNumber(reply, start + 1, reply.length) !== NUMBER_OK || number.value < -1) return -1;
  const end = number.value < 0 ? number.next : number.next + number.value + 2;
  return end <= reply.length ? end : -1;
}

function mergeSum(frags: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const reply of frags) {
    if (reply[0] !== COLON || readNumber(reply, 1, reply.length) !== NUMBER_OK || number.next !== reply.length) {
      return UNEXPECTED;
    }
    total += number.value;
  }
  return ascii(`:${total}\r\n`);
}

function isOk(reply: Uint8Array): boolean {
  if (reply.length !== OK.length) return false;
  for (let i = 0; i < OK.length; i++) if (reply[i] !== OK[i]) return false;
  return true;
}
