// twemproxy hash_hsieh: Paul Hsieh's SuperFastHash, 16-bit little-endian reads. The only signed
// C char is the third byte of a 3-byte tail; the 1-byte tail is read unsigned.

export function hsieh(key: usize, len: u32): u32 {
  if (len == 0) return 0;
  let h: u32 = 0;
  let p = key;
  for (let blocks = len >>> 2; blocks > 0; blocks--) {
    h += <u32>load<u16>(p);
    const tmp = (<u32>load<u16>(p, 2) << 11) ^ h;
    h = (h << 16) ^ tmp;
    h += h >>> 11;
    p += 4;
  }
  switch (len & 3) {
    case 3:
      h += <u32>load<u16>(p);
      h ^= h << 16;
      h ^= <u32>load<i8>(p, 2) << 18;
      h += h >>> 11;
      break;
    case 2:
      h += <u32>load<u16>(p);
      h ^= h << 11;
      h += h >>> 17;
      break;
    case 1:
      h += <u32>load<u8>(p);
      h ^= h << 10;
      h += h >>> 1;
      break;
  }
  h ^= h << 3;
  h += h >>> 5;
  h ^= h << 4;
  h += h >>> 17;
  h ^= h << 25;
  h += h >>> 6;
  return h;
}
