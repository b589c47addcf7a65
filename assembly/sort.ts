// Stable LSD radix sort of u64 items by their high 32 bits (the ketama point values), 8 bits per
// pass. Stability keeps equal values in insertion order, as glibc's merge-sort qsort does.

const COUNTS: usize = memory.data(256 * 4);

/** Sorts `count` u64 items at `items`, using `count` * 8 bytes at `scratch`. */
export function sortByHigh32(items: usize, scratch: usize, count: u32): void {
  let src = items;
  let dst = scratch;
  for (let shift: u64 = 32; shift < 64; shift += 8) {
    memory.fill(COUNTS, 0, 256 * 4);
    for (let i: u32 = 0; i < count; i++) {
      const digit = <usize>(load<u64>(src + (<usize>i << 3)) >> shift) & 0xff;
      store<u32>(COUNTS + (digit << 2), load<u32>(COUNTS + (digit << 2)) + 1);
    }
    let sum: u32 = 0;
    for (let d: usize = 0; d < 256; d++) {
      const n = load<u32>(COUNTS + (d << 2));
      store<u32>(COUNTS + (d << 2), sum);
      sum += n;
    }
    for (let i: u32 = 0; i < count; i++) {
      const item = load<u64>(src + (<usize>i << 3));
      const slot = COUNTS + ((<usize>(item >> shift) & 0xff) << 2);
      const at = load<u32>(slot);
      store<u32>(slot, at + 1);
      store<u64>(dst + (<usize>at << 3), item);
    }
    const swap = src;
    src = dst;
    dst = swap;
  }
  // Four passes: the sorted items are back at `items`.
}
