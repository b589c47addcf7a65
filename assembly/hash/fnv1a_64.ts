// twemproxy hash_fnv1a_64: despite the name a 32-bit hash. Its state is a uint32 seeded with
// the low 32 bits of the 64-bit offset basis and multiplied by the low 32 bits of the 64-bit
// prime. Bytes are signed C chars (sign-extended).

export function fnv1a_64(key: usize, len: u32): u32 {
  let h: u32 = 0x84222325;
  for (let i: usize = 0; i < len; i++) {
    h ^= <u32>load<i8>(key + i);
    h *= 0x1b3;
  }
  return h;
}
