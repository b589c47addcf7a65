import { signedByte } from "./signed.ts";

export function fnv1_32(key: Uint8Array): number {
  let h = 0x811c9dc5 | 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h, 0x01000193) ^ signedByte(key[i]!);
  return h >>> 0;
}
