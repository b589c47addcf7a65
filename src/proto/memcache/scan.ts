// Byte-level helpers shared by the memcached request and response parsers: line ends, token
// comparison and number syntax, all on Uint8Array offsets without building strings.

import { equalBytes } from "../../lib/bytes.ts";

export const SP = 0x20;
export const CR = 0x0d;
export const LF = 0x0a;

/** Most bytes of a command line before its LF (its CR counts) that memcached takes: it drops a
 *  client once it has read more than 2048 bytes of a line and no LF (get/gets lines get
 *  MAX_GET_LINE). Also the cap for a reply line (without its end). */
export const MAX_LINE = 2048;
/** Longest get/gets line (memcached has no limit; the proxy must bound what it buffers per
 *  client): 1 MiB, about 4,000 keys of 250 bytes. */
export const MAX_GET_LINE = 1 << 20;
export const MAX_KEY_LENGTH = 250;
/** memcached rejects a data block length above INT_MAX - 2 (it adds the CRLF in an int). */
export const MAX_DATA_LENGTH = 0x7fffffff - 2;

/** Lines up to this long are scanned in JS: a native indexOf call costs more than the loop for
 *  a typical command or VALUE line. */
const SHORT_LINE = 64;

/** Position of the first LF in buf[pos, end), or -1. (Past SHORT_LINE bytes indexOf, a native
 *  memchr, takes over; it may look past `end` only when the line is incomplete.) */
export function findLF(buf: Uint8Array, pos: number, end: number): number {
  const stop = end - pos > SHORT_LINE ? pos + SHORT_LINE : end;
  for (let i = pos; i < stop; i++) if (buf[i] === LF) return i;
  if (stop === end) return -1;
  const i = buf.indexOf(LF, stop);
  return i < end ? i : -1;
}

/** End of a line's content: the LF at `lf`, or the CR before it. */
export function lineContentEnd(buf: Uint8Array, pos: number, lf: number): number {
  return lf > pos && buf[lf - 1] === CR ? lf - 1 : lf;
}

/** The first position at or after i in buf[i, end) that is not a space. */
export function skipSpaces(buf: Uint8Array, i: number, end: number): number {
  while (i < end && buf[i] === SP) i++;
  return i;
}

/** The end of the token starting at i (the next space, or `end`). */
export function tokenEnd(buf: Uint8Array, i: number, end: number): number {
  while (i < end && buf[i] !== SP) i++;
  return i;
}

/** buf[start, end) equals `text` (an ASCII byte string). */
export function tokenEquals(buf: Uint8Array, start: number, end: number, text: Uint8Array): boolean {
  return equalBytes(buf, start, end, text, 0, text.length);
}

/** buf[start, end) begins with `text`. */
export function startsWith(buf: Uint8Array, start: number, end: number, text: Uint8Array): boolean {
  if (end - start < text.length) return false;
  for (let i = 0; i < text.length; i++) if (buf[start + i] !== text[i]) return false;
  return true;
}

const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);
const U32_MAX = ascii("4294967295");
const U64_MAX = ascii("18446744073709551615");
const I64_MAX = ascii("9223372036854775807");
const I64_MIN_MAGNITUDE = ascii("9223372036854775808");

/** buf[start, end) is decimal digits (leading zeros allowed, as strtoul does) whose value is at
 *  most `max` (decimal digits without leading zeros). */
function digitsAtMost(buf: Uint8Array, start: number, end: number, max: Uint8Array): boolean {
  if (start >= end) return false;
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    if (b < 0x30 || b > 0x39) return false;
  }
  while (end - start > 1 && buf[start] === 0x30) start++;
  const n = end - start;
  if (n !== max.length) return n < max.length;
  for (let i = 0; i < n; i++) {
    const d = buf[start + i]! - max[i]!;
    if (d !== 0) return d < 0;
  }
  return true;
}

/** 32-bit unsigned decimal (item flags). */
export function isUint32(buf: Uint8Array, start: number, end: number): boolean {
  return digitsAtMost(buf, start, end, U32_MAX);
}

/** 64-bit unsigned decimal (cas unique, incr/decr value). */
export function isUint64(buf: Uint8Array, start: number, end: number): boolean {
  return digitsAtMost(buf, start, end, U64_MAX);
}

/** Signed 64-bit decimal (exptime: negative means already expired; memcached's strtol). */
export function isInt64(buf: Uint8Array, start: number, end: number): boolean {
  if (buf[start] === 0x2d) return digitsAtMost(buf, start + 1, end, I64_MIN_MAGNITUDE);
  return digitsAtMost(buf, start, end, I64_MAX);
}

/** A data block length: decimal in [0, MAX_DATA_LENGTH], or -1. */
export function parseLength(buf: Uint8Array, start: number, end: number): number {
  if (start >= end) return -1;
  while (end - start > 1 && buf[start] === 0x30) start++;
  if (end - start > 10) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n <= MAX_DATA_LENGTH ? n : -1;
}

