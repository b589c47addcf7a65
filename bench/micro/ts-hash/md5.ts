// MD5 (RFC 1321), unrolled like the WASM one; returns the first digest word, little-endian.

let A = 0;
let B = 0;
let C = 0;
let D = 0;
const TAIL = new Uint8Array(128);

// The same round functions and sum order as the WASM md5 (assembly/hash/md5.ts).
function F(x: number, y: number, z: number): number { return z ^ (x & (y ^ z)); }
function G(x: number, y: number, z: number): number { return (y & ~z) + (x & z); }
function H(x: number, y: number, z: number): number { return x ^ (y ^ z); }
function I(x: number, y: number, z: number): number { return y ^ (x | ~z); }

function step(f: number, a: number, b: number, x: number, t: number, s: number): number {
  const v = (a + x + t + f) | 0;
  return (((v << s) | (v >>> (32 - s))) + b) | 0;
}

function le32(k: Uint8Array, p: number): number {
  return k[p]! | (k[p + 1]! << 8) | (k[p + 2]! << 16) | (k[p + 3]! << 24);
}

function block(k: Uint8Array, p: number): void {
  const x0 = le32(k, p), x1 = le32(k, p + 4), x2 = le32(k, p + 8), x3 = le32(k, p + 12);
  const x4 = le32(k, p + 16), x5 = le32(k, p + 20), x6 = le32(k, p + 24), x7 = le32(k, p + 28);
  const x8 = le32(k, p + 32), x9 = le32(k, p + 36), x10 = le32(k, p + 40), x11 = le32(k, p + 44);
  const x12 = le32(k, p + 48), x13 = le32(k, p + 52), x14 = le32(k, p + 56), x15 = le32(k, p + 60);
  let a = A, b = B, c = C, d = D;

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

  A = (A + a) | 0;
  B = (B + b) | 0;
  C = (C + c) | 0;
  D = (D + d) | 0;
}

export function md5(key: Uint8Array): number {
  A = 0x67452301;
  B = 0xefcdab89 | 0;
  C = 0x98badcfe | 0;
  D = 0x10325476;
  const len = key.length;
  const full = len & ~63;
  for (let p = 0; p < full; p += 64) block(key, p);
  const rest = len - full;
  TAIL.fill(0);
  for (let i = 0; i < rest; i++) TAIL[i] = key[full + i]!;
  TAIL[rest] = 0x80;
  const end = rest < 56 ? 64 : 128;
  const bits = len * 8;
  TAIL[end - 8] = bits & 0xff;
  TAIL[end - 7] = (bits >>> 8) & 0xff;
  TAIL[end - 6] = (bits >>> 16) & 0xff;
  TAIL[end - 5] = (bits >>> 24) & 0xff;
  TAIL[end - 4] = Math.floor(bits / 2 ** 32) & 0xff;
  block(TAIL, 0);
  if (end === 128) block(TAIL, 64);
  return A >>> 0;
}
