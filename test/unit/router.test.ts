// Router behaviour beyond the recorded vectors: ejection (ring rebuilt over the live servers),
// hash tags, server_name, random, single-server pools and large keys. Expectations come from an
// independent TS implementation of the formulas in ../shared/vectors/README.md (node:crypto md5,
// Math.fround for float32), itself checked against the vectors' recorded continuums; key hashes
// come from hashKey, which hash.test.ts checks against the vectors.

import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { Distribution, HashName, PoolConfig, ServerConfig } from "../../src/conf/types.ts";
import { parseConfig } from "../../src/conf/load.ts";
import { hashKey, Router } from "../../src/route/router.ts";

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const f32 = Math.fround;

interface TestServer {
  name: string;
  weight: number;
}

/** Every other pool key at the loader's default (one pool parsed from a minimal config). */
const DEFAULTS: PoolConfig = parseConfig("test:\n  listen: 127.0.0.1:22121\n  servers:\n   - 127.0.0.1:7000:1\n", "router.test.yml", () => {}).pools[0]!;

/** A pool of `servers` in the given order (the loader would sort them: these tests index the
 *  reference formulas by the order they give). */
function testPool(
  distribution: Distribution,
  servers: readonly TestServer[],
  options: { hash?: HashName; hashTag?: string | null; named?: boolean } = {},
): PoolConfig {
  const configs: ServerConfig[] = servers.map((s, i) => ({
    addr: { spec: `127.0.0.1:${7000 + i}`, host: "127.0.0.1", port: 7000 + i, unix: false, perm: null },
    weight: s.weight,
    name: options.named === false ? null : s.name,
    effectiveName: s.name,
    statsName: s.name,
    pname: `127.0.0.1:${7000 + i}:${s.weight}`,
  }));
  return {
    ...DEFAULTS,
    hash: options.hash ?? "fnv1a_64",
    hashTag: options.hashTag ?? null,
    distribution,
    redis: true,
    autoEjectHosts: true,
    servers: configs,
  };
}

/** Sorted [value, server index] points of twemproxy's ketama continuum over the live servers. */
function referenceRing(servers: readonly TestServer[], live: readonly boolean[]): [number, number][] {
  const liveCount = live.filter(Boolean).length;
  const totalWeight = servers.reduce((sum, s, i) => sum + (live[i] ? s.weight : 0), 0);
  const points: [number, number][] = [];
  servers.forEach((server, index) => {
    if (!live[index]) return;
    const pct = f32(f32(server.weight) / f32(totalWeight));
    const scaled = f32(f32(f32(pct * 160) / 4) * f32(liveCount));
    const count = Math.floor(f32(scaled + 1e-10)) * 4;
    for (let i = 0; i < count / 4; i++) {
      const digest = createHash("md5").update(`${server.name}-${i}`).digest();
      for (let word = 0; word < 4; word++) points.push([digest.readUInt32LE(word * 4), index]);
    }
  });
  return points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** The server of the first point >= hash, wrapping to the first point. */
function ringLookup(ring: readonly [number, number][], hash: number): number {
  let low = 0;
  let high = ring.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (ring[mid]![0] < hash) low = mid + 1;
    else high = mid;
  }
  return ring[low === ring.length ? 0 : low]![1];
}

/** twemproxy's modula: slot hash % W among the live servers' weight slots, in order. */
function modulaLookup(servers: readonly TestServer[], live: readonly boolean[], hash: number): number {
  const totalWeight = servers.reduce((sum, s, i) => sum + (live[i] ? s.weight : 0), 0);
  let slot = hash % totalWeight;
  for (let i = 0; i < servers.length; i++) {
    if (!live[i]) continue;
    if (slot < servers[i]!.weight) return i;
    slot -= servers[i]!.weight;
  }
  throw new Error("unreachable: slot beyond the total weight");
}

/** Hash of a key as twemproxy's server_pool_hash: an empty key hashes to 0. */
const keyHash = (hash: HashName, key: Uint8Array): number => (key.length === 0 ? 0 : hashKey(hash, key));

function randomKeys(count: number, seed: number): Uint8Array[] {
  let state = seed;
  const next = (): number => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 8;
  return Array.from({ length: count }, () => Uint8Array.from({ length: next() % 40 }, () => next() & 0xff));
}

const route = (router: Router, key: Uint8Array): number => router.route(key, 0, key.length);

const WEIGHTED: readonly TestServer[] = [
  { name: "cache-a:6379", weight: 1 },
  { name: "cache-b:6379", weight: 3 },
  { name: "cache-c:6379", weight: 2 },
  { name: "cache-d:6379", weight: 1 },
  { name: "cache-e:6379", weight: 5 },
  { name: "cache-f:6379", weight: 1 },
  { name: "cache-g:6379", weight: 4 },
];
const KEYS = randomKeys(2000, 42);
const LIVE_SETS: readonly (readonly boolean[])[] = [
  [true, true, true, true, true, true, true],
  [true, true, false, true, true, true, true],
  [false, true, true, true, true, false, true],
  [false, false, false, false, true, false, false],
  [true, false, true, false, true, false, true],
];
const flags = (live: readonly boolean[]): Uint8Array => Uint8Array.from(live, (l) => (l ? 1 : 0));

describe("reference ketama (the yardstick of these tests)", () => {
  const vectors = JSON.parse(
    readFileSync(new URL("../../../shared/vectors/distribution.json", import.meta.url), "utf8"),
  ) as {
    pools: {
      name: string;
      distribution: string;
      servers: { weight: number; effective_name: string }[];
      internal_order: number[];
      continuum: [number, number][];
    }[];
  };
  for (const pool of vectors.pools.filter((p) => p.distribution === "ketama")) {
    test(`reproduces the recorded continuum of ${pool.name}`, () => {
      const internal = pool.internal_order.map((i) => pool.servers[i]!);
      const ring = referenceRing(
        internal.map((s) => ({ name: s.effective_name, weight: s.weight })),
        internal.map(() => true),
      );
      expect(ring.map(([value, index]) => [value, pool.internal_order[index]])).toEqual(pool.continuum);
    });
  }
});

describe("ketama", () => {
  test("routes like the reference ring for every live set, rebuilt on setLive", () => {
    const router = new Router(testPool("ketama", WEIGHTED));
    for (const live of [...LIVE_SETS, LIVE_SETS[0]!]) {
      router.setLive(flags(live));
      const ring = referenceRing(WEIGHTED, live);
      const got = KEYS.map((key) => route(router, key));
      expect(got).toEqual(KEYS.map((key) => ringLookup(ring, keyHash("fnv1a_64", key))));
      expect(got.every((index) => live[index])).toBe(true);
    }
  });

  test("every hash function dispatches through the ring", () => {
    const live = WEIGHTED.map(() => true);
    const ring = referenceRing(WEIGHTED, live);
    for (const hash of ["md5", "crc32", "murmur", "hsieh", "jenkins"] as const) {
      const router = new Router(testPool("ketama", WEIGHTED, { hash }));
      expect(KEYS.map((key) => route(router, key))).toEqual(KEYS.map((key) => ringLookup(ring, keyHash(hash, key))));
    }
  });

  test("1000 servers: the float32 point counts and the sort hold at scale", () => {
    const servers = Array.from({ length: 1000 }, (_, i) => ({ name: `10.0.${i >> 8}.${i & 255}:11211`, weight: 1 + (i % 3) }));
    const live = servers.map((_, i) => i % 7 !== 0);
    const router = new Router(testPool("ketama", servers));
    router.setLive(flags(live));
    const ring = referenceRing(servers, live);
    expect(KEYS.map((key) => route(router, key))).toEqual(KEYS.map((key) => ringLookup(ring, keyHash("fnv1a_64", key))));
  });

  test("every server ejected -> -1, and routing resumes when one returns", () => {
    const router = new Router(testPool("ketama", WEIGHTED));
    router.setLive(new Uint8Array(WEIGHTED.length));
    expect(KEYS.slice(0, 50).map((key) => route(router, key))).toEqual(KEYS.slice(0, 50).map(() => -1));
    const onlyLast = WEIGHTED.map((_, i) => i === WEIGHTED.length - 1);
    router.setLive(flags(onlyLast));
    expect(new Set(KEYS.map((key) => route(router, key)))).toEqual(new Set([WEIGHTED.length - 1]));
  });
});

describe("modula", () => {
  test("routes to slot hash % W over the live servers' weights, rebuilt on setLive", () => {
    const router = new Router(testPool("modula", WEIGHTED, { hash: "crc32a" }));
    for (const live of LIVE_SETS) {
      router.setLive(flags(live));
      expect(KEYS.map((key) => route(router, key))).toEqual(
        KEYS.map((key) => modulaLookup(WEIGHTED, live, keyHash("crc32a", key))),
      );
    }
    router.setLive(new Uint8Array(WEIGHTED.length));
    expect(route(router, utf8("foo"))).toBe(-1);
  });

  test("weights in the millions need no slot table", () => {
    const heavy = [{ name: "a", weight: 4_000_000 }, { name: "b", weight: 1 }, { name: "c", weight: 3_000_000 }];
    const live = heavy.map(() => true);
    const router = new Router(testPool("modula", heavy));
    expect(KEYS.map((key) => route(router, key))).toEqual(KEYS.map((key) => modulaLookup(heavy, live, keyHash("fnv1a_64", key))));
  });
});

describe("hash tags", () => {
  const cases: [tag: string, key: string, part: string][] = [
    ["{}", "{user1}:profile", "user1"],
    ["{}", "x{user1}", "user1"],
    ["{}", "{}", "{}"],
    ["{}", "x{}y{z}", "x{}y{z}"],
    ["{}", "a}b{c}", "c"],
    ["{}", "{open", "{open"],
    ["{}", "no tag", "no tag"],
    ["{}", "", ""],
    ["::", "user:1:x", "1"],
    ["::", "a::b", "a::b"],
    ["::", "user:1", "user:1"],
  ];

  for (const distribution of ["ketama", "modula"] as const) {
    test(`${distribution}: the tag text alone picks the server`, () => {
      for (const [tag, key, part] of cases) {
        const router = new Router(testPool(distribution, WEIGHTED, { hashTag: tag, hash: "md5" }));
        const live = WEIGHTED.map(() => true);
        const hash = keyHash("md5", utf8(part));
        const expected = distribution === "ketama" ? ringLookup(referenceRing(WEIGHTED, live), hash) : modulaLookup(WEIGHTED, live, hash);
        expect([tag, key, route(router, utf8(key))]).toEqual([tag, key, expected]);
        expect(new TextDecoder().decode(router.routingPart(utf8(key), 0, utf8(key).length))).toBe(part);
      }
    });
  }

  test("bytes a longer key left in the key buffer are never read as its tag", () => {
    const router = new Router(testPool("ketama", WEIGHTED, { hashTag: "{}" }));
    const ring = referenceRing(WEIGHTED, WEIGHTED.map(() => true));
    for (const [previous, key] of [["abcdefgh{tag}", "abcdefgh"], ["abcdefgh{tag}", "abcdefgh{t"], ["abc{x}", "abc{"]]) {
      route(router, utf8(previous!));
      expect(route(router, utf8(key!))).toBe(ringLookup(ring, hashKey("fnv1a_64", utf8(key!))));
    }
  });

  test("keys sharing a tag share a server", () => {
    const router = new Router(testPool("ketama", WEIGHTED, { hashTag: "{}" }));
    const targets = new Set(["a", "b", "c", "d"].map((suffix) => route(router, utf8(`{order:77}:${suffix}`))));
    expect(targets.size).toBe(1);
  });
});

describe("server_name", () => {
  const NAMES: readonly TestServer[] = ["r1", "r2", "r3", "r4", "r5", "r6"].map((name) => ({ name, weight: 1 }));

  test("a key goes to the server it names, exactly and case-sensitively", () => {
    const router = new Router(testPool("server_name", NAMES));
    NAMES.forEach((server, i) => expect(route(router, utf8(server.name))).toBe(i));
    for (const miss of ["R3", "r3 ", "r", "r33", "", "{r3}user:42", "r7"]) {
      expect([miss, route(router, utf8(miss))]).toEqual([miss, -1]);
    }
  });

  test("with hash_tag the non-empty tag text names the server, else the whole key", () => {
    const router = new Router(testPool("server_name", NAMES, { hashTag: "{}" }));
    expect(route(router, utf8("{r3}user:42"))).toBe(2);
    expect(route(router, utf8("user:{r6}"))).toBe(5);
    expect(route(router, utf8("r1"))).toBe(0);
    expect(route(router, utf8("{}r1"))).toBe(-1);
    expect(route(router, utf8("{r9}r1"))).toBe(-1);
    expect(new TextDecoder().decode(router.routingPart(utf8("{r9}r1"), 0, 6))).toBe("r9");
  });

  test("liveness is ignored: the name is the contract", () => {
    const router = new Router(testPool("server_name", NAMES));
    router.setLive(new Uint8Array(NAMES.length));
    expect(route(router, utf8("r4"))).toBe(3);
  });

  test("binary and UTF-8 names, and 1000 of them", () => {
    const servers = Array.from({ length: 1000 }, (_, i) => ({ name: `shard-${i}-ü`, weight: 1 }));
    const router = new Router(testPool("server_name", servers));
    servers.forEach((server, i) => expect(route(router, utf8(server.name))).toBe(i));
    expect(route(router, utf8("shard-1000-ü"))).toBe(-1);
  });
});

describe("random", () => {
  test("picks only live servers, and every one of them", () => {
    const router = new Router(testPool("random", WEIGHTED));
    const live = LIVE_SETS[2]!;
    router.setLive(flags(live));
    const seen = new Set(Array.from({ length: 2000 }, () => route(router, utf8("same key"))));
    expect([...seen].sort()).toEqual(live.flatMap((l, i) => (l ? [i] : [])));
    router.setLive(new Uint8Array(WEIGHTED.length));
    expect(route(router, utf8("k"))).toBe(-1);
  });
});

describe("single-server pools", () => {
  for (const distribution of ["ketama", "modula", "random"] as const) {
    test(`${distribution}: index 0 for every key, -1 once ejected`, () => {
      const router = new Router(testPool(distribution, [{ name: "only", weight: 3 }]));
      expect(new Set(KEYS.map((key) => route(router, key)))).toEqual(new Set([0]));
      router.setLive(new Uint8Array(1));
      expect(route(router, utf8("foo"))).toBe(-1);
    });
  }
});

describe("large keys and buffers", () => {
  test("keys of 10 KB to 1 MB, anywhere in a larger buffer, then short keys again", () => {
    const router = new Router(testPool("ketama", WEIGHTED, { hashTag: "{}" }));
    const ring = referenceRing(WEIGHTED, WEIGHTED.map(() => true));
    for (const len of [10_000, 100_000, 1 << 20]) {
      const buf = Uint8Array.from({ length: len + 100 }, (_, i) => (i * 7919) & 0x7f).map((b) => (b === 0x7b ? 0 : b));
      const key = buf.subarray(37, 37 + len);
      expect(router.route(buf, 37, 37 + len)).toBe(ringLookup(ring, hashKey("fnv1a_64", key)));
      buf.set(utf8("{big}"), 37 + len - 5);
      expect(router.route(buf, 37, 37 + len)).toBe(ringLookup(ring, hashKey("fnv1a_64", utf8("big"))));
    }
    for (const key of KEYS.slice(0, 100)) {
      expect(route(router, key)).toBe(ringLookup(ring, keyHash("fnv1a_64", key)));
    }
  });

  test("pools have separate memories: one pool's keys and rebuilds do not disturb another's", () => {
    const a = new Router(testPool("ketama", WEIGHTED));
    const before = KEYS.map((key) => route(a, key));
    const b = new Router(testPool("modula", WEIGHTED));
    b.setLive(flags(LIVE_SETS[1]!));
    b.route(new Uint8Array(1 << 20), 0, 1 << 20);
    expect(KEYS.map((key) => route(a, key))).toEqual(before);
  });
});

describe("bad input", () => {
  test("setLive with the wrong number of flags", () => {
    expect(() => new Router(testPool("ketama", WEIGHTED)).setLive(new Uint8Array(2))).toThrow(/2 flags for 7 servers/);
  });
});
