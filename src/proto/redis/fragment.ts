// Requests rebuilt for upstream: the sub-request of a split request that carries some of the
// keys of an MGET, DEL, UNLINK, TOUCH, EXISTS (the keys) or MSET (each key with its value), as a
// RESP array of the client's own bulk strings; an inline command as a RESP array.

import { decimalDigits, type ByteWriter } from "../../lib/bytes.ts";
import { Route, type Req } from "../codec.ts";
import { writeArrayHeader, writeBulk } from "./reply.ts";
import { STAR } from "./resp.ts";

/** Writes the command name (as the client sent it) and the keys order[from, from + n) (indexes
 *  into req's keys). */
export function buildFragment(buf: Uint8Array, req: Req, order: Int32Array, from: number, n: number, w: ByteWriter): void {
  const withValues = req.command!.route === Route.Set;
  w.byte(STAR);
  w.int(1 + (withValues ? 2 * n : n));
  w.crlf();
  bulk(w, buf, req, 0);
  for (let i = from; i < from + n; i++) {
    const arg = req.keyArg[order[i]!]!;
    bulk(w, buf, req, arg);
    if (withValues) bulk(w, buf, req, arg + 1);
  }
}

/** Argument `arg` as a bulk string. */
function bulk(w: ByteWriter, buf: Uint8Array, req: Req, arg: number): void {
  if (req.inline) writeBulk(w, buf, req.argStart[arg]!, req.argEnd[arg]!);
  else copyBulk(w, buf, req, arg);
}

/** The request as a RESP array of its arguments (an inline command going upstream). */
export function writeArgs(buf: Uint8Array, req: Req, w: ByteWriter): void {
  writeArrayHeader(w, req.nargs);
  for (let i = 0; i < req.nargs; i++) writeBulk(w, buf, req.argStart[i]!, req.argEnd[i]!);
}

/** Argument `arg` of a RESP request with its framing, copied as the client sent it: the parser
 *  accepted only `$<length>\r\n<bytes>\r\n` with the length in plain decimal (no sign, no
 *  leading zero, as redis-server), so the header is the length's digits plus 3 bytes before
 *  the argument. */
function copyBulk(w: ByteWriter, buf: Uint8Array, req: Req, arg: number): void {
  const start = req.argStart[arg]!;
  const end = req.argEnd[arg]!;
  w.bytes(buf, start - 3 - decimalDigits(end - start), end + 2);
}
