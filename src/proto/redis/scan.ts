// SCAN across the servers of a pool. The client's cursor encodes which server the iteration is
// on and that server's own cursor: proxy cursor = server cursor * (servers in the pool) +
// server position. The position is the server's index in the pool's config (twemproxy's sorted
// order), never an index into the live servers, so ejecting or returning a server does not move
// the others under a running iteration: every server is scanned from its cursor 0 to its own
// end in turn, and a key that stays on a live server for the whole iteration is returned (redis
// SCAN's guarantee, per server). A server ejected when the iteration reaches it is skipped (its
// keys are not reachable through the pool while it is out). With one server the proxy cursor is
// the server's cursor itself. Cursors are unsigned 64-bit on a server, so a proxy cursor may
// need a few more bits: it is kept as a bigint and written in decimal.

import type { ByteWriter } from "../../lib/bytes.ts";
import type { Req } from "../codec.ts";
import { CR, DOLLAR, LF, numberValue, readNumber, STAR } from "./resp.ts";

/** Where an iteration is: the server's position in the pool's config, and its own cursor. */
export interface ScanPosition {
  readonly server: number;
  readonly cursor: bigint;
}

/** The longest cursor read: 2^64 * 2^16 servers fits in 26 digits. */
const MAX_DIGITS = 26;
const ZERO = 48;

/** The proxy cursor buf[start, end) (decimal digits) as a position, or null when it is not a
 *  cursor of a pool of `servers` servers (redis: "invalid cursor"). */
export function decodeCursor(buf: Uint8Array, start: number, end: number, servers: number): ScanPosition | null {
  const len = end - start;
  if (len === 0 || len > MAX_DIGITS) return null;
  let value = 0n;
  for (let i = start; i < end; i++) {
    const d = buf[i]! - ZERO;
    if (d < 0 || d > 9) return null;
    value = value * 10n + BigInt(d);
  }
  const n = BigInt(servers);
  const cursor = value / n;
  if (cursor >= 1n << 64n) return null;
  return { server: Number(value % n), cursor };
}

/** The proxy cursor of a position. */
export function encodeCursor(position: ScanPosition, servers: number): bigint {
  return position.cursor * BigInt(servers) + BigInt(position.server);
}

/** Where to scan for a client's position: the first live server at or after it (from its
 *  cursor 0 when the position's own server is not live), or null when none is left (the
 *  iteration is over). */
export function scanTarget(position: ScanPosition, servers: number, live: (server: number) => boolean): ScanPosition | null {
  if (live(position.server)) return position;
  for (let s = position.server + 1; s < servers; s++) if (live(s)) return { server: s, cursor: 0n };
  return null;
}

/** The proxy cursor after `server` answered with its next cursor `next`: the same server while
 *  it has more, else the next server from 0; 0 after the last server (the end). */
export function nextCursor(server: number, next: bigint, servers: number): bigint {
  if (next !== 0n) return encodeCursor({ server, cursor: next }, servers);
  return server + 1 < servers ? BigInt(server + 1) : 0n;
}

/** Write req (a SCAN) with its cursor, argument 1, replaced by `cursor`. */
export function buildScan(buf: Uint8Array, req: Req, cursor: bigint, w: ByteWriter): void {
  w.byte(STAR);
  w.int(req.nargs);
  w.crlf();
  for (let a = 0; a < req.nargs; a++) {
    if (a === 1) {
      bulkText(w, cursor.toString());
      continue;
    }
    const start = req.argStart[a]!;
    const end = req.argEnd[a]!;
    w.byte(DOLLAR);
    w.int(end - start);
    w.crlf();
    w.bytes(buf, start, end);
    w.crlf();
  }
}

/** The reply to a SCAN whose cursor is the end of the iteration (every server is ejected). */
export function writeScanEnd(w: ByteWriter): void {
  w.text("*2\r\n$1\r\n0\r\n*0\r\n");
}

/**
 * The client's reply from server `server`'s reply reply[start, end) to a SCAN (`*2`, its next
 * cursor as a bulk string, the array of keys): the same with the next proxy cursor, appended to
 * `out`. Returns false, with `out` as it was, when the reply is not a SCAN reply (an error reply
 * goes to the client as it is: check for it first).
 */
export function writeScanReply(reply: Uint8Array, start: number, end: number, server: number, servers: number, out: ByteWriter): boolean {
  if (reply[start] !== STAR) return false;
  const at = readNumber(reply, start + 1, end);
  if (at < 0 || numberValue(reply, start + 1) !== 2 || reply[at] !== DOLLAR) return false;
  const digits = readNumber(reply, at + 1, end);
  if (digits < 0) return false;
  const length = numberValue(reply, at + 1);
  const stop = digits + length;
  if (length < 1 || length > 20 || stop + 2 > end || reply[stop] !== CR || reply[stop + 1] !== LF) return false;
  let next = 0n;
  for (let i = digits; i < stop; i++) {
    const d = reply[i]! - ZERO;
    if (d < 0 || d > 9) return false;
    next = next * 10n + BigInt(d);
  }
  out.text("*2\r\n");
  bulkText(out, nextCursor(server, next, servers).toString());
  out.bytes(reply, stop + 2, end);
  return true;
}

function bulkText(w: ByteWriter, text: string): void {
  w.byte(DOLLAR);
  w.int(text.length);
  w.crlf();
  w.text(text);
  w.crlf();
}
