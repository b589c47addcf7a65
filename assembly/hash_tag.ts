// twemproxy's hash_tag: the text between the first `open` byte and the first `close` byte after
// it, when that text is non-empty; otherwise the whole key.

import { KEY_SLACK } from "./layout";

const ONES: u64 = 0x0101010101010101;
const HIGHS: u64 = 0x8080808080808080;

let open: i32 = -1; // -1: the pool has no hash_tag
let close: i32 = -1;
export let partOffset: u32 = 0;
export let partLength: u32 = 0;

export function setHashTag(openByte: i32, closeByte: i32): void {
  open = openByte;
  close = closeByte;
}

/** Index of the first `byte` in [from, len) of the key, or len. Eight bytes per step (the key
 *  buffer has KEY_SLACK readable bytes after the key); in each word, the lowest flagged byte of
 *  the zero-byte test (x - 1) & ~x & 0x80 is exactly the first byte equal to `byte`. */
@inline export function indexOfByte(key: usize, from: u32, len: u32, byte: i32): u32 {
  const pattern = ONES * <u64>byte;
  for (let i = from; i < len; i += <u32>KEY_SLACK) {
    const x = load<u64>(key + i) ^ pattern;
    const found = (x - ONES) & ~x & HIGHS;
    if (found != 0) {
      const at = i + <u32>(ctz<u64>(found) >>> 3);
      return at < len ? at : len;
    }
  }
  return len;
}

/** Sets partOffset/partLength to the routing part of the key at `key`. */
export function findRoutingPart(key: usize, len: u32): void {
  partOffset = 0;
  partLength = len;
  if (open < 0) return;
  const start = indexOfByte(key, 0, len, open);
  if (start == len) return;
  const end = indexOfByte(key, start + 1, len, close);
  if (end == len || end - start == 1) return;
  partOffset = start + 1;
  partLength = end - start - 1;
}
