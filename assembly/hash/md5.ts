// MD5 (RFC 1321). twemproxy's hash_md5 is the first digest word read little-endian; ketama uses
// all four words. The digest's little-endian words are the final state words a, b, c, d, which
// md5() leaves in md5A..md5D.

export let md5A: u32 = 0;
export let md5B: u32 = 0;
export let md5C: u32 = 0;
export let md5D: u32 = 0;

/** The final one or two blocks: the key's tail, the 0x80 marker, zeros and the bit length. */
const TAIL: usize = memory.data(128);

// Each step waits for the previous step's result (x in the round functions, b in step), so the
// round functions and the sum put as few operations as possible after it (measured: -12%).
// G adds instead of or-ing its two halves: their bits are disjoint, and the add folds into the sum.
@inline function F(x: u32, y: u32, z: u32): u32 { return z ^ (x & (y ^ z)); }
@inline function G(x: u32, y: u32, z: u32): u32 { return (y & ~z) + (x & z); }
@inline function H(x: u32, y: u32, z: u32): u32 { return x ^ (y ^ z); }
@inline function I(x: u32, y: u32, z: u32): u32 { return y ^ (x | ~z); }

@inline function step(f: u32, a: u32, b: u32, x: u32, t: u32, s: u32): u32 {
  return rotl<u32>(a + x + t + f, s) + b;
}

function block(p: usize): void {
  const x0 = load<u32>(p, 0), x1 = load<u32>(p, 4), x2 = load<u32>(p, 8), x3 = load<u32>(p, 12);
  const x4 = load<u32>(p, 16), x5 = load<u32>(p, 20), x6 = load<u32>(p, 24), x7 = load<u32>(p, 28);
  const x8 = load<u32>(p, 32), x9 = load<u32>(p, 36), x10 = load<u32>(p, 40), x11 = load<u32>(p, 44);
  const x12 = load<u32>(p, 48), x13 = load<u32>(p, 52), x14 = load<u32>(p, 56), x15 = load<u32>(p, 60);
  let a = md5A, b = md5B, c = md5C, d = md5D;

  a = step(F(b, c, d), a, b, x0, 0xd76aa478, 7);
  d = step(F(a, b, c), d, a, x1, 0xe8c7b756, 12);
  c = step(F(d, a, b), c, d, x2, 0x242070db, 17);
  b = step(F(c, d, a), b, c, x3, 0xc1bdceee, 22);
  a = step(F(b, c, d), a, b, x4, 0xf57c0faf, 7);
  d = step(F(a, b, c), d, a, x5, 0x4787c62a, 12);
  c = step(F(d, a, b), c, d, x6, 0xa8304613, 17);
  b = step(F(c, d, a), b, c, x7, 0xfd469501, 22);
  a = step(F(b, c, d), a, b, x8, 0x698098d8, 7);
  d = step(F(a, b, c), d, a, x9, 0x8b44f7af, 12);
  c = step(F(d, a, b), c, d, x10, 0xffff5bb1, 17);
  b = step(F(c, d, a), b, c, x11, 0x895cd7be, 22);
  a = step(F(b, c, d), a, b, x12, 0x6b901122, 7);
  d = step(F(a, b, c), d, a, x13, 0xfd987193, 12);
  c = step(F(d, a, b), c, d, x14, 0xa679438e, 17);
  b = step(F(c, d, a), b, c, x15, 0x49b40821, 22);

  a = step(G(b, c, d), a, b, x1, 0xf61e2562, 5);
  d = step(G(a, b, c), d, a, x6, 0xc040b340, 9);
  c = step(G(d, a, b), c, d, x11, 0x265e5a51, 14);
  b = step(G(c, d, a), b, c, x0, 0xe9b6c7aa, 20);
  a = step(G(b, c, d), a, b, x5, 0xd62f105d, 5);
  d = step(G(a, b, c), d, a, x10, 0x02441453, 9);
  c = step(G(d, a, b), c, d, x15, 0xd8a1e681, 14);
  b = step(G(c, d, a), b, c, x4, 0xe7d3fbc8, 20);
  a = step(G(b, c, d), a, b, x9, 0x21e1cde6, 5);
  d = step(G(a, b, c), d, a, x14, 0xc33707d6, 9);
  c = step(G(d, a, b), c, d, x3, 0xf4d50d87, 14);
  b = step(G(c, d, a), b, c, x8, 0x455a14ed, 20);
  a = step(G(b, c, d), a, b, x13, 0xa9e3e905, 5);
  d = step(G(a, b, c), d, a, x2, 0xfcefa3f8, 9);
  c = step(G(d, a, b), c, d, x7, 0x676f02d9, 14);
  b = step(G(c, d, a), b, c, x12, 0x8d2a4c8a, 20);

  a = step(H(b, c, d), a, b, x5, 0xfffa3942, 4);
  d = step(H(a, b, c), d, a, x8, 0x8771f681, 11);
  c = step(H(d, a, b), c, d, x11, 0x6d9d6122, 16);
  b = step(H(c, d, a), b, c, x14, 0xfde5380c, 23);
  a = step(H(b, c, d), a, b, x1, 0xa4beea44, 4);
  d = step(H(a, b, c), d, a, x4, 0x4bdecfa9, 11);
  c = step(H(d, a, b), c, d, x7, 0xf6bb4b60, 16);
  b = step(H(c, d, a), b, c, x10, 0xbebfbc70, 23);
  a = step(H(b, c, d), a, b, x13, 0x289b7ec6, 4);
  d = step(H(a, b, c), d, a, x0, 0xeaa127fa, 11);
  c = step(H(d, a, b), c, d, x3, 0xd4ef3085, 16);
  b = step(H(c, d, a), b, c, x6, 0x04881d05, 23);
  a = step(H(b, c, d), a, b, x9, 0xd9d4d039, 4);
  d = step(H(a, b, c), d, a, x12, 0xe6db99e5, 11);
  c = step(H(d, a, b), c, d, x15, 0x1fa27cf8, 16);
  b = step(H(c, d, a), b, c, x2, 0xc4ac5665, 23);

  a = step(I(b, c, d), a, b, x0, 0xf4292244, 6);
  d = step(I(a, b, c), d, a, x7, 0x432aff97, 10);
  c = step(I(d, a, b), c, d, x14, 0xab9423a7, 15);
  b = step(I(c, d, a), b, c, x5, 0xfc93a039, 21);
  a = step(I(b, c, d), a, b, x12, 0x655b59c3, 6);
  d = step(I(a, b, c), d, a, x3, 0x8f0ccc92, 10);
  c = step(I(d, a, b), c, d, x10, 0xffeff47d, 15);
  b = step(I(c, d, a), b, c, x1, 0x85845dd1, 21);
  a = step(I(b, c, d), a, b, x8, 0x6fa87e4f, 6);
  d = step(I(a, b, c), d, a, x15, 0xfe2ce6e0, 10);
  c = step(I(d, a, b), c, d, x6, 0xa3014314, 15);
  b = step(I(c, d, a), b, c, x13, 0x4e0811a1, 21);
  a = step(I(b, c, d), a, b, x4, 0xf7537e82, 6);
  d = step(I(a, b, c), d, a, x11, 0xbd3af235, 10);
  c = step(I(d, a, b), c, d, x2, 0x2ad7d2bb, 15);
  b = step(I(c, d, a), b, c, x9, 0xeb86d391, 21);

  md5A += a;
  md5B += b;
  md5C += c;
  md5D += d;
}

export function md5(key: usize, len: u32): void {
  md5A = 0x67452301;
  md5B = 0xefcdab89;
  md5C = 0x98badcfe;
  md5D = 0x10325476;
  const full = len & ~63;
  for (let off: u32 = 0; off < full; off += 64) block(key + off);
  // The tail is assembled with plain loads and stores: for keys this short, bulk memory
  // operations cost more than they save.
  const tail = key + full;
  const rest = len - full;
  const tailBytes: usize = rest < 56 ? 64 : 128;
  let i: u32 = 0;
  for (; i + 8 <= rest; i += 8) store<u64>(TAIL + i, load<u64>(tail + i));
  let last: u64 = <u64>0x80 << (<u64>(rest - i) << 3);
  for (let j = rest; j > i; j--) last |= <u64>load<u8>(tail + j - 1) << (<u64>(j - 1 - i) << 3);
  store<u64>(TAIL + i, last);
  for (let zero: usize = i + 8; zero < tailBytes - 8; zero += 8) store<u64>(TAIL + zero, 0);
  store<u64>(TAIL + tailBytes - 8, <u64>len << 3);
  block(TAIL);
  if (tailBytes == 128) block(TAIL + 64);
}
