// Hashing and routing microbenchmarks (mitata): each WASM hash against its plain-TS port, the
// whole routing step, and ketama builds. Reports only; targets are printed, never asserted.
//   bun bench/micro/hash.bench.ts

import { bench, do_not_optimize, group, run, summary } from "mitata";
import { parseConfig } from "../../src/conf/load.ts";
import { HASH_NAMES, type PoolConfig } from "../../src/conf/types.ts";
import { hashKey, Router } from "../../src/route/router.ts";
import { TS_HASHES } from "./ts-hash/index.ts";

const KEY_SIZES = [8, 32, 256, 1024];
const POOL_SIZES = [1, 10, 100, 1000];
const BUILD_SIZES = [10, 100, 1000];
const ROTATION = 1024; // distinct keys cycled through, so no result can be cached

/** `count` distinct keys of `len` bytes (ASCII, like typical cache keys). */
function keysOf(len: number, count: number): Uint8Array[] {
  let state = 2463534242 ^ len;
  return Array.from({ length: count }, () =>
    Uint8Array.from({ length: len }, () => {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      return 0x21 + ((state >>> 0) % 94);
    }),
  );
}

/** A ketama + fnv1a_64 pool with hash_tag "{}" of `servers` servers, through the real loader. */
function ketamaPool(servers: number): PoolConfig {
  const lines = Array.from({ length: servers }, (_, i) => `   - 10.0.${i >> 8}.${i & 255}:6379:1`);
  const yaml = `bench:\n  listen: 127.0.0.1:22121\n  hash: fnv1a_64\n  hash_tag: "{}"\n  distribution: ketama\n  servers:\n${lines.join("\n")}\n`;
  return parseConfig(yaml, "bench.yml", () => {}).pools[0]!;
}

/** 16-32 byte keys, a quarter of them with a hash tag. */
const routeKeys = Array.from({ length: ROTATION }, (_, i) =>
  new TextEncoder().encode(i % 4 === 0 ? `{user:${i}}:cart:${i * 7}` : `user:${i * 7919}:session:${i}`.slice(0, 16 + (i % 17))),
);

const WARM_UP_CALLS = 20_000; // JIT tiers (JS and WASM) settle before the first sample

for (const size of KEY_SIZES) {
  const keys = keysOf(size, ROTATION);
  for (const name of HASH_NAMES) {
    for (let i = 0; i < WARM_UP_CALLS; i++) {
      hashKey(name, keys[i & (ROTATION - 1)]!);
      TS_HASHES[name](keys[i & (ROTATION - 1)]!);
    }
    summary(() => {
      group(`${name} ${size}B`, () => {
        const ts = TS_HASHES[name];
        let i = 0;
        bench(`wasm ${name} ${size}B`, () => do_not_optimize(hashKey(name, keys[i++ & (ROTATION - 1)]!)));
        bench(`ts ${name} ${size}B`, () => do_not_optimize(ts(keys[i++ & (ROTATION - 1)]!)));
      });
    });
  }
}

group("route one key: hash tag + fnv1a_64 + ketama lookup", () => {
  for (const servers of POOL_SIZES) {
    const router = new Router(ketamaPool(servers));
    let i = 0;
    bench(`route ${servers} servers`, () => {
      const key = routeKeys[i++ & (ROTATION - 1)]!;
      do_not_optimize(router.route(key, 0, key.length));
    });
  }
});

group("ketama build: the ring rebuild that follows an ejection or return", () => {
  for (const servers of BUILD_SIZES) {
    const router = new Router(ketamaPool(servers));
    const allLive = new Uint8Array(servers).fill(1);
    bench(`rebuild (setLive) ${servers} servers`, () => router.setLive(allLive));
  }
});

const { benchmarks } = await run();

// Medians, as a markdown summary for bench/README.md.
const median = new Map<string, number>();
for (const trial of benchmarks) for (const r of trial.runs) if (r.stats) median.set(r.name, r.stats.p50);
const ns = (name: string): number => median.get(name) ?? NaN;
const fmt = (t: number): string => (t >= 1e6 ? `${(t / 1e6).toFixed(2)} ms` : t >= 1e3 ? `${(t / 1e3).toFixed(2)} µs` : `${t.toFixed(1)} ns`);

const out: string[] = ["", "### Hash functions: median per call, WASM (TS) and TS/WASM speed-up", ""];
out.push(`| hash | ${KEY_SIZES.map((s) => `${s} B`).join(" | ")} |`, `|---|${KEY_SIZES.map(() => "---").join("|")}|`);
for (const name of HASH_NAMES) {
  const cells = KEY_SIZES.map((s) => {
    const w = ns(`wasm ${name} ${s}B`);
    const t = ns(`ts ${name} ${s}B`);
    return `${fmt(w)} (${fmt(t)}) ${(t / w).toFixed(2)}x`;
  });
  out.push(`| ${name} | ${cells.join(" | ")} |`);
}
out.push("", "### Routing and ketama builds (median)", "", "| step | 1 | 10 | 100 | 1000 |", "|---|---|---|---|---|");
out.push(`| route one 16-32 B key (tag + fnv1a_64 + ketama) | ${POOL_SIZES.map((n) => fmt(ns(`route ${n} servers`))).join(" | ")} |`);
out.push(`| ketama rebuild (setLive) | - | ${BUILD_SIZES.map((n) => fmt(ns(`rebuild (setLive) ${n} servers`))).join(" | ")} |`);
const route100 = ns("route 100 servers");
const md5Ratio = ns("ts md5 32B") / ns("wasm md5 32B");
out.push(
  "",
  `Target: route one 16-32 B key on a 100-server ketama pool <= 100 ns median: ${fmt(route100)} (${route100 <= 100 ? "met" : "missed"}).`,
  `Target: WASM md5 >= 2x TS md5 on 32 B keys: ${md5Ratio.toFixed(2)}x (${md5Ratio >= 2 ? "met" : "missed"}).`,
);
console.log(out.join("\n"));
