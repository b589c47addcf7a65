// The pool's servers in twemproxy's internal order, as the host writes them: one 16-byte record
// per server, then the name bytes they point into.
//   +0 weight u32 | +4 live u32 (1 = live) | +8 name offset into the names area | +12 name length

import { align16, ensureMemory } from "./layout";

const RECORD: usize = 16;

let records: usize = 0;
let names: usize = 0;
let nameBytes: u32 = 0;
export let serverCount: u32 = 0;
export let liveCount: u32 = 0;
export let liveWeight: u32 = 0;

/** Lays out `count` records and `bytes` of names at `base`; returns the records' address, or 0
 *  when memory cannot grow. */
export function reserveServers(base: usize, count: u32, bytes: u32): usize {
  const end = base + <usize>count * RECORD + bytes;
  if (!ensureMemory(end)) return 0;
  records = base;
  names = base + <usize>count * RECORD;
  nameBytes = bytes;
  serverCount = count;
  memory.fill(base, 0, end - base);
  return records;
}

/** First address after the server area: where the distribution tables start. */
export function serversEnd(): usize {
  return align16(names + nameBytes);
}

@inline export function weightOf(server: u32): u32 {
  return load<u32>(records + <usize>server * RECORD);
}

@inline export function isLive(server: u32): bool {
  return load<u32>(records + <usize>server * RECORD, 4) == 1;
}

@inline export function nameOf(server: u32): usize {
  return names + load<u32>(records + <usize>server * RECORD, 8);
}

@inline export function nameLengthOf(server: u32): u32 {
  return load<u32>(records + <usize>server * RECORD, 12);
}

/** Recounts the live servers and their total weight (twemproxy's nlive_server, total_weight). */
export function countLive(): void {
  let count: u32 = 0;
  let weight: u32 = 0;
  for (let s: u32 = 0; s < serverCount; s++) {
    if (!isLive(s)) continue;
    count++;
    weight += weightOf(s);
  }
  liveCount = count;
  liveWeight = weight;
}
