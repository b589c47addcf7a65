// The client's reply to a split request, from its fragments' replies: MGET -> the values in the
// original key order, DEL/UNLINK/TOUCH/EXISTS -> the sum, MSET -> +OK. If a fragment's reply is
// an error, the whole request gets the first such error.

import { ByteWriter } from "../../core/bytes.ts";
import { NUMBER_OK, numberNext, numberValue, readNumber, COLON, MINUS, STAR } from "./resp.ts";
import { Route, Rsp, type Split } from "../codec.ts";
import { parseResponse } from "./response.ts";
import { errorReply, OK } from "./replies.ts";

const UNEXPECTED = errorReply("unexpected reply from a server to a split request");

const out = new ByteWriter(4096);
const rsp = new Rsp();
/** Per fragment: where its next value starts, then how many keys it carried. */
let cursor = new Int32Array(64);
let carried = new Int32Array(64);

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
    if (reply[0] !== STAR || readNumber(reply, 1, reply.length) !== NUMBER_OK || numberValue !== carried[f]) {
      return UNEXPECTED;
    }
    cursor[f] = numberNext;
  }
  out.reset();
  out.byte(STAR);
  out.int(nkeys);
  out.crlf();
  for (let i = 0; i < nkeys; i++) {
    const f = keyFrag[i]!;
    const reply = frags[f]!;
    const start = cursor[f]!;
    const next = parseResponse(reply, start, reply.length, rsp);
    if (next < 0) return UNEXPECTED;
    out.bytes(reply, start, next);
    cursor[f] = next;
  }
  return out.take();
}

function mergeSum(frags: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const reply of frags) {
    if (reply[0] !== COLON || readNumber(reply, 1, reply.length) !== NUMBER_OK || numberNext !== reply.length) {
      return UNEXPECTED;
    }
    total += numberValue;
  }
  out.reset();
  out.byte(COLON);
  out.int(total);
  out.crlf();
  return out.take();
}

function isOk(reply: Uint8Array): boolean {
  return reply.length === OK.length && reply.every((b, i) => b === OK[i]);
}
