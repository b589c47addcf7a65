import { crc32Register } from "./crc32_table.ts";

/** twemproxy's 15-bit crc32. */
export function crc32(key: Uint8Array): number {
  return (~crc32Register(key) >>> 16) & 0x7fff;
}
