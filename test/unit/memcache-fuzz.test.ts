// The memcached codec under fuzzing (test/fuzz/memcache.fuzz.ts has the generators and the
// invariants): 100,000 cases per parser with a fixed seed; any violation throws with the case.

import { expect, test } from "bun:test";
import { fuzzMerge, fuzzRequests, fuzzResponses } from "../fuzz/memcache.fuzz.ts";

const CASES = 100_000;
/** Generous: a few seconds of CPU, on a machine other test suites may be loading. */
const TIMEOUT_MS = 60_000;

test(`request parser: ${CASES} random and mutated cases`, () => {
  const report = fuzzRequests(CASES, 1);
  // Every kind of outcome was exercised.
  expect(report.parsed - report.rejected).toBeGreaterThan(CASES / 10);
  expect(report.rejected).toBeGreaterThan(CASES / 10);
  expect(report.needMore).toBeGreaterThan(CASES / 100);
  expect(report.fatal).toBeGreaterThan(100);
}, TIMEOUT_MS);

test(`reply parser: ${CASES} random and mutated cases`, () => {
  const report = fuzzResponses(CASES, 1);
  expect(report.parsed - report.rejected).toBeGreaterThan(CASES / 10);
  expect(report.rejected).toBeGreaterThan(CASES / 100);
  expect(report.needMore).toBeGreaterThan(CASES / 100);
  expect(report.fatal).toBeGreaterThan(CASES / 10);
}, TIMEOUT_MS);

test("merge: 20,000 random fragment sets give one complete reply each", () => {
  const report = fuzzMerge(20_000, 1);
  expect(report.parsed).toBe(20_000);
  expect(report.rejected).toBeGreaterThan(0);
}, TIMEOUT_MS);
