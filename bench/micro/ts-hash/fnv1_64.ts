import { signedByte } from "./signed.ts";

/** Low 32 bits of 64-bit FNV-1: only the low halves of basis and prime matter. */
export function fnv1_64(key: Uint8Array): number {
  let h = 0x84222325 | 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h, 0x1b3) ^ signedByte(key[i]!);
  return h >>> 0;
}
