// Optional workloads: the ones that need a feature buncracker may not have in this tree yet
// (Redis Cluster pools, TLS) and backends of their own. Each first asks buncracker whether its
// config accepts the feature's key (`-t` on a sample config); when it does not, the phase is
// skipped and the report says why, so the phases light up once the feature lands.
//
// - redis-cluster: a 3-master Redis Cluster (test/helpers/redis-cluster.ts), buncracker with a
//   `distribution: redis_cluster` pool in front of it, against the best a user has without a
//   proxy: `redis-benchmark --cluster` talking to the masters directly (nutcracker cannot).
// - tls: bench/compare/tls.ts (stunnel + nutcracker + stunnel against buncracker doing TLS on
//   both sides), GET at pipeline 1 and 16, its table copied into the report.

import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { probe } from "./prefill.ts";
import { freePort, runTool, startService, stop, waitListening } from "./procs.ts";

export const OPTIONAL_PHASES = [
  { name: "redis-cluster", what: "redis_cluster pool over a 3-master Redis Cluster vs redis-benchmark --cluster direct (when the tree has it)" },
  { name: "tls", what: "bench/compare/tls.ts: buncracker TLS both sides vs stunnel + nutcracker + stunnel (when the tree has it)" },
] as const;
export type OptionalName = (typeof OPTIONAL_PHASES)[number]["name"];

export interface OptionalContext {
  bun: string;
  repo: string;
  dir: string;
  redisBenchmark: string;
  repeats: number;
  quick: boolean;
}

/** What the phases found: markdown lines for the report (a table, or why it was skipped). */
export type OptionalResult = { name: OptionalName; lines: string[] };

/** Why buncracker's config refuses `pool` (a sample pool in YAML), or null when it accepts it. */
async function featureMissing(ctx: OptionalContext, name: string, pool: string): Promise<string | null> {
  const file = join(ctx.dir, `probe-${name}.yml`);
  writeFileSync(file, pool);
  const run = await runTool([ctx.bun, join(ctx.repo, "src/main.ts"), "-t", "-c", file], 20_000);
  if (run.code === 0) return null;
  const why = `${run.stderr}${run.stdout}`.trim().split("\n")[0] ?? `exit ${run.code}`;
  return `not in this tree yet: buncracker -t refuses a sample ${name} pool (${why.replace(file, "sample.yml")})`;
}

const skip = (name: OptionalName, why: string): OptionalResult => {
  console.log(`${name}: SKIPPED: ${why}`);
  return { name, lines: [`- **${name}** skipped: ${why}`] };
};

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** redis-benchmark's ops/s for one `-t` test (its CSV line), or an error with its output. */
async function redisBenchmark(argv: string[], test: string): Promise<number> {
  const run = await runTool(argv, 120_000);
  const line = run.stdout.split("\n").find((l) => l.startsWith(`"${test.toUpperCase()}"`));
  const ops = line === undefined ? NaN : Number((JSON.parse(`[${line}]`) as unknown[])[1]);
  if (!Number.isFinite(ops)) throw new Error(`redis-benchmark ${argv.slice(1).join(" ")}: ${(run.stdout + run.stderr).slice(-300)}`);
  return ops;
}

interface ClusterHelper {
  startRedisCluster(opts: { masters?: number; replicas?: number }): Promise<{ seeds: string[]; stop(): Promise<void> }>;
}

async function clusterPhase(ctx: OptionalContext): Promise<OptionalResult> {
  const name = "redis-cluster";
  const pool = (port: number, seeds: string[]): string =>
    ["cluster:", `  listen: 127.0.0.1:${port}`, "  redis: true", "  distribution: redis_cluster", "  timeout: 3000",
      "  servers:", ...seeds.map((s) => `   - ${s}:1`), ""].join("\n");
  const missing = await featureMissing(ctx, name, pool(freePort(), ["127.0.0.1:7000"]));
  if (missing !== null) return skip(name, missing);
  const helperPath = join(ctx.repo, "test/helpers/redis-cluster.ts");
  if (!existsSync(helperPath)) return skip(name, `${helperPath} (which starts the cluster) is not in this tree`);
  const helper = (await import(helperPath)) as ClusterHelper;
  const cluster = await helper.startRedisCluster({ masters: 3, replicas: 0 });
  const port = freePort();
  const config = join(ctx.dir, "buncracker-cluster.yml");
  writeFileSync(config, pool(port, cluster.seeds));
  const proc = startService(
    [ctx.bun, join(ctx.repo, "src/main.ts"), "-c", config, "-s", String(freePort()), "-a", "127.0.0.1", "-v", "4"],
    join(ctx.dir, "buncracker-cluster.log"),
    ctx.repo,
  );
  try {
    await waitListening(proc, port, "buncracker (redis_cluster pool)", 15_000);
    // The pool answers once it has loaded the cluster's slot map.
    const deadline = Date.now() + 15_000;
    for (let problem = await probe(port, true); problem !== null; problem = await probe(port, true)) {
      if (Date.now() > deadline) throw new Error(`the redis_cluster pool did not serve a SET/GET in 15 s: ${problem}`);
      await Bun.sleep(200);
    }
    const [seedHost, seedPort] = cluster.seeds[0]!.split(":") as [string, string];
    const requests = ctx.quick ? 100_000 : 400_000;
    const base = ["-c", "50", "-d", "32", "-r", "100000", "--csv"];
    const targets = {
      "redis-benchmark --cluster (direct)": ["-h", seedHost, "-p", seedPort, "--cluster"],
      buncracker: ["-h", "127.0.0.1", "-p", String(port)],
    };
    const rows: string[] = [];
    for (const [test, pipeline] of [["get", 16], ["set", 16], ["get", 1]] as const) {
      const n = pipeline === 1 ? requests / 8 : requests;
      const ops: Record<string, number[]> = {};
      for (let r = 0; r < ctx.repeats; r++) {
        const names = Object.keys(targets);
        for (const target of r % 2 === 0 ? names : names.reverse()) {
          const argv = [ctx.redisBenchmark, ...targets[target as keyof typeof targets], ...base, "-n", String(n), "-P", String(pipeline), "-t", test];
          const value = await redisBenchmark(argv, test);
          (ops[target] ??= []).push(value);
          console.log(`[${name} ${r + 1}/${ctx.repeats}] ${test.toUpperCase()} P${pipeline} ${target}: ${Math.round(value)} ops/s`);
        }
      }
      const direct = median(ops["redis-benchmark --cluster (direct)"]!);
      const ours = median(ops.buncracker!);
      rows.push(`| ${test.toUpperCase()} P${pipeline} | ${Math.round(direct)} | ${Math.round(ours)} | ${(ours / direct).toFixed(2)}x |`);
    }
    return {
      name,
      lines: [
        `### Redis Cluster (3 masters, no replicas; redis-benchmark -c 50 -d 32 -r 100000, medians of ${ctx.repeats} run(s), ops/s)`,
        "",
        "nutcracker cannot front a Redis Cluster; the alternative is a cluster-aware client talking to the masters itself.",
        "",
        "| workload | redis-benchmark --cluster (direct) | buncracker redis_cluster pool | buncracker / direct |",
        "|---|---|---|---|",
        ...rows,
      ],
    };
  } finally {
    await stop(proc);
    await cluster.stop();
  }
}

async function tlsPhase(ctx: OptionalContext): Promise<OptionalResult> {
  const name = "tls";
  const cert = join(ctx.dir, "probe-cert.pem");
  const key = join(ctx.dir, "probe-key.pem");
  const openssl = await runTool(
    ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost"],
    30_000,
  );
  if (openssl.code !== 0) return skip(name, `openssl could not make a probe certificate: ${openssl.stderr.slice(-200)}`);
  const pool = ["tls:", `  listen: 127.0.0.1:${freePort()}`, "  redis: true", "  tls:", `    cert: ${cert}`, `    key: ${key}`,
    "  servers:", "   - 127.0.0.1:6379:1", ""].join("\n");
  const missing = await featureMissing(ctx, name, pool);
  if (missing !== null) return skip(name, missing);
  const script = join(ctx.repo, "bench/compare/tls.ts");
  if (!existsSync(script)) return skip(name, `${script} is not in this tree`);
  const lines: string[] = [];
  for (const only of ["get1", "get16"]) {
    const requests = ctx.quick ? 40_000 : 200_000;
    const run = await runTool([ctx.bun, script, "--requests", String(requests), "--repeats", String(ctx.repeats), "--only", only], 600_000);
    if (run.code !== 0) return skip(name, `tls.ts --only ${only} failed: ${(run.stderr || run.stdout).slice(-300).trim()}`);
    const table = run.stdout.split("\n").filter((l) => l.startsWith("|"));
    lines.push(...(lines.length === 0 ? table : table.slice(2)));
    console.log(`[${name}] ${table.slice(2).join(" ")}`);
  }
  return {
    name,
    lines: [
      `### TLS (bench/compare/tls.ts, ${ctx.repeats} repeat(s) each of GET P1 and P16; ops/s)`,
      "",
      "The alternative a nutcracker user has: stunnel in front of nutcracker and stunnel from it to a TLS redis.",
      "",
      ...lines,
    ],
  };
}

/** Runs the selected optional phases in turn; a phase that fails is reported, not thrown. */
export async function runOptional(names: readonly OptionalName[], ctx: OptionalContext): Promise<OptionalResult[]> {
  const results: OptionalResult[] = [];
  for (const name of names) {
    try {
      results.push(await (name === "redis-cluster" ? clusterPhase(ctx) : tlsPhase(ctx)));
    } catch (error) {
      results.push({ name, lines: [`- **${name}** FAILED: ${(error as Error).message.split("\n")[0]}`] });
      console.log(`${name}: FAILED: ${(error as Error).message}`);
    }
  }
  return results;
}
