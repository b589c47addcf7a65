// -p: the pid file, written at start as nutcracker writes it (the pid, no newline, mode 0644)
// and removed when the process exits (nutcracker leaves it behind on SIGINT; we do not).

import { readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { systemErrorText } from "./system-error.ts";

export interface PidFile {
  readonly path: string;
  /** Removes the file, unless another process has since written its own pid into it. */
  remove(): void;
}

/** Writes the pid file and arranges its removal at exit. Throws with nutcracker's text
 *  ("opening pid file 'x' failed: ...") when it cannot be written. */
export function writePidFile(path: string): PidFile {
  const pid = String(process.pid);
  try {
    writeFileSync(path, pid, { mode: 0o644 });
  } catch (err) {
    throw new Error(`opening pid file '${path}' failed: ${systemErrorText(err)}`);
  }
  const file: PidFile = {
    path,
    remove() {
      process.off("exit", file.remove);
      try {
        if (readFileSync(path, "utf8") === pid) unlinkSync(path);
      } catch {
        // already gone
      }
    },
  };
  process.on("exit", file.remove);
  return file;
}
