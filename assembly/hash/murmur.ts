// twemproxy hash_murmur: MurmurHash2 with the seed 0xdeadbeef * len (then h = seed ^ len),
// 32-bit little-endian reads, unsigned bytes.

const M: u32 = 0x5bd1e995;

export function murmur(key: usize, len: u32): u32 {
  let h: u32 = (0xdeadbeef * len) ^ len;
  let p = key;
  let left = len;
  while (left >= 4) {
    let k = load<u32>(p);
    k *= M;
    k ^= k >>> 24;
    k *= M;
    h *= M;
    h ^= k;
    p += 4;
    left -= 4;
  }
  if (left > 0) {
    if (left == 3) h ^= <u32>load<u8>(p, 2) << 16;
    if (left >= 2) h ^= <u32>load<u8>(p, 1) << 8;
    h ^= <u32>load<u8>(p);
    h *= M;
  }
  h ^= h >>> 13;
  h *= M;
  h ^= h >>> 15;
  return h;
}
