// twemproxy hash_crc32: the standard CRC-32, but it returns only 15 bits,
// (crc >> 16) & 0x7fff (so ketama + crc32 sends nearly every key to the lowest ring point).

import { crc32Register } from "./crc32_table";

export function crc32(key: usize, len: u32): u32 {
  return (~crc32Register(key, len) >>> 16) & 0x7fff;
}
