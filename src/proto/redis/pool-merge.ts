// The client's one reply to a command sent to every live server of a pool (commands.ts,
// PoolMerge): DBSIZE's counts summed, KEYS's arrays concatenated, PUBSUB CHANNELS's arrays
// united, PUBSUB NUMSUB's counts summed per channel, PUBSUB NUMPAT's largest count, WAIT's
// smallest, FLUSHDB's +OK when every server said it, SCRIPT LOAD's sha when every server gave
// it, SCRIPT EXISTS's 1 where every server said 1, RANDOMKEY's key from a random server that
// has one. A server's error reply is the client's reply (the first one, in server order); a
// server that failed is left out (FLUSHDB / FLUSHALL / SCRIPT then answer an error: they are
// about every server); a reply of the wrong shape gets a proxy error, never a malformed stream.
// Replies come in the client's protocol (RESP2 or RESP3: the same shapes here, a RESP3 nil `_`
// included).

import type { ByteWriter } from "../../lib/bytes.ts";
import { Rsp, type Split } from "../codec.ts";
import { PoolMerge } from "./commands.ts";
import { errorReply, OK } from "./replies.ts";
import { BANG, COLON, DOLLAR, MINUS, numberValue, readNumber, STAR } from "./resp.ts";
import { parseResponse } from "./response.ts";

/** One reply per server, as the core records a split's fragment replies. */
export type ServerReplies = Pick<Split, "nfrags" | "fragBuf" | "fragPos">;

const UNEXPECTED = errorReply("unexpected reply from a server to a command sent to every server");
const NOT_EVERY_SERVER = errorReply("not every server answered: the command may have run on some of them only");
const DIFFERENT = errorReply("the servers answered differently");

/** The merges whose answer is about every server: one that failed makes them an error. */
const EVERY_SERVER: ReadonlySet<PoolMerge> = new Set([PoolMerge.AllOk, PoolMerge.Same, PoolMerge.And]);

/** Is fragment f's reply an error (RESP3: also a blob error)? */
export function isError(replies: ServerReplies, f: number): boolean {
  const type = replies.fragBuf[f]![replies.fragPos[2 * f]!];
  return type === MINUS || type === BANG;
}

/** The first error among the fragments' replies, or null. */
export function firstError(replies: ServerReplies): Uint8Array | null {
  for (let f = 0; f < replies.nfrags; f++) {
    if (isError(replies, f)) return replies.fragBuf[f]!.subarray(replies.fragPos[2 * f]!, replies.fragPos[2 * f + 1]!);
  }
  return null;
}

/**
 * The merged reply of `replies` by `how`: appended to `out` (null returned) or, when it is a
 * reply of its own (a server's error, a constant, a proxy error), returned with `out` as it was.
 */
export function mergePool(how: PoolMerge, all: ServerReplies, out: ByteWriter): Uint8Array | null {
  const replies = answered(all);
  const { fragBuf, fragPos, nfrags } = replies;
  const error = firstError(replies);
  if (error !== null) return error;
  if (nfrags < all.nfrags && EVERY_SERVER.has(how)) return NOT_EVERY_SERVER;
  const mark = out.size;
  let ok: boolean;
  switch (how) {
    case PoolMerge.Sum:
    case PoolMerge.Max:
    case PoolMerge.Min:
      ok = mergeIntegers(replies, how, out);
      break;
    case PoolMerge.Concat:
      ok = concat(replies, out);
      break;
    case PoolMerge.Union:
      ok = union(replies, out);
      break;
    case PoolMerge.PairSum:
      ok = pairSum(replies, out);
      break;
    case PoolMerge.AllOk:
      for (let f = 0; f < nfrags; f++) if (!isOk(fragBuf[f]!, fragPos[2 * f]!, fragPos[2 * f + 1]!)) return UNEXPECTED;
      return OK;
    case PoolMerge.Same:
      return same(replies);
    case PoolMerge.And:
      ok = and(replies, out);
      break;
    case PoolMerge.RandomOne:
      return randomValue(replies);
    default:
      return UNEXPECTED;
  }
  if (ok) return null;
  out.truncate(mark);
  return UNEXPECTED;
}

/** The replies of the servers that answered (a server that failed has an empty one: the
 *  fan-out is merged from the others, as an ejected server is left out). */
function answered(replies: ServerReplies): ServerReplies {
  const { fragBuf, fragPos, nfrags } = replies;
  let n = 0;
  for (let f = 0; f < nfrags; f++) if (fragPos[2 * f + 1]! > fragPos[2 * f]!) n++;
  if (n === nfrags) return replies;
  const kept: ServerReplies = { nfrags: n, fragBuf: [], fragPos: new Int32Array(2 * n) };
  for (let f = 0, k = 0; f < nfrags; f++) {
    if (fragPos[2 * f + 1]! <= fragPos[2 * f]!) continue;
    kept.fragBuf.push(fragBuf[f]!);
    kept.fragPos[2 * k] = fragPos[2 * f]!;
    kept.fragPos[2 * k + 1] = fragPos[2 * f + 1]!;
    k++;
  }
  return kept;
}

/** One of the replies that are not nil, at random (RANDOMKEY: a key of a random server that
 *  has any); nil when all are. */
function randomValue(replies: ServerReplies): Uint8Array {
  const { fragBuf, fragPos, nfrags } = replies;
  const some: number[] = [];
  for (let f = 0; f < nfrags; f++) if (fragBuf[f]![fragPos[2 * f]!] === DOLLAR && fragBuf[f]![fragPos[2 * f]! + 1] !== MINUS) some.push(f);
  if (nfrags === 0) return UNEXPECTED;
  const f = some.length === 0 ? 0 : some[Math.floor(Math.random() * some.length)]!;
  return fragBuf[f]!.subarray(fragPos[2 * f]!, fragPos[2 * f + 1]!);
}

/** The reply when every server's is the same bytes, else an error. */
function same(replies: ServerReplies): Uint8Array {
  const { fragBuf, fragPos, nfrags } = replies;
  if (nfrags === 0) return UNEXPECTED;
  const first = fragBuf[0]!.subarray(fragPos[0]!, fragPos[1]!);
  for (let f = 1; f < nfrags; f++) {
    const reply = fragBuf[f]!.subarray(fragPos[2 * f]!, fragPos[2 * f + 1]!);
    if (reply.length !== first.length) return DIFFERENT;
    for (let i = 0; i < first.length; i++) if (reply[i] !== first[i]) return DIFFERENT;
  }
  return first;
}

/** Arrays of `:0` / `:1` of one length from every server: `:1` where all say 1. */
function and(replies: ServerReplies, out: ByteWriter): boolean {
  const { fragBuf, fragPos, nfrags } = replies;
  if (nfrags === 0) return false;
  let count = -1;
  const cursor = new Int32Array(nfrags);
  for (let f = 0; f < nfrags; f++) {
    const at = elementsAt(fragBuf[f]!, fragPos[2 * f]!, fragPos[2 * f + 1]!);
    if (at < 0) return false;
    const n = numberValue(fragBuf[f]!, fragPos[2 * f]! + 1);
    if (f > 0 && n !== count) return false;
    count = n;
    cursor[f] = at;
  }
  out.byte(STAR);
  out.int(count);
  out.crlf();
  for (let i = 0; i < count; i++) {
    let all = 1;
    for (let f = 0; f < nfrags; f++) {
      const reply = fragBuf[f]!;
      const at = cursor[f]!;
      if (reply[at] !== COLON) return false;
      const next = readNumber(reply, at + 1, fragPos[2 * f + 1]!);
      if (next < 0) return false;
      const n = numberValue(reply, at + 1);
      if (n !== 0 && n !== 1) return false;
      all &= n;
      cursor[f] = next;
    }
    writeInteger(out, all);
  }
  for (let f = 0; f < nfrags; f++) if (cursor[f] !== fragPos[2 * f + 1]) return false;
  return true;
}

/** `:n` from every server: their sum, the largest or the smallest. */
function mergeIntegers(replies: ServerReplies, how: PoolMerge, out: ByteWriter): boolean {
  const { fragBuf, fragPos, nfrags } = replies;
  let result = 0;
  for (let f = 0; f < nfrags; f++) {
    const n = integerAt(fragBuf[f]!, fragPos[2 * f]!, fragPos[2 * f + 1]!);
    if (n === null) return false;
    result = how === PoolMerge.Max ? Math.max(result, n) : how === PoolMerge.Min ? (f === 0 ? n : Math.min(result, n)) : result + n;
  }
  writeInteger(out, result);
  return true;
}

/** Arrays from every server, one after another under one header. */
function concat(replies: ServerReplies, out: ByteWriter): boolean {
  const { fragBuf, fragPos, nfrags } = replies;
  let total = 0;
  for (let f = 0; f < nfrags; f++) {
    const start = fragPos[2 * f]!;
    if (elementsAt(fragBuf[f]!, start, fragPos[2 * f + 1]!) < 0) return false;
    total += numberValue(fragBuf[f]!, start + 1);
  }
  out.byte(STAR);
  out.int(total);
  out.crlf();
  for (let f = 0; f < nfrags; f++) {
    const reply = fragBuf[f]!;
    out.bytes(reply, elementsAt(reply, fragPos[2 * f]!, fragPos[2 * f + 1]!), fragPos[2 * f + 1]!);
  }
  return true;
}

const rsp = new Rsp();
const latin1 = new TextDecoder("latin1");

/** Arrays of bulk strings from every server: each string once, in the order first seen. */
function union(replies: ServerReplies, out: ByteWriter): boolean {
  const { fragBuf, fragPos, nfrags } = replies;
  const seen = new Set<string>();
  const kept: [Uint8Array, number, number][] = [];
  for (let f = 0; f < nfrags; f++) {
    const reply = fragBuf[f]!;
    const end = fragPos[2 * f + 1]!;
    let at = elementsAt(reply, fragPos[2 * f]!, end);
    if (at < 0) return false;
    const count = numberValue(reply, fragPos[2 * f]! + 1);
    for (let i = 0; i < count; i++) {
      if (reply[at] !== DOLLAR) return false;
      const next = parseResponse(reply, at, end, rsp);
      if (next < 0) return false;
      const name = latin1.decode(reply.subarray(at, next));
      if (!seen.has(name)) {
        seen.add(name);
        kept.push([reply, at, next]);
      }
      at = next;
    }
    if (at !== end) return false;
  }
  out.byte(STAR);
  out.int(kept.length);
  out.crlf();
  for (const [reply, start, end] of kept) out.bytes(reply, start, end);
  return true;
}

/** [name, count, ...] from every server for the same names in the same order: the names of the
 *  first server, each with the sum of its counts. */
function pairSum(replies: ServerReplies, out: ByteWriter): boolean {
  const { fragBuf, fragPos, nfrags } = replies;
  const first = fragBuf[0]!;
  const firstEnd = fragPos[1]!;
  if (elementsAt(first, fragPos[0]!, firstEnd) < 0) return false;
  const count = numberValue(first, fragPos[0]! + 1);
  if (count % 2 !== 0) return false;
  const cursor = new Int32Array(nfrags);
  for (let f = 0; f < nfrags; f++) {
    const at = elementsAt(fragBuf[f]!, fragPos[2 * f]!, fragPos[2 * f + 1]!);
    if (at < 0 || numberValue(fragBuf[f]!, fragPos[2 * f]! + 1) !== count) return false;
    cursor[f] = at;
  }
  out.byte(STAR);
  out.int(count);
  out.crlf();
  for (let i = 0; i < count; i += 2) {
    const nameStart = cursor[0]!;
    const nameEnd = parseResponse(first, nameStart, firstEnd, rsp);
    if (nameEnd < 0) return false;
    let sum = 0;
    for (let f = 0; f < nfrags; f++) {
      const reply = fragBuf[f]!;
      const end = fragPos[2 * f + 1]!;
      const at = parseResponse(reply, cursor[f]!, end, rsp);
      if (at < 0 || reply[at] !== COLON) return false;
      const next = readNumber(reply, at + 1, end);
      if (next < 0) return false;
      sum += numberValue(reply, at + 1);
      cursor[f] = next;
    }
    out.bytes(first, nameStart, nameEnd);
    writeInteger(out, sum);
  }
  for (let f = 0; f < nfrags; f++) if (cursor[f] !== fragPos[2 * f + 1]) return false;
  return true;
}

/** Where the elements of the array reply[start, end) start (its count: numberValue(reply,
 *  start + 1)), or -1 when it is not an array (a nil one included). */
function elementsAt(reply: Uint8Array, start: number, end: number): number {
  if (reply[start] !== STAR) return -1;
  const at = readNumber(reply, start + 1, end);
  return at < 0 || numberValue(reply, start + 1) < 0 ? -1 : at;
}

function integerAt(reply: Uint8Array, start: number, end: number): number | null {
  if (reply[start] !== COLON || readNumber(reply, start + 1, end) !== end) return null;
  return numberValue(reply, start + 1);
}

function writeInteger(out: ByteWriter, n: number): void {
  out.byte(COLON);
  out.int(n);
  out.crlf();
}

function isOk(reply: Uint8Array, start: number, end: number): boolean {
  if (end - start !== OK.length) return false;
  for (let i = 0; i < OK.length; i++) if (reply[start + i] !== OK[i]) return false;
  return true;
}
