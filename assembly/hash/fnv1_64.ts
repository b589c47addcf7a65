// twemproxy hash_fnv1_64: FNV-1 with a 64-bit state, returning its low 32 bits. The low 32 bits
// of a 64-bit multiply and xor depend only on the low 32 bits of the operands, so a 32-bit state
// seeded with the low halves of the 64-bit offset basis and prime gives the same result.
// Bytes are signed C chars (sign-extended).

export function fnv1_64(key: usize, len: u32): u32 {
  let h: u32 = 0x84222325; // low 32 bits of 0xcbf29ce484222325
  for (let i: usize = 0; i < len; i++) {
    h *= 0x1b3; // low 32 bits of 0x100000001b3
    h ^= <u32>load<i8>(key + i);
  }
  return h;
}
