// Tests that need something outside the test (nutcracker installed, the vector ports free): when
// it is missing they fail with the reason, so a green run never hides tests that did not run.
// BC_ALLOW_SKIPS=1 turns those failures into skips with a warning, for a machine that cannot
// have it; CI never sets it (scripts/deps.sh installs nutcracker).

import { describe, test } from "bun:test";

export const SKIPS_ALLOWED = process.env.BC_ALLOW_SKIPS === "1";

/** The reason for tests that compare with nutcracker 0.5.0. */
export const NO_NUTCRACKER = "/usr/sbin/nutcracker is not installed (scripts/deps.sh installs it)";

type Body = () => unknown;

/** `test` when `ready`; otherwise a test that fails with `reason` (or a skip, when skips are allowed). */
export function testNeeding(ready: boolean, reason: string): (name: string, body: Body, timeoutMs?: number) => void {
  if (ready) return (name, body, timeoutMs) => test(name, body as () => Promise<void>, timeoutMs);
  if (SKIPS_ALLOWED) {
    console.warn(`skipped (BC_ALLOW_SKIPS=1): ${reason}`);
    return (name) => test.skip(name, () => {});
  }
  return (name) =>
    test(name, () => {
      throw new Error(`cannot run: ${reason} (BC_ALLOW_SKIPS=1 skips it instead)`);
    });
}

/** `describe` when `ready`; otherwise one failing test in its place (or a skip, when allowed). */
export function describeNeeding(ready: boolean, reason: string): (name: string, body: () => void) => void {
  if (ready) return (name, body) => describe(name, body);
  if (SKIPS_ALLOWED) {
    console.warn(`skipped (BC_ALLOW_SKIPS=1): ${reason}`);
    return (name, body) => describe.skip(name, body);
  }
  return (name) =>
    describe(name, () => {
      test("can run", () => {
        throw new Error(`cannot run: ${reason} (BC_ALLOW_SKIPS=1 skips it instead)`);
      });
    });
}

/** True once `ready()` holds, polling until `timeoutMs` (false then): for resources another run holds for a while. */
export async function readyWithin(ready: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (ready()) return true;
    if (Date.now() > deadline) return false;
    await Bun.sleep(200);
  }
}
