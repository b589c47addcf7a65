// The redis parsers under 100,000 fuzz cases each (fixed seeds, so a failure reproduces with
// `bun test/fuzz/redis.fuzz.ts --cases N --seed S`); the checks are in test/fuzz/redis.fuzz.ts:
// the parsers' contract and the reference framer on random and damaged input (RESP2 and RESP3
// replies), requests parsed back to exactly the arguments encoded, reply streams framed alike
// when parsed as a server connection streams them (parts passed on, parsing resumed).

import { expect, test } from "bun:test";
import { fuzzRequests, fuzzResponses, fuzzResponses3, fuzzRoundTrip, fuzzStreamed } from "../fuzz/redis.fuzz.ts";

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

test("round trip: 100,000 pipelines of encoded requests, in random chunks, parse back to their arguments", () => {
  const stats = fuzzRoundTrip(CASES, 3);
  expect(stats.cases).toBe(CASES);
  // Most requests are served commands with their argument count: parsed, not rejected.
  expect(stats.parsed).toBeGreaterThan(2 * stats.rejected);
  expect(stats.rejected).toBeGreaterThan(CASES / 20);
  // Chunks ended inside requests, so parsing resumed on more bytes.
  expect(stats.resumed).toBeGreaterThan(CASES);
}, 120_000);

test("streamed replies: 100,000 streams with large values frame as the reference does", () => {
  const stats = fuzzStreamed(CASES, 4);
  expect(stats.cases).toBe(CASES);
  expect(stats.replies).toBeGreaterThan(CASES);
  // Values were passed on before their reply was whole in a good share of the cases.
  expect(stats.streamed).toBeGreaterThan(CASES / 5);
}, 120_000);

test("response parser: 100,000 random and damaged RESP3 reply streams", () => {
  const stats = fuzzResponses3(CASES, 3);
  expect(stats.cases).toBe(CASES);
  for (const outcome of ["parsed", "incomplete", "fatal"] as const) expect(stats[outcome]).toBeGreaterThan(CASES / 50);
}, 120_000);
