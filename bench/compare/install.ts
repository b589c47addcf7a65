// The external programs the comparison needs, the Debian package of each, and their versions.

import { runTool } from "./procs.ts";

/** Binary -> Debian package that ships it. */
const TOOLS: Record<string, string> = {
  "redis-server": "redis-server",
  "redis-benchmark": "redis-tools",
  memcached: "memcached",
  memcaslap: "libmemcached-tools",
  nutcracker: "nutcracker",
};

const SEARCH_PATH = `${process.env.PATH ?? ""}:/usr/sbin:/usr/bin:/sbin:/bin`;

/** Absolute path of `binary`, or null. */
const locate = (binary: string): string | null => Bun.which(binary, { PATH: SEARCH_PATH });

async function aptGet(args: string[]): Promise<void> {
  const run = await runTool(["apt-get", ...args], 600_000);
  if (run.code !== 0) throw new Error(`apt-get ${args.join(" ")} failed (${run.code}):\n${run.stderr.slice(-2000)}`);
}

/** Needed only by --profile (profile.ts). */
export const PROFILER: Record<string, string> = { perf: "linux-perf" };

/** Installs the packages of missing tools (apt-get update first, only when something is missing);
 *  `extra`: more binaries -> packages. */
export async function ensureTools(extra: Record<string, string> = {}): Promise<Record<string, string>> {
  const wanted = { ...TOOLS, ...extra };
  const missing = Object.keys(wanted).filter((binary) => locate(binary) === null);
  if (missing.length > 0) {
    const packages = [...new Set(missing.map((binary) => wanted[binary]!))];
    console.log(`installing ${packages.join(" ")} (missing: ${missing.join(", ")})`);
    await aptGet(["update", "-q"]);
    await aptGet(["install", "-y", "-q", "--no-install-recommends", ...packages]);
  }
  const paths: Record<string, string> = {};
  for (const binary of Object.keys(wanted)) {
    const path = locate(binary);
    if (path === null) throw new Error(`${binary} is still missing after apt-get install ${wanted[binary]}`);
    paths[binary] = path;
  }
  return paths;
}

async function firstLine(cmd: string[]): Promise<string> {
  const run = await runTool(cmd, 10_000);
  return `${run.stdout}${run.stderr}`.trim().split("\n")[0] ?? "?";
}

/** One line per tool, for the machine description. */
export async function toolVersions(paths: Record<string, string>, bun: string): Promise<Record<string, string>> {
  return {
    bun: await firstLine([bun, "--version"]),
    "redis-server": await firstLine([paths["redis-server"]!, "--version"]),
    "redis-benchmark": await firstLine([paths["redis-benchmark"]!, "--version"]),
    memcached: await firstLine([paths.memcached!, "-V"]),
    memcaslap: await firstLine([paths.memcaslap!, "-V"]),
    nutcracker: await firstLine([paths.nutcracker!, "-V"]),
  };
}
