// memcached ASCII reply parsing, in place. A reply is one status line (STORED, NOT_FOUND, a
// number, VERSION x, an error line, ...) or a retrieval reply: zero or more
// `VALUE <key> <flags> <bytes> [<cas>]` items, each with its data block, then END.

import { FATAL, NEED_MORE, type Rsp } from "../codec.ts";
import { ownsItem } from "./join.ts";
import { CR, findLF, isUint64, LF, lineContentEnd, MAX_LINE, parseLength, skipSpaces, SP, startsWith, tokenEnd, tokenEquals } from "./scan.ts";

/** What a reply line is. */
export const Line = { Invalid: 0, Value: 1, End: 2, Status: 3, Error: 4 } as const;
export type Line = (typeof Line)[keyof typeof Line];

interface LineForm {
  readonly text: Uint8Array;
  /** The line may continue after `text` (which then ends in a space). */
  readonly prefix: boolean;
  readonly kind: Line;
}

const FORMS: readonly LineForm[] = [
  ...["STORED", "NOT_STORED", "EXISTS", "NOT_FOUND", "DELETED", "TOUCHED", "OK"].map((t) => form(t, false, Line.Status)),
  form("VERSION ", true, Line.Status),
  form("VALUE ", true, Line.Value),
  form("END", false, Line.End),
  ...["ERROR", "CLIENT_ERROR", "SERVER_ERROR"].flatMap((t) => [form(t, false, Line.Error), form(`${t} `, true, Line.Error)]),
];

function form(text: string, prefix: boolean, kind: Line): LineForm {
  return { text: new TextEncoder().encode(text), prefix, kind };
}

// Candidates by first byte, derived from FORMS.
const byFirstByte: LineForm[][] = Array.from({ length: 256 }, () => []);
for (const f of FORMS) byFirstByte[f.text[0]!]!.push(f);

/** The kind of the reply line buf[start, end) (without its line end). */
export function classifyLine(buf: Uint8Array, start: number, end: number): Line {
  if (start >= end) return Line.Invalid;
  const first = buf[start]!;
  // incr/decr: the new value, a 64-bit unsigned decimal.
  if (first >= 0x30 && first <= 0x39) return isUint64(buf, start, end) ? Line.Status : Line.Invalid;
  const forms = byFirstByte[first]!;
  for (let i = 0; i < forms.length; i++) {
    const f = forms[i]!;
    if (f.prefix ? startsWith(buf, start, end, f.text) : tokenEquals(buf, start, end, f.text)) return f.kind;
  }
  return Line.Invalid;
}

/** memcached 1.6's answer to a get (gets, gat, gats) it runs out of memory for, sent after it
 *  discarded every reply still unsent on the connection, those to earlier requests included
 *  (conn_release_items): which requests it answered cannot be told, so the connection's
 *  replies can no longer be matched to its requests. */
const GET_OUT_OF_MEMORY = new TextEncoder().encode("SERVER_ERROR out of memory writing get response");

/** The smallest line that can follow a VALUE item's data (`END\n`): a safe lower bound for need. */
const MIN_NEXT_LINE = 4;

/** Rsp.next after a VALUE item's data (streamed): its CRLF, then END, a VALUE item or an error
 *  line. It carries a joined reply's key cursor as it stood after that item (next = AFTER_DATA +
 *  2 * cursor), so a parse resumed from it starts from the same cursor however often it is
 *  retried: a retry after NEED_MORE must not see the cursor a failed attempt moved on. */
const AFTER_DATA = 1;

export function parseResponse(buf: Uint8Array, pos: number, end: number, rsp: Rsp): number {
  const resume = rsp.resume;
  rsp.reset(pos);
  let p = pos;
  if (resume !== 0) {
    rsp.keyCursor = (resume - AFTER_DATA) / 2;
    if (p + 2 > end) {
      rsp.need = 2 + MIN_NEXT_LINE;
      return NEED_MORE;
    }
    if (buf[p] !== CR || buf[p + 1] !== LF) return invalid(rsp, "VALUE data not followed by CRLF", buf, p, p + 2);
    p += 2;
  }
  for (;;) {
    const lf = findLF(buf, p, end);
    if (lf < 0) {
      if (end - p > MAX_LINE + 1) return invalid(rsp, "reply line too long", buf, p, end);
      rsp.need = end - pos + 1;
      return NEED_MORE;
    }
    const lineEnd = lineContentEnd(buf, p, lf);
    if (lineEnd - p > MAX_LINE) return invalid(rsp, "reply line too long", buf, p, lineEnd);
    const kind = classifyLine(buf, p, lineEnd);
    if (rsp.joined && joinedPartEnds(rsp, buf, kind, p, lineEnd)) {
      rsp.open = true;
      rsp.end = p;
      return p;
    }
    if (kind === Line.Value) {
      const length = valueLength(buf, p, lineEnd);
      if (length < 0) return invalid(rsp, "bad VALUE line", buf, p, lineEnd);
      const dataEnd = lf + 1 + length;
      if (dataEnd + 2 > end) {
        rsp.opaque = dataEnd - pos;
        rsp.next = AFTER_DATA + 2 * rsp.keyCursor;
        rsp.need = dataEnd + 2 + MIN_NEXT_LINE - pos;
        return NEED_MORE;
      }
      if (buf[dataEnd] !== CR || buf[dataEnd + 1] !== LF) {
        return invalid(rsp, "VALUE data not followed by CRLF", buf, p, lineEnd);
      }
      p = dataEnd + 2;
      continue;
    }
    // After VALUE items only END or an error line (memcached's failure mid-reply) may follow.
    if (kind === Line.Invalid || (p > pos && kind === Line.Status)) {
      return invalid(rsp, "unexpected reply line", buf, p, lineEnd);
    }
    rsp.isError = kind === Line.Error;
    if (rsp.isError) {
      if (tokenEquals(buf, p, lineEnd, GET_OUT_OF_MEMORY)) {
        return invalid(rsp, "replies dropped: memcached discards every reply it has not sent when a get runs out of memory", buf, p, lineEnd);
      }
      rsp.errorStart = p;
    }
    rsp.end = lf + 1;
    return rsp.end;
  }
}

/** Does the part of a joined request (Rsp.joined) end before the line buf[start, end) of this
 *  kind: END (the last request's), or an item for a later request of its line? */
function joinedPartEnds(rsp: Rsp, buf: Uint8Array, kind: Line, start: number, end: number): boolean {
  if (kind === Line.End) return true;
  if (kind !== Line.Value) return false;
  const key = valueKey(buf, start, end);
  return !ownsItem(rsp, buf, key, tokenEnd(buf, key, end));
}

/** "VALUE ": what a VALUE line starts with. */
const VALUE_PREFIX = 6;

/** Where the key of the VALUE line buf[start, end) starts (it ends at tokenEnd). */
export function valueKey(buf: Uint8Array, start: number, end: number): number {
  return skipSpaces(buf, start + VALUE_PREFIX, end);
}

/** The <bytes> of a `VALUE <key> <flags> <bytes> [<cas>]` line, or -1 if the line is malformed. */
export function valueLength(buf: Uint8Array, start: number, end: number): number {
  const key = valueKey(buf, start, end);
  return key === end ? -1 : lengthAfterKey(buf, tokenEnd(buf, key, end), end);
}

/** The <bytes> of a VALUE line read from the end of its key, buf[i, end) being
 *  ` <flags> <bytes> [<cas>]`, or -1 if that is malformed. */
export function lengthAfterKey(buf: Uint8Array, i: number, end: number): number {
  let length = -1;
  let n = 1; // the key
  while (i < end) {
    while (i < end && buf[i] === SP) i++;
    if (i === end) break;
    const s = i;
    while (i < end && buf[i] !== SP) i++;
    n++;
    if (n === 3) length = parseLength(buf, s, i);
    else if (n === 2 || n === 4) {
      if (!isUint64(buf, s, i)) return -1;
    } else return -1;
  }
  return n >= 3 ? length : -1;
}

/** FATAL, with what was wrong and the start of the offending line (escaped) for the log. */
function invalid(rsp: Rsp, what: string, buf: Uint8Array, start: number, end: number): number {
  let shown = "";
  for (let i = start; i < end && i < start + 40; i++) {
    const b = buf[i]!;
    shown += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, "0")}`;
  }
  rsp.error = `invalid memcached reply: ${what}: "${shown}${end - start > 40 ? "..." : ""}"`;
  return FATAL;
}
