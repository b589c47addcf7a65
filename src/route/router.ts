// Per-pool routing: key bytes in, index into pool.servers out. The tables (ketama ring, modula
// slot ranges, random live list, server_name map) live in the pool's own WASM instance; one call
// per key does hash-tag extraction, hashing and dispatch there.

import { DISTRIBUTIONS, HASH_NAMES, type HashName, type PoolConfig } from "../conf/types.ts";
import { Hashkit } from "./hashkit.ts";

const RECORD = 16; // bytes per server record, see assembly/servers.ts
const NO_TAG = -1;

const encoder = new TextEncoder();

/** What the core asks of a pool's routing: the server of a key, liveness, and the part of a key
 *  that routing uses (for error messages). Router (the WASM tables) implements it; a routing of
 *  another kind (a Redis Cluster slot map) is another implementation made by createRouter. */
export interface KeyRouter {
  /** Index into pool.servers for the key buf[start, end); -1 when no server. */
  route(buf: Uint8Array, start: number, end: number): number;
  /** Route over the servers with live[i] === 1 only. */
  setLive(live: Uint8Array): void;
  routingPart(buf: Uint8Array, start: number, end: number): Uint8Array;
}

/** The routing of a pool's config (throws on a config it cannot route). */
export function createRouter(pool: PoolConfig): KeyRouter {
  return new Router(pool);
}

export class Router implements KeyRouter {
  private readonly kit: Hashkit;
  private readonly routeKey: (len: number) => number;
  private readonly records: number;
  private readonly serverCount: number;

  /** Builds the tables for pool.servers (already in internal sorted order). The pool comes
   *  from conf/load.ts, which checked what the tables rely on: every server named with
   *  distribution server_name, positive weights adding up to 32 bits, a hash tag of two ASCII
   *  characters. */
  constructor(pool: PoolConfig) {
    const byName = pool.distribution === "server_name";
    const names = pool.servers.map((server) => encoder.encode(byName ? server.name! : server.effectiveName));
    const tag = pool.hashTag === null ? null : encoder.encode(pool.hashTag);

    this.kit = new Hashkit();
    const wasm = this.kit.wasm;
    this.serverCount = pool.servers.length;
    this.records = wasm.reserveServers(this.serverCount, names.reduce((sum, n) => sum + n.length, 0)) >>> 0;
    if (this.records === 0) throw new Error(`pool ${pool.name}: out of WASM memory`);
    const memory = this.kit.memory();
    const view = new DataView(memory.buffer);
    const namesAt = this.records + this.serverCount * RECORD;
    let nameOffset = 0;
    pool.servers.forEach((server, i) => {
      const record = this.records + i * RECORD;
      view.setUint32(record, server.weight, true);
      view.setUint32(record + 4, 1, true);
      view.setUint32(record + 8, nameOffset, true);
      view.setUint32(record + 12, names[i]!.length, true);
      memory.set(names[i]!, namesAt + nameOffset);
      nameOffset += names[i]!.length;
    });
    wasm.configure(
      DISTRIBUTIONS.indexOf(pool.distribution),
      HASH_NAMES.indexOf(pool.hash),
      tag === null ? NO_TAG : tag[0]!,
      tag === null ? NO_TAG : tag[1]!,
      crypto.getRandomValues(new Uint32Array(1))[0]!,
    );
    this.kit.keyBufferAt(wasm.build());
    this.routeKey = wasm.route;
  }

  /** Index into pool.servers for the key buf[start,end); -1 when no server (server_name miss, or
   *  no live server). */
  route(buf: Uint8Array, start: number, end: number): number {
    return this.routeKey(this.kit.putKey(buf, start, end));
  }

  /** Rebuild over the servers with live[i] === 1 (ejection / return). server_name ignores
   *  liveness (the core checks it). */
  setLive(live: Uint8Array): void {
    if (live.length !== this.serverCount) {
      throw new Error(`setLive: ${live.length} flags for ${this.serverCount} servers`);
    }
    const view = new DataView(this.kit.memory().buffer);
    for (let i = 0; i < this.serverCount; i++) {
      view.setUint32(this.records + i * RECORD + 4, live[i] === 1 ? 1 : 0, true);
    }
    this.kit.keyBufferAt(this.kit.wasm.build());
  }

  /** The part of the key that routing uses (hash-tag text or whole key), for error messages. */
  routingPart(buf: Uint8Array, start: number, end: number): Uint8Array {
    const offset = this.kit.wasm.routingPartOffset(this.kit.putKey(buf, start, end));
    return buf.slice(start + offset, start + offset + this.kit.wasm.routingPartLength());
  }
}

let scratch: Hashkit | null = null;
let lastName: HashName = HASH_NAMES[0];
let lastId = 0;

/** One hash function by name, for tests and benchmarks. */
export function hashKey(name: HashName, key: Uint8Array): number {
  scratch ??= new Hashkit();
  if (name !== lastName) {
    // Benchmarks call one name many times in a row: skip the search then.
    lastName = name;
    lastId = HASH_NAMES.indexOf(name);
  }
  return scratch.wasm.hash(lastId, scratch.putKey(key, 0, key.length)) >>> 0;
}
