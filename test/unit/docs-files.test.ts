// docs/architecture.md names every file under src/ (its "Files" section lists them by folder), so
// a new file cannot land without its line there.

import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "../..");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** The files the "Files" section names under src/, as paths relative to src/. A line indented
 *  two spaces that starts with `folder/` opens that folder; a name alone on a line belongs to
 *  the folder open; a name with a slash is a path from src/. */
export function namedFiles(doc: string): Set<string> {
  const start = doc.indexOf("## Files");
  const section = doc.slice(start, doc.indexOf("\n## ", start + 1));
  const lines = section.split("\n");
  const named = new Set<string>();
  let inSrc = false;
  let folder = "";
  for (const line of lines) {
    if (line.startsWith("src/")) {
      inSrc = true;
      continue;
    }
    if (!inSrc) continue;
    const opens = /^ {2}([a-z]+(?:\/[a-z]+)*\/)(?:\s|$)/.exec(line);
    if (opens !== null) folder = opens[1]!;
    else if (/^ {2}\S/.test(line)) folder = "";
    for (const [token] of line.matchAll(/[\w/-]+(?:\.[\w-]+)*\.ts\b/g)) named.add(token.includes("/") ? token : folder + token);
  }
  return named;
}

test("docs/architecture.md names every file under src/", () => {
  const named = namedFiles(readFileSync(join(ROOT, "docs/architecture.md"), "utf8"));
  const files = sourceFiles(join(ROOT, "src")).map((f) => relative(join(ROOT, "src"), f));
  expect(files.length).toBeGreaterThan(50);
  expect(files.filter((f) => !named.has(f)).sort()).toEqual([]);
});

test("the reading of the section: folders, names alone and paths", () => {
  const doc = "## Files\n```\nassembly/\n  x.ts\nsrc/\n  main.ts  entry\n  lib/bytes.ts  bytes\n  route/  hashkit.ts, assets.d.ts (types)\n  core/\n    pool.ts  a pool\n  proto/redis/       index.ts (the codec),\n                     local.ts\n```\n## Next\n";
  expect([...namedFiles(doc)].sort()).toEqual(["core/pool.ts", "lib/bytes.ts", "main.ts", "proto/redis/index.ts", "proto/redis/local.ts", "route/assets.d.ts", "route/hashkit.ts"]);
});
