// RESP2 bytes and the strict number reader shared by the request and response parsers.

export const CR = 13;
export const LF = 10;
export const STAR = 42; // *
export const DOLLAR = 36; // $
export const PLUS = 43; // +
export const MINUS = 45; // -
export const COLON = 58; // :

/** Largest bulk string accepted (redis's default proto-max-bulk-len). */
export const MAX_BULK = 512 * 1024 * 1024;
/** Largest element count of an array (redis: INT_MAX). */
export const MAX_COUNT = 0x7fffffff;

export const NUMBER_OK = 0;
export const NUMBER_INCOMPLETE = 1;
export const NUMBER_INVALID = 2;

/** Results of readNumber (module state instead of an object per call). */
export let numberValue = 0;
/** The position after the number's CRLF. */
export let numberNext = 0;

/**
 * Reads the decimal integer at buf[p, end) that ends with CRLF, as strictly as redis's
 * string2ll: an optional '-', then "0" alone or a non-zero digit followed by digits, at most
 * 19 digits. Sets numberValue and numberNext on NUMBER_OK.
 */
export function readNumber(buf: Uint8Array, p: number, end: number): number {
  let negative = false;
  if (p < end && buf[p] === MINUS) {
    negative = true;
    p++;
  }
  if (p >= end) return NUMBER_INCOMPLETE;
  let c = buf[p]!;
  if (c < 48 || c > 57 || (c === 48 && negative)) return NUMBER_INVALID;
  let value = c - 48;
  let digits = 1;
  p++;
  if (value !== 0) {
    while (p < end && (c = buf[p]!) >= 48 && c <= 57) {
      if (++digits > 19) return NUMBER_INVALID;
      value = value * 10 + (c - 48);
      p++;
    }
  }
  if (p >= end) return NUMBER_INCOMPLETE;
  if (buf[p] !== CR) return NUMBER_INVALID;
  if (p + 1 >= end) return NUMBER_INCOMPLETE;
  if (buf[p + 1] !== LF) return NUMBER_INVALID;
  numberValue = negative ? -value : value;
  numberNext = p + 2;
  return NUMBER_OK;
}
