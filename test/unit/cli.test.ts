// The nutcracker-compatible command line: flag parsing checked against what nutcracker 0.5.0
// accepts and the errors it prints, the usage and -D layouts compared with the real binary's,
// the -V banner, and -t's output lines.

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import pkg from "../../package.json" with { type: "json" };
import { parseArgs } from "../../src/cli/args.ts";
import { DEFAULTS, type Options } from "../../src/cli/options.ts";
import { testConf } from "../../src/cli/testconf.ts";
import { POOL_DIRECTIVES } from "../../src/conf/schema.ts";
import { infoText, usage, versionBanner } from "../../src/cli/usage.ts";
import { describeStats } from "../../src/stats/describe.ts";
import { makeTempDir } from "../helpers/tmp.ts";
import { describeNeeding, NO_NUTCRACKER } from "../helpers/needs.ts";

const NUTCRACKER = "/usr/sbin/nutcracker";
const haveNutcracker = existsSync(NUTCRACKER);
const dir = makeTempDir("bc-cli-");
afterAll(() => dir.remove());

const GOOD = dir.file("good.yml");
writeFileSync(GOOD, "p:\n  listen: 127.0.0.1:22121\n  servers:\n   - 127.0.0.1:6379:1\n");
const BAD = dir.file("bad.yml");
writeFileSync(BAD, "p:\n  listen: 127.0.0.1:22121\n  foo: 1\n  servers:\n   - 127.0.0.1:6379:1\n");

/** nutcracker's exit code and stderr lines (its \r\n line ends made \n). */
function nutcracker(argv: string[]): { code: number; lines: string[] } {
  const run = Bun.spawnSync([NUTCRACKER, ...argv], { stdout: "pipe", stderr: "pipe" });
  const lines = run.stderr.toString().replaceAll("\r", "").split("\n");
  if (lines.at(-1) === "") lines.pop();
  return { code: run.exitCode, lines };
}

function parsed(argv: string[]): Options {
  const result = parseArgs(argv);
  if ("error" in result) throw new Error(`unexpected error: ${result.error}`);
  return result;
}

const error = (argv: string[]): string | null => {
  const result = parseArgs(argv);
  return "error" in result ? result.error : null;
};

interface Good {
  argv: string[];
  expect: Partial<Options>;
  /** A flag of ours: nutcracker does not know it. */
  ours?: true;
}

const GOOD_ARGS: Good[] = [
  { argv: [], expect: {} },
  { argv: ["-t"], expect: { testConf: true } },
  { argv: ["--test-conf"], expect: { testConf: true } },
  { argv: ["-dt"], expect: { daemonize: true, testConf: true } },
  { argv: ["-tc", GOOD], expect: { testConf: true, confFile: GOOD } },
  { argv: [`-c${GOOD}`], expect: { confFile: GOOD } },
  { argv: [`--conf-file=${GOOD}`], expect: { confFile: GOOD } },
  { argv: ["--conf-file", GOOD], expect: { confFile: GOOD } },
  { argv: [`--conf=${GOOD}`], expect: { confFile: GOOD } },
  { argv: ["-v4"], expect: { verbosity: 4 } },
  { argv: ["-v", "4"], expect: { verbosity: 4 } },
  { argv: ["--verbose=4"], expect: { verbosity: 4 } },
  { argv: ["--verbose", "0"], expect: { verbosity: 0 } },
  { argv: ["--verb=4"], expect: { verbosity: 4 } },
  { argv: ["-v", "99"], expect: { verbosity: 11 } },
  { argv: ["-o", "/tmp/bc.log"], expect: { output: "/tmp/bc.log" } },
  { argv: ["--output="], expect: { output: null } },
  { argv: ["-s", "1"], expect: { statsPort: 1 } },
  { argv: ["--stats-port=65535"], expect: { statsPort: 65535 } },
  { argv: ["-a", "127.0.0.1"], expect: { statsAddr: "127.0.0.1" } },
  { argv: ["--stats-addr", "::1"], expect: { statsAddr: "::1" } },
  { argv: ["-i", "0"], expect: { statsInterval: 0 } },
  { argv: ["--stats-interval=1000"], expect: { statsInterval: 1000 } },
  { argv: ["-p", "/tmp/bc.pid"], expect: { pidFile: "/tmp/bc.pid" } },
  { argv: ["--pid-file="], expect: { pidFile: null } },
  { argv: ["-m", "512"], expect: { mbufSize: 512 } },
  { argv: ["--mbuf-size=16777216"], expect: { mbufSize: 16777216 } },
  { argv: ["-h"], expect: { help: true } },
  { argv: ["--help"], expect: { help: true } },
  { argv: ["-V"], expect: { version: true } },
  { argv: ["--version"], expect: { version: true } },
  { argv: ["-D"], expect: { describeStats: true } },
  { argv: ["--describe-stats"], expect: { describeStats: true } },
  { argv: ["-t", "--"], expect: { testConf: true } },
  { argv: ["--workers", "2"], expect: { workers: 2 }, ours: true },
  { argv: ["--workers=auto"], expect: { workers: availableParallelism() }, ours: true },
  { argv: ["--metrics-port", "9100"], expect: { metricsPort: 9100 }, ours: true },
  { argv: ["--metrics-port=0"], expect: { metricsPort: 0 }, ours: true },
  { argv: ["--drain-timeout=0"], expect: { drainTimeout: 0 }, ours: true },
  { argv: ["--drain", "250"], expect: { drainTimeout: 250 }, ours: true },
  { argv: ["--buffer-budget=256mb"], expect: { bufferBudget: 256 * 1024 * 1024 }, ours: true },
  { argv: ["--buffer-budget", "2GB"], expect: { bufferBudget: 2 * 1024 ** 3 }, ours: true },
  { argv: ["--buffer-budget=1048576"], expect: { bufferBudget: 1048576 }, ours: true },
];

interface Bad {
  argv: string[];
  /** Our error text; nutcracker prints the same after "nutcracker: " unless `text` is "ours". */
  error: string;
  text?: "ours";
  /** nutcracker accepts these argv. */
  differs?: string;
}

const BAD_ARGS: Bad[] = [
  { argv: ["-x"], error: "invalid option -- 'x'" },
  { argv: ["-tx"], error: "invalid option -- 'x'" },
  { argv: ["-?"], error: "invalid option -- '?'" },
  { argv: ["-c"], error: "option -c requires a file name" },
  { argv: ["-o"], error: "option -o requires a file name" },
  { argv: ["-p"], error: "option -p requires a file name" },
  { argv: ["-a"], error: "option -a requires a string" },
  { argv: ["-v"], error: "option -v requires a number" },
  { argv: ["--verbose"], error: "option -v requires a number" },
  { argv: ["--conf-file"], error: "option -c requires a file name" },
  { argv: ["-v", "x"], error: "option -v requires a number" },
  { argv: ["-v", "-1"], error: "option -v requires a number" },
  { argv: ["-v", ""], error: "option -v requires a number" },
  { argv: ["-s"], error: "option -s requires a number" },
  { argv: ["-s", "abc"], error: "option -s requires a number" },
  { argv: ["-s", "0"], error: "option -s value 0 is not a valid port" },
  { argv: ["-s", "70000"], error: "option -s value 70000 is not a valid port" },
  { argv: ["-i", "-5"], error: "option -i requires a number" },
  { argv: ["-i"], error: "option -i requires a number" },
  { argv: ["-m"], error: "option -m requires a number" },
  { argv: ["-m", "0"], error: "option -m requires a non-zero number" },
  { argv: ["-m", "100"], error: "mbuf chunk size must be between 512 and 16777216 bytes" },
  { argv: ["-m", "16777217"], error: "mbuf chunk size must be between 512 and 16777216 bytes" },
  { argv: ["--help=x"], error: "option '--help' doesn't allow an argument", text: "ours" },
  { argv: ["--bogus"], error: "unrecognized option '--bogus'", text: "ours" },
  { argv: ["--v=3"], error: "option '--v' is ambiguous; possibilities: '--version' '--verbose'", text: "ours" },
  { argv: ["--stats=5"], error: "option '--stats' is ambiguous", text: "ours" },
  { argv: ["--workers", "0"], error: "option --workers requires a number from 1 to 1024 or auto", text: "ours" },
  { argv: ["--workers", "many"], error: "option --workers requires a number", text: "ours" },
  { argv: ["--workers"], error: "option --workers requires a number or auto", text: "ours" },
  { argv: ["--metrics-port=70000"], error: "option --metrics-port value 70000 is not a valid port", text: "ours" },
  { argv: ["--drain-timeout=-1"], error: "option --drain-timeout requires a number", text: "ours" },
  { argv: ["--buffer-budget=lots"], error: `option --buffer-budget value "lots" is not a size (digits, optionally followed by kb, mb or gb)`, text: "ours" },
  { argv: ["--buffer-budget=10kb"], error: "option --buffer-budget must be at least 1mb", text: "ours" },
  { argv: ["--buffer-budget"], error: "option --buffer-budget requires a size", text: "ours" },
  { argv: ["-a", ""], error: "option -a requires a string", text: "ours", differs: "0.5.0 takes an empty stats address" },
  { argv: ["foo"], error: "unexpected argument 'foo'", text: "ours", differs: "0.5.0 ignores non-flag arguments" },
  { argv: ["--", "foo"], error: "unexpected argument 'foo'", text: "ours", differs: "0.5.0 ignores non-flag arguments" },
];

describe("parseArgs", () => {
  for (const c of GOOD_ARGS) {
    test(`accepts ${JSON.stringify(c.argv)}`, () => {
      expect(parsed(c.argv)).toEqual({ ...DEFAULTS, ...c.expect });
    });
  }
  for (const c of BAD_ARGS) {
    test(`rejects ${JSON.stringify(c.argv)}`, () => {
      expect(error(c.argv)).toContain(c.error);
    });
  }
  test("the last of a repeated flag wins", () => {
    expect(parsed(["-v", "1", "-v", "2"]).verbosity).toBe(2);
  });
  test("a value may start with a dash, as getopt takes it", () => {
    expect(parsed(["-c", "-t"])).toMatchObject({ confFile: "-t", testConf: false });
  });
});

describeNeeding(haveNutcracker, NO_NUTCRACKER)("agrees with nutcracker 0.5.0", () => {
  for (const c of GOOD_ARGS.filter((g) => !g.ours)) {
    test(`nutcracker accepts ${JSON.stringify(c.argv)}`, () => {
      // -t first, so that nutcracker only checks GOOD (or the -c given) and exits
      expect(nutcracker(["-t", "-c", GOOD, ...c.argv]).code).toBe(0);
    });
  }
  for (const c of BAD_ARGS) {
    test(`nutcracker on ${JSON.stringify(c.argv)}${c.differs ? ` (differs: ${c.differs})` : ""}`, () => {
      const run = nutcracker(["-t", "-c", GOOD, ...c.argv]);
      expect(run.code).toBe(c.differs ? 0 : 1);
      if (!c.text) expect(run.lines[0]).toBe(`nutcracker: ${error(c.argv)}`);
    });
  }

  test("defaults: those nutcracker -h shows, except Debian's paths", () => {
    const help = nutcracker(["-h"]).lines.join("\n");
    const shown = (flag: string) => new RegExp(`-${flag}, .*\\(default: ([^ ),]+)`).exec(help)![1];
    expect(DEFAULTS.verbosity).toBe(Number(shown("v")));
    expect(DEFAULTS.statsPort).toBe(Number(shown("s")));
    expect(DEFAULTS.statsAddr).toBe(shown("a")!);
    expect(DEFAULTS.statsInterval).toBe(Number(shown("i")));
    expect(DEFAULTS.mbufSize).toBe(Number(shown("m")));
    // Debian's build defaults to /etc/nutcracker, /var/log/nutcracker and /run/nutcracker;
    // twemproxy's own (and ours) are conf/nutcracker.yml, stderr and no pid file.
    expect([DEFAULTS.confFile, DEFAULTS.output, DEFAULTS.pidFile]).toEqual(["conf/nutcracker.yml", null, null]);
  });

  test("usage: nutcracker's option lines, with twemproxy's own default paths", () => {
    const theirs = nutcracker(["-h"]).lines.filter((line) => /^ {2}-[a-zA-Z], --/.test(line));
    const ours = usage().split("\n");
    expect(theirs.length).toBe(13);
    for (const line of theirs) {
      const debianPath = /\(default: \//.test(line);
      if (!debianPath) expect(ours).toContain(line);
      else expect(ours.some((l) => l.startsWith(line.slice(0, line.indexOf("(default:"))))).toBe(true);
    }
  });

  test("-D: the same text nutcracker prints after its banner", () => {
    const lines = nutcracker(["-D"]).lines;
    const stats = lines.slice(lines.indexOf("") + 1).join("\n") + "\n";
    expect(describeStats()).toBe(stats);
  });

  test("-t: the verdict lines are nutcracker's", () => {
    const lines: string[] = [];
    expect(testConf(GOOD, (l) => lines.push(l))).toBe(0);
    expect(lines).toEqual(nutcracker(["-t", "-c", GOOD]).lines);

    for (const file of [BAD, dir.file("absent.yml")]) {
      const ours: string[] = [];
      expect(testConf(file, (l) => ours.push(l))).toBe(1);
      const theirs = nutcracker(["-t", "-c", file]);
      expect(theirs.code).toBe(1);
      expect(ours.at(-1)).toBe(theirs.lines.at(-1)!);
    }
  });
});

describe("texts", () => {
  test("-V names buncracker, its version and twemproxy 0.5.0", () => {
    const banner = versionBanner();
    expect(banner).toStartWith(`This is buncracker-${pkg.version} `);
    expect(banner).toContain("compatible with twemproxy 0.5.0");
    expect(banner).toEndWith("\n\n");
  });

  test("usage names buncracker and every flag", () => {
    const text = usage();
    expect(text).toStartWith("Usage: buncracker ");
    for (const long of ["help", "version", "test-conf", "daemonize", "describe-stats", "verbose=N", "output=S", "conf-file=S", "stats-port=N", "stats-addr=S", "stats-interval=N", "pid-file=S", "mbuf-size=N", "workers=N|auto", "metrics-port=N", "drain-timeout=MS", "buffer-budget=BYTES"]) {
      expect(text).toContain(`--${long} `);
    }
  });

  test("infoText: -h, -V and -D as nutcracker composes them", () => {
    const info = (argv: string[]) => infoText(parsed(argv));
    expect(info([])).toBeNull();
    expect(info(["-t"])).toBeNull();
    expect(info(["-V"])).toBe(versionBanner());
    expect(info(["-h"])).toBe(versionBanner() + usage());
    expect(info(["-D"])).toBe(versionBanner() + describeStats());
    expect(info(["-hD"])).toBe(versionBanner() + usage() + describeStats());
  });

  test("-D lists only the counters of the twemproxy-shaped JSON", () => {
    expect(describeStats()).not.toContain("client_refused");
    expect(describeStats()).toContain('  forward_error       "# times we encountered a forwarding error"\n');
  });

  test("-t prints the reason, naming the file and line, before the verdict", () => {
    const lines: string[] = [];
    testConf(BAD, (l) => lines.push(l));
    expect(lines).toEqual([
      `buncracker: ${BAD}:3: pool "p": directive "foo" is unknown (known: ${POOL_DIRECTIVES.map((d) => d.key).join(", ")})`,
      `nutcracker: configuration file '${BAD}' syntax is invalid`,
    ]);
  });
});
