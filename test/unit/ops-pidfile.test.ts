// -p: the pid file as nutcracker writes it, and its removal (removal at exit is exercised by the
// signal tests, which run a real process).

import { afterAll, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { writePidFile } from "../../src/ops/pidfile.ts";
import { makeTempDir, removeTempDirs } from "../helpers/tmp.ts";

afterAll(removeTempDirs);

test("holds the pid and nothing else (no newline), mode 0644, and remove() deletes it", () => {
  const path = makeTempDir("bc-pid-").file("buncracker.pid");
  const file = writePidFile(path);
  expect(readFileSync(path, "utf8")).toBe(String(process.pid));
  expect(statSync(path).mode & 0o777).toBe(0o644);
  file.remove();
  expect(existsSync(path)).toBe(false);
  file.remove(); // twice is harmless
});

test("a file another process has taken over is left alone", () => {
  const path = makeTempDir("bc-pid-").file("buncracker.pid");
  const file = writePidFile(path);
  writeFileSync(path, "424242");
  file.remove();
  expect(readFileSync(path, "utf8")).toBe("424242");
});

test("a pid file that cannot be written is a clear error", () => {
  expect(() => writePidFile("/nonexistent-dir/buncracker.pid")).toThrow(
    "opening pid file '/nonexistent-dir/buncracker.pid' failed: No such file or directory",
  );
});
