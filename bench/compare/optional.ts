// Optional workloads: the ones that need a feature buncracker may not have in this tree yet
// (Redis Cluster pools, TLS) and backends of their own. Each first asks buncracker whether its
// config accepts the feature's key (`-t` on a sample config); when it does not, the phase is
// skipped and the report says why, so the phases light up once the feature lands.
//
// - redis-cluster: a 3-master Redis Cluster (test/helpers/redis-cluster.ts), buncracker with a
//   `distribution: redis_cluster` pool in front of it, against the best a user has without a
//   proxy: `redis-benchmark --cluster` talking to the masters directly for GET and SET
//   (nutcracker cannot), and for MGET of 10 keys, which redis-benchmark cannot send across
//   slots, bench/compare/cluster-mget.ts as a cluster-aware client (keys grouped by slot, one
//   MGET per slot to its master) against the same program sending the whole MGET to buncracker.
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

/** cluster-mget.ts's requests per second (one JSON line), or an error with its output. */
async function clusterMget(ctx: OptionalContext, args: string[]): Promise<number> {
  const run = await runTool([ctx.bun, join(ctx.repo, "bench/compare/cluster-mget.ts"), ...args], 120_000);
  const line = run.stdout.trim().split("\n").pop() ?? "";
  const report = (line.startsWith("{") ? JSON.parse(line) : {}) as { requestsPerSec?: number; errors?: number; firstError?: string };
  if (run.code !== 0 || report.requestsPerSec === undefined) throw new Error(`cluster-mget ${args.join(" ")}: ${(run.stdout + run.stderr).slice(-300)}`);
  if (report.errors !== 0) throw new Error(`cluster-mget ${args.join(" ")}: ${report.errors} error replies, first: ${report.firstError}`);
  return report.requestsPerSec;
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
    const measured = (label: string, ops: Record<string, number[]>): void => {
      const direct = median(ops["redis-benchmark --cluster (direct)"]!);
      const ours = median(ops.buncracker!);
      const ratios = ops.buncracker!.map((v, r) => (v / ops["redis-benchmark --cluster (direct)"]![r]!).toFixed(2)).join(", ");
      rows.push(`| ${label} | ${Math.round(direct)} | ${Math.round(ours)} | ${(ours / direct).toFixed(2)}x (${ratios}) |`);
    };
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
      measured(`${test.toUpperCase()} P${pipeline}`, ops);
    }
    // MGET of 10 keys, pipeline 16, 50 clients: every key written first (MSET through the pool),
    // so every MGET reads 10 values. The direct column is cluster-mget.ts as a cluster client.
    const seconds = ctx.quick ? "1" : "3";
    const mget = { "redis-benchmark --cluster (direct)": ["--cluster", seedPort], buncracker: ["--proxy", String(port)] };
    const ops: Record<string, number[]> = {};
    for (let r = 0; r < ctx.repeats; r++) {
      const names = Object.keys(mget) as (keyof typeof mget)[];
      for (const target of r % 2 === 0 ? names : names.reverse()) {
        const fill = r === 0 && target === "buncracker" ? ["--fill"] : [];
        const value = await clusterMget(ctx, [...mget[target], "--conns", "50", "--pipeline", "16", "--keys", "10", "--seconds", seconds, ...fill]);
        (ops[target] ??= []).push(value);
        console.log(`[${name} ${r + 1}/${ctx.repeats}] MGET10 P16 ${target}: ${Math.round(value)} MGETs/s`);
      }
    }
    measured("MGET 10 keys P16 (direct: cluster-mget.ts)", ops);
    return {
      name,
      lines: [
        `### Redis Cluster (3 masters, no replicas; redis-benchmark -c 50 -d 32 -r 100000, medians of ${ctx.repeats} run(s), ops/s)`,
        "",
        "nutcracker cannot front a Redis Cluster; the alternative is a cluster-aware client talking to the masters itself:",
        "`redis-benchmark --cluster` (one thread per master, its 50 clients spread over them, each client's keys tagged to",
        "its own node) for GET and SET; for MGET of 10 keys, which it cannot send across slots, bench/compare/cluster-mget.ts",
        "(50 clients, each connected to every master, keys grouped by slot into one MGET per slot, one write per master per",
        "batch) against the same program sending the whole MGET to buncracker; MGET rows count MGETs/s.",
        "",
        "| workload | direct (cluster-aware client) | buncracker redis_cluster pool | buncracker / direct (each repeat) |",
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
