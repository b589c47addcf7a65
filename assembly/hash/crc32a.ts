// twemproxy hash_crc32a: the full standard CRC-32.

import { crc32Register } from "./crc32_table";

export function crc32a(key: usize, len: u32): u32 {
  return ~crc32Register(key, len);
}
