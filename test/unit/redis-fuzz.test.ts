// The redis parsers under 100,000 fuzz cases each (fixed seeds, so a failure reproduces with
// `bun test/fuzz/redis.fuzz.ts --cases N --seed S`); the checks are in test/fuzz/redis.fuzz.ts.

import { expect, test } from "bun:test";
import { fuzzRequests, fuzzResponses, fuzzResponses3 } from "../fuzz/redis.fuzz.ts";

const CASES = 100_000;

test("request parser: 100,000 random and damaged pipelines", () => {
  const stats = fuzzRequests(CASES, 1);
  expect(stats.cases).toBe(CASES);
  // Every outcome is exercised, or the fuzzer is not doing its job.
  for (const outcome of ["parsed", "incomplete", "fatal", "rejected"] as const) expect(stats[outcome]).toBeGreaterThan(CASES / 20);
}, 120_000);

test("response parser: 100,000 random and damaged reply streams", () => {
  const stats = fuzzResponses(CASES, 2);
  expect(stats.cases).toBe(CASES);
  for (const outcome of ["parsed", "incomplete", "fatal"] as const) expect(stats[outcome]).toBeGreaterThan(CASES / 50);
}, 120_000);

test("response parser: 100,000 random and damaged RESP3 reply streams", () => {
  const stats = fuzzResponses3(CASES, 3);
  expect(stats.cases).toBe(CASES);
  for (const outcome of ["parsed", "incomplete", "fatal"] as const) expect(stats[outcome]).toBeGreaterThan(CASES / 50);
}, 120_000);
