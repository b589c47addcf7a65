// ByteWriter: what the data path relies on. take() must hand out an independent copy even after
// the writer grew (a merged reply held for an out-of-order slot must not change when the writer
// is reused for the next merge; Buffer#slice would share memory), and consume()/reserve() must
// keep the unwritten tail intact after partial socket writes.

import { expect, test } from "bun:test";
import { ByteWriter, bufferPool } from "../../src/lib/bytes.ts";

const fill = (n: number, byte: number) => new Uint8Array(n).fill(byte);

test("take() returns a copy that later writes never change, before and after growth", () => {
  for (const size of [10, 4096, 70_000]) {
    const w = new ByteWriter(16);
    w.bytes(fill(size, 0x61));
    const first = w.take();
    w.bytes(fill(size, 0x62));
    const second = w.take();
    expect(first.every((b) => b === 0x61)).toBe(true);
    expect(second.every((b) => b === 0x62)).toBe(true);
    expect(first.length).toBe(size);
  }
});

test("pooled and grown buffers are plain Uint8Arrays (slice copies)", () => {
  const w = new ByteWriter();
  w.bytes(fill(100, 1));
  expect(Object.getPrototypeOf(w.buf)).toBe(Uint8Array.prototype);
  w.bytes(fill(bufferPool.size * 3, 2));
  expect(Object.getPrototypeOf(w.buf)).toBe(Uint8Array.prototype);
  w.clear();
  w.release();
  expect(Object.getPrototypeOf(bufferPool.get())).toBe(Uint8Array.prototype);
});

test("consume() then more writes keep the unwritten tail, in order", () => {
  const w = new ByteWriter();
  const input = Uint8Array.from({ length: 40_000 }, (_, i) => i % 251);
  w.bytes(input);
  let out: number[] = [];
  // A socket that takes 7,001 bytes at a time, while more is appended between writes.
  const extra = Uint8Array.from({ length: 30_000 }, (_, i) => (i * 7) % 253);
  let appended = 0;
  while (w.size > 0) {
    const n = Math.min(7001, w.size);
    out = out.concat(Array.from(w.buf.subarray(w.head, w.head + n)));
    w.consume(n);
    if (appended < extra.length) {
      w.bytes(extra, appended, appended + 5000);
      appended += 5000;
    }
  }
  expect(out).toEqual([...input, ...extra]);
});

test("the buffer pool gives back the chunks it did not hand out between two trims, oldest first", () => {
  bufferPool.setSize(bufferPool.size);
  try {
    const chunks = Array.from({ length: 6 }, () => new Uint8Array(bufferPool.size));
    for (const c of chunks) bufferPool.put(c);
    expect(bufferPool.trimmer).not.toBeNull();
    // The trimmer started with the first: it goes at the first trim, the others had no full turn.
    bufferPool.trim();
    expect(bufferPool.free).toEqual(chunks.slice(1));
    // Two chunks in use at once since: three stayed free all along and go; the two used stay.
    const a = bufferPool.get();
    const b = bufferPool.get();
    bufferPool.put(b);
    bufferPool.put(a);
    bufferPool.trim();
    expect(bufferPool.free).toEqual([b, a]);
    // A chunk of another size (a grown buffer) is never kept.
    bufferPool.put(new Uint8Array(bufferPool.size * 2));
    expect(bufferPool.free.length).toBe(2);
    // Nothing handed out since: everything goes, and the pool stops trimming.
    bufferPool.trim();
    expect(bufferPool.free).toEqual([]);
    expect(bufferPool.trimmer).toBeNull();
    expect(bufferPool.get().length).toBe(bufferPool.size);
  } finally {
    bufferPool.setSize(bufferPool.size);
  }
});
