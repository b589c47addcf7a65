/** Little-endian word of up to 4 bytes from key[p, end). */
function word(key: Uint8Array, p: number, end: number): number {
  let w = 0;
  for (let i = Math.min(end, p + 4) - 1; i >= p; i--) w = (w << 8) | key[i]!;
  return w;
}

function rot(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** lookup3 hashlittle() with initval 13. */
export function jenkins(key: Uint8Array): number {
  const len = key.length;
  let a = (0xdeadbeef + len + 13) | 0;
  let b = a;
  let c = a;
  let p = 0;
  for (; len - p > 12; p += 12) {
    a = (a + (key[p]! | (key[p + 1]! << 8) | (key[p + 2]! << 16) | (key[p + 3]! << 24))) | 0;
    b = (b + (key[p + 4]! | (key[p + 5]! << 8) | (key[p + 6]! << 16) | (key[p + 7]! << 24))) | 0;
    c = (c + (key[p + 8]! | (key[p + 9]! << 8) | (key[p + 10]! << 16) | (key[p + 11]! << 24))) | 0;
    a = (a - c) | 0; a ^= rot(c, 4); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rot(a, 6); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rot(b, 8); b = (b + a) | 0;
    a = (a - c) | 0; a ^= rot(c, 16); c = (c + b) | 0;
    b = (b - a) | 0; b ^= rot(a, 19); a = (a + c) | 0;
    c = (c - b) | 0; c ^= rot(b, 4); b = (b + a) | 0;
  }
  if (p === len) return c >>> 0;
  a = (a + word(key, p, len)) | 0;
  b = (b + word(key, p + 4, len)) | 0;
  c = (c + word(key, p + 8, len)) | 0;
  c ^= b; c = (c - rot(b, 14)) | 0;
  a ^= c; a = (a - rot(c, 11)) | 0;
  b ^= a; b = (b - rot(a, 25)) | 0;
  c ^= b; c = (c - rot(b, 16)) | 0;
  a ^= c; a = (a - rot(c, 4)) | 0;
  b ^= a; b = (b - rot(a, 14)) | 0;
  c ^= b; c = (c - rot(b, 24)) | 0;
  return c >>> 0;
}
