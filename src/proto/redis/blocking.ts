// Blocking commands (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BZPOPMIN, BZPOPMAX, BLMPOP, BZMPOP,
// XREAD / XREADGROUP ... BLOCK): how long one may wait, read from its own timeout argument (the
// table's BlockingTimeout), so the pool's request timeout never cuts it short; and where the
// keys of XREAD / XREADGROUP are (after STREAMS: the first half of what follows; redis's
// COMMAND has no fixed positions for them).

import type { Req } from "../codec.ts";
import type { BlockingTimeout } from "./commands.ts";

/** The request may block for ever (a timeout of 0). */
export const FOREVER = 0;
/** The request does not block (XREAD without BLOCK). */
export const NO_BLOCK = -1;
/** The timeout argument is missing or not a number: redis will refuse the request at once. */
export const BAD_TIMEOUT = -2;

const LOWER = (b: number): number => (b >= 65 && b <= 90 ? b + 32 : b);

function argIs(buf: Uint8Array, req: Req, arg: number, word: string): boolean {
  const start = req.argStart[arg]!;
  if (req.argEnd[arg]! - start !== word.length) return false;
  for (let i = 0; i < word.length; i++) if (LOWER(buf[start + i]!) !== word.charCodeAt(i)) return false;
  return true;
}

/** A non-negative decimal number (seconds may have a fraction, as redis reads them), or NaN. */
function decimal(buf: Uint8Array, start: number, end: number): number {
  if (start === end || end - start > 32) return NaN;
  let text = "";
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    if ((b < 48 || b > 57) && b !== 46) return NaN;
    text += String.fromCharCode(b);
  }
  return Number(text);
}

/** Where XREAD / XREADGROUP's BLOCK value and STREAMS keyword are (-1: absent), reading the
 *  options as redis does (GROUP takes two arguments, COUNT and BLOCK one, NOACK none), so a
 *  group or consumer named "streams" is not taken for the keyword. */
function streamOptions(buf: Uint8Array, req: Req): { block: number; streams: number } {
  let block = -1;
  let a = 1;
  while (a < req.nargs) {
    if (argIs(buf, req, a, "streams")) return { block, streams: a };
    if (argIs(buf, req, a, "group")) a += 3;
    else if (argIs(buf, req, a, "count")) a += 2;
    else if (argIs(buf, req, a, "block")) {
      block = a + 1;
      a += 2;
    } else if (argIs(buf, req, a, "noack")) a += 1;
    else break;
  }
  return { block, streams: -1 };
}

/** How long req may block in ms: FOREVER, NO_BLOCK, BAD_TIMEOUT or the time. */
export function blockingTimeout(buf: Uint8Array, req: Req, timeout: BlockingTimeout): number {
  let arg: number;
  if ("option" in timeout) {
    arg = streamOptions(buf, req).block;
    if (arg < 0) return NO_BLOCK;
    if (arg >= req.nargs) return BAD_TIMEOUT;
  } else {
    arg = timeout.at < 0 ? req.nargs + timeout.at : timeout.at;
    if (arg < 1 || arg >= req.nargs) return BAD_TIMEOUT;
  }
  const value = decimal(buf, req.argStart[arg]!, req.argEnd[arg]!);
  if (Number.isNaN(value)) return BAD_TIMEOUT;
  const ms = timeout.unit === "s" ? value * 1000 : value;
  return ms === 0 ? FOREVER : Math.ceil(ms);
}

/** XREAD / XREADGROUP: push the stream keys (after STREAMS, the first half of the rest) onto
 *  req's keys; returns redis's error line (its words for both commands) when they cannot be
 *  found or do not pair with IDs. */
export function pushStreamKeys(buf: Uint8Array, req: Req): string | null {
  const streams = streamOptions(buf, req).streams;
  if (streams < 0) return "-ERR syntax error";
  const rest = req.nargs - streams - 1;
  if (rest === 0 || rest % 2 !== 0) {
    return "-ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.";
  }
  for (let k = streams + 1; k <= streams + rest / 2; k++) req.pushKey(k);
  return null;
}
