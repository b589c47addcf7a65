import { signedByte } from "./signed.ts";

export function hsieh(key: Uint8Array): number {
  const len = key.length;
  if (len === 0) return 0;
  let h = 0;
  let p = 0;
  for (let blocks = len >>> 2; blocks > 0; blocks--) {
    h = (h + (key[p]! | (key[p + 1]! << 8))) | 0;
    const tmp = ((key[p + 2]! | (key[p + 3]! << 8)) << 11) ^ h;
    h = (h << 16) ^ tmp;
    h = (h + (h >>> 11)) | 0;
    p += 4;
  }
  switch (len & 3) {
    case 3:
      h = (h + (key[p]! | (key[p + 1]! << 8))) | 0;
      h ^= h << 16;
      h ^= signedByte(key[p + 2]!) << 18;
      h = (h + (h >>> 11)) | 0;
      break;
    case 2:
      h = (h + (key[p]! | (key[p + 1]! << 8))) | 0;
      h ^= h << 11;
      h = (h + (h >>> 17)) | 0;
      break;
    case 1:
      h = (h + key[p]!) | 0;
      h ^= h << 10;
      h = (h + (h >>> 1)) | 0;
      break;
  }
  h ^= h << 3;
  h = (h + (h >>> 5)) | 0;
  h ^= h << 4;
  h = (h + (h >>> 17)) | 0;
  h ^= h << 25;
  h = (h + (h >>> 6)) | 0;
  return h >>> 0;
}
