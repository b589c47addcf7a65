// Ketama points and modula slot ranges are both stored as sorted 8-byte pairs
// [server index u32][value u32] (a u64 whose high half is the value, so sorting the u64s sorts
// by value).

export const PAIR: usize = 8;

@inline export function serverAt(pairs: usize, index: u32): u32 {
  return load<u32>(pairs + <usize>index * PAIR);
}

@inline export function valueAt(pairs: usize, index: u32): u32 {
  return load<u32>(pairs + <usize>index * PAIR, 4);
}
