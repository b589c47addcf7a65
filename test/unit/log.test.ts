// The logger: nutcracker's line layout and level texts, the level gate, buffering, and
// re-creating the file after rotation.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, renameSync } from "node:fs";
import {
  LOG_DEBUG,
  LOG_EMERG,
  LOG_ERR,
  LOG_INFO,
  LOG_MAX,
  LOG_NOTICE,
  LOG_WARN,
  Logger,
  timestamp,
} from "../../src/log.ts";
import { makeTempDir, removeTempDirs } from "../helpers/tmp.ts";

afterAll(removeTempDirs);

// `[2026-11-26 00:04:42.589] nc.c:182 ...` is nutcracker's; the level name stands for file:line.
const LINE = /^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3})\] (\w+) (.*)$/;

function fileLogger(level = LOG_NOTICE): { log: Logger; path: string; lines(): string[] } {
  const dir = makeTempDir("bc-log-");
  const path = dir.file("buncracker.log");
  const log = new Logger();
  log.level = level;
  log.open(path);
  return {
    log,
    path,
    lines() {
      log.flush();
      return readFileSync(path, "utf8").split("\n").filter((l) => l !== "");
    },
  };
}

/** The messages of `lines`, each checked against the line layout. */
const messages = (lines: string[]): string[] =>
  lines.map((line) => {
    const m = LINE.exec(line);
    if (m === null) throw new Error(`not a log line: ${JSON.stringify(line)}`);
    return m[3]!;
  });

test("timestamps are nutcracker's, in local time", () => {
  expect(timestamp(new Date(2026, 10, 26, 0, 4, 42, 589))).toBe("2026-11-26 00:04:42.589");
  expect(timestamp(new Date(2027, 0, 2, 13, 5, 9, 7))).toBe("2027-01-02 13:05:09.007");
});

test("lines above the level are dropped; the rest carry timestamp and level name", () => {
  const f = fileLogger(LOG_WARN);
  f.log.error("e");
  f.log.warn("w");
  f.log.notice("n");
  f.log.info("i");
  f.log.write(LOG_DEBUG, "d");
  f.log.always("a");
  const lines = f.lines();
  expect(messages(lines)).toEqual(["e", "w", "a"]);
  expect(lines.map((l) => LINE.exec(l)![2])).toEqual(["error", "warn", "notice"]);
});

test("lines are buffered until the end of the turn, in order", async () => {
  const f = fileLogger();
  f.log.notice("one");
  f.log.notice("two");
  expect(readFileSync(f.path, "utf8")).toBe("");
  await Bun.sleep(0);
  expect(messages(readFileSync(f.path, "utf8").trimEnd().split("\n"))).toEqual(["one", "two"]);
});

describe("level up and down (SIGTTIN / SIGTTOU)", () => {
  test("change the level by one and log it as nutcracker does", () => {
    const f = fileLogger(LOG_NOTICE);
    f.log.levelUp();
    expect(f.log.level).toBe(LOG_INFO);
    f.log.info("now visible");
    f.log.levelDown();
    f.log.levelDown();
    expect(f.log.level).toBe(LOG_WARN);
    f.log.notice("hidden");
    expect(messages(f.lines())).toEqual([
      "up log level to 6",
      "now visible",
      "down log level to 5",
      "down log level to 4",
    ]);
  });

  test("stop at 11 and 0 without a line", () => {
    const top = fileLogger(LOG_MAX);
    top.log.levelUp();
    expect(top.log.level).toBe(LOG_MAX);
    const bottom = fileLogger(LOG_EMERG);
    bottom.log.levelDown();
    expect(bottom.log.level).toBe(LOG_EMERG);
    expect([...top.lines(), ...bottom.lines()]).toEqual([]);
  });
});

describe("files", () => {
  test("reopen re-creates the file after rotation moved it", () => {
    const f = fileLogger();
    f.log.notice("before rotation");
    f.log.flush();
    renameSync(f.path, `${f.path}.1`);
    f.log.notice("still the old file");
    f.log.reopen();
    f.log.notice("after rotation");
    expect(messages(f.lines())).toEqual([`reopened log file '${f.path}'`, "after rotation"]);
    expect(messages(readFileSync(`${f.path}.1`, "utf8").trimEnd().split("\n"))).toEqual([
      "before rotation",
      "still the old file",
    ]);
  });

  test("a reopen that fails keeps the old file and says so in nutcracker's words", () => {
    const f = fileLogger();
    renameSync(f.path, `${f.path}.1`);
    mkdirSync(f.path); // the log path cannot be re-created as a file
    f.log.reopen();
    f.log.notice("kept writing");
    f.log.flush();
    const [failed, kept] = messages(readFileSync(`${f.path}.1`, "utf8").trimEnd().split("\n"));
    // the reason is libuv's text for EISDIR ("Illegal operation on a directory")
    expect(failed).toMatch(new RegExp(`^reopening log file '${f.path}' failed, ignored: \\w`));
    expect(kept).toBe("kept writing");
  });

  test("open names the file and the reason, as nutcracker does", () => {
    const log = new Logger();
    expect(() => log.open("/nonexistent-dir/x.log")).toThrow(
      "opening log file '/nonexistent-dir/x.log' failed: No such file or directory",
    );
  });

  test("null logs to stderr again", () => {
    const f = fileLogger();
    f.log.open(null);
    f.log.write(LOG_ERR, "to stderr");
    expect(f.lines()).toEqual([]);
  });
});
