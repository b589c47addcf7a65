// Split planning (src/core/split.ts) on its own: keys grouped by server into fragments numbered
// in order of first use, each fragment's keys in request order, checked against a plain
// grouping of random assignments; and SplitState's bookkeeping of fragment replies.

import { describe, expect, test } from "bun:test";
import { SplitPlan, SplitState } from "../../src/core/split.ts";
import { Route } from "../../src/proto/codec.ts";
import { makeRng } from "../helpers/random.ts";

/** The plan of keyServer over a pool of `servers`: per fragment, its server and its keys. */
function planOf(plan: SplitPlan, keyServer: number[]): { server: number; keys: number[] }[] {
  const n = keyServer.length;
  plan.reserve(n);
  keyServer.forEach((s, i) => (plan.keyServer[i] = s));
  const keys = new Int32Array(3 * n);
  const nfrags = plan.plan(n, keys);
  const frags = Array.from({ length: nfrags }, (_, f) => ({
    server: plan.fragServer[f]!,
    keys: Array.from(plan.order.subarray(plan.fragStart[f]!, plan.fragEnd(f))),
  }));
  // Split.keys names each key's fragment.
  for (let i = 0; i < n; i++) expect(frags[keys[3 * i + 2]!]!.keys).toContain(i);
  return frags;
}

/** The same grouping, computed plainly. */
function grouped(keyServer: number[]): { server: number; keys: number[] }[] {
  const byServer = new Map<number, number[]>();
  keyServer.forEach((s, i) => {
    if (!byServer.has(s)) byServer.set(s, []);
    byServer.get(s)!.push(i);
  });
  return [...byServer].map(([server, keys]) => ({ server, keys }));
}

describe("SplitPlan", () => {
  test("fragments in order of first use, keys in request order", () => {
    const plan = new SplitPlan(4);
    expect(planOf(plan, [2, 0, 2, 3, 0])).toEqual([
      { server: 2, keys: [0, 2] },
      { server: 0, keys: [1, 4] },
      { server: 3, keys: [3] },
    ]);
  });

  test("one plan after another: nothing of the last one is left over", () => {
    const plan = new SplitPlan(3);
    planOf(plan, [0, 1, 2, 1]);
    expect(planOf(plan, [1, 1])).toEqual([{ server: 1, keys: [0, 1] }]);
    expect(planOf(plan, [2, 0])).toEqual([
      { server: 2, keys: [0] },
      { server: 0, keys: [1] },
    ]);
  });

  test("random assignments, up to 300 keys over up to 40 servers, as a plain grouping", () => {
    const rng = makeRng(22);
    const plan = new SplitPlan(40);
    for (let c = 0; c < 500; c++) {
      const servers = 1 + rng.int(40);
      const keyServer = Array.from({ length: 1 + rng.int(300) }, () => rng.int(servers));
      expect(planOf(plan, keyServer)).toEqual(grouped(keyServer));
    }
  });
});

describe("SplitState", () => {
  test("counts fragment replies down; the first error is kept", () => {
    const state = new SplitState(Route.Get, new Uint8Array(0), 3, new Int32Array(9), 3);
    const reply = new TextEncoder().encode("xx+OK\r\nyy");
    expect(state.fill(1, reply, 2, 7)).toBe(false);
    expect(state.failed("first", 0)).toBe(false);
    expect(state.failed("second", 1)).toBe(true);
    expect(state.error).toBe("first");
    expect([state.fragBuf[1], state.fragPos[2], state.fragPos[3]]).toEqual([reply, 2, 7]);
  });
});
