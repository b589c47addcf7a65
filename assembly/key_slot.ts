// Redis Cluster's key slot (the cluster specification's HASH_SLOT, redis cluster.c keyHashSlot):
// CRC-16/XMODEM of the key modulo 16384, where a key with a `{` followed later by a `}` and at
// least one byte between them hashes only those bytes (the first `{` and the first `}` after
// it). The rule is fixed by the cluster, whatever the pool's own hash_tag.

import { crc16 } from "./hash/crc16";
import { indexOfByte } from "./hash_tag";

const OPEN: i32 = 0x7b; // {
const CLOSE: i32 = 0x7d; // }
export const SLOTS: u32 = 16384;

/** The slot of the `len`-byte key at `key` (the key buffer: KEY_SLACK readable bytes after it). */
export function keySlot(key: usize, len: u32): u32 {
  const start = indexOfByte(key, 0, len, OPEN);
  if (start < len) {
    const end = indexOfByte(key, start + 1, len, CLOSE);
    if (end < len && end - start > 1) return crc16(key + start + 1, end - start - 1) & (SLOTS - 1);
  }
  return crc16(key, len) & (SLOTS - 1);
}
