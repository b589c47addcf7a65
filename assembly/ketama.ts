// twemproxy's ketama continuum (nc_ketama.c) over the live servers: each gets points in
// proportion to its weight, computed in float32 exactly as the C does, 4 points per MD5 digest
// of "<name>-<i>", all sorted by value. A key goes to the first point >= its hash, wrapping.
//
// Lookup is O(1) on average instead of a binary search (whose chain of dependent loads through a
// ring of 16,000 points for 100 servers costs more than the hash): the hash's top bits pick one
// of 2^k buckets (2^k >= the number of points), `firstInBucket` gives the first point at or above
// the bucket's start, and a scan of the bucket's points (rarely more than one) finds the answer.

import { md5, md5A, md5B, md5C, md5D } from "./hash/md5";
import { align16, ensureMemory } from "./layout";
import { serverAt, valueAt, PAIR } from "./pairs";
import { sortByHigh32 } from "./sort";
import {
  serverCount, liveCount, liveWeight, isLive, weightOf, nameOf, nameLengthOf,
} from "./servers";

const POINTS_PER_SERVER: f32 = 160;
const POINTS_PER_HASH: u32 = 4;
const MAX_DECIMAL_DIGITS: usize = 10;
const MAX_BUCKET_BITS: u32 = 20; // 4 MB of bucket starts at most (reached near 3,300 servers)

let ring: usize = 0; // sorted [server u32][value u32] points
let ringSize: u32 = 0;
let firstInBucket: usize = 0; // u32 per bucket, plus one entry holding ringSize
let bucketShift: u32 = 31;

/** floorf((float)(pct * 160 / 4 * (float)nlive + 0.0000000001)) * 4, with pct a float. */
function pointsFor(weight: u32): u32 {
  const pct: f32 = <f32>weight / <f32>liveWeight;
  const scaled: f32 = pct * POINTS_PER_SERVER / <f32>POINTS_PER_HASH * <f32>liveCount;
  return <u32>(Mathf.floor(<f32>(<f64>scaled + 0.0000000001)) * <f32>POINTS_PER_HASH);
}

function writeDecimal(at: usize, value: u32): u32 {
  let digits: u32 = 1;
  for (let rest = value; rest >= 10; rest /= 10) digits++;
  for (let i = digits; i > 0; i--) {
    store<u8>(at + i - 1, 0x30 + value % 10);
    value /= 10;
  }
  return digits;
}

/** Builds the ring at `base`; returns the first free address after it, or 0 when out of memory. */
export function buildKetama(base: usize): usize {
  let longestName: u32 = 0;
  let total: u32 = 0;
  for (let s: u32 = 0; s < serverCount; s++) {
    if (!isLive(s)) continue;
    if (nameLengthOf(s) > longestName) longestName = nameLengthOf(s);
    total += pointsFor(weightOf(s));
  }
  let bucketBits: u32 = 1;
  while (bucketBits < MAX_BUCKET_BITS && (<u32>1 << bucketBits) < total) bucketBits++;
  const buckets: u32 = 1 << bucketBits;

  const host = base; // "<name>-<i>" is assembled here
  const points = align16(host + longestName + 1 + MAX_DECIMAL_DIGITS);
  const starts = points + <usize>total * PAIR;
  const sortScratch = align16(starts + (<usize>(buckets + 1) << 2));
  if (!ensureMemory(sortScratch + <usize>total * PAIR)) return 0;

  let at = points;
  for (let s: u32 = 0; s < serverCount; s++) {
    if (!isLive(s)) continue;
    const nameLength = nameLengthOf(s);
    memory.copy(host, nameOf(s), nameLength);
    store<u8>(host + nameLength, 0x2d); // '-'
    const hashes = pointsFor(weightOf(s)) / POINTS_PER_HASH;
    for (let i: u32 = 0; i < hashes; i++) {
      md5(host, nameLength + 1 + writeDecimal(host + nameLength + 1, i));
      const server = <u64>s;
      store<u64>(at, (<u64>md5A << 32) | server);
      store<u64>(at, (<u64>md5B << 32) | server, 8);
      store<u64>(at, (<u64>md5C << 32) | server, 16);
      store<u64>(at, (<u64>md5D << 32) | server, 24);
      at += 4 * PAIR;
    }
  }
  sortByHigh32(points, sortScratch, total);
  ring = points;
  ringSize = total;

  bucketShift = 32 - bucketBits;
  firstInBucket = starts;
  let first: u32 = 0;
  for (let b: u32 = 0; b < buckets; b++) {
    while (first < total && valueAt(ring, first) < b << bucketShift) first++;
    store<u32>(starts + (<usize>b << 2), first);
  }
  store<u32>(starts + (<usize>buckets << 2), total);
  return sortScratch;
}

export function ketamaDispatch(hash: u32): i32 {
  const bucket = firstInBucket + (<usize>(hash >>> bucketShift) << 2);
  let index = load<u32>(bucket);
  const end = load<u32>(bucket, 4);
  while (index < end && valueAt(ring, index) < hash) index++;
  if (index == ringSize) index = 0; // past the last point: wrap to the first
  return <i32>serverAt(ring, index);
}
