// Temporary directories for configs, unix sockets and backend data. Whoever makes one removes
// it (backends and proxies do when stopped; suites in afterAll, with `removeTempDirs` for the
// ones they made loose). `bun test` runs no "exit" handlers, so the exit clean-up below only
// helps plain scripts.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TempDir {
  readonly path: string;
  /** `path` joined with `name`. */
  file(name: string): string;
  remove(): void;
}

const live = new Set<string>();

/** Removes every directory made here and not removed yet: a suite's afterAll. */
export function removeTempDirs(): void {
  for (const path of live) rmSync(path, { recursive: true, force: true });
  live.clear();
}

process.on("exit", removeTempDirs);

/** A new empty directory under the system temp dir. Short, so unix socket paths fit in 108 bytes. */
export function makeTempDir(prefix = "bct-"): TempDir {
  const path = mkdtempSync(join(tmpdir(), prefix));
  live.add(path);
  return {
    path,
    file: (name) => join(path, name),
    remove() {
      rmSync(path, { recursive: true, force: true });
      live.delete(path);
    },
  };
}
