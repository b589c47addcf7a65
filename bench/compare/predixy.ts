// predixy (github.com/joyieldInc/predixy, C++), the optional fourth target: measured only when a
// binary is given (`PREDIXY_BIN=/path/to/predixy` or `--predixy /path/to/predixy`); this suite
// never fetches or builds it. predixy speaks redis only and serves one pool per process, so it
// runs the `redis4` pool alone (the same 4 redis backends, one worker thread, modula over
// crc16: predixy has no ketama, so keys land on other servers than with the twemproxy config,
// which does not change the work per request); every other pool is reported as not served.

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Cluster, Proxy } from "./cluster.ts";
import { commandLine } from "./cpu.ts";
import { probe } from "./prefill.ts";
import { freePort, runTool, startService, stop, waitListening } from "./procs.ts";

/** The pools predixy serves here, and why it serves no other. */
export const PREDIXY_POOLS = ["redis4"] as const;
export const PREDIXY_NOT_SERVED = "predixy speaks redis only and is started with one pool (redis4)";

/** The predixy binary to measure: the --predixy option first, then $PREDIXY_BIN; null for none. */
export function predixyBinary(option: string | null): string | null {
  return option ?? (process.env.PREDIXY_BIN || null);
}

/** The report's line for the binary: the version it prints (`-v`), its path, its threads. */
export async function predixyVersion(binary: string): Promise<string> {
  const run = await runTool([binary, "-v"], 10_000);
  // It prints "<argv[0]> predixy-1.0.5", and argv[0] may contain "predixy-" too (predixy-src/).
  const version = /predixy-\d\S*/.exec(`${run.stdout}${run.stderr}`)?.[0] ?? "version unknown";
  return `${version} (${binary}, one worker thread)`;
}

function predixyConfig(cluster: Pick<Cluster, "redis">, port: number, log: string): string {
  return [
    "Name buncracker-bench",
    `Bind 127.0.0.1:${port}`,
    "WorkerThreads 1",
    "ClientTimeout 0",
    `Log ${log}`,
    // nutcracker's -v 4: warnings and errors only. predixy logs every client accept and close at
    // notice level (10k lines in a c1000 run), which nutcracker and buncracker do not at -v 4.
    "LogVerbSample 0",
    "LogDebugSample 0",
    "LogInfoSample 0",
    "LogNoticeSample 0",
    "LogWarnSample 1",
    "LogErrorSample 1",
    "StandaloneServerPool {",
    "    Hash crc16",
    "    Distribution modula",
    "    MasterReadPriority 100",
    "    RefreshMethod fixed",
    "    ServerTimeout 3",
    ...cluster.redis.flatMap((b) => [`    Group ${b.name} {`, `        + 127.0.0.1:${b.port}`, "    }"]),
    "}",
    "",
  ].join("\n");
}

/** Starts predixy in front of the redis backends, waits for it to listen and probes it. */
export async function startPredixy(
  cluster: Pick<Cluster, "redis">,
  binary: string,
  dir: string,
): Promise<{ proxy: Proxy<"redis4">; broken: Partial<Record<"redis4", string>> }> {
  const port = freePort();
  const config = join(dir, "predixy.conf");
  const log = join(dir, "predixy.log");
  writeFileSync(config, predixyConfig(cluster, port, join(dir, "predixy-own.log")));
  const proc = startService([binary, config], log);
  try {
    await waitListening(proc, port, "predixy", 15_000);
  } catch (error) {
    await stop(proc);
    throw error;
  }
  const cmdline = commandLine(proc.pid);
  if (!cmdline.includes(binary)) {
    await stop(proc);
    throw new Error(`pid ${proc.pid} runs "${cmdline}", not ${binary}: its CPU would not be predixy's`);
  }
  const problem = await probe(port, true);
  return { proxy: { proc, pid: proc.pid, listen: { redis4: port }, config, log }, broken: problem === null ? {} : { redis4: problem } };
}
