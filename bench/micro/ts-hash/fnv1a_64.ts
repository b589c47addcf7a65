import { signedByte } from "./signed.ts";

/** twemproxy's fnv1a_64 is 32-bit: the low halves of the 64-bit basis and prime. */
export function fnv1a_64(key: Uint8Array): number {
  let h = 0x84222325 | 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ signedByte(key[i]!), 0x1b3);
  return h >>> 0;
}
