// twemproxy's random distribution (nc_random.c): a uniformly random live server per key, weights
// ignored. xorshift32 stands in for libc random().

import { ensureMemory } from "./layout";
import { serverCount, liveCount, isLive } from "./servers";

let live: usize = 0;
let state: u32 = 0x9e3779b9;

export function seedRandom(seed: u32): void {
  state = seed != 0 ? seed : 0x9e3779b9; // xorshift must not start at 0
}

/** Lists the live servers at `base`; returns the first free address after them, or 0. */
export function buildRandom(base: usize): usize {
  const end = base + (<usize>liveCount << 2);
  if (!ensureMemory(end)) return 0;
  let at = base;
  for (let s: u32 = 0; s < serverCount; s++) {
    if (!isLive(s)) continue;
    store<u32>(at, s);
    at += 4;
  }
  live = base;
  return end;
}

export function randomDispatch(): i32 {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return load<i32>(live + (<usize>(state % liveCount) << 2));
}
