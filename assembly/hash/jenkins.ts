// twemproxy hash_jenkins: Bob Jenkins' lookup3 hashlittle() with initval 13, little-endian.
// The last 1..12 bytes are zero-padded into a scratch block, which equals lookup3's masked reads.

const TAIL: usize = memory.data(16);

export function jenkins(key: usize, len: u32): u32 {
  let a: u32 = 0xdeadbeef + len + 13;
  let b = a;
  let c = a;
  let p = key;
  let left = len;
  while (left > 12) {
    a += load<u32>(p);
    b += load<u32>(p, 4);
    c += load<u32>(p, 8);
    a -= c; a ^= rotl<u32>(c, 4); c += b;
    b -= a; b ^= rotl<u32>(a, 6); a += c;
    c -= b; c ^= rotl<u32>(b, 8); b += a;
    a -= c; a ^= rotl<u32>(c, 16); c += b;
    b -= a; b ^= rotl<u32>(a, 19); a += c;
    c -= b; c ^= rotl<u32>(b, 4); b += a;
    p += 12;
    left -= 12;
  }
  if (left == 0) return c; // zero-length input: no final mixing
  store<u64>(TAIL, 0);
  store<u32>(TAIL, 0, 8);
  memory.copy(TAIL, p, left);
  a += load<u32>(TAIL);
  b += load<u32>(TAIL, 4);
  c += load<u32>(TAIL, 8);
  c ^= b; c -= rotl<u32>(b, 14);
  a ^= c; a -= rotl<u32>(c, 11);
  b ^= a; b -= rotl<u32>(a, 25);
  c ^= b; c -= rotl<u32>(b, 16);
  a ^= c; a -= rotl<u32>(c, 4);
  b ^= a; b -= rotl<u32>(a, 14);
  c ^= b; c -= rotl<u32>(b, 24);
  return c;
}
