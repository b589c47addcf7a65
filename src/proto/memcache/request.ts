// memcached ASCII request parsing, in place: one command line (tokens as offsets into the
// buffer) plus, for storage commands, the data block. Accepts what memcached 1.6 accepts
// (space-separated tokens, leading/extra spaces, LF or CRLF line ends) and answers bad lines
// with memcached's own reply texts; where memcached would read a rejected command's data block
// as commands, the proxy skips it instead.

import { FATAL, NEED_MORE, type Req } from "../codec.ts";
import type { ByteWriter } from "../../lib/bytes.ts";
import { isMemcacheCommand, KEYLESS_GAT, lookupCommand, Shape, type MemcacheCommand } from "./commands.ts";
import {
  CR,
  findLF,
  isInt64,
  isUint32,
  isUint64,
  LF,
  lineContentEnd,
  MAX_GET_LINE,
  MAX_KEY_LENGTH,
  MAX_LINE,
  parseLength,
  skipSpaces,
  SP,
  tokenEnd,
  tokenEquals,
} from "./scan.ts";

// Reply lines (without CRLF). The first six are memcached 1.6's own texts.
const ERROR = "ERROR";
const BAD_FORMAT = "CLIENT_ERROR bad command line format";
const BAD_DATA_CHUNK = "CLIENT_ERROR bad data chunk";
const DELETE_USAGE = "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";
const INVALID_DELTA = "CLIENT_ERROR invalid numeric delta argument";
const INVALID_EXPTIME = "CLIENT_ERROR invalid exptime argument";
const LINE_TOO_LONG = "CLIENT_ERROR line too long";
const BINARY_PROTOCOL = "SERVER_ERROR unsupported binary protocol";

/** First byte of every binary-protocol request. */
const BINARY_MAGIC = 0x80;
const NOREPLY = new TextEncoder().encode("noreply");
const ZERO = new TextEncoder().encode("0");

export function parseRequest(buf: Uint8Array, pos: number, end: number, req: Req): number {
  req.reset(pos);
  if (pos >= end) {
    req.need = 1;
    return NEED_MORE;
  }
  if (buf[pos] === BINARY_MAGIC) {
    req.error = BINARY_PROTOCOL;
    return FATAL;
  }
  const lf = findLF(buf, pos, end);
  if (lf < 0) return incompleteLine(buf, pos, end, req);
  const lineEnd = lineContentEnd(buf, pos, lf);
  req.end = lf + 1;

  const nameStart = skipSpaces(buf, pos, lineEnd);
  const nameEnd = tokenEnd(buf, nameStart, lineEnd);
  const command = lookupCommand(buf, nameStart, nameEnd);
  // Counted up to the LF, a CR included: memcached's limit is on the bytes of a line it has
  // read without its LF, and a read may end between the CR and the LF.
  if (lf - pos > lineLimit(command, nameStart - pos)) {
    req.error = LINE_TOO_LONG;
    return FATAL;
  }
  const nul = tokenize(buf, nameStart, lineEnd, req);
  if (command === null) {
    // Unknown command or empty line: memcached's plain ERROR.
    req.error = ERROR;
    return req.end;
  }
  if (command.route === null) return unsupported(buf, end, req, command);
  req.command = command;
  switch (command.shape) {
    case Shape.Storage:
      return storage(buf, end, req, nul, 5);
    case Shape.Cas:
      return storage(buf, end, req, nul, 6);
    case Shape.Retrieval:
      return retrieval(buf, req, nul, 1);
    case Shape.Gat:
      return retrieval(buf, req, nul, 2);
    case Shape.Delete:
      return del(buf, req, nul);
    case Shape.Arith:
      return keyAndValue(buf, req, nul, isUint64, INVALID_DELTA);
    case Shape.Touch:
      return keyAndValue(buf, req, nul, isInt64, INVALID_EXPTIME);
    case Shape.Verbosity:
      return verbosity(buf, req);
    case Shape.Version:
    case Shape.Quit:
      return req.end;
  }
}

/** No LF yet: wait for more, unless the line is already longer than any valid one. */
function incompleteLine(buf: Uint8Array, pos: number, end: number, req: Req): number {
  const avail = end - pos;
  // All of them come before the LF: the verdict parseRequest gives once it has arrived.
  if (avail > MAX_LINE) {
    const nameStart = skipSpaces(buf, pos, end);
    const nameEnd = tokenEnd(buf, nameStart, end);
    const command = nameEnd < end ? lookupCommand(buf, nameStart, nameEnd) : null;
    if (avail > lineLimit(command, nameStart - pos)) {
      req.error = LINE_TOO_LONG;
      return FATAL;
    }
  }
  req.need = avail + 1;
  return NEED_MORE;
}

/** memcached's own rule, which the proxy must not break on the lines it forwards: past 2048
 *  bytes without a LF, memcached drops the connection unless the line is a get/gets (not
 *  gat/gats) with at most 100 leading spaces. */
function lineLimit(command: MemcacheCommand | null, leadingSpaces: number): number {
  return command !== null && command.shape === Shape.Retrieval && leadingSpaces <= 100 ? MAX_GET_LINE : MAX_LINE;
}

/** Split buf[i, end) at spaces into req's arguments; true if a NUL byte was seen (only keys
 *  need the exact check, and only then). */
function tokenize(buf: Uint8Array, i: number, end: number, req: Req): boolean {
  let nul = false;
  while (i < end) {
    const start = i;
    for (; i < end; i++) {
      const b = buf[i]!;
      if (b === SP) break;
      if (b === 0) nul = true;
    }
    req.pushArg(start, i);
    while (i < end && buf[i] === SP) i++;
  }
  return nul;
}

/** memcached's key rule: at most 250 bytes. Any other byte but a space goes, control characters
 *  included, as memcached 1.6 and twemproxy take them (memaslap's keys start with 0x10), except
 *  NUL: memcached reads a command line as a C string, so it would see a different key. */
function validKey(buf: Uint8Array, req: Req, arg: number, nul: boolean): boolean {
  const start = req.argStart[arg]!;
  const end = req.argEnd[arg]!;
  if (end - start > MAX_KEY_LENGTH) return false;
  if (nul) {
    for (let i = start; i < end; i++) if (buf[i] === 0) return false;
  }
  return true;
}

function isNoreply(buf: Uint8Array, req: Req, arg: number): boolean {
  return tokenEquals(buf, req.argStart[arg]!, req.argEnd[arg]!, NOREPLY);
}

/** The optional last token must be `noreply` (memcached ignores any other word there; the
 *  proxy rejects it, as a client misspelling noreply would otherwise lose its reply stream). */
function trailingNoreply(buf: Uint8Array, req: Req, max: number): boolean {
  if (req.nargs < max) return true;
  req.noreply = isNoreply(buf, req, max - 1);
  return req.noreply;
}

/** set/add/replace/append/prepend (`min` 5 tokens) and cas (6): the line, then <bytes> of
 *  data and CRLF. A rejected line whose <bytes> is readable still owns its data block, which
 *  is swallowed (req.end covers it) so the next request starts where the client meant it to. */
function storage(buf: Uint8Array, end: number, req: Req, nul: boolean, min: number): number {
  if (req.nargs < min || req.nargs > min + 1) {
    req.error = ERROR;
    return req.end;
  }
  req.pushKey(1);
  const a = req.argStart;
  const z = req.argEnd;
  const valid =
    trailingNoreply(buf, req, min + 1) &&
    validKey(buf, req, 1, nul) &&
    isUint32(buf, a[2]!, z[2]!) &&
    isInt64(buf, a[3]!, z[3]!) &&
    (min === 5 || isUint64(buf, a[5]!, z[5]!));
  const length = parseLength(buf, a[4]!, z[4]!);
  if (length < 0) {
    req.error = BAD_FORMAT;
    return req.end;
  }
  const total = swallowData(buf, end, req, length);
  if (total === NEED_MORE) {
    // Its data may be streamed (Req.stream), unless it must be rebuilt without noreply.
    if (valid && !req.noreply) req.stream = req.dataEnd - req.start;
    return NEED_MORE;
  }
  if (!valid) req.error = BAD_FORMAT;
  return total;
}

/** The data block after the line: NEED_MORE (with need) until all of it and its CRLF are
 *  here, then its end. A block not followed by CRLF gets memcached's "bad data chunk", and,
 *  like memcached, exactly <bytes> + 2 bytes are consumed. */
function swallowData(buf: Uint8Array, end: number, req: Req, length: number): number {
  req.dataStart = req.end;
  req.dataEnd = req.dataStart + length;
  const total = req.dataEnd + 2;
  if (total > end) {
    req.need = total - req.start;
    return NEED_MORE;
  }
  req.end = total;
  if (buf[req.dataEnd] !== CR || buf[req.dataEnd + 1] !== LF) req.error = BAD_DATA_CHUNK;
  return total;
}

/** get/gets (keys from token 1) and gat/gats (exptime, then keys from token 2). */
function retrieval(buf: Uint8Array, req: Req, nul: boolean, firstKey: number): number {
  const nargs = req.nargs;
  // memcached checks gat's exptime before it looks for keys.
  if (firstKey === 2 && nargs >= 2 && !isInt64(buf, req.argStart[1]!, req.argEnd[1]!)) {
    req.error = INVALID_EXPTIME;
    return req.end;
  }
  if (nargs <= firstKey) {
    // memcached: get/gets without a key is ERROR; gat/gats with an exptime and none, END.
    if (firstKey === 2 && nargs === 2) req.command = KEYLESS_GAT;
    else req.error = ERROR;
    return req.end;
  }
  for (let arg = firstKey; arg < nargs; arg++) {
    if (!validKey(buf, req, arg, nul)) {
      req.error = BAD_FORMAT;
      return req.end;
    }
    req.pushKey(arg);
  }
  return req.end;
}

/** `delete <key> [0] [noreply]`, with memcached's checks in memcached's order. */
function del(buf: Uint8Array, req: Req, nul: boolean): number {
  const nargs = req.nargs;
  if (nargs < 2 || nargs > 4) {
    req.error = ERROR;
    return req.end;
  }
  if (nargs > 2) {
    const holdIsZero = tokenEquals(buf, req.argStart[2]!, req.argEnd[2]!, ZERO);
    req.noreply = isNoreply(buf, req, nargs - 1);
    if (!(nargs === 3 ? holdIsZero || req.noreply : holdIsZero && req.noreply)) {
      req.error = DELETE_USAGE;
      return req.end;
    }
  }
  req.pushKey(1);
  if (!validKey(buf, req, 1, nul)) req.error = BAD_FORMAT;
  return req.end;
}

/** incr/decr `<key> <value> [noreply]` and touch `<key> <exptime> [noreply]`. */
function keyAndValue(
  buf: Uint8Array,
  req: Req,
  nul: boolean,
  validValue: (buf: Uint8Array, start: number, end: number) => boolean,
  invalidValue: string,
): number {
  if (req.nargs < 3 || req.nargs > 4) {
    req.error = ERROR;
    return req.end;
  }
  req.pushKey(1);
  const noreplyOk = trailingNoreply(buf, req, 4);
  if (!validKey(buf, req, 1, nul)) req.error = BAD_FORMAT;
  else if (!validValue(buf, req.argStart[2]!, req.argEnd[2]!)) req.error = invalidValue;
  else if (!noreplyOk) req.error = BAD_FORMAT;
  return req.end;
}

/** `verbosity <level> [noreply]`: answered by the proxy (local.ts), checked as memcached 1.6
 *  checks it: another token count is ERROR, a level that is not a number CLIENT_ERROR (both
 *  silent with noreply). */
function verbosity(buf: Uint8Array, req: Req): number {
  const nargs = req.nargs;
  req.noreply = nargs > 1 && isNoreply(buf, req, nargs - 1);
  if (nargs < 2 || nargs > 3) req.error = ERROR;
  else if (!isUint32(buf, req.argStart[1]!, req.argEnd[1]!)) req.error = BAD_FORMAT;
  return req.end;
}

/** A command memcached knows and the proxy does not forward: an error naming it (suppressed,
 *  like any reply, when the line ends in noreply). Meta `ms` data blocks are skipped. */
function unsupported(buf: Uint8Array, end: number, req: Req, command: MemcacheCommand): number {
  const nargs = req.nargs;
  req.noreply = nargs > 1 && isNoreply(buf, req, nargs - 1);
  if (command.shape === Shape.UnsupportedWithData && nargs > 2) {
    const length = parseLength(buf, req.argStart[2]!, req.argEnd[2]!);
    if (length >= 0 && swallowData(buf, end, req, length) === NEED_MORE) return NEED_MORE;
  }
  req.error = `SERVER_ERROR unsupported command '${command.name}'`;
  return req.end;
}

/** The request as it goes upstream without its noreply token (the core drops the reply). */
export function buildForward(buf: Uint8Array, req: Req, w: ByteWriter): void {
  const nargs = req.noreply ? req.nargs - 1 : req.nargs;
  for (let i = 0; i < nargs; i++) {
    if (i > 0) w.byte(SP);
    w.bytes(buf, req.argStart[i]!, req.argEnd[i]!);
  }
  w.crlf();
  const command = req.command;
  if (isMemcacheCommand(command) && (command.shape === Shape.Storage || command.shape === Shape.Cas)) {
    w.bytes(buf, req.dataStart, req.dataEnd);
    w.crlf();
  }
}
