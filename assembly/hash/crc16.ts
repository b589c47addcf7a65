// twemproxy hash_crc16: CRC-16/XMODEM (polynomial 0x1021) kept in a uint32 that is never masked,
// so the low 16 bits are the CRC and the high bits hold what the shifts carried up.

const TABLE: usize = memory.data(256 * 2);

for (let i: u32 = 0; i < 256; i++) {
  let crc: u32 = i << 8;
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
  store<u16>(TABLE + (i << 1), <u16>crc);
}

export function crc16(key: usize, len: u32): u32 {
  let crc: u32 = 0;
  for (let i: usize = 0; i < len; i++) {
    crc = (crc << 8) ^ <u32>load<u16>(TABLE + ((((crc >>> 8) ^ load<u8>(key + i)) & 0xff) << 1));
  }
  return crc;
}
