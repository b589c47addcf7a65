// The nothing-lost check across repeated Sentinel failovers: 2 shards of a master and a replica,
// 3 redis-sentinels, the proxy following them; 20 clients pipeline SET/INCR through the proxy
// (and, for comparison, 4 ioredis Sentinel clients write straight to redis) while a
// SENTINEL FAILOVER moves one shard or the other every `--every` seconds. At the end every
// acknowledged write is read back from the masters of the time:
//
//   bun test/checker/failover.ts [--duration SECONDS] [--every SECONDS]
//
// Exits 0 when the proxy lost, misordered or duplicated nothing and no connection dropped.

import { parseArgs } from "node:util";
import { freePort } from "../helpers/ports.ts";
import { startProxy } from "../helpers/proxy.ts";
import { placer } from "../helpers/reload.ts";
import { forceFailover, startSentinels } from "../helpers/sentinel.ts";
import { mgetDirect, SentinelClientWriters, Writers } from "../helpers/writers.ts";

const { values } = parseArgs({ options: { duration: { type: "string" }, every: { type: "string" } } });
const durationMs = Number(values.duration ?? 300) * 1000;
const everyMs = Number(values.every ?? 20) * 1000;

const d = await startSentinels();
const yaml =
  [
    "ha:",
    `  listen: 127.0.0.1:${freePort()}`,
    "  redis: true",
    "  timeout: 5000",
    "  sentinels:",
    ...d.sentinels.map((s) => `   - ${s.address}`),
    "  servers:",
    ...d.shards.map((s) => `   - ${s.master.address}:1 ${s.name}`),
  ].join("\n") + "\n";
const proxy = await startProxy("buncracker", yaml);
let code = 1;
try {
  // 20 ms between a client's batches: about 15,000 writes a second in all, so that minutes of
  // keys fit the backends' memory on a small machine.
  const writers = await Writers.start(proxy.pools.ha!, "soak", 20, 16, 20);
  const direct = d.shards.map((s) => new SentinelClientWriters(d.sentinels, s.name, `direct-${s.name}`, 2, 16));
  const started = Date.now();
  let failovers = 0;
  for (let i = 0; (i + 1) * everyMs <= durationMs; i++) {
    // One failover every `every` seconds from the start (later when the last one settled late).
    await Bun.sleep(Math.max(0, (i + 1) * everyMs - (Date.now() - started)));
    const shard = d.shards[i % d.shards.length]!;
    const to = (await d.masterOf(shard.name)) === shard.master.address ? shard.replica : shard.master;
    try {
      await forceFailover(d.sentinels[i % d.sentinels.length]!, shard.name);
      await d.awaitMaster(shard.name, to.address, 40000);
      failovers++;
      console.log(`${((Date.now() - started) / 1000).toFixed(0)} s: ${shard.name} -> ${to.address}, ${writers.stats.acked} writes acknowledged`);
    } catch (error) {
      console.log(`failover ${i} of ${shard.name}: ${(error as Error).message}`);
    }
  }
  await Promise.all([writers.stop(), ...direct.map((w) => w.stop())]);

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
  let directLost = 0;
  let directChecked = 0;
  for (const [i, w] of direct.entries()) {
    const r = await w.lostWrites(masters.get(d.shards[i]!.name)!);
    directLost += r.lost;
    directChecked += r.checked;
  }
  const s = writers.stats;
  console.log(
    `${failovers} failovers in ${((Date.now() - started) / 1000).toFixed(0)} s. Through the proxy: ${s.acked} writes acknowledged, ` +
      `${result.lost} lost, ${s.misordered} misordered or duplicated, ${s.dropped} connections dropped, errors ${JSON.stringify([...s.errors])}. ` +
      `ioredis Sentinel clients direct: ${directChecked} SETs acknowledged, ${directLost} lost.`,
  );
  if (result.examples.length > 0) console.log(`lost, e.g.: ${result.examples.join(", ")}`);
  code = result.lost === 0 && s.misordered === 0 && s.dropped === 0 && failovers > 0 ? 0 : 1;
} finally {
  await proxy.stop();
  await d.stop();
}
process.exit(code);
