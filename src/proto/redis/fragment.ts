// Split requests: the sub-request that carries some of the keys of an MGET, DEL, UNLINK, TOUCH,
// EXISTS (the keys) or MSET (each key with its value), re-encoded as a RESP array.

import type { ByteWriter } from "../../core/bytes.ts";
import { Route, type Req } from "../codec.ts";
import { DOLLAR, STAR } from "./resp.ts";

/** Writes the command name (as the client sent it) and the keys order[from, from + n) (indexes
 *  into req's keys). */
export function buildFragment(buf: Uint8Array, req: Req, order: Int32Array, from: number, n: number, w: ByteWriter): void {
  const withValues = req.command!.route === Route.Set;
  w.byte(STAR);
  w.int(1 + (withValues ? 2 * n : n));
  w.crlf();
  bulk(w, buf, req.argStart[0]!, req.argEnd[0]!);
  for (let i = from; i < from + n; i++) {
    const arg = req.keyArg[order[i]!]!;
    bulk(w, buf, req.argStart[arg]!, req.argEnd[arg]!);
    if (withValues) bulk(w, buf, req.argStart[arg + 1]!, req.argEnd[arg + 1]!);
  }
}

function bulk(w: ByteWriter, buf: Uint8Array, start: number, end: number): void {
  w.byte(DOLLAR);
  w.int(end - start);
  w.crlf();
  w.bytes(buf, start, end);
  w.crlf();
}
