// Temporary directories for configs, unix sockets and backend data. Each is removed when the
// test process exits (or earlier by its own remove()).

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

process.on("exit", () => {
  for (const path of live) rmSync(path, { recursive: true, force: true });
});

/** A new empty directory under the system temp dir. Short, so unix socket paths fit in 108 bytes. */
export function makeTempDir(prefix = "bc-test-"): TempDir {
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
