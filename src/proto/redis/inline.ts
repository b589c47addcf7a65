// Inline commands: a request typed as a line of text (`PING`, `SET k "a b"`) instead of a RESP
// array, as telnet users and redis-benchmark's PING_INLINE send. The line is split into
// arguments with redis's own rules (sdssplitargs): arguments are separated by spaces, tabs, CR
// or LF; "double quotes" take the escapes \n \r \t \b \a \xHH and \<any byte>; 'single quotes'
// take only \'; a closing quote must be followed by a space or the end of the line; a quote
// may open in the middle of an argument. (A NUL byte never gets here: request.ts refuses it.)
//
// Quoted arguments are unescaped in place: the line is complete and belongs to this request
// alone, and an unescaped argument is never longer than its quoted form, so every argument
// stays a range of the client's buffer like a RESP argument. Such a request is marked
// Req.inline: it goes upstream re-encoded as a RESP array (buildForward), never as its line.

import type { Req } from "../codec.ts";

const BACKSLASH = 92;
const DQUOTE = 34;
const SQUOTE = 39;

/** C's isspace(): space, \t \n \v \f \r. */
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13);
}

/** sdssplitargs's end of an unquoted argument: space, \n, \r, \t or NUL (the end of the line). */
function endsArgument(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9 || c === 0;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Escapes inside double quotes: \n \r \t \b \a, any other byte stands for itself. */
function unescaped(c: number): number {
  switch (c) {
    case 110: // n
      return 10;
    case 114: // r
      return 13;
    case 116: // t
      return 9;
    case 98: // b
      return 8;
    case 97: // a
      return 7;
    default:
      return c;
  }
}

/**
 * Splits the line buf[start, stop) (its line end excluded) into req's arguments, unescaping
 * quoted ones in place. Returns false for unbalanced quotes (redis closes the connection).
 */
export function splitInline(buf: Uint8Array, start: number, stop: number, req: Req): boolean {
  // Past the line, the byte is 0, C's end of string (the line itself has no NUL).
  const at = (i: number): number => (i < stop ? buf[i]! : 0);
  let p = start;
  for (;;) {
    while (p < stop && isSpace(buf[p]!)) p++;
    if (at(p) === 0) return true;
    const argStart = p;
    let w = p; // where the next unescaped byte goes (never after p)
    let quote = 0; // the open quote, 0 outside quotes
    for (let done = false; !done; ) {
      const c = at(p);
      if (quote === DQUOTE) {
        if (c === BACKSLASH && at(p + 1) === 120 && hexValue(at(p + 2)) >= 0 && hexValue(at(p + 3)) >= 0) {
          buf[w++] = hexValue(at(p + 2)) * 16 + hexValue(at(p + 3));
          p += 3;
        } else if (c === BACKSLASH && at(p + 1) !== 0) {
          p++;
          buf[w++] = unescaped(buf[p]!);
        } else if (c === DQUOTE) {
          if (at(p + 1) !== 0 && !isSpace(at(p + 1))) return false;
          done = true;
        } else if (c === 0) {
          return false;
        } else {
          buf[w++] = c;
        }
      } else if (quote === SQUOTE) {
        if (c === BACKSLASH && at(p + 1) === SQUOTE) {
          p++;
          buf[w++] = SQUOTE;
        } else if (c === SQUOTE) {
          if (at(p + 1) !== 0 && !isSpace(at(p + 1))) return false;
          done = true;
        } else if (c === 0) {
          return false;
        } else {
          buf[w++] = c;
        }
      } else if (endsArgument(c)) {
        done = true;
      } else if (c === DQUOTE || c === SQUOTE) {
        quote = c;
      } else {
        buf[w++] = c;
      }
      if (c !== 0) p++;
    }
    req.pushArg(argStart, w);
  }
}
