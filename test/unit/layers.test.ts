// The layers of src/ import only downward: entry (main, cluster, cli, ops) -> core ->
// protocols / router / stats / TLS / sentinel client -> config, log -> byte utilities and
// constants (lib). Read from the import statements of every file under src/, so a new file or
// import is checked as it lands. Also: the core sees protocols only through the protocol
// interface (proto/codec.ts), but for the one place that picks a pool's codec; protocols,
// router, stats, TLS and the sentinel client do not import each other.

import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = resolve(import.meta.dir, "../../src");

/** Layer of a file (path relative to src/), lowest first, and its unit: files of one unit may
 *  import each other; files of different units at one layer may not. */
function placeOf(file: string): { layer: number; unit: string } {
  const top = file.split("/")[0]!;
  if (file === "ops/system-error.ts" || top === "lib") return { layer: 0, unit: file === "ops/system-error.ts" ? "system-error" : "lib" };
  if (file === "log.ts") return { layer: 1, unit: "log" };
  if (top === "conf") return { layer: 2, unit: "conf" };
  if (top === "proto") {
    // The interface is below both protocols; each protocol is a unit of its own.
    if (file === "proto/codec.ts") return { layer: 3, unit: "proto/codec" };
    return { layer: 4, unit: file.split("/").slice(0, 2).join("/") };
  }
  if (top === "route" || top === "stats" || top === "tls" || top === "sentinel") return { layer: 4, unit: top };
  // Redis Cluster routing: over the redis protocol's topology replies and the router's key
  // slots, below the core, which asks it where a redis_cluster pool's requests go.
  if (top === "redis-cluster") return { layer: 4.5, unit: top };
  if (top === "core") return { layer: 5, unit: "core" };
  // The entry: flags and process chores, the --workers supervisor over them, main over all.
  if (top === "cli" || top === "ops") return { layer: 6, unit: top };
  if (top === "cluster") return { layer: 7, unit: top };
  if (file === "main.ts") return { layer: 8, unit: "main" };
  throw new Error(`src/${file} belongs to no layer: add it to test/unit/layers.test.ts and docs/architecture.md`);
}

/** Where the core may pick a protocol implementation (Proxy: one codec per pool). */
const CODEC_CHOICE = "core/proxy.ts";

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith(".ts") ? [path] : [];
  });
}

/** The module specifiers a file imports or re-exports (static and dynamic). */
export function importsOf(text: string): string[] {
  const specs: string[] = [];
  const patterns = [/^\s*(?:import|export)\s[^;]*?\sfrom\s+"([^"]+)"/gms, /^\s*import\s+"([^"]+)"/gm, /\bimport\(\s*"([^"]+)"\s*\)/g];
  for (const re of patterns) for (const m of text.matchAll(re)) specs.push(m[1]!);
  return specs;
}

/** What is wrong with `from` (relative to src/) importing `to` (relative to src/). */
function violation(from: string, to: string): string | null {
  const a = placeOf(from);
  const b = placeOf(to);
  if (a.unit === b.unit) return null;
  if (b.layer >= a.layer) return `src/${from} (layer ${a.layer}, ${a.unit}) imports src/${to} (layer ${b.layer}, ${b.unit})`;
  if (a.unit === "core" && b.layer === 4 && b.unit.startsWith("proto/") && from !== CODEC_CHOICE) {
    return `src/${from} imports the protocol implementation src/${to}: the core sees protocols through proto/codec.ts`;
  }
  return null;
}

interface Edge {
  from: string;
  to: string;
}

function edges(): Edge[] {
  return sourceFiles(SRC).flatMap((path) =>
    importsOf(readFileSync(path, "utf8"))
      .filter((spec) => spec.startsWith("."))
      .map((spec) => ({ from: relative(SRC, path), to: relative(SRC, resolve(dirname(path), spec)) }))
      // package.json (the version) is read by lib/version.ts: not a layer.
      .filter((e) => !e.to.startsWith("..")),
  );
}

describe("layers import only downward", () => {
  const all = edges();

  test("every file under src/ has a layer, and the imports were found", () => {
    const files = sourceFiles(SRC).map((p) => relative(SRC, p));
    for (const f of files) expect(() => placeOf(f)).not.toThrow();
    // Every file but a handful of leaves imports something.
    expect(all.length).toBeGreaterThan(files.length);
  });

  test("no import goes up or sideways", () => {
    const wrong = all.map((e) => violation(e.from, e.to)).filter((v) => v !== null);
    expect(wrong).toEqual([]);
  });

  test("the check catches what it must", () => {
    expect(violation("proto/redis/request.ts", "core/pool.ts")).toContain("imports src/core/pool.ts");
    expect(violation("stats/json.ts", "cli/usage.ts")).not.toBeNull();
    expect(violation("proto/redis/merge.ts", "proto/memcache/split.ts")).not.toBeNull();
    expect(violation("route/router.ts", "stats/store.ts")).not.toBeNull();
    expect(violation("core/dispatch.ts", "proto/redis/local.ts")).toContain("through proto/codec.ts");
    expect(violation("core/proxy.ts", "proto/redis/index.ts")).toBeNull();
    expect(violation("core/pool.ts", "lib/bytes.ts")).toBeNull();
    expect(importsOf('import type { A } from "./a.ts";\nexport { b } from "../b.ts";\nimport {\n  c,\n} from "./c.ts";\nawait import("./d.ts");')).toEqual([
      "./a.ts",
      "../b.ts",
      "./c.ts",
      "./d.ts",
    ]);
  });
});
