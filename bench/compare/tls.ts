// TLS side by side (`bun bench/compare/tls.ts [--requests N] [--repeats R]`): what users run today
// (stunnel in front of nutcracker, and stunnel from nutcracker to a TLS redis) against buncracker
// doing TLS on both sides itself (one process, and `--workers 2`: stunnel runs a thread per
// connection, so it uses every core), and plain buncracker (no TLS anywhere) for the cost of TLS.
// Beside ops/s, the CPU time the proxy side spends per request (stunnel + nutcracker + stunnel,
// or buncracker and its workers; from /proc): throughput on this shared 2-core machine follows
// how much of the CPU each process gets, the CPU per request much less. Run as root, every
// process of the run (backends, proxies, load) gets nice -10, so that the other work on the
// machine weighs less on whichever setup runs more threads (stunnel: one per connection).
// One redis-server listens in plaintext and in TLS; certificates are made by openssl for the
// run. redis-benchmark (--tls where the target is TLS) runs GET and SET at pipeline 1 and 16,
// targets interleaved, order rotated per repeat; medians of ops/s and their ratios are printed
// as a markdown table and written to bench/TLS-RESULTS.md (`--only get16` runs one workload and
// writes nothing). Installs stunnel4 when missing.

import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { makeCerts } from "../../test/helpers/certs.ts";
import { freePort, waitForPort } from "../../test/helpers/ports.ts";
import { runToEnd, spawnManaged, type ManagedProcess } from "../../test/helpers/process.ts";
import { cpuTimes, cpuTotal } from "./cpu.ts";

const REPO = resolve(import.meta.dir, "../..");
const BUN = join(REPO, "node_modules/.bin/bun");

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}
const REQUESTS = option("requests", 200_000);
const REPEATS = option("repeats", 3);
const ONLY = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1]! : null;
const CLIENTS = 50;
/** Every process of the run at the same raised priority, when we may raise it. */
const NICE = process.getuid?.() === 0 ? ["nice", "-n", "-10"] : [];

const started: ManagedProcess[] = [];
async function start(argv: string[], port: number): Promise<number> {
  const proc = spawnManaged([...NICE, ...argv]);
  started.push(proc);
  await waitForPort("127.0.0.1", port, 10_000, () => proc.running).catch((error: Error) => {
    throw new Error(`${argv[0]} did not start: ${error.message}\n${proc.stdout()}${proc.stderr()}`);
  });
  return proc.pid;
}

/** CPU seconds (user + system, all threads) of `pids` and their descendants (workers). */
const cpuSeconds = (pids: readonly number[]): number => pids.reduce((sum, pid) => sum + cpuTotal(cpuTimes(pid)), 0) / 1e6;

if (Bun.which("stunnel4") === null) {
  console.log("installing stunnel4");
  const run = await runToEnd(["apt-get", "install", "-y", "-q", "--no-install-recommends", "stunnel4"], 600_000);
  if (run.code !== 0) throw new Error(`apt-get install stunnel4 failed: ${run.stderr}`);
}

const certs = await makeCerts();
const dir = certs.dir;
const port = {
  redis: freePort(),
  redisTls: freePort(),
  stunnelIn: freePort(),
  nutcracker: freePort(),
  stunnelOut: freePort(),
  bcTls: freePort(),
  bcPlain: freePort(),
  bcWorkers: freePort(),
};
const pool = (name: string, listen: number, server: number, extra: string[] = []) =>
  [`${name}:`, `  listen: 127.0.0.1:${listen}`, "  redis: true", ...extra, "  servers:", `   - 127.0.0.1:${server}:1`, ""].join("\n");

try {
  await start(
    ["redis-server", "--port", String(port.redis), "--tls-port", String(port.redisTls), "--bind", "127.0.0.1",
      "--tls-cert-file", certs.server.cert, "--tls-key-file", certs.server.key, "--tls-ca-cert-file", certs.ca,
      "--tls-auth-clients", "no", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--logfile", ""],
    port.redisTls,
  );
  // nutcracker between two stunnels: clients' TLS ends at the first, the second starts TLS to redis.
  writeFileSync(dir.file("nutcracker.yml"), pool("bench", port.nutcracker, port.stunnelOut));
  const nutcracker = await start(["nutcracker", "-c", dir.file("nutcracker.yml"), "-s", String(freePort()), "-a", "127.0.0.1", "-v", "4"], port.nutcracker);
  writeFileSync(
    dir.file("stunnel.conf"),
    [
      "foreground = yes", "pid =", "debug = 3",
      "[in]", `accept = 127.0.0.1:${port.stunnelIn}`, `connect = 127.0.0.1:${port.nutcracker}`,
      `cert = ${certs.server.cert}`, `key = ${certs.server.key}`,
      "[out]", "client = yes", `accept = 127.0.0.1:${port.stunnelOut}`, `connect = 127.0.0.1:${port.redisTls}`,
      `CAfile = ${certs.ca}`, "verifyChain = yes", "checkHost = localhost", "",
    ].join("\n"),
  );
  const stunnel = await start(["stunnel4", dir.file("stunnel.conf")], port.stunnelIn);
  const tlsPool = (listen: number) =>
    pool("tls", listen, port.redisTls, [
      "  tls:", `    cert: ${certs.server.cert}`, `    key: ${certs.server.key}`,
      "  server_tls:", `    ca: ${certs.ca}`, "    server_name: localhost",
    ]);
  writeFileSync(dir.file("buncracker.yml"), tlsPool(port.bcTls) + pool("plain", port.bcPlain, port.redis));
  const buncracker = await start([BUN, join(REPO, "src/main.ts"), "-c", dir.file("buncracker.yml"), "-s", String(freePort()), "-a", "127.0.0.1"], port.bcPlain);
  writeFileSync(dir.file("workers.yml"), tlsPool(port.bcWorkers));
  const workers = await start(
    [BUN, join(REPO, "src/main.ts"), "-c", dir.file("workers.yml"), "-s", String(freePort()), "-a", "127.0.0.1", "--workers", "2"],
    port.bcWorkers,
  );

  const targets = [
    { name: "stunnel+nutcracker+stunnel", port: port.stunnelIn, tls: true, pids: [stunnel, nutcracker] },
    { name: "buncracker TLS both sides", port: port.bcTls, tls: true, pids: [buncracker] },
    { name: "buncracker TLS, --workers 2", port: port.bcWorkers, tls: true, pids: [workers] },
    { name: "buncracker plain", port: port.bcPlain, tls: false, pids: [buncracker] },
  ];
  const workloads = [
    { test: "get", pipeline: 1 },
    { test: "set", pipeline: 1 },
    { test: "get", pipeline: 16 },
    { test: "set", pipeline: 16 },
  ].filter((w) => ONLY === null || `${w.test}${w.pipeline}` === ONLY);
  /** ops/s, and the proxy side's CPU microseconds per request. */
  const bench = async (t: (typeof targets)[number], w: (typeof workloads)[number], n: number): Promise<[number, number]> => {
    const argv = ["redis-benchmark", "-h", "127.0.0.1", "-p", String(t.port), "-c", String(CLIENTS), "-n", String(n),
      "-P", String(w.pipeline), "-t", w.test, "-d", "64", "-r", "10000", "--csv"];
    if (t.tls) argv.push("--tls", "--cacert", certs.ca, "--sni", "localhost");
    const cpu = cpuSeconds(t.pids);
    const run = await runToEnd([...NICE, ...argv], 300_000);
    const usPerRequest = ((cpuSeconds(t.pids) - cpu) * 1e6) / n;
    const line = run.stdout.split("\n").find((l) => l.startsWith(`"${w.test.toUpperCase()}"`));
    const ops = line === undefined ? NaN : Number(JSON.parse(`[${line}]`)[1]);
    if (Number.isNaN(ops)) throw new Error(`redis-benchmark against ${t.name} failed:\n${run.stdout}${run.stderr}`);
    return [ops, usPerRequest];
  };
  // Warm-up, not counted: the JIT compiles buncracker's hot paths on its first requests.
  for (const t of targets) for (const w of workloads) await bench(t, w, Math.floor(REQUESTS / 10));
  const results = new Map<string, number[]>();
  const cpu = new Map<string, number[]>();
  for (let r = 0; r < REPEATS; r++) {
    for (const w of workloads) {
      const order = targets.map((_, i) => targets[(i + r) % targets.length]!);
      for (const t of order) {
        const [ops, us] = await bench(t, w, w.pipeline === 1 ? Math.floor(REQUESTS / 4) : REQUESTS);
        const key = `${w.test} P${w.pipeline}|${t.name}`;
        results.set(key, [...(results.get(key) ?? []), ops]);
        cpu.set(key, [...(cpu.get(key) ?? []), us]);
        console.log(`repeat ${r + 1}: ${w.test.toUpperCase()} P${w.pipeline} ${t.name}: ${Math.round(ops)} ops/s, ${us.toFixed(2)} µs CPU per request`);
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const rows = workloads.map((w) => {
    const m = (t: string, of = results) => median(of.get(`${w.test} P${w.pipeline}|${t}`)!);
    const [stunnel, tls, workers2, plain] = targets.map((t) => m(t.name));
    const [cStunnel, cTls, , cPlain] = targets.map((t) => m(t.name, cpu));
    const x = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
    return `| ${w.test.toUpperCase()} P${w.pipeline} | ${Math.round(stunnel!)} | ${Math.round(tls!)} | ${Math.round(workers2!)} | ${Math.round(plain!)} | ${x(tls!, stunnel!)} | ${x(workers2!, stunnel!)} | ${x(tls!, plain!)} | ${cStunnel!.toFixed(2)} / ${cTls!.toFixed(2)} / ${cPlain!.toFixed(2)} | ${x(cStunnel!, cTls!)} |`;
  });
  const table = [
    `redis-benchmark, ${CLIENTS} clients, 64-byte values, medians of ${REPEATS} repeats (ops/s); one redis-server 7 with a plaintext and a TLS port. CPU: the proxy side's user + system time per request (stunnel chain / buncracker TLS / buncracker plain, one process each); the last column is how many more requests buncracker TLS serves per CPU second than the stunnel chain.`,
    "",
    "| workload | stunnel + nutcracker + stunnel | buncracker TLS both sides | buncracker TLS, --workers 2 | buncracker plain | TLS buncracker / stunnel chain | --workers 2 / stunnel chain | TLS buncracker / plain buncracker | CPU µs per request | requests per CPU second, buncracker TLS / stunnel chain |",
    "|---|---|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
  ].join("\n");
  console.log(`\n${table}`);
  if (ONLY === null) writeFileSync(join(REPO, "bench/TLS-RESULTS.md"), `# TLS: buncracker against stunnel + nutcracker\n\n\`bun bench/compare/tls.ts --requests ${REQUESTS} --repeats ${REPEATS}\`, ${new Date().toISOString()}${NICE.length > 0 ? ", at nice -10" : ""}, load average ${(await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ")}.\n\n${table}`);
} finally {
  await Promise.all(started.map((p) => p.stop()));
  certs.remove();
}
