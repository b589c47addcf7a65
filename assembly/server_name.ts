// The server_name distribution: the key's routing part must equal a server's name (exact bytes).
// Open addressing with linear probing; each 8-byte slot is [name hash u32][server index + 1 u32],
// 0 marking an empty slot. Liveness is ignored: the name is the contract.

import { fnv1a_32 } from "./hash/fnv1a_32";
import { ensureMemory } from "./layout";
import { serverCount, nameOf, nameLengthOf } from "./servers";

const SLOT: usize = 8;

let slots: usize = 0;
let mask: u32 = 0;

/** Builds the name table at `base`; returns the first free address after it, or 0. */
export function buildNameMap(base: usize): usize {
  let capacity: u32 = 4;
  while (capacity < serverCount * 2) capacity <<= 1; // load factor <= 1/2
  const end = base + <usize>capacity * SLOT;
  if (!ensureMemory(end)) return 0;
  memory.fill(base, 0, end - base);
  slots = base;
  mask = capacity - 1;
  for (let s: u32 = 0; s < serverCount; s++) {
    const hash = fnv1a_32(nameOf(s), nameLengthOf(s));
    let i = hash & mask;
    while (load<u32>(slots + <usize>i * SLOT, 4) != 0) i = (i + 1) & mask;
    store<u32>(slots + <usize>i * SLOT, hash);
    store<u32>(slots + <usize>i * SLOT, s + 1, 4);
  }
  return end;
}

/** The server named by the `len` bytes at `name`, or -1. */
export function lookupName(name: usize, len: u32): i32 {
  const hash = fnv1a_32(name, len);
  let i = hash & mask;
  while (true) {
    const entry = load<u32>(slots + <usize>i * SLOT, 4);
    if (entry == 0) return -1;
    if (load<u32>(slots + <usize>i * SLOT) == hash) {
      const s = entry - 1;
      if (nameLengthOf(s) == len && memory.compare(nameOf(s), name, len) == 0) return <i32>s;
    }
    i = (i + 1) & mask;
  }
}
