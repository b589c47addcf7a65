// The request parser: one RESP array of bulk strings at buf[pos, end), parsed in place. It keeps
// no state between calls: on incomplete input it says in `need` how many bytes from `pos` must
// be there before another attempt can get further (a 16 MB value arriving in 64 KB chunks is
// parsed twice, not 256 times; the arguments not seen yet count as 6 bytes each, see MAX_UNSEEN).
//
// Framing is checked at least as strictly as redis-server checks it, so bytes the proxy forwards
// can never desynchronise a server connection shared with other clients. Only broken framing is
// FATAL; a well-framed request the proxy will not serve gets an error reply and the connection
// stays open. A line that is not a RESP array is an inline command (inline.ts).

import { ByteWriter } from "../../lib/bytes.ts";
import { FATAL, fatal, NEED_MORE, needMore, type Req } from "../codec.ts";
import { lookupCommand, PING, PING_MESSAGE, type SupportedCommand } from "./commands.ts";
import { splitInline } from "./inline.ts";
import {
  CR,
  DOLLAR,
  LF,
  MAX_BULK,
  MAX_COUNT,
  MAX_UNSEEN,
  NUMBER_INCOMPLETE,
  NUMBER_INVALID,
  numberValue,
  readNumber,
  STAR,
} from "./resp.ts";

/** Redis's limit for a line without its newline (inline requests). */
const INLINE_MAX = 64 * 1024;
/** The smallest possible argument, `$0\r\n\r\n`. */
const MIN_ARG = 6;

// Broken framing (FATAL), in redis-server's words where it has them.
const PROTOCOL_ERROR = "-ERR Protocol error: ";
const INVALID_MULTIBULK = PROTOCOL_ERROR + "invalid multibulk length";
const INVALID_BULK = PROTOCOL_ERROR + "invalid bulk length";
const TOO_BIG_INLINE = PROTOCOL_ERROR + "too big inline request";
const MISSING_CRLF = PROTOCOL_ERROR + "expected CRLF after bulk data";
const TOO_MANY_EMPTY = PROTOCOL_ERROR + "too many empty requests";
const UNBALANCED_QUOTES = PROTOCOL_ERROR + "unbalanced quotes in request";
// Redis looks for an inline line's end with strchr(), which stops at a NUL: it waits for more
// bytes until its 64 KB limit, then closes. Said at once here.
const NUL_INLINE = PROTOCOL_ERROR + "NUL byte in inline request";

// Well-framed requests the proxy answers with an error.
const NOT_INTEGER = "-ERR value is not an integer or out of range";
const NEGATIVE_NUMKEYS = "-ERR Number of keys can't be negative";
const TOO_MANY_NUMKEYS = "-ERR Number of keys can't be greater than number of args";

export function parseRequest(buf: Uint8Array, pos: number, end: number, req: Req): number {
  req.reset(pos);
  let p = pos;
  let nargs: number;
  // Redis ignores blank lines and arrays of zero (or negative) length without a reply: skip them.
  for (;;) {
    if (p - pos > INLINE_MAX) return fatal(req, TOO_MANY_EMPTY);
    if (p >= end) return needMore(req, pos, p + 1);
    if (buf[p] !== STAR) {
      const lf = inlineLineEnd(buf, p, end);
      if (lf === NEED_MORE) return needMore(req, pos, end + 1);
      if (lf === FATAL) return fatal(req, TOO_BIG_INLINE);
      if (hasNul(buf, p, lf)) return fatal(req, NUL_INLINE);
      // Redis takes a CR before the LF off the line (unless the line is that CR alone).
      const stop = lf > p && buf[lf - 1] === CR ? lf - 1 : lf;
      req.nargs = 0;
      if (!splitInline(buf, p, stop, req)) return fatal(req, UNBALANCED_QUOTES);
      if (req.nargs === 0) {
        // Blank (whitespace only): skipped without a reply, as redis does.
        p = lf + 1;
        continue;
      }
      req.start = p;
      req.end = lf + 1;
      req.inline = true;
      resolveCommand(buf, req);
      return lf + 1;
    }
    const next = readNumber(buf, p + 1, end);
    if (next === NUMBER_INCOMPLETE) return needMore(req, pos, end + 1);
    const count = next === NUMBER_INVALID ? -1 : numberValue(buf, p + 1);
    if (next === NUMBER_INVALID || count > MAX_COUNT) return fatal(req, INVALID_MULTIBULK);
    if (count > 0) {
      nargs = count;
      req.start = p;
      p = next;
      break;
    }
    p = next;
  }
  for (let i = 0; i < nargs; i++) {
    if (p >= end) return needMore(req, pos, p + MIN_ARG + unseen(nargs - i - 1));
    if (buf[p] !== DOLLAR) return fatal(req, `${PROTOCOL_ERROR}expected '$', got '${shown(buf[p]!)}'`);
    const start = readNumber(buf, p + 1, end);
    if (start === NUMBER_INCOMPLETE) return needMore(req, pos, Math.max(end + 1, p + MIN_ARG) + unseen(nargs - i - 1));
    const length = start === NUMBER_INVALID ? -1 : numberValue(buf, p + 1);
    if (length < 0 || length > MAX_BULK) return fatal(req, INVALID_BULK);
    const stop = start + length;
    if (stop + 2 > end) {
      if (i === nargs - 1 && i > 0) markStream(buf, req, start, stop);
      return needMore(req, pos, stop + 2 + unseen(nargs - i - 1));
    }
    if (buf[stop] !== CR || buf[stop + 1] !== LF) return fatal(req, MISSING_CRLF);
    req.pushArg(start, stop);
    p = stop + 2;
  }
  req.end = p;
  resolveCommand(buf, req);
  return p;
}

/** The last argument's data is still arriving: the request may be streamed (Req.stream) when its
 *  command is known, well formed, and takes no key or key count from that argument. */
function markStream(buf: Uint8Array, req: Req, start: number, stop: number): void {
  const command = lookupCommand(buf, req.argStart[0]!, req.argEnd[0]!);
  const last = req.nargs;
  if (command === null || command.numkeysAt === last) return;
  req.pushArg(start, stop);
  resolveCommand(buf, req);
  if (req.error !== null) return;
  for (let k = 0; k < req.nkeys; k++) if (req.keyArg[k] === last) return;
  req.stream = stop - req.start;
}

/** The least size of `count` arguments not seen yet (see MAX_UNSEEN). */
function unseen(count: number): number {
  return Math.min(count * MIN_ARG, MAX_UNSEEN);
}


/** A byte in an error line: printable ASCII as is, anything else as '?'. */
function shown(b: number): string {
  return b >= 32 && b < 127 ? String.fromCharCode(b) : "?";
}

// ---- lines that are not RESP arrays ----

/** The LF that ends the line at buf[p] (within INLINE_MAX bytes), NEED_MORE or FATAL. */
function inlineLineEnd(buf: Uint8Array, p: number, end: number): number {
  const limit = end - p > INLINE_MAX ? p + INLINE_MAX : end;
  for (let q = p; q < limit; q++) if (buf[q] === LF) return q;
  return limit === end ? NEED_MORE : FATAL;
}

function hasNul(buf: Uint8Array, p: number, lf: number): boolean {
  for (let q = p; q < lf; q++) if (buf[q] === 0) return true;
  return false;
}

// ---- the command and its keys ----

function resolveCommand(buf: Uint8Array, req: Req): void {
  const command = lookupCommand(buf, req.argStart[0]!, req.argEnd[0]!);
  if (command === null) {
    req.error = unknownCommand(buf, req);
    return;
  }
  if (command.route === null) {
    req.error = `-ERR unsupported command '${command.name}'`;
    return;
  }
  req.command = command;
  const n = req.nargs;
  if (command.arity >= 0 ? n !== command.arity : n < -command.arity) {
    req.error = command.arityError;
    return;
  }
  if (command === PING && n > 1) {
    if (n === 2) req.command = PING_MESSAGE;
    else req.error = command.arityError;
    return;
  }
  req.error = findKeys(buf, req, command);
}

/** Pushes the command's key arguments; returns an error line when they cannot be found. */
function findKeys(buf: Uint8Array, req: Req, command: SupportedCommand): string | null {
  const n = req.nargs;
  if (command.firstKey > 0) {
    const step = command.keyStep;
    // Key/value pairs (MSET): the arguments after the name must come in whole groups.
    if (step > 1 && (n - command.firstKey) % step !== 0) return command.arityError;
    const last = command.lastKey < 0 ? n + command.lastKey : command.lastKey;
    for (let a = command.firstKey; a <= last; a += step) req.pushKey(a);
  }
  const at = command.numkeysAt;
  if (at > 0) {
    const start = req.argStart[at]!;
    const stop = req.argEnd[at]!;
    // The argument is followed by CRLF in buf, so it reads as a CRLF-terminated number.
    if (readNumber(buf, start, stop + 2) !== stop + 2) return NOT_INTEGER;
    const count = numberValue(buf, start);
    if (count < 0) return NEGATIVE_NUMKEYS;
    if (count > n - at - 1) return TOO_MANY_NUMKEYS;
    for (let a = at + 1; a <= at + count; a++) req.pushKey(a);
    if (req.nkeys === 0) return `-ERR unsupported command '${command.name}' without keys`;
  }
  return null;
}

const textOf = new TextDecoder();
const unknownText = new ByteWriter(512);

/** Redis-server's reply to an unknown command, byte for byte: the name as sent and the start
 *  of the arguments, each cut at 128 bytes (and at a NUL, as C's %s), CR and LF as spaces. */
function unknownCommand(buf: Uint8Array, req: Req): string {
  const w = unknownText;
  w.reset();
  w.text("-ERR unknown command '");
  quoted(w, buf, req.argStart[0]!, req.argEnd[0]!, 128);
  w.text("', with args beginning with: ");
  const argsFrom = w.len;
  for (let i = 1; i < req.nargs && w.len - argsFrom < 128; i++) {
    w.byte(39);
    quoted(w, buf, req.argStart[i]!, req.argEnd[i]!, 128 - (w.len - argsFrom - 1));
    w.text("' ");
  }
  return textOf.decode(w.view());
}

function quoted(w: ByteWriter, buf: Uint8Array, start: number, end: number, max: number): void {
  const stop = Math.min(end, start + max);
  for (let i = start; i < stop; i++) {
    const b = buf[i]!;
    if (b === 0) return;
    w.byte(b === CR || b === LF ? 32 : b);
  }
}
