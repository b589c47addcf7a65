// The proxy following Redis Sentinel (pool key `sentinels`), with real redis-sentinels and two
// shards of a master and a replica: SENTINEL FAILOVER while 20 clients pipeline SET/INCR (every
// acknowledged write is there afterwards, on the new master), the stats show the new address and
// count the failover; a master killed with SIGKILL (errors, not hangs, then service again after
// the promotion); every sentinel killed (the last known masters keep serving); read_from: replica (GETs served by the replicas, SETs by the masters, counted
// on the redis side); -READONLY from a master demoted before the proxy heard of it; a hot reload
// that adds servers and sentinels; --workers 2; a failover sentinel aborts (held writes go to the
// old master, and a HELLO sent after held requests waits behind them); a failover announced
// before the proxy's first answer from the sentinels (its held writes still go to the new master).

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { redisCall } from "../helpers/direct.ts";
import { metricsRequest, readStats, serverOf } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { parseExposition, value } from "../helpers/prometheus.ts";
import { eventually, placer, ReloadableProxy, serverStats } from "../helpers/reload.ts";
import { command, decode, respFrame, RespError } from "../helpers/resp.ts";
import { startRelay } from "../helpers/relay.ts";
import { forceFailover, startSentinels, type SentinelDeployment, type SentinelProcess, type Shard } from "../helpers/sentinel.ts";
import { ownedClients, startWorkers, type OwnedClient } from "../helpers/workers.ts";
import { mgetDirect, SentinelClientWriters, Writers } from "../helpers/writers.ts";

setDefaultTimeout(120_000);

function sentinelPool(d: SentinelDeployment, settings: string[] = []): string {
  return [
    "ha:",
    `  listen: 127.0.0.1:${freePort()}`,
    "  redis: true",
    "  timeout: 5000",
    ...settings,
    "  sentinels:",
    ...d.sentinels.map((s) => `   - ${s.address}`),
    "  servers:",
    ...d.shards.map((s) => `   - ${s.master.address}:1 ${s.name}`),
  ].join("\n") + "\n";
}

/** Every acknowledged write of `writers`, read straight from the current master of its shard;
 *  and how many acknowledged keys each shard holds. */
async function lost(d: SentinelDeployment, yaml: string, writers: Writers) {
  const place = placer(yaml, "ha");
  const shardOf = new Map(d.shards.map((s) => [s.master.address, s.name]));
  const perShard = new Map<string, number>();
  const result = await writers.lostWrites(async (keys) => {
    const values = new Map<string, string | null>();
    for (const shard of d.shards) {
      const mine = keys.filter((k) => shardOf.get(place(k)) === shard.name);
      perShard.set(shard.name, (perShard.get(shard.name) ?? 0) + mine.length);
      const [host, port] = (await d.masterOf(shard.name)).split(":");
      const got = await mgetDirect({ host: host!, port: Number(port) }, mine);
      mine.forEach((k, i) => values.set(k, got[i]!));
    }
    return keys.map((k) => values.get(k) ?? null);
  });
  return { ...result, perShard };
}

async function call(proxy: RunningProxy, ...args: string[]) {
  const client = await RawClient.connect(proxy.pools.ha!);
  try {
    await client.send(command(...args));
    return decode((await client.readReplies(1, respFrame))[0]!);
  } finally {
    client.close();
  }
}

/** commandstats calls of `name` on a redis-server. */
async function calls(b: Backend, name: string): Promise<number> {
  const info = String(await redisCall(b, "INFO", "commandstats"));
  return Number(new RegExp(`^cmdstat_${name}:calls=(\\d+)`, "m").exec(info)?.[1] ?? 0);
}

describe.skipIf(TARGET !== "buncracker")("following sentinel failovers", () => {
  let d: SentinelDeployment;
  let proxy: RunningProxy;
  let yaml: string;
  const metricsPort = freePort();

  beforeAll(async () => {
    d = await startSentinels();
    yaml = sentinelPool(d);
    proxy = await startProxy(TARGET, yaml, { args: ["-i", "100", `--metrics-port=${metricsPort}`] });
  });

  afterAll(async () => {
    await proxy?.stop();
    await d?.stop();
  });

  test("SENTINEL FAILOVER under 20 pipelining writers: every acknowledged write is on the new master", async () => {
    const shard = d.shards[0]!;
    const writers = await Writers.start(proxy.pools.ha!, "fo", 20, 16);
    // In the same failover, for comparison: a sentinel-aware client straight to redis.
    const direct = new SentinelClientWriters(d.sentinels, shard.name, "direct", 4, 16);
    await Bun.sleep(1000);
    const ackedBefore = writers.stats.acked;
    const sent = performance.now();
    await forceFailover(d.sentinels[1]!, shard.name);
    // The writes go on through the switch and a while after it. (Whatever the old master took
    // after the promotion is missing from the new master, read below, whether or not sentinel
    // has turned it into a replica yet.)
    await eventually("the sentinels' switch", async () => ((await d.masterOf(shard.name)) === shard.replica.address ? true : undefined), 20000);
    await Bun.sleep(3000);
    await Promise.all([writers.stop(), direct.stop()]);
    const times = writers.stats.ackTimes;
    // The pause: the longest gap between acknowledgements after the failover command.
    let gap = 0;
    let resumed = 0;
    for (let i = 1; i < times.length; i++) {
      if (times[i]! < sent) continue;
      const g = times[i]! - Math.max(times[i - 1]!, sent);
      if (g > gap) {
        gap = g;
        resumed = times[i]! - sent;
      }
    }
    const result = await lost(d, yaml, writers);
    const directResult = await direct.lostWrites({ host: shard.replica.host, port: shard.replica.port });
    console.log(
      `failover under load: ${writers.stats.acked} writes acknowledged (${ackedBefore} before the failover), ` +
        `${result.checked} keys checked (${JSON.stringify([...result.perShard])}), ${result.lost} lost; errors ${JSON.stringify([...writers.stats.errors])}; ` +
        `longest pause ${gap.toFixed(0)} ms, writes acknowledged again ${resumed.toFixed(0)} ms after SENTINEL FAILOVER; ` +
        `ioredis Sentinel client direct, same failover: ${directResult.checked} acknowledged SETs, ${directResult.lost} lost, ${direct.errors} errors`,
    );
    expect(writers.stats.acked).toBeGreaterThan(ackedBefore);
    // The shard that failed over had its share of the writes.
    expect(result.perShard.get(shard.name)!).toBeGreaterThan(result.checked / 4);
    expect(result.examples).toEqual([]);
    expect(result.lost).toBe(0);
    expect(writers.stats.dropped).toBe(0);
    expect(writers.stats.misordered).toBe(0);

    const stats = serverOf(await readStats(proxy.statsPort), "ha", shard.name);
    expect(stats["server_address"]).toBe(shard.replica.address);
    expect(stats["failovers"]).toBe(1);
    expect(serverOf(await readStats(proxy.statsPort), "ha", d.shards[1]!.name)["failovers"]).toBe(0);
    const health = (await (await metricsRequest(metricsPort, "/healthz")).json()) as { pools: { addresses: unknown }[] };
    expect(health.pools[0]!.addresses).toEqual({ shard1: shard.replica.address, shard2: d.shards[1]!.master.address });
    const metrics = parseExposition(await (await metricsRequest(metricsPort, "/metrics")).text());
    expect(value(metrics, "buncracker_server_failovers_total", { server: shard.name })).toBe(1);
    expect(value(metrics, "buncracker_server_address_info", { server: shard.name, address: shard.replica.address })).toBe(1);
  });

  test("master killed with SIGKILL: errors, not hangs, then writes succeed on the promoted replica", async () => {
    const shard = d.shards[1]!;
    const key = "{k}killed";
    // A key of shard2 (the failed-over shard1 keeps its own master).
    const place = placer(yaml, "ha");
    let k = 0;
    while (place(`${key}${k}`) !== shard.master.address) k++;
    const target = `${key}${k}`;
    expect(await call(proxy, "SET", target, "before")).toBe("OK");
    await shard.master.kill();
    const killed = performance.now();
    let errors = 0;
    let backAfter = -1;
    while (performance.now() - killed < 30000) {
      const t = performance.now();
      const reply = await call(proxy, "SET", target, "after");
      // Every reply comes within the request timeout (5 s) plus slack: no hang.
      expect(performance.now() - t).toBeLessThan(7000);
      if (reply === "OK") {
        backAfter = performance.now() - killed;
        break;
      }
      expect(reply).toBeInstanceOf(RespError);
      errors++;
      await Bun.sleep(100);
    }
    console.log(`master SIGKILL: ${errors} error replies, writes succeed again ${backAfter.toFixed(0)} ms after the kill`);
    expect(backAfter).toBeGreaterThan(0);
    // The sentinel asked may learn of the switch after the one the proxy heard it from.
    await eventually("the sentinels' switch", async () => ((await d.masterOf(shard.name)) === shard.replica.address ? true : undefined), 20000);
    expect(String(await redisCall(shard.replica, "GET", target))).toBe("after");
  });

  test("every sentinel killed: the proxy keeps serving on the last known masters", async () => {
    await Promise.all(d.sentinels.map((s) => s.kill()));
    await Bun.sleep(1500);
    const place = placer(yaml, "ha");
    for (const shard of d.shards) {
      let k = 0;
      while (place(`alone:${k}`) !== shard.master.address) k++;
      expect(await call(proxy, "SET", `alone:${k}`, "still")).toBe("OK");
      // Both shards failed over above: the writes are on the promoted replicas.
      expect(String(await redisCall(shard.replica, "GET", `alone:${k}`))).toBe("still");
    }
    expect(proxy.stderr()).toContain("no sentinel reachable; keeping the last known masters");
  });
});

describe.skipIf(TARGET !== "buncracker")("read_from: replica", () => {
  let d: SentinelDeployment;
  let proxy: RunningProxy;

  beforeAll(async () => {
    d = await startSentinels();
    proxy = await startProxy(TARGET, sentinelPool(d, ["  read_from: replica"]), { args: ["-i", "100"] });
  });

  afterAll(async () => {
    await proxy?.stop();
    await d?.stop();
  });

  test("GETs are served by the replicas, SETs by the masters", async () => {
    const before = await Promise.all(d.backends.map(async (b) => ({ get: await calls(b, "get"), set: await calls(b, "set") })));
    // Replicas become readable once a sentinel query reports them.
    const deadline = Date.now() + 15000;
    while ((await call(proxy, "GET", "probe")) instanceof RespError && Date.now() < deadline) await Bun.sleep(200);
    for (let i = 0; i < 40; i++) expect(await call(proxy, "SET", `user:${i}:name`, `v${i}`)).toBe("OK");
    // Replication is asynchronous: a read right after a write may miss it on a replica.
    await Bun.sleep(200);
    for (let i = 0; i < 40; i++) expect(String(await call(proxy, "GET", `user:${i}:name`))).toBe(`v${i}`);
    const after = await Promise.all(d.backends.map(async (b) => ({ get: await calls(b, "get"), set: await calls(b, "set") })));
    const delta = (b: Backend) => {
      const i = d.backends.indexOf(b);
      return { get: after[i]!.get - before[i]!.get, set: after[i]!.set - before[i]!.set };
    };
    for (const shard of d.shards) {
      expect(delta(shard.master).get).toBe(0);
      expect(delta(shard.replica).get).toBeGreaterThan(0);
      expect(delta(shard.master).set).toBeGreaterThan(0);
    }
    const gets = d.shards.reduce((n, s) => n + delta(s.replica).get, 0);
    expect(gets).toBeGreaterThanOrEqual(40);
  });

  test("SCRIPT LOAD reaches the replicas too: EVALSHA_RO runs there, SCRIPT EXISTS and FLUSH count them", async () => {
    const deadline = Date.now() + 15000;
    while ((await call(proxy, "GET", "probe")) instanceof RespError && Date.now() < deadline) await Bun.sleep(200);
    const script = "return KEYS[1]";
    const sha = String(await call(proxy, "SCRIPT", "LOAD", script));
    expect(sha).toMatch(/^[0-9a-f]{40}$/);
    for (const b of d.backends) expect(await redisCall(b, "SCRIPT", "EXISTS", sha)).toEqual([1]);
    // Read-only: sent to a replica, which has it.
    const ranOn = async (name: string, role: "master" | "replica"): Promise<number> =>
      (await Promise.all(d.shards.map((s) => calls(s[role], name)))).reduce((a, b) => a + b, 0);
    const before = await ranOn("evalsha_ro", "replica");
    expect(String(await call(proxy, "EVALSHA_RO", sha, "1", "script:key"))).toBe("script:key");
    expect(await ranOn("evalsha_ro", "replica")).toBe(before + 1);
    // A replica without it makes SCRIPT EXISTS say 0, so a client's script helper loads it again.
    await redisCall(d.shards[0]!.replica, "SCRIPT", "FLUSH");
    expect(await call(proxy, "SCRIPT", "EXISTS", sha)).toEqual([0]);
    expect(String(await call(proxy, "SCRIPT", "LOAD", script))).toBe(sha);
    expect(await call(proxy, "SCRIPT", "EXISTS", sha)).toEqual([1]);
    expect(String(await call(proxy, "SCRIPT", "FLUSH"))).toBe("OK");
    for (const b of d.backends) expect(await redisCall(b, "SCRIPT", "EXISTS", sha)).toEqual([0]);
  });

  test("a replica down: read_from replica answers its reads with an error, prefer-replica sends them to the master", async () => {
    const shard = d.shards[0]!;
    const place = placer(sentinelPool(d), "ha");
    let k = 0;
    while (place(`user:${k}:name`) !== shard.master.address) k++;
    const key = `user:${k}:name`;
    const preferring = await startProxy(TARGET, sentinelPool(d, ["  read_from: prefer-replica"]));
    try {
      expect(await call(preferring, "SET", key, "x")).toBe("OK");
      // First its reads go to the replica (once a sentinel query reported it).
      const servedByReplica = async () => {
        const before = await calls(shard.replica, "get");
        await call(preferring, "GET", key);
        return (await calls(shard.replica, "get")) > before;
      };
      for (let i = 0; i < 100 && !(await servedByReplica()); i++) await Bun.sleep(100);
      expect(await servedByReplica()).toBe(true);
      await shard.replica.kill();
      // Sentinel reports the replica down (+sdown) after down-after-milliseconds.
      const deadline = Date.now() + 15000;
      let reply = await call(proxy, "GET", key);
      while (!(reply instanceof RespError) && Date.now() < deadline) {
        await Bun.sleep(100);
        reply = await call(proxy, "GET", key);
      }
      expect(reply).toBeInstanceOf(RespError);
      const masterGets = await calls(shard.master, "get");
      let preferred = await call(preferring, "GET", key);
      while (String(preferred) !== "x" && Date.now() < deadline) {
        await Bun.sleep(100);
        preferred = await call(preferring, "GET", key);
      }
      expect(String(preferred)).toBe("x");
      expect(await calls(shard.master, "get")).toBeGreaterThan(masterGets);
    } finally {
      await preferring.stop();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("a master demoted before the proxy heard of it", () => {
  let d: SentinelDeployment;

  beforeAll(async () => {
    d = await startSentinels({ shards: ["shard1"] });
  });

  afterAll(async () => {
    await d?.stop();
  });

  test("-READONLY makes the proxy ask the sentinels again, and writes go to the new master", async () => {
    // The proxy follows one sentinel, through a relay that then loses its subscription's
    // events; another sentinel runs the failover.
    const relay = startRelay(d.sentinels[0]!.host, d.sentinels[0]!.port);
    const shard = d.shards[0]!;
    const yaml = [
      "ha:",
      `  listen: 127.0.0.1:${freePort()}`,
      "  redis: true",
      "  timeout: 5000",
      "  sentinels:",
      `   - ${relay.address}`,
      "  servers:",
      `   - ${shard.master.address}:1 ${shard.name}`,
    ].join("\n") + "\n";
    const proxy = await startProxy(TARGET, yaml, { verbosity: 6 });
    try {
      expect(await call(proxy, "SET", "k", "1")).toBe("OK");
      relay.mute();
      await forceFailover(d.sentinels[1]!, shard.name);
      // The failover done, the old master is demoted at once (sentinel would do it within
      // about 10 s; the proxy's own periodic query comes every 10 s).
      for (let i = 0; (await d.masterOf(shard.name)) !== shard.replica.address; i++) {
        if (i > 200) throw new Error("no failover");
        await Bun.sleep(50);
      }
      await redisCall(shard.master, "REPLICAOF", shard.replica.host, String(shard.replica.port));
      const replies: unknown[] = [];
      for (let i = 0; i < 30; i++) {
        const reply = await call(proxy, "SET", "k", "2");
        replies.push(reply instanceof RespError ? reply.message.split(" ")[0] : reply);
        if (reply === "OK") break;
        await Bun.sleep(100);
      }
      console.log(`after the demotion: ${JSON.stringify(replies)}`);
      expect(replies.at(-1)).toBe("OK");
      expect(String(await redisCall(shard.replica, "GET", "k"))).toBe("2");
      // Either the answer arrived (READONLY, then OK) or the periodic query came first (OK).
      if (replies.length > 1) {
        expect(replies.slice(0, -1).every((r) => r === "READONLY")).toBe(true);
        expect(proxy.stderr()).toContain("answered -READONLY");
      }
    } finally {
      await proxy.stop();
      relay.stop();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("hot reload of a sentinel pool", () => {
  let d: SentinelDeployment;

  beforeAll(async () => {
    d = await startSentinels();
  });

  afterAll(async () => {
    await d?.stop();
  });

  test("servers and sentinels added by a reload are followed", async () => {
    const [one, two] = d.shards as [Shard, Shard];
    const listen = `127.0.0.1:${freePort()}`;
    const pool = (sentinels: SentinelProcess[], shards: Shard[]) =>
      [
        "ha:",
        `  listen: ${listen}`,
        "  redis: true",
        "  timeout: 5000",
        "  sentinels:",
        ...sentinels.map((s) => `   - ${s.address}`),
        "  servers:",
        ...shards.map((s) => `   - ${s.master.address}:1 ${s.name}`),
      ].join("\n") + "\n";
    const proxy = await ReloadableProxy.start(pool([d.sentinels[0]!], [one]));
    try {
      expect((await proxy.signalReload(pool([...d.sentinels], [one, two])))[0]).toStartWith("reloaded");
      await eventually("shard2 in the stats", async () => (serverStats(await proxy.stats(), "ha", two.name) ? true : undefined));
      // The sentinel added by the reload leads the failover: its announcement is followed.
      await forceFailover(d.sentinels[2]!, two.name);
      await eventually("shard2 moved", async () =>
        String(serverStats(await proxy.stats(), "ha", two.name)?.["server_address"]) === two.replica.address ? true : undefined,
      );
      const key = keyOf(pool([...d.sentinels], [one, two]), two);
      const client = await RawClient.connect(proxy.endpoint("ha"));
      await client.send(command("SET", key, "reloaded"));
      expect(decode((await client.readReplies(1, respFrame))[0]!)).toBe("OK");
      client.close();
      expect(String(await redisCall(two.replica, "GET", key))).toBe("reloaded");
    } finally {
      await proxy.stop();
    }
  });
});

/** A key the pool in `yaml` places on `shard`. */
function keyOf(yaml: string, shard: Shard): string {
  const place = placer(yaml, "ha");
  for (let i = 0; ; i++) if (place(`key:${i}`) === shard.master.address) return `key:${i}`;
}

describe.skipIf(TARGET !== "buncracker")("--workers 2 with sentinels", () => {
  let d: SentinelDeployment;

  beforeAll(async () => {
    d = await startSentinels({ shards: ["shard1"] });
  });

  afterAll(async () => {
    await d?.stop();
  });

  test("every worker follows the failover; the stats count it once", async () => {
    const shard = d.shards[0]!;
    const port = freePort();
    const yaml = sentinelPool(d).replace(/listen: .*/, `listen: 127.0.0.1:${port}`);
    const sup = await startWorkers(yaml, 2, { args: ["-i", "100"] });
    const clients: OwnedClient[] = [];
    try {
      const workers = await sup.workers();
      // Clients until both workers serve some.
      while (new Set(clients.map((c) => c.owner)).size < 2 && clients.length < 40) {
        clients.push(...(await ownedClients(port, 4, workers)));
      }
      expect(new Set(clients.map((c) => c.owner)).size).toBe(2);
      await forceFailover(d.sentinels[0]!, shard.name);
      await eventually("the supervisor's stats show the new address", async () => {
        const stats = serverOf(await readStats(sup.proxy.statsPort), "ha", shard.name);
        return stats["server_address"] === shard.replica.address && stats["failovers"] === 1 ? true : undefined;
      });
      for (const [i, { client }] of clients.entries()) {
        // Wait out each worker's own switch: -READONLY or a held write until it follows.
        let reply: unknown;
        for (let attempt = 0; attempt < 50 && reply !== "OK"; attempt++) {
          await client.send(command("SET", `w${i}`, `after${i}`));
          reply = decode((await client.readReplies(1, respFrame))[0]!);
          if (reply !== "OK") await Bun.sleep(100);
        }
        expect(reply).toBe("OK");
      }
      for (let i = 0; i < clients.length; i++) expect(String(await redisCall(shard.replica, "GET", `w${i}`))).toBe(`after${i}`);
    } finally {
      for (const { client } of clients) client.close();
      await sup.proxy.stop();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("an aborted failover", () => {
  let d: SentinelDeployment;

  beforeAll(async () => {
    d = await startSentinels({ shards: ["shard1"], failoverTimeoutMs: 4000 });
  });

  afterAll(async () => {
    d?.shards[0]!.replica.process.signal("SIGCONT");
    await d?.stop();
  });

  test("writes held during a failover that sentinel gives up go to the old master; a HELLO waits behind them", async () => {
    const shard = d.shards[0]!;
    // A timeout longer than the failover's, so the held writes outlast it.
    const proxy = await startProxy(TARGET, sentinelPool(d).replace("timeout: 5000", "timeout: 15000"), { args: ["-i", "100"], verbosity: 6 });
    try {
      expect(await call(proxy, "SET", "held", "before")).toBe("OK");
      expect(await call(proxy, "HSET", "held:hash", "f", "v")).toBe(1);
      await forceFailover(d.sentinels[0]!, shard.name);
      // The replica chosen never answers its promotion: sentinel aborts after failover-timeout.
      await shard.replica.process.freeze();
      await Bun.sleep(500);
      expect(proxy.stderr()).toContain("shard1 failover started");
      // A client's HGETALL waits behind its held SET; its HELLO 3 after them must wait too, or
      // the HGETALL would be sent on a RESP3 connection and answered with a map.
      const client = await RawClient.connect(proxy.pools.ha!);
      const pipeline = [command("SET", "held", "during"), command("HGETALL", "held:hash"), command("HELLO", "3"), command("HGETALL", "held:hash")];
      await client.send(Buffer.concat(pipeline));
      const replies = (await client.readReplies(4, respFrame)).map((r) => r.toString("latin1"));
      client.close();
      expect(replies[0]).toBe("+OK\r\n");
      expect(replies[1]).toBe("*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
      expect(replies[2]).toStartWith("%7\r\n");
      expect(replies[3]).toBe("%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
      expect(proxy.stderr()).toContain("failover aborted");
      expect(String(await redisCall(shard.master, "GET", "held"))).toBe("during");
      const stats = serverOf(await readStats(proxy.statsPort), "ha", shard.name);
      expect([stats["server_address"], stats["failovers"]]).toEqual([shard.master.address, 0]);
    } finally {
      shard.replica.process.signal("SIGCONT");
      await proxy.stop();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("a failover announced before the proxy's first answer from the sentinels", () => {
  let d: SentinelDeployment;

  beforeAll(async () => {
    d = await startSentinels({ shards: ["shard1"] });
  });

  afterAll(async () => {
    d?.shards[0]!.replica.process.signal("SIGCONT");
    d?.sentinels[2]?.process.signal("SIGCONT");
    await d?.stop();
  });

  test("a write sent during it still waits for the new master", async () => {
    const shard = d.shards[0]!;
    const leader = d.sentinels[0]!;
    const silent = d.sentinels[2]!;
    // The proxy's first query waits for every sentinel's answer (up to a second): with one
    // frozen, the leader's event announces the failover before any answer says where the master
    // is. That answer once ended the failover's hold and sent the held writes to the old master.
    await silent.process.freeze();
    const proxy = await startProxy(TARGET, sentinelPool(d).replace("timeout: 5000", "timeout: 15000"), { args: ["-i", "100"], verbosity: 6 });
    const clients: RawClient[] = [];
    try {
      // A subscriber straight on the old master: a PUBLISH that reached it would count it.
      const sub = await RawClient.connect({ host: shard.master.host, port: shard.master.port });
      clients.push(sub);
      await sub.send(command("SUBSCRIBE", "news"));
      await sub.readReplies(1, respFrame);
      const pub = await RawClient.connect(proxy.pools.ha!);
      clients.push(pub);
      await eventually("the proxy following the leader", () => (proxy.stderr().includes(`following sentinel ${leader.address}`) ? true : undefined));
      await forceFailover(leader, shard.name);
      await eventually("the failover announced", () => (proxy.stderr().includes(`${shard.name} failover started`) ? true : undefined));
      // The promotion cannot complete while the replica is frozen: the PUBLISH is held, and the
      // first answer comes while it is.
      await shard.replica.process.freeze();
      try {
        await pub.send(command("PUBLISH", "news", "hello"));
        silent.process.signal("SIGCONT");
        await eventually("the proxy's first answer", () => (proxy.stderr().includes(`${shard.name} master (unknown) -> `) ? true : undefined));
      } finally {
        shard.replica.process.signal("SIGCONT");
      }
      // Published on the new master, where nobody subscribes.
      expect(decode((await pub.readReplies(1, respFrame, 20000))[0]!)).toBe(0);
      expect(proxy.stderr()).not.toContain("failover aborted");
      // The logs name the server as configured, and where its connections go now.
      const connected = proxy.stderr().split("\n").filter((line) => line.includes("connected to server"));
      expect(connected.some((line) => line.endsWith(`(moved to ${shard.replica.address})`))).toBe(true);
    } finally {
      for (const c of clients) c.close();
      silent.process.signal("SIGCONT");
      shard.replica.process.signal("SIGCONT");
      await proxy.stop();
    }
  });
});
