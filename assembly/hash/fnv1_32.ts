// twemproxy hash_fnv1_32: FNV-1, 32 bits. Bytes are signed C chars (sign-extended).

export function fnv1_32(key: usize, len: u32): u32 {
  let h: u32 = 0x811c9dc5;
  for (let i: usize = 0; i < len; i++) {
    h *= 0x01000193;
    h ^= <u32>load<i8>(key + i);
  }
  return h;
}
