// RESP bytes (RESP2 and RESP3) and the strict number reader shared by the request and response
// parsers.

export const CR = 13;
export const LF = 10;
export const STAR = 42; // * array
export const DOLLAR = 36; // $ bulk string
export const PLUS = 43; // + simple string
export const MINUS = 45; // - error
export const COLON = 58; // : integer
// RESP3 (https://github.com/redis/redis-specifications/blob/master/protocol/RESP3.md)
export const UNDERSCORE = 95; // _ null
export const COMMA = 44; // , double
export const PAREN = 40; // ( big number
export const HASH = 35; // # boolean
export const EQUALS = 61; // = verbatim string
export const BANG = 33; // ! blob error
export const PERCENT = 37; // % map
export const TILDE = 126; // ~ set
export const PIPE = 124; // | attribute
export const GREATER = 62; // > push
export const QUESTION = 63; // ? streamed length
export const SEMICOLON = 59; // ; streamed string chunk
export const DOT = 46; // . end of a streamed aggregate

/** Largest bulk string accepted (redis's default proto-max-bulk-len). */
export const MAX_BULK = 512 * 1024 * 1024;
/** Largest element count of an array (redis: INT_MAX). */
export const MAX_COUNT = 0x7fffffff;

/** `need` counts the values not seen yet at their smallest size, but at most this much in all:
 *  the reader reserves `need` bytes, and a made-up element count must not make it reserve much. */
export const MAX_UNSEEN = 64 * 1024;

/** readNumber: the input ends before the number's CRLF does. */
export const NUMBER_INCOMPLETE = -1;
/** readNumber: not a number redis accepts. */
export const NUMBER_INVALID = -2;

/**
 * Checks the decimal integer at buf[p, end) that ends with CRLF, as strictly as redis's
 * string2ll: an optional '-', then "0" alone or a non-zero digit followed by digits, at most
 * 19 digits. Returns the position after its CRLF (its value: numberValue(buf, p)),
 * NUMBER_INCOMPLETE or NUMBER_INVALID.
 */
export function readNumber(buf: Uint8Array, p: number, end: number): number {
  if (p >= end) return NUMBER_INCOMPLETE;
  let c = buf[p]!;
  if (c === MINUS) {
    if (++p >= end) return NUMBER_INCOMPLETE;
    c = buf[p]!;
    if (c === 48) return NUMBER_INVALID;
  }
  if (c < 48 || c > 57) return NUMBER_INVALID;
  const last = p + 19; // the 19th digit
  p++;
  if (c !== 48) {
    for (; p < end; p++) {
      c = buf[p]!;
      if (c < 48 || c > 57) break;
      if (p === last) return NUMBER_INVALID;
    }
  }
  if (p + 1 >= end) return p >= end || buf[p] === CR ? NUMBER_INCOMPLETE : NUMBER_INVALID;
  if (buf[p] !== CR || buf[p + 1] !== LF) return NUMBER_INVALID;
  return p + 2;
}

/** The value of the number at buf[p] that readNumber accepted. */
export function numberValue(buf: Uint8Array, p: number): number {
  const negative = buf[p] === MINUS;
  if (negative) p++;
  let value = 0;
  for (let d = buf[p]! - 48; d >= 0 && d <= 9; d = buf[++p]! - 48) value = value * 10 + d;
  return negative ? -value : value;
}
