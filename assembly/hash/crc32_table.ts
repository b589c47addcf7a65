// The reflected CRC-32 table (polynomial 0xEDB88320) shared by crc32 and crc32a.

export const CRC32_TABLE: usize = memory.data(256 * 4);

for (let i: u32 = 0; i < 256; i++) {
  let crc = i;
  for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  store<u32>(CRC32_TABLE + (i << 2), crc);
}

/** The raw CRC-32 register after `len` bytes (before the final inversion). */
@inline export function crc32Register(key: usize, len: u32): u32 {
  let crc: u32 = 0xffffffff;
  for (let i: usize = 0; i < len; i++) {
    crc = (crc >>> 8) ^ load<u32>(CRC32_TABLE + (((crc ^ load<u8>(key + i)) & 0xff) << 2));
  }
  return crc;
}
