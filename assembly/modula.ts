// twemproxy's modula (nc_modula.c): W slots (W = total live weight), each live server filling
// `weight` consecutive slots in internal order; a key goes to slot hash % W. Stored as one
// [server, end of its slot range] pair per live server, so memory does not grow with weights.

import { ensureMemory } from "./layout";
import { serverAt, valueAt, PAIR } from "./pairs";
import { serverCount, liveCount, liveWeight, isLive, weightOf } from "./servers";

let ranges: usize = 0;

/** Builds the slot ranges at `base`; returns the first free address after them, or 0. */
export function buildModula(base: usize): usize {
  const end = base + <usize>liveCount * PAIR;
  if (!ensureMemory(end)) return 0;
  let at = base;
  let slotEnd: u32 = 0;
  for (let s: u32 = 0; s < serverCount; s++) {
    if (!isLive(s)) continue;
    slotEnd += weightOf(s);
    store<u32>(at, s);
    store<u32>(at, slotEnd, 4);
    at += PAIR;
  }
  ranges = base;
  return end;
}

/** Index of the first range whose end is >= `value` (there always is one: value <= W). */
@inline function firstRangeEndingAtOrAfter(value: u32): u32 {
  // Branch-free halving: hashes are random, so a branch here would mispredict half the time.
  let first: u32 = 0;
  let n = liveCount;
  while (n > 1) {
    const half = n >>> 1;
    first = valueAt(ranges, first + half) < value ? first + half : first;
    n -= half;
  }
  return first + <u32>(valueAt(ranges, first) < value);
}

export function modulaDispatch(hash: u32): i32 {
  // Slot s belongs to the first range ending above it, i.e. at or after s + 1.
  return <i32>serverAt(ranges, firstRangeEndingAtOrAfter(hash % liveWeight + 1));
}
