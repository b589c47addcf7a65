export const CRC32_TABLE = new Int32Array(256).map((_, i) => {
  let crc = i;
  for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
  return crc;
});

export function crc32Register(key: Uint8Array): number {
  let crc = -1;
  for (let i = 0; i < key.length; i++) crc = (crc >>> 8) ^ CRC32_TABLE[(crc ^ key[i]!) & 0xff]!;
  return crc;
}
