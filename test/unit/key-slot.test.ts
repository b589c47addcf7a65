// Redis Cluster key slots from the WASM hashkit against the slots a real redis-server gave with
// CLUSTER KEYSLOT (test/vectors/keyslot.json, recorded by scripts/record-keyslot.ts): binary keys,
// twemproxy's hash-vector keys, every hash-tag edge case of the cluster spec.

import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { KeySlots, SLOT_COUNT } from "../../src/route/key-slot.ts";

const vectors = JSON.parse(readFileSync(new URL("../vectors/keyslot.json", import.meta.url), "utf8")) as {
  count: number;
  vectors: { key: string; slot: number }[];
};

test("the vectors cover edge cases, binary keys and all of the slot range", () => {
  expect(vectors.vectors.length).toBe(vectors.count);
  const keys = vectors.vectors.map((v) => Buffer.from(v.key, "hex"));
  expect(keys.filter((k) => k.includes(0x7b) && k.includes(0x7d)).length).toBeGreaterThan(100);
  expect(keys.filter((k) => k.some((b) => b >= 0x80)).length).toBeGreaterThan(50);
  const slots = vectors.vectors.map((v) => v.slot);
  expect(Math.min(...slots)).toBeLessThan(100);
  expect(Math.max(...slots)).toBeGreaterThan(SLOT_COUNT - 100);
});

test("every key's slot is redis's CLUSTER KEYSLOT", () => {
  const slots = new KeySlots();
  const wrong: string[] = [];
  for (const v of vectors.vectors) {
    const key = Buffer.from(v.key, "hex");
    const got = slots.slot(key, 0, key.length);
    if (got !== v.slot) wrong.push(`${v.key.slice(0, 40)}: ${got} != ${v.slot}`);
  }
  expect(wrong).toEqual([]);
});

test("a key inside a larger buffer, and keys longer than the key buffer", () => {
  const slots = new KeySlots();
  const v = vectors.vectors.find((x) => Buffer.from(x.key, "hex").toString("latin1") === "{user1000}.following")!;
  const buf = Buffer.from("xx{user1000}.followingyy", "latin1");
  expect(slots.slot(buf, 2, buf.length - 2)).toBe(v.slot);
  // The tag decides however long the rest is: a 1 MB key hashes as its tag.
  const long = Buffer.alloc(1 << 20, 0x61);
  long.write("{user1000}", 1000, "latin1");
  expect(slots.slot(long, 0, long.length)).toBe(v.slot);
});
