const M = 0x5bd1e995;

/** MurmurHash2 with twemproxy's seed (0xdeadbeef * len). */
export function murmur(key: Uint8Array): number {
  const len = key.length;
  let h = Math.imul(0xdeadbeef, len) ^ len;
  let p = 0;
  for (let left = len; left >= 4; left -= 4, p += 4) {
    let k = key[p]! | (key[p + 1]! << 8) | (key[p + 2]! << 16) | (key[p + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const tail = len & 3;
  if (tail > 0) {
    if (tail === 3) h ^= key[p + 2]! << 16;
    if (tail >= 2) h ^= key[p + 1]! << 8;
    h = Math.imul(h ^ key[p]!, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h >>> 0;
}
