// The texts -h, -V and -D print, laid out like nutcracker 0.5.0's (all of it goes to stderr
// there, as here), naming buncracker.

import { TWEMPROXY_VERSION, VERSION } from "../lib/version.ts";
import { describeStats } from "../stats/describe.ts";
import { FLAGS, type Options } from "./options.ts";

/** nutcracker's "This is nutcracker-0.5.0" / "async event backend" lines, then a blank line. */
export function versionBanner(): string {
  const name = `buncracker-${VERSION} (compatible with twemproxy ${TWEMPROXY_VERSION})`;
  return `This is ${name}\nruntime: bun ${Bun.version}\n\n`;
}

const FLAG_COLUMN = 22; // "-i, --stats-interval=N", the widest of nutcracker's

export function usage(): string {
  const lines = FLAGS.map((f) => {
    const long = `--${f.long}${f.arg === null ? "" : `=${f.arg}`}`;
    return `  ${(f.short ? `-${f.short}, ${long}` : `    ${long}`).padEnd(FLAG_COLUMN)} : ${f.help}\n`;
  });
  return (
    "Usage: buncracker [-hVdDt] [-v verbosity level] [-o output file]\n" +
    "                  [-c conf file] [-s stats port] [-a stats addr]\n" +
    "                  [-i stats interval] [-p pid file] [-m mbuf size]\n" +
    "                  [--workers N|auto] [--metrics-port port] [--drain-timeout msec]\n" +
    "\n" +
    "Options:\n" +
    lines.join("") +
    "\n"
  );
}

/** What -h, -V and -D print (banner, then usage and/or stats), or null when none was given. */
export function infoText(options: Options): string | null {
  if (!options.help && !options.version && !options.describeStats) return null;
  return versionBanner() + (options.help ? usage() : "") + (options.describeStats ? describeStats() : "");
}
