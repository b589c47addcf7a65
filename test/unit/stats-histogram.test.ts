// The latency histogram's O(1) bucket choice against the definition: the first bucket whose
// upper bound is >= the value, else the +Inf overflow.

import { expect, test } from "bun:test";
import { Histogram, LATENCY_BOUNDS_US } from "../../src/stats/histogram.ts";

const expectedSlot = (us: number): number => {
  const i = LATENCY_BOUNDS_US.findIndex((bound) => us <= bound);
  return i < 0 ? LATENCY_BOUNDS_US.length : i;
};

test("bounds are ascending powers of two from 16 µs", () => {
  expect(LATENCY_BOUNDS_US[0]).toBe(16);
  for (let i = 1; i < LATENCY_BOUNDS_US.length; i++) {
    expect(LATENCY_BOUNDS_US[i]).toBe(2 * LATENCY_BOUNDS_US[i - 1]!);
  }
});

test("every value lands in the first bucket whose bound holds it", () => {
  const values = [-5, 0, 0.4, 1, 2, 15.9, 16, 16.0001, 17, 31, 32, 33, 1000, 1024, 1025];
  for (const bound of LATENCY_BOUNDS_US) values.push(bound - 1, bound - 0.5, bound, bound + 0.5, bound + 1);
  values.push(2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5, 1e15, Number.MAX_SAFE_INTEGER);
  for (const us of values) {
    const h = new Histogram();
    h.observe(us);
    const slot = h.buckets.findIndex((n) => n === 1);
    if (slot !== expectedSlot(us)) throw new Error(`${us} µs went to bucket ${slot}, not ${expectedSlot(us)}`);
  }
});

test("count and sum follow the observations", () => {
  const h = new Histogram();
  for (const us of [10, 20.5, 3_000_000]) h.observe(us);
  expect(h.count).toBe(3);
  expect(h.sumMicros).toBe(3_000_030.5);
  expect(h.buckets.reduce((a, b) => a + b)).toBe(3);
});
