// The memcached codec under fuzzing (test/fuzz/memcache.fuzz.ts has the generators and the
// invariants): 100,000 cases per property with a fixed seed; any violation throws with the case.
// Contract and reference framer on random and mutated input; requests parsed back to exactly
// their tokens; merges equal to the reply built independently; reply streams framed alike when
// streamed and resumed; joined lines' replies divided into exactly each request's items.

import { expect, test } from "bun:test";
import { fuzzJoined, fuzzMerge, fuzzRequests, fuzzResponses, fuzzRoundTrip, fuzzStreamed } from "../fuzz/memcache.fuzz.ts";

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

test(`reply parser: ${CASES} random and mutated cases, framed as the reference framer does`, () => {
  const report = fuzzResponses(CASES, 1);
  expect(report.parsed - report.rejected).toBeGreaterThan(CASES / 10);
  expect(report.rejected).toBeGreaterThan(CASES / 100);
  expect(report.needMore).toBeGreaterThan(CASES / 100);
  expect(report.fatal).toBeGreaterThan(CASES / 10);
}, TIMEOUT_MS);

test(`round trip: ${CASES} pipelines of requests, in random chunks, parse back to their tokens, keys and data`, () => {
  const report = fuzzRoundTrip(CASES, 2);
  expect(report.parsed).toBeGreaterThan(CASES);
  // Only keys over 250 bytes are rejected; some are generated.
  expect(report.rejected).toBeGreaterThan(CASES / 100);
  expect(report.resumed).toBeGreaterThan(CASES);
}, TIMEOUT_MS);

test(`merge: ${CASES} fragment sets merge into exactly memcached's reply`, () => {
  const report = fuzzMerge(CASES, 1);
  // Most merges are checked byte for byte, some of them a fragment's error; the rest (arbitrary
  // fragment replies) only for being one complete reply.
  expect(report.exact).toBeGreaterThan(CASES * 0.7);
  expect(report.errors).toBeGreaterThan(CASES / 20);
  expect(report.wellFormed).toBeGreaterThan(CASES / 10);
  expect(report.exact + report.wellFormed).toBe(CASES);
}, TIMEOUT_MS);

test(`streamed replies: ${CASES} streams with large values frame as the reference does`, () => {
  const report = fuzzStreamed(CASES, 3);
  expect(report.replies).toBeGreaterThan(CASES);
  expect(report.streamed).toBeGreaterThan(CASES / 5);
}, TIMEOUT_MS);

test(`joined lines: ${CASES} replies divided among 2-4 requests, streamed and resumed`, () => {
  const report = fuzzJoined(CASES, 4);
  expect(report.replies).toBeGreaterThan(2 * CASES);
  expect(report.streamed).toBeGreaterThan(CASES / 10);
}, TIMEOUT_MS);
