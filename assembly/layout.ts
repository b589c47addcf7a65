// Linear memory of one pool's instance, from low to high addresses:
//   static data | server records and names (written by the host) | distribution tables | key buffer
// The tables are rebuilt from the server records on every build, so a build may move the key
// buffer; the host re-reads its position after each build.

/** Readable bytes kept after a key in the key buffer, so scans may load 8 bytes at a time. */
export const KEY_SLACK: usize = 8;

@inline export function align16(p: usize): usize {
  return (p + 15) & ~(<usize>15);
}

const MAX_PAGES: u64 = 65536; // 4 GiB, all a 32-bit address space holds

/** Grows linear memory until [0, end) is addressable; false when it cannot grow. */
export function ensureMemory(end: u64): bool {
  const have = <u64>memory.size() << 16;
  if (end <= have) return true;
  const pages = (end - have + 0xffff) >>> 16;
  return pages <= MAX_PAGES && memory.grow(<i32>pages) >= 0;
}
