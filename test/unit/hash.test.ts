// Every twemproxy hash function, WASM and the benchmark's plain-TS yardstick, against the
// vectors generated from twemproxy 0.5.0's own hashkit (../shared/vectors/hash.json).

import { describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { HASH_NAMES, type HashName } from "../../src/conf/types.ts";
import { hashKey } from "../../src/route/router.ts";
import { TS_HASHES } from "../../bench/micro/ts-hash/index.ts";

interface HashVector {
  key: string;
  len: number;
  md5: string;
  hashes: Record<HashName, number>;
}

const vectors = JSON.parse(
  readFileSync(new URL("../../../shared/vectors/hash.json", import.meta.url), "utf8"),
) as { hash_names: string[]; vectors: HashVector[] };

/** Keys whose hash differs from the vector, as "hexkey: got != want" lines. */
function mismatches(hash: (key: Uint8Array) => number, name: HashName): string[] {
  const wrong: string[] = [];
  for (const v of vectors.vectors) {
    const got = hash(Buffer.from(v.key, "hex"));
    if (got !== v.hashes[name]) wrong.push(`${v.key.slice(0, 40)}: ${got} != ${v.hashes[name]}`);
  }
  return wrong;
}

test("vectors name the hashes in HASH_NAMES order (the WASM hash ids)", () => {
  expect(vectors.hash_names).toEqual([...HASH_NAMES]);
  expect(vectors.vectors.length).toBeGreaterThan(280);
});

describe("WASM hash", () => {
  for (const name of HASH_NAMES) {
    test(`${name} matches every vector`, () => {
      expect(mismatches((key) => hashKey(name, key), name)).toEqual([]);
    });
  }

  test("md5 is the first digest word, little-endian, for keys up to 1 MB", () => {
    for (const len of [0, 55, 56, 63, 64, 65, 119, 120, 10_000, 1 << 20]) {
      const key = new Uint8Array(len).map((_, i) => (i * 131 + 7) & 0xff);
      const digest = createHash("md5").update(key).digest();
      expect(hashKey("md5", key)).toBe(digest.readUInt32LE(0));
    }
  });
});

describe("TS yardstick (bench/micro/ts-hash)", () => {
  for (const name of HASH_NAMES) {
    test(`${name} matches every vector`, () => {
      expect(mismatches(TS_HASHES[name], name)).toEqual([]);
    });
  }
});
