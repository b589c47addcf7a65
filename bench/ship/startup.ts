// What the single executable costs and saves (README, "One executable"): for buncracker from
// source (`bun src/main.ts`), the single executable with and without bytecode, and nutcracker,
// the size on disk, the time from exec to a listening pool (the listener seen in /proc/net/tcp,
// polled every millisecond), the CPU time its threads had used by then (/proc/<pid>/task/*/
// schedstat: unlike the wall time, not stretched by other processes on a busy machine) and the
// resident memory 2 s after, idle. Each is started RUNS times
// on the same one-pool config (no backend needed to listen); the medians are printed.
//   bun bench/ship/startup.ts [RUNS=10]      after `npm run build`

import { readFileSync, statSync, writeFileSync, readdirSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { freePort } from "../../test/helpers/ports.ts";
import { makeTempDir } from "../../test/helpers/tmp.ts";

const REPO = join(import.meta.dir, "..", "..");
const RUNS = Number(process.argv[2] ?? 10);
const IDLE_MS = 2000;

interface Variant {
  readonly name: string;
  readonly argv: string[];
  /** Files that must be on disk to run it. */
  readonly files: string[];
}

/** Every regular file under `dir`, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

const bunExe = join(REPO, "node_modules", "bun", "bin", "bun.exe");
const dir = makeTempDir("bc-startup-");
const plain = dir.file("buncracker-plain");
const build = Bun.spawnSync([bunExe, "build", "--compile", "--minify", "--sourcemap", join(REPO, "src", "main.ts"), "--outfile", plain], { stdout: "ignore", stderr: "inherit" });
if (build.exitCode !== 0) throw new Error("bun build --compile (no bytecode) failed");

const VARIANTS: Variant[] = [
  {
    name: "bun src/main.ts",
    argv: [bunExe, join(REPO, "src", "main.ts")],
    files: [bunExe, ...filesUnder(join(REPO, "src")), join(REPO, "build", "hashkit.wasm"), ...filesUnder(join(REPO, "node_modules", "yaml"))],
  },
  { name: "dist/buncracker (bytecode)", argv: [join(REPO, "dist", "buncracker")], files: [join(REPO, "dist", "buncracker")] },
  { name: "buncracker --compile, no bytecode", argv: [plain], files: [plain] },
  { name: "nutcracker 0.5.0", argv: ["/usr/sbin/nutcracker"], files: ["/usr/sbin/nutcracker"] },
];

function listening(port: number): boolean {
  const hex = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields[1]?.endsWith(hex) && fields[3] === "0A") return true;
  }
  return false;
}

/** CPU time of `pid`'s live threads so far, ms. */
function cpuMs(pid: number): number {
  let ns = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, "utf8").split(" ")[0]);
  }
  return ns / 1e6;
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function once(variant: Variant): Promise<{ ms: number; cpu: number; rss: number }> {
  const port = freePort();
  const conf = dir.file(`p${port}.yml`);
  writeFileSync(conf, `p:\n  listen: 127.0.0.1:${port}\n  redis: true\n  servers:\n   - 127.0.0.1:${freePort()}:1\n`);
  const t0 = performance.now();
  const proc = Bun.spawn([...variant.argv, "-c", conf, "-s", String(freePort()), "-a", "127.0.0.1"], { stdout: "ignore", stderr: "ignore" });
  while (!listening(port)) {
    if (proc.exitCode !== null) throw new Error(`${variant.name} exited ${proc.exitCode}`);
    if (performance.now() - t0 > 10_000) throw new Error(`${variant.name} not listening after 10 s`);
    await Bun.sleep(1);
  }
  const ms = performance.now() - t0;
  const cpu = cpuMs(proc.pid);
  await Bun.sleep(IDLE_MS);
  const rss = rssKiB(proc.pid);
  proc.kill("SIGKILL");
  await proc.exited;
  return { ms, cpu, rss };
}

const loadBefore = loadavg()[0]!;
const rows: string[] = [];
for (const v of VARIANTS) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await once(v));
  const bytes = v.files.reduce((sum, f) => sum + statSync(f).size, 0);
  rows.push(
    `| ${v.name} | ${(bytes / 1048576).toFixed(1)} MB | ${median(runs.map((r) => r.ms)).toFixed(0)} ms | ${median(runs.map((r) => r.cpu)).toFixed(0)} ms | ${(median(runs.map((r) => r.rss)) / 1024).toFixed(1)} MB |`,
  );
}
dir.remove();
console.log(`${RUNS} starts each, medians; ${new Date().toISOString()}; load average ${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after\n`);
console.log("| proxy | on disk | exec to listening | CPU until listening | idle RSS |\n|---|---|---|---|---|\n" + rows.join("\n"));
