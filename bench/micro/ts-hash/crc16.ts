// CRC-16/XMODEM in an unmasked uint32, as twemproxy's hash_crc16.

const TABLE = new Uint16Array(256).map((_, i) => {
  let crc = i << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
  return crc;
});

export function crc16(key: Uint8Array): number {
  let crc = 0;
  for (let i = 0; i < key.length; i++) crc = (crc << 8) ^ TABLE[((crc >>> 8) ^ key[i]!) & 0xff]!;
  return crc >>> 0;
}
