// The command-line flags: one table (short, long, value, help, how the value is read) from
// which parsing and the usage text derive. nutcracker 0.5.0's flags keep its defaults and its
// value checks (nc.c); --workers, --metrics-port and --drain-timeout are ours.

import { availableParallelism } from "node:os";
import { decimal, parseByteSize, ValueError } from "../conf/value.ts";
import { LOG_MAX, LOG_NOTICE } from "../log.ts";

export interface Options {
  /** -h: print the banner and usage, exit 0. */
  readonly help: boolean;
  /** -V: print the banner, exit 0. */
  readonly version: boolean;
  /** -t: check the config file, exit 0 or 1. */
  readonly testConf: boolean;
  readonly daemonize: boolean;
  /** -D: print the banner and the stats description, exit 0. */
  readonly describeStats: boolean;
  /** -v: log level 0..11 (larger values are clamped to 11, like nutcracker). */
  readonly verbosity: number;
  /** -o: log file; null logs to stderr. */
  readonly output: string | null;
  readonly confFile: string;
  readonly statsPort: number;
  readonly statsAddr: string;
  /** -i: stats aggregation interval, ms. */
  readonly statsInterval: number;
  /** -p: pid file; null writes none. */
  readonly pidFile: string | null;
  /** -m: bytes per I/O buffer chunk. */
  readonly mbufSize: number;
  /** ours: worker processes (`auto` = one per core). */
  readonly workers: number;
  /** ours: port of the Prometheus /metrics and /healthz endpoint; 0 = off. */
  readonly metricsPort: number;
  /** ours: on SIGTERM, how long in-flight requests may take before the proxy exits, ms. */
  readonly drainTimeout: number;
  /** ours: bytes of requests and replies the proxy may hold for its clients, all pools together;
   *  past it, the clients holding the most are read no further until it drains. */
  readonly bufferBudget: number;
}

const MBUF_MIN_SIZE = 512;
const MBUF_MAX_SIZE = 16 * 1024 * 1024;
const MAX_WORKERS = 1024;
const BUFFER_BUDGET_MIN = 1024 ** 2;

export const DEFAULTS: Options = Object.freeze({
  help: false,
  version: false,
  testConf: false,
  daemonize: false,
  describeStats: false,
  verbosity: LOG_NOTICE,
  output: null,
  confFile: "conf/nutcracker.yml",
  statsPort: 22222,
  statsAddr: "0.0.0.0",
  statsInterval: 30000,
  pidFile: null,
  mbufSize: 16384,
  workers: 1,
  metricsPort: 0,
  drainTimeout: 5000,
  // Incomplete requests may use half of it (core/budget.ts): room for the largest value redis
  // takes (512 MB) twice over.
  bufferBudget: 2 * 1024 ** 3,
});

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export interface Flag {
  readonly short: string | null;
  readonly long: string;
  /** The value's placeholder in the usage (`N`, `S`); null for a switch. */
  readonly arg: string | null;
  readonly help: string;
  /** What a missing value is, in nutcracker's words: "a number", "a file name", "a string". */
  readonly needs: string;
  /** Stores the value (or "" for a switch); returns an error message for a bad one. */
  set(options: Mutable<Options>, value: string): string | null;
}

/** nutcracker's nc_atoi: -1 for anything but digits that fit a C int. */
const atoi = (text: string): number => decimal(text) ?? -1;

const isPort = (n: number): boolean => n >= 1 && n <= 65535;

type Toggle = "help" | "version" | "testConf" | "daemonize" | "describeStats";

const toggle = (short: string, long: string, help: string, field: Toggle): Flag => ({
  short,
  long,
  arg: null,
  help,
  needs: "",
  set(options) {
    options[field] = true;
    return null;
  },
});

export const FLAGS: readonly Flag[] = [
  toggle("h", "help", "this help", "help"),
  toggle("V", "version", "show version and exit", "version"),
  toggle("t", "test-conf", "test configuration for syntax errors and exit", "testConf"),
  toggle("d", "daemonize", "run as a daemon", "daemonize"),
  toggle("D", "describe-stats", "print stats description and exit", "describeStats"),
  {
    short: "v",
    long: "verbose",
    arg: "N",
    help: `set logging level (default: ${DEFAULTS.verbosity}, min: 0, max: ${LOG_MAX})`,
    needs: "a number",
    set(options, value) {
      const n = atoi(value);
      if (n < 0) return "option -v requires a number";
      options.verbosity = Math.min(n, LOG_MAX);
      return null;
    },
  },
  {
    short: "o",
    long: "output",
    arg: "S",
    help: "set logging file (default: stderr)",
    needs: "a file name",
    set(options, value) {
      options.output = value === "" ? null : value;
      return null;
    },
  },
  {
    short: "c",
    long: "conf-file",
    arg: "S",
    help: `set configuration file (default: ${DEFAULTS.confFile})`,
    needs: "a file name",
    set(options, value) {
      options.confFile = value;
      return null;
    },
  },
  {
    short: "s",
    long: "stats-port",
    arg: "N",
    help: `set stats monitoring port (default: ${DEFAULTS.statsPort})`,
    needs: "a number",
    set(options, value) {
      const n = atoi(value);
      if (n < 0) return "option -s requires a number";
      if (!isPort(n)) return `option -s value ${n} is not a valid port`;
      options.statsPort = n;
      return null;
    },
  },
  {
    short: "a",
    long: "stats-addr",
    arg: "S",
    help: `set stats monitoring ip (default: ${DEFAULTS.statsAddr})`,
    needs: "a string",
    set(options, value) {
      if (value === "") return "option -a requires a string";
      options.statsAddr = value;
      return null;
    },
  },
  {
    short: "i",
    long: "stats-interval",
    arg: "N",
    help: `set stats aggregation interval in msec (default: ${DEFAULTS.statsInterval} msec)`,
    needs: "a number",
    set(options, value) {
      const n = atoi(value);
      if (n < 0) return "option -i requires a number";
      options.statsInterval = n;
      return null;
    },
  },
  {
    short: "p",
    long: "pid-file",
    arg: "S",
    help: "set pid file (default: off)",
    needs: "a file name",
    set(options, value) {
      options.pidFile = value === "" ? null : value;
      return null;
    },
  },
  {
    short: "m",
    long: "mbuf-size",
    arg: "N",
    help: `set size of mbuf chunk in bytes (default: ${DEFAULTS.mbufSize} bytes)`,
    needs: "a number",
    set(options, value) {
      const n = atoi(value);
      if (n <= 0) return "option -m requires a non-zero number";
      if (n < MBUF_MIN_SIZE || n > MBUF_MAX_SIZE) {
        return `mbuf chunk size must be between ${MBUF_MIN_SIZE} and ${MBUF_MAX_SIZE} bytes`;
      }
      options.mbufSize = n;
      return null;
    },
  },
  {
    short: null,
    long: "workers",
    arg: "N|auto",
    help: `set worker processes, auto = one per core (default: ${DEFAULTS.workers})`,
    needs: "a number or auto",
    set(options, value) {
      const n = value === "auto" ? availableParallelism() : atoi(value);
      if (n < 1 || n > MAX_WORKERS) return `option --workers requires a number from 1 to ${MAX_WORKERS} or auto`;
      options.workers = n;
      return null;
    },
  },
  {
    short: null,
    long: "metrics-port",
    arg: "N",
    help: `set Prometheus /metrics port, 0 = off (default: ${DEFAULTS.metricsPort})`,
    needs: "a number",
    set(options, value) {
      const n = atoi(value);
      if (n < 0) return "option --metrics-port requires a number";
      if (n !== 0 && !isPort(n)) return `option --metrics-port value ${n} is not a valid port`;
      options.metricsPort = n;
      return null;
    },
  },
  {
    short: null,
    long: "drain-timeout",
    arg: "MS",
    help: `set time in msec in-flight requests get on SIGTERM (default: ${DEFAULTS.drainTimeout} msec)`,
    needs: "a number",
    set(options, value) {
      const n = atoi(value);
      if (n < 0) return "option --drain-timeout requires a number";
      options.drainTimeout = n;
      return null;
    },
  },
  {
    short: null,
    long: "buffer-budget",
    arg: "BYTES",
    help: `set bytes of requests and replies held for clients, e.g. 256mb (default: 2gb)`,
    needs: "a size",
    set(options, value) {
      let n: number;
      try {
        n = parseByteSize(value, "option --buffer-budget value");
      } catch (error) {
        if (error instanceof ValueError) return error.message;
        throw error;
      }
      if (n < BUFFER_BUDGET_MIN) return `option --buffer-budget must be at least 1mb`;
      options.bufferBudget = n;
      return null;
    },
  },
];
