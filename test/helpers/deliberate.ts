// Cases where buncracker is deliberately better than nutcracker 0.5.0 (REFERENCE.md "ours: ...").
// One test name, two behaviours: against buncracker the `buncracker` body runs; against
// nutcracker the `nutcracker` body runs (asserting the reference's own behaviour, which keeps the
// harness honest), or the test is skipped when there is none.

import { test } from "bun:test";
import { TARGET } from "./proxy.ts";

export interface DeliberateCase {
  buncracker: () => Promise<void> | void;
  nutcracker?: () => Promise<void> | void;
}

export function testDeliberate(name: string, cases: DeliberateCase, timeoutMs?: number): void {
  const body = TARGET === "buncracker" ? cases.buncracker : cases.nutcracker;
  const label = `${name} [deliberate difference: ${TARGET === "buncracker" ? "ours" : "nutcracker's behaviour"}]`;
  if (body === undefined) test.skip(label, () => {});
  else test(label, body, timeoutMs);
}
