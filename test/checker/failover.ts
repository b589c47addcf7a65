// The nothing-lost check across repeated Sentinel failovers: 2 shards of a master and a replica,
// 3 redis-sentinels, the proxy following them; 20 clients pipeline SET/INCR through the proxy
// and, for comparison, 4 writers through redis-py's own Sentinel client (Debian's
// /usr/bin/python3 and python3-redis: `Sentinel(...).master_for(name)`, sentinel_writers.py)
// write the same way straight to redis, while a SENTINEL FAILOVER moves one shard or the other
// every `--every` seconds. At the end every acknowledged write is read back from the masters of
// the time. Not in CI (minutes long):
//
//   bun test/checker/failover.ts [--duration SECONDS] [--every SECONDS]
//
// Prints the figures of both sides; exits 0 when the proxy lost, misordered or duplicated
// nothing and no connection dropped.

import { parseArgs } from "node:util";
import { freePort } from "../helpers/ports.ts";
import { startProxy } from "../helpers/proxy.ts";
import { placer } from "../helpers/reload.ts";
import { forceFailover, startSentinels } from "../helpers/sentinel.ts";
import { mgetDirect, Writers } from "../helpers/writers.ts";

const { values } = parseArgs({ options: { duration: { type: "string" }, every: { type: "string" } } });
const durationMs = Number(values.duration ?? 300) * 1000;
const everyMs = Number(values.every ?? 20) * 1000;

/** The redis-py side: sentinel_writers.py, driven over its stdin. */
class PythonWriters {
  private readonly proc: Bun.Subprocess<"pipe", "pipe", "inherit">;
  private out = "";

  constructor(sentinels: readonly { address: string }[], names: readonly string[]) {
    this.proc = Bun.spawn(
      ["/usr/bin/python3", `${import.meta.dir}/sentinel_writers.py`, "--sentinels", sentinels.map((s) => s.address).join(","), "--names", names.join(","), "--writers", "2", "--prefix", "py"],
      { stdin: "pipe", stdout: "pipe", stderr: "inherit" },
    );
    const stdout = this.proc.stdout;
    void (async () => {
      for await (const chunk of stdout) this.out += new TextDecoder().decode(chunk);
    })();
  }

  async ready(): Promise<void> {
    const deadline = Date.now() + 20000;
    while (!this.out.includes("ready\n")) {
      if (this.proc.exitCode !== null || Date.now() > deadline) throw new Error(`sentinel_writers.py did not start: ${this.out}`);
      await Bun.sleep(50);
    }
  }

  failover(name: string): void {
    this.proc.stdin.write(`failover ${name}\n`);
    this.proc.stdin.flush();
  }

  /** Stop, check, and return its figures. */
  async stop(): Promise<{ acked: number; lost: number; errors: Record<string, number>; failovers: number; kept_again_s: number[] }> {
    this.proc.stdin.write("stop\n");
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill("SIGKILL"), 120000);
    await this.proc.exited;
    clearTimeout(timer);
    const line = this.out.split("\n").find((l) => l.startsWith("{"));
    if (line === undefined) throw new Error(`sentinel_writers.py gave no figures: ${this.out}`);
    return JSON.parse(line);
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
  }
}

/** Seconds from each failover command until writes through the proxy were acknowledged again:
 *  the end of the longest pause between acknowledgements in the `withinMs` after the command
 *  (the pool's timeout: a write held longer would have failed, and none did when all are 0). */
function resumed(ackTimes: readonly number[], commands: readonly number[], withinMs: number): number[] {
  const out: number[] = [];
  let i = 0;
  commands.forEach((start) => {
    const stop = start + withinMs;
    while (i < ackTimes.length && ackTimes[i]! < start) i++;
    let gap = 0;
    let at = -1;
    let previous = start;
    for (let j = i; j < ackTimes.length && ackTimes[j]! < stop; j++) {
      if (ackTimes[j]! - previous > gap) {
        gap = ackTimes[j]! - previous;
        at = ackTimes[j]! - start;
      }
      previous = ackTimes[j]!;
    }
    if (at >= 0) out.push(Math.round(at) / 1000);
  });
  return out;
}

const range = (xs: readonly number[]): string =>
  xs.length === 0 ? "-" : `${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)} s (median ${[...xs].sort((a, b) => a - b)[xs.length >> 1]!.toFixed(2)} s; each: ${xs.map((x) => x.toFixed(2)).join(", ")})`;

const TIMEOUT_MS = 5000;
const d = await startSentinels();
const yaml =
  [
    "ha:",
    `  listen: 127.0.0.1:${freePort()}`,
    "  redis: true",
    `  timeout: ${TIMEOUT_MS}`,
    "  sentinels:",
    ...d.sentinels.map((s) => `   - ${s.address}`),
    "  servers:",
    ...d.shards.map((s) => `   - ${s.master.address}:1 ${s.name}`),
  ].join("\n") + "\n";
const proxy = await startProxy("buncracker", yaml);
const python = new PythonWriters(d.sentinels, d.shards.map((s) => s.name));
let code = 1;
try {
  await python.ready();
  // 20 ms between a client's batches: about 15,000 writes a second in all, so that minutes of
  // keys fit the backends' memory on a small machine.
  const writers = await Writers.start(proxy.pools.ha!, "soak", 20, 16, 20);
  const started = Date.now();
  const commands: number[] = [];
  let failovers = 0;
  for (let i = 0; (i + 1) * everyMs <= durationMs; i++) {
    // One failover every `every` seconds from the start (later when the last one settled late).
    await Bun.sleep(Math.max(0, (i + 1) * everyMs - (Date.now() - started)));
    const shard = d.shards[i % d.shards.length]!;
    const to = (await d.masterOf(shard.name)) === shard.master.address ? shard.replica : shard.master;
    try {
      python.failover(shard.name);
      commands.push(performance.now());
      await forceFailover(d.sentinels[i % d.sentinels.length]!, shard.name);
      await d.awaitMaster(shard.name, to.address, 40000);
      failovers++;
      console.log(`${((Date.now() - started) / 1000).toFixed(0)} s: ${shard.name} -> ${to.address}, ${writers.stats.acked} writes acknowledged`);
    } catch (error) {
      console.log(`failover ${i} of ${shard.name}: ${(error as Error).message}`);
    }
  }
  await writers.stop();
  const py = await python.stop();

  const place = placer(yaml, "ha");
  const shardOf = new Map(d.shards.map((s) => [s.master.address, s.name]));
  const masters = new Map<string, { host: string; port: number }>();
  for (const s of d.shards) {
    const [host, port] = (await d.masterOf(s.name)).split(":");
    masters.set(s.name, { host: host!, port: Number(port) });
  }
  const result = await writers.lostWrites(async (keys) => {
    const out = new Map<string, string | null>();
    for (const s of d.shards) {
      const mine = keys.filter((k) => shardOf.get(place(k)) === s.name);
      const got = await mgetDirect(masters.get(s.name)!, mine);
      mine.forEach((k, j) => out.set(k, got[j]!));
    }
    return keys.map((k) => out.get(k) ?? null);
  });
  const s = writers.stats;
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  console.log(
    `${failovers} failovers in ${seconds} s.\n` +
      `Through the proxy (20 clients, 16 SET/INCR in flight each): ${s.acked} writes acknowledged, ${result.lost} lost, ` +
      `${s.misordered} misordered or duplicated, ${s.dropped} connections dropped, errors ${JSON.stringify(Object.fromEntries(s.errors))}; ` +
      `writes acknowledged again ${range(resumed(s.ackTimes, commands, TIMEOUT_MS))} after the failover command.\n` +
      `redis-py Sentinel master_for direct (4 writers, one SET/INCR at a time): ${py.acked} writes acknowledged, ${py.lost} lost, ` +
      `errors ${JSON.stringify(py.errors)}; acknowledged writes kept again ${range(py.kept_again_s)} after the failover command.`,
  );
  if (result.examples.length > 0) console.log(`lost, e.g.: ${result.examples.join(", ")}`);
  code = result.lost === 0 && s.misordered === 0 && s.dropped === 0 && failovers > 0 ? 0 : 1;
} finally {
  python.kill();
  await proxy.stop();
  await d.stop();
}
process.exit(code);
