// The hashkit's exported surface. One instance serves one pool (each instance has its own
// linear memory). The host:
//   1. reserveServers(count, nameBytes) and writes the records and names (see servers.ts),
//   2. configure(...), then build() (again after changing live flags), which returns the key
//      buffer's address,
//   3. per key: copies the bytes to the key buffer (reserveKey(len) first when it might not fit)
//      and calls route(len), or keySlot(len) for Redis Cluster's slot (no servers needed).

import { hashBytes } from "./hashes";
import { keySlot as clusterKeySlot } from "./key_slot";
import { findRoutingPart, partOffset, partLength, setHashTag } from "./hash_tag";
import { align16, ensureMemory, KEY_SLACK } from "./layout";
import { seedRandom } from "./random";
import { buildTables, routeKey, setDistribution } from "./router";
import { reserveServers as reserveServerArea, serversEnd } from "./servers";

let keyBuffer: usize = align16(__heap_base);

/** Lays out `count` server records followed by `nameBytes` of names; returns the records'
 *  address (0 when memory cannot grow). */
export function reserveServers(count: u32, nameBytes: u32): usize {
  const records = reserveServerArea(align16(__heap_base), count, nameBytes);
  if (records != 0) keyBuffer = serversEnd();
  return records;
}

/** `tagOpen`/`tagClose` are the hash_tag bytes, or -1 without a hash_tag. */
export function configure(distribution: u32, hash: u32, tagOpen: i32, tagClose: i32, seed: u32): void {
  setDistribution(distribution, hash);
  setHashTag(tagOpen, tagClose);
  seedRandom(seed);
}

/** Rebuilds the routing tables; returns the key buffer's address, or 0 when out of memory. */
export function build(): usize {
  const end = buildTables(serversEnd());
  if (end == 0) return 0;
  keyBuffer = align16(end);
  return keyBuffer;
}

/** Bytes that must stay addressable after a key (see KEY_SLACK). */
export const keySlack: u32 = <u32>KEY_SLACK;

/** Makes room for a `len`-byte key and its slack; returns the key buffer's address, or 0 when out
 *  of memory. */
export function reserveKey(len: u32): usize {
  return ensureMemory(<u64>keyBuffer + len + KEY_SLACK) ? keyBuffer : 0;
}

/** The server index for the `len`-byte key in the key buffer; -1 when no server takes it. */
export function route(len: u32): i32 {
  return routeKey(keyBuffer, len);
}

/** hash_<id>() of the `len`-byte key in the key buffer, called directly (no empty-key rule). */
export function hash(id: u32, len: u32): u32 {
  return hashBytes(id, keyBuffer, len);
}

/** Redis Cluster's slot (0..16383) of the `len`-byte key in the key buffer (key_slot.ts). */
export function keySlot(len: u32): u32 {
  return clusterKeySlot(keyBuffer, len);
}

/** Offset of the routing part (hash-tag text or the whole key) of the key in the key buffer;
 *  its length is then routingPartLength(). */
export function routingPartOffset(len: u32): u32 {
  findRoutingPart(keyBuffer, len);
  return partOffset;
}

export function routingPartLength(): u32 {
  return partLength;
}
