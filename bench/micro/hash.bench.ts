// Hashing and routing microbenchmarks (mitata): each WASM hash against its plain-TS port, the
// whole routing step, and ketama builds. Reports only; targets are printed, never asserted.
//   bun bench/micro/hash.bench.ts

import { availableParallelism, loadavg } from "node:os";
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

const routeOneKey = new Map<number, () => void>();
group("route one key: hash tag + fnv1a_64 + ketama lookup", () => {
  for (const servers of POOL_SIZES) {
    const router = new Router(ketamaPool(servers));
    let i = 0;
    const step = (): void => {
      const key = routeKeys[i++ & (ROTATION - 1)]!;
      do_not_optimize(router.route(key, 0, key.length));
    };
    routeOneKey.set(servers, step);
    bench(`route ${servers} servers`, step);
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

/** CPU time per call (getrusage), best of 10 batches: unlike wall-clock samples, it does not
 *  count the time other processes hold the core, which on a shared machine is most of it. */
function cpuNanosPerCall(fn: () => void, calls = 200_000): number {
  let best = Infinity;
  for (let batch = 0; batch < 10; batch++) {
    const start = process.cpuUsage();
    for (let i = 0; i < calls; i++) fn();
    const used = process.cpuUsage(start);
    best = Math.min(best, ((used.user + used.system) * 1000) / calls);
  }
  return best;
}
const md5Keys = keysOf(32, ROTATION);
let md5Turn = 0;
const cpuRoute100 = cpuNanosPerCall(routeOneKey.get(100)!);
const cpuWasmMd5 = cpuNanosPerCall(() => do_not_optimize(hashKey("md5", md5Keys[md5Turn++ & (ROTATION - 1)]!)));
const cpuTsMd5 = cpuNanosPerCall(() => do_not_optimize(TS_HASHES.md5(md5Keys[md5Turn++ & (ROTATION - 1)]!)));

// A markdown summary for bench/README.md: medians (the targets' measure) and minimums (the best
// sample, which is what an idle machine shows when other processes compete for the cores).
const stats = new Map<string, { p50: number; min: number }>();
for (const trial of benchmarks) for (const r of trial.runs) if (r.stats) stats.set(r.name, r.stats);
type Measure = "p50" | "min";
const time = (name: string, m: Measure): number => stats.get(name)?.[m] ?? NaN;
const fmt = (t: number): string => (t >= 1e6 ? `${(t / 1e6).toFixed(2)} ms` : t >= 1e3 ? `${(t / 1e3).toFixed(2)} µs` : `${t.toFixed(1)} ns`);

const out: string[] = [];
for (const [m, title] of [["p50", "median"], ["min", "minimum"]] as const) {
  out.push("", `### Hash functions, ${title} per call: WASM (TS), TS/WASM`, "");
  out.push(`| hash | ${KEY_SIZES.map((s) => `${s} B`).join(" | ")} |`, `|---|${KEY_SIZES.map(() => "---").join("|")}|`);
  for (const name of HASH_NAMES) {
    const cells = KEY_SIZES.map((s) => {
      const w = time(`wasm ${name} ${s}B`, m);
      const t = time(`ts ${name} ${s}B`, m);
      return `${fmt(w)} (${fmt(t)}) ${(t / w).toFixed(2)}x`;
    });
    out.push(`| ${name} | ${cells.join(" | ")} |`);
  }
}
out.push("", "### Routing and ketama builds: median (minimum)", "", "| servers | 1 | 10 | 100 | 1000 |", "|---|---|---|---|---|");
const both = (name: string): string => `${fmt(time(name, "p50"))} (${fmt(time(name, "min"))})`;
out.push(`| route one 16-32 B key (tag + fnv1a_64 + ketama) | ${POOL_SIZES.map((n) => both(`route ${n} servers`)).join(" | ")} |`);
out.push(`| ketama rebuild (setLive) | - | ${BUILD_SIZES.map((n) => both(`rebuild (setLive) ${n} servers`)).join(" | ")} |`);
const route100 = time("route 100 servers", "p50");
const md5Ratio = time("ts md5 32B", "p50") / time("wasm md5 32B", "p50");
out.push(
  "",
  `Target: route one 16-32 B key on a 100-server ketama pool <= 100 ns median: ${fmt(route100)} (${route100 <= 100 ? "met" : "missed"}).`,
  `Target: WASM md5 >= 2x TS md5 on 32 B keys (medians): ${md5Ratio.toFixed(2)}x (${md5Ratio >= 2 ? "met" : "missed"}).`,
);
out.push(
  "",
  `CPU-time cross-check (best of 10 batches): route on 100 servers ${fmt(cpuRoute100)}; md5 32 B WASM ${fmt(cpuWasmMd5)}, TS ${fmt(cpuTsMd5)} = ${(cpuTsMd5 / cpuWasmMd5).toFixed(2)}x.`,
  `Machine load while running: ${loadavg().map((l) => l.toFixed(1)).join(", ")} (1, 5, 15 min) on ${availableParallelism()} cores.`,
);
console.log(out.join("\n"));
