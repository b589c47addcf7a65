import { signedByte } from "./signed.ts";

export function oneAtATime(key: Uint8Array): number {
  let h = 0;
  for (let i = 0; i < key.length; i++) {
    h = (h + signedByte(key[i]!)) | 0;
    h = (h + (h << 10)) | 0;
    h ^= h >>> 6;
  }
  h = (h + (h << 3)) | 0;
  h ^= h >>> 11;
  h = (h + (h << 15)) | 0;
  return h >>> 0;
}
