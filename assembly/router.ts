// Routes one key to a server index: hash tag, hash and dispatch, as twemproxy's
// server_pool_idx(), plus the server_name distribution.

import { hashBytes } from "./hashes";
import { findRoutingPart, partOffset, partLength } from "./hash_tag";
import { buildKetama, ketamaDispatch } from "./ketama";
import { buildModula, modulaDispatch } from "./modula";
import { buildRandom, randomDispatch } from "./random";
import { buildNameMap, lookupName } from "./server_name";
import { countLive, serverCount, liveCount } from "./servers";

// Distribution ids: the order of DISTRIBUTIONS in src/conf/types.ts.
const KETAMA: u32 = 0;
const MODULA: u32 = 1;
const RANDOM: u32 = 2;
const SERVER_NAME: u32 = 3;

let distribution: u32 = KETAMA;
let hashId: u32 = 0;

export function setDistribution(id: u32, hash: u32): void {
  distribution = id;
  hashId = hash;
}

/** Rebuilds the distribution's tables at `base` from the server records; returns the first free
 *  address after them, or 0 when memory cannot grow. */
export function buildTables(base: usize): usize {
  countLive();
  switch (distribution) {
    case KETAMA: return liveCount == 0 ? base : buildKetama(base);
    case MODULA: return buildModula(base);
    case RANDOM: return buildRandom(base);
    default: return buildNameMap(base);
  }
}

/** The server index for the `len`-byte key at `key`; -1 when no server takes it. */
export function routeKey(key: usize, len: u32): i32 {
  if (distribution == SERVER_NAME) {
    findRoutingPart(key, len);
    return lookupName(key + partOffset, partLength);
  }
  if (liveCount == 0) return -1; // every server ejected
  if (serverCount == 1) return 0; // twemproxy skips hashing for one-server pools
  if (distribution == RANDOM) return randomDispatch();
  findRoutingPart(key, len);
  // twemproxy never hashes an empty key: its hash is 0.
  const hash = partLength == 0 ? 0 : hashBytes(hashId, key + partOffset, partLength);
  return distribution == KETAMA ? ketamaDispatch(hash) : modulaDispatch(hash);
}
