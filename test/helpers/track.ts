// Processes a test starts are stopped when it ends, whatever happened in it.

import { afterEach } from "bun:test";

interface Stoppable {
  stop(): Promise<unknown>;
}

/** Registers an afterEach that stops everything handed to the returned `track` during the test
 *  (call once per test file, at the top level). */
export function stopAfterEach(): <T extends Stoppable>(thing: Promise<T>) => Promise<T> {
  const started: Stoppable[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((p) => p.stop()));
  });
  return async (thing) => {
    const t = await thing;
    started.push(t);
    return t;
  };
}
