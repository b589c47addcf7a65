// twemproxy hash_one_at_a_time (Jenkins' one-at-a-time). Key bytes are C `char`, signed on
// x86_64, so bytes >= 0x80 enter the sum sign-extended.

export function oneAtATime(key: usize, len: u32): u32 {
  let h: u32 = 0;
  for (let i: usize = 0; i < len; i++) {
    h += <u32>load<i8>(key + i);
    h += h << 10;
    h ^= h >>> 6;
  }
  h += h << 3;
  h ^= h >>> 11;
  h += h << 15;
  return h;
}
