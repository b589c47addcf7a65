// nutcracker's log levels and a line logger. Hot paths guard with one comparison:
//   if (log.level >= LOG_INFO) log.info(`...`);
// so a disabled level costs no string building.
//
// A line is `[YYYY-MM-DD HH:MM:SS.mmm] <level> <message>` in local time, as nutcracker stamps its
// lines; where nutcracker prints its source file:line we print the level name. Lines are
// buffered and written once per callback (a microtask) and at exit, to stderr or the -o file.

import { closeSync, openSync, writeSync } from "node:fs";
import { systemErrorText } from "./ops/system-error.ts";

export const LOG_EMERG = 0;
export const LOG_ALERT = 1;
export const LOG_CRIT = 2;
export const LOG_ERR = 3;
export const LOG_WARN = 4;
export const LOG_NOTICE = 5;
export const LOG_INFO = 6;
export const LOG_DEBUG = 7;
export const LOG_VERB = 8;
export const LOG_VVERB = 9;
export const LOG_VVVERB = 10;
export const LOG_PVERB = 11;
export const LOG_MAX = LOG_PVERB;

const LEVEL_NAMES = [
  "emerg", "alert", "crit", "error", "warn", "notice",
  "info", "debug", "verb", "vverb", "vvverb", "pverb",
] as const;

const STDERR = 2;
/** Buffered bytes that force a write before the end of the loop turn. */
const FLUSH_AT = 64 * 1024;

const pad = (n: number, width = 2): string => String(n).padStart(width, "0");

/** nutcracker's "%Y-%m-%d %H:%M:%S.mmm", local time. */
export function timestamp(d: Date = new Date()): string {
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return `${date} ${time}.${pad(d.getMilliseconds(), 3)}`;
}

const openForAppend = (path: string): number => openSync(path, "a", 0o644);

export class Logger {
  level = LOG_NOTICE;
  /** The -o file, or null for stderr. */
  private path: string | null = null;
  private fd = STDERR;
  private pending = "";
  private flushQueued = false;
  private readonly flushNow = (): void => this.flush();

  /** Logs to `path` (appending, created 0644), or to stderr for null. Throws with nutcracker's
   *  text ("opening log file 'x' failed: ...") when the file cannot be opened. */
  open(path: string | null): void {
    let fd = STDERR;
    if (path !== null) {
      try {
        fd = openForAppend(path);
      } catch (err) {
        throw new Error(`opening log file '${path}' failed: ${systemErrorText(err)}`);
      }
    }
    this.flush();
    this.closeFile();
    this.fd = fd;
    this.path = path;
  }

  /** Re-creates the log file after rotation moved it away (SIGHUP). Keeps the old file when the
   *  new one cannot be opened. */
  reopen(): void {
    if (this.path === null) return;
    let fd: number;
    try {
      fd = openForAppend(this.path);
    } catch (err) {
      this.always(`reopening log file '${this.path}' failed, ignored: ${systemErrorText(err)}`);
      return;
    }
    this.flush();
    this.closeFile();
    this.fd = fd;
    this.always(`reopened log file '${this.path}'`);
  }

  /** SIGTTIN. */
  levelUp(): void {
    if (this.level >= LOG_MAX) return;
    this.level++;
    this.always(`up log level to ${this.level}`);
  }

  /** SIGTTOU. */
  levelDown(): void {
    if (this.level <= LOG_EMERG) return;
    this.level--;
    this.always(`down log level to ${this.level}`);
  }

  write(level: number, msg: string): void {
    if (level > this.level) return;
    this.append(LEVEL_NAMES[level] ?? "log", msg);
  }

  /** Whatever the level (nutcracker's loga): start-up banner, signals, level changes. */
  always(msg: string): void {
    this.append(LEVEL_NAMES[LOG_NOTICE], msg);
  }

  error(msg: string): void {
    this.write(LOG_ERR, msg);
  }

  warn(msg: string): void {
    this.write(LOG_WARN, msg);
  }

  notice(msg: string): void {
    this.write(LOG_NOTICE, msg);
  }

  info(msg: string): void {
    this.write(LOG_INFO, msg);
  }

  debug(msg: string): void {
    this.write(LOG_DEBUG, msg);
  }

  /** Writes the buffered lines now. A line that cannot be written (disk full, a closed or
   *  non-blocking full pipe) is dropped: logging never takes the proxy down. */
  flush(): void {
    this.flushQueued = false;
    if (this.pending === "") return;
    const bytes = Buffer.from(this.pending);
    this.pending = "";
    try {
      for (let off = 0; off < bytes.length; ) off += writeSync(this.fd, bytes, off);
    } catch {
      // dropped, see above
    }
  }

  private append(tag: string, msg: string): void {
    this.pending += `[${timestamp()}] ${tag} ${msg}\n`;
    if (this.pending.length >= FLUSH_AT) this.flush();
    else if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushNow);
    }
  }

  private closeFile(): void {
    if (this.fd !== STDERR) closeSync(this.fd);
  }
}

export const log = new Logger();
process.on("exit", () => log.flush());
