// Requests rebuilt for upstream: the sub-request of a split request that carries some of the
// keys of an MGET, DEL, UNLINK, TOUCH, EXISTS (the keys) or MSET (each key with its value), as a
// RESP array of the client's own bulk strings; an inline command as a RESP array.

import type { ByteWriter } from "../../lib/bytes.ts";
import { Route, type Req } from "../codec.ts";
import { writeArrayHeader, writeBulk } from "./reply.ts";
import { DOLLAR, STAR } from "./resp.ts";

/** Writes the command name (as the client sent it) and the keys order[from, from + n) (indexes
 *  into req's keys). */
export function buildFragment(buf: Uint8Array, req: Req, order: Int32Array, from: number, n: number, w: ByteWriter): void {
  const withValues = req.command!.route === Route.Set;
  w.byte(STAR);
  w.int(1 + (withValues ? 2 * n : n));
  w.crlf();
  if (req.inline) writeBulk(w, buf, req.argStart[0]!, req.argEnd[0]!);
  else copyBulks(w, buf, req.argStart[0]!, req.argEnd[0]!);
  appendArgs(buf, req, order, from, n, withValues, w);
}

/** Appends the keys order[from, from + n) of req (indexes into its keys), as buildFragment
 *  writes them: a fragment joined onto the MGET before it. */
export function appendKeys(buf: Uint8Array, req: Req, order: Int32Array, from: number, n: number, w: ByteWriter): void {
  appendArgs(buf, req, order, from, n, false, w);
}

/** The keys order[from, from + n) of req, each with its value when `withValues` (MSET). */
function appendArgs(buf: Uint8Array, req: Req, order: Int32Array, from: number, n: number, withValues: boolean, w: ByteWriter): void {
  const { argStart, argEnd, keyArg } = req;
  if (req.inline) {
    for (let i = from; i < from + n; i++) {
      const arg = keyArg[order[i]!]!;
      writeBulk(w, buf, argStart[arg]!, argEnd[arg]!);
      if (withValues) writeBulk(w, buf, argStart[arg + 1]!, argEnd[arg + 1]!);
    }
    return;
  }
  // Arguments first..last, side by side in the request, are copied as one run: consecutive
  // keys of one server (an MGET's keys, an MSET's pairs) make one copy, not one each.
  let first = -1;
  let last = -1;
  for (let i = from; i < from + n; i++) {
    const arg = keyArg[order[i]!]!;
    if (first < 0 || arg !== last + 1) {
      if (first >= 0) copyBulks(w, buf, argStart[first]!, argEnd[last]!);
      first = arg;
    }
    last = withValues ? arg + 1 : arg;
  }
  if (first >= 0) copyBulks(w, buf, argStart[first]!, argEnd[last]!);
}

const MGET = new TextEncoder().encode("$4\r\nMGET\r\n");

/** An MGET of the keys of fragment `group` of a split request (Split.keys: key i is
 *  bytes[keys[3i], keys[3i + 1]), in fragment keys[3i + 2]), in key order. */
export function writeMget(bytes: Uint8Array, keys: Int32Array, group: number, w: ByteWriter): void {
  let n = 0;
  for (let i = 2; i < keys.length; i += 3) if (keys[i] === group) n++;
  writeArrayHeader(w, 1 + n);
  w.bytes(MGET);
  for (let i = 0; i < keys.length; i += 3) if (keys[i + 2] === group) writeBulk(w, bytes, keys[i]!, keys[i + 1]!);
}

/** The request as a RESP array of its arguments (an inline command going upstream). */
export function writeArgs(buf: Uint8Array, req: Req, w: ByteWriter): void {
  writeArrayHeader(w, req.nargs);
  for (let i = 0; i < req.nargs; i++) writeBulk(w, buf, req.argStart[i]!, req.argEnd[i]!);
}

/** Arguments of a RESP request with their framing, copied as the client sent them: from the
 *  `$` of the header of the one that starts at `start` (the parser accepted only
 *  `$<digits>\r\n` before an argument) to the CRLF after the one that ends at `end`. */
function copyBulks(w: ByteWriter, buf: Uint8Array, start: number, end: number): void {
  let header = start - 3;
  while (buf[header] !== DOLLAR) header--;
  w.bytes(buf, header, end + 2);
}
