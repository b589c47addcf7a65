import { crc32Register } from "./crc32_table.ts";

export function crc32a(key: Uint8Array): number {
  return ~crc32Register(key) >>> 0;
}
