// A hot reload while a Sentinel failover is under way, with real redis-sentinels and two shards
// (s1, s2) of a master and a replica. The replica being promoted is frozen, so the failover
// waits while requests arrive and the reload happens: the requests wait in the proxy with plans
// made under the old config (server positions), and the reload renumbers the servers or removes
// the one failing over. A waiting request goes to the server its plan chose (found again at its
// new position), or fails with a clear error when that server left or its transaction's keys
// moved; one routed by its keys goes where they are under the new config; each gets one reply,
// in order, and the writes still wait for the new master. A reload that drops the sentinel that
// led a failover keeps the master that sentinel announced, while the sentinels left still name
// the old one. A reload to another deployment (no sentinel kept) or a server line whose address
// changed keeps nothing: the pool goes where the sentinels now followed say, even when their
// answer is no newer than the master it knew (two one-sentinel deployments watching a master
// group of the same name at different redis-servers).

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { RawClient } from "../helpers/client.ts";
import { redisCall } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { TARGET } from "../helpers/proxy.ts";
import { eventually, placer, ReloadableProxy } from "../helpers/reload.ts";
import { command, pipeline, plain } from "../helpers/resp.ts";
import { forceFailover, readPlain, sentinelCall, startSentinels, type SentinelDeployment, type SentinelProcess, type Shard } from "../helpers/sentinel.ts";

setDefaultTimeout(120_000);

/** A name `place` (a pool's placement) puts on `address`. */
function nameOn(place: (key: string) => string, address: string, prefix: string): string {
  for (let i = 0; ; i++) if (place(`${prefix}${i}`) === address) return `${prefix}${i}`;
}

describe.skipIf(TARGET !== "buncracker")("a hot reload during a sentinel failover", () => {
  let d: SentinelDeployment;
  let s1: Shard;
  let s2: Shard;
  const listen = `127.0.0.1:${freePort()}`;
  const pool = (shards: Shard[], sentinels: readonly SentinelProcess[] = d.sentinels) =>
    [
      "ha:",
      `  listen: ${listen}`,
      "  redis: true",
      // Longer than the failover, so that nothing held times out.
      "  timeout: 20000",
      "  sentinels:",
      ...sentinels.map((s) => `   - ${s.address}`),
      "  servers:",
      ...shards.map((s) => `   - ${s.master.address}:1 ${s.name}`),
    ].join("\n") + "\n";

  beforeAll(async () => {
    d = await startSentinels({ shards: ["s1", "s2"] });
    [s1, s2] = d.shards as [Shard, Shard];
  });

  afterAll(async () => {
    for (const s of d?.shards ?? []) s.replica.process.signal("SIGCONT");
    await d?.stop();
  });

  /** A client of `proxy` and a subscriber of `channel` straight on each of `backends`. */
  async function clients(proxy: ReloadableProxy, channel: string, backends: Shard["master"][]): Promise<RawClient[]> {
    const opened: RawClient[] = [];
    for (const b of backends) {
      const sub = await RawClient.connect({ host: b.host, port: b.port });
      opened.push(sub);
      await sub.send(command("SUBSCRIBE", channel));
      expect(await readPlain(sub, 1)).toEqual([["subscribe", channel, 1]]);
    }
    opened.unshift(await RawClient.connect(proxy.endpoint("ha")));
    return opened;
  }

  /** SENTINEL FAILOVER of `shard`, its replica frozen once the proxy holds its writes: the
   *  promotion waits until SIGCONT. */
  async function holdFailover(proxy: ReloadableProxy, shard: Shard): Promise<void> {
    const before = proxy.proxy.stderr().split(`${shard.name} failover started`).length;
    await forceFailover(d.sentinels[0]!, shard.name);
    await eventually("the proxy holding the writes", () => (proxy.proxy.stderr().split(`${shard.name} failover started`).length > before ? true : undefined));
    await shard.replica.process.freeze();
  }

  test("servers renumbered: the transaction and the PUBLISH waiting for s2 still go to s2, its new master", async () => {
    // s2 is server 0, then server 1 (servers are sorted by name).
    const before = pool([s2]);
    const after = pool([s1, s2]);
    const place = placer(after, "ha");
    const txKey = nameOn(place, s2.master.address, "tx:");
    const setKey = nameOn(place, s2.master.address, "set:");
    // On s2 when its transaction starts, on s1 after the reload.
    const movedKey = nameOn(place, s1.master.address, "moved:");
    const proxy = await ReloadableProxy.start(before, { verbosity: 6 });
    const opened: RawClient[] = [];
    try {
      await eventually("the proxy's first answer", () => (proxy.proxy.stderr().includes(`${s2.name} master (unknown) -> `) ? true : undefined));
      opened.push(...(await clients(proxy, "news", [s1.master, s2.master])));
      const client = opened[0]!;
      const moving = await RawClient.connect(proxy.endpoint("ha"));
      opened.push(moving);
      await holdFailover(proxy, s2);
      try {
        await client.send(pipeline([["MULTI"], ["INCR", txKey], ["EXEC"], ["SET", setKey, "during"], ["PUBLISH", "news", "hello"]]));
        await moving.send(pipeline([["MULTI"], ["INCR", movedKey], ["EXEC"]]));
        // MULTI is answered by the proxy (so the pipeline was read); the rest waits.
        expect(await readPlain(client, 1)).toEqual(["OK"]);
        expect(await readPlain(moving, 1)).toEqual(["OK"]);
        expect((await proxy.signalReload(after))[0]).toContain("+server");
        // A transaction whose key the reload moved is lost, as one with a connection would be.
        const lost = "-ERR its transaction's keys moved to another server in a reload";
        expect(await readPlain(moving, 2)).toEqual([lost, lost]);
      } finally {
        s2.replica.process.signal("SIGCONT");
      }
      // Published on s2's new master, where nobody subscribes: not on s1 (the position s2 had),
      // not on s2's old master.
      expect(await readPlain(client, 4)).toEqual(["QUEUED", [1], "OK", 0]);
      await d.awaitMaster(s2.name, s2.replica.address, 40000);
      expect(plain(await redisCall(s2.replica, "GET", txKey))).toBe("1");
      expect(plain(await redisCall(s2.replica, "GET", setKey))).toBe("during");
      expect(plain(await redisCall(s1.master, "EXISTS", txKey))).toBe(0);
      expect(plain(await redisCall(s1.master, "EXISTS", movedKey))).toBe(0);
      expect(plain(await redisCall(s2.replica, "EXISTS", movedKey))).toBe(0);
      expect(proxy.proxy.stderr()).not.toContain("failed:");
    } finally {
      for (const c of opened) c.close();
      s2.replica.process.signal("SIGCONT");
      await proxy.stop();
    }
  });

  test("the server failing over removed: what its plans chose fails, what routes by key goes where the keys are now", async () => {
    const before = pool([s1, s2]);
    const after = pool([s2]);
    const place = placer(before, "ha");
    const txKey = nameOn(place, s1.master.address, "tx2:");
    const setKey = nameOn(place, s1.master.address, "set2:");
    const channel = nameOn(place, s1.master.address, "news");
    const s2master = d.backendAt(s2.name, await d.masterOf(s2.name));
    const proxy = await ReloadableProxy.start(before, { verbosity: 6 });
    const opened: RawClient[] = [];
    try {
      await eventually("the proxy's first answers", () =>
        [s1, s2].every((s) => proxy.proxy.stderr().includes(`${s.name} master (unknown) -> `)) ? true : undefined,
      );
      opened.push(...(await clients(proxy, channel, [s1.master, s2master])));
      const client = opened[0]!;
      await holdFailover(proxy, s1);
      try {
        await client.send(
          pipeline([["MULTI"], ["INCR", txKey], ["EXEC"], ["SET", setKey, "during"], ["PUBLISH", channel, "hello"], ["GET", setKey]]),
        );
        expect(await readPlain(client, 1)).toEqual(["OK"]);
        expect((await proxy.signalReload(after))[0]).toContain("-server");
        // Nothing waits for s1 any more: the replies come while its failover is still held.
        const [incr, exec, set, publish, get] = await readPlain(client, 5);
        expect([incr, exec, publish]).toEqual([
          "-ERR server s1 left the pool in a reload",
          "-ERR server s1 left the pool in a reload",
          "-ERR server s1 left the pool in a reload",
        ]);
        expect([set, get]).toEqual(["OK", "during"]);
      } finally {
        s1.replica.process.signal("SIGCONT");
      }
      expect(plain(await redisCall(s2master, "GET", setKey))).toBe("during");
      expect(plain(await redisCall(s2master, "EXISTS", txKey))).toBe(0);
      // The same client goes on under the new config.
      await client.send(pipeline([["MULTI"], ["INCR", txKey], ["EXEC"]]));
      expect(await readPlain(client, 3)).toEqual(["OK", "QUEUED", [1]]);
      expect(proxy.proxy.stderr()).not.toContain("failed:");
    } finally {
      for (const c of opened) c.close();
      s1.replica.process.signal("SIGCONT");
      await proxy.stop();
    }
  });

  test("the sentinel that led a failover dropped by a reload: the pool keeps the master it announced, not the old one the others still name", async () => {
    const [leader, ...others] = d.sentinels as [SentinelProcess, ...SentinelProcess[]];
    // The failover of s1 an earlier test held is over at every sentinel.
    const failingOver = async (s: SentinelProcess): Promise<boolean> => {
      const reply = (await sentinelCall(s, undefined, "SENTINEL", "MASTER", s1.name)) as unknown[];
      return String(reply[reply.findIndex((v) => String(v) === "flags") + 1]).includes("failover_in_progress");
    };
    for (const s of d.sentinels) await eventually(`no failover of ${s1.name} at ${s.address}`, async () => ((await failingOver(s)) ? undefined : true), 60_000);
    const oldAddress = await d.masterOf(s1.name);
    await d.awaitMaster(s1.name, oldAddress, 40000);
    const oldMaster = d.backendAt(s1.name, oldAddress);
    const newMaster = oldMaster === s1.master ? s1.replica : s1.master;
    const proxy = await ReloadableProxy.start(pool([s1]), { verbosity: 6 });
    const client = await RawClient.connect(proxy.endpoint("ha"));
    try {
      await eventually("the proxy's first answer", () => (proxy.proxy.stderr().includes(`${s1.name} master (unknown) -> ${oldAddress}`) ? true : undefined));
      // Only the leader sees the failover; once the proxy follows it, it tells nobody else
      // (stopped), and the others come back with what they knew before: the old master.
      for (const s of others) await s.kill();
      await forceFailover(leader, s1.name);
      await eventually("the proxy following the failover", () =>
        proxy.proxy.stderr().includes(`${s1.name} master ${oldAddress} -> ${newMaster.address} (+switch-master`) ? true : undefined,
      );
      await leader.process.freeze();
      for (const s of others) await s.restart();
      for (const s of others) expect(plain(await sentinelCall(s, undefined, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s1.name))).toEqual(oldAddress.split(":"));
      const logged = proxy.proxy.stderr().length;
      expect((await proxy.signalReload(pool([s1], others)))[0]).toStartWith("reloaded");
      // The reloaded pool has heard the sentinels left (what it did with their answer is logged).
      const heard = [`${s1.name} master (unknown) -> ${oldAddress}`, `${s1.name}: sentinel answer naming ${oldAddress}`];
      await eventually("the reloaded pool's first answer", () => (heard.some((h) => proxy.proxy.stderr().slice(logged).includes(h)) ? true : undefined));
      // Every write through the proxy is on the new master (the old one, not yet demoted, would
      // take them and lose them when sentinel makes it a replica).
      const keys = Array.from({ length: 20 }, (_, i) => `kept:${i}`);
      await client.send(pipeline(keys.map((k) => ["SET", k, "after"])));
      expect(await readPlain(client, keys.length)).toEqual(keys.map(() => "OK"));
      for (const k of keys) expect([k, plain(await redisCall(newMaster, "GET", k))]).toEqual([k, "after"]);
      expect(proxy.proxy.stderr().slice(logged)).not.toContain(`${s1.name} master (unknown) -> ${oldAddress}`);
    } finally {
      client.close();
      leader.process.signal("SIGCONT");
      await proxy.stop();
    }
    // The leader tells the others again: the deployment settles on the new master.
    await d.awaitMaster(s1.name, newMaster.address, 40000);
  });
});

describe.skipIf(TARGET !== "buncracker")("a hot reload that does not keep the master group", () => {
  // Two deployments watching a master "g" each, at different redis-servers: every config epoch 0.
  let one: SentinelDeployment;
  let two: SentinelDeployment;
  const listen = `127.0.0.1:${freePort()}`;
  const pool = (sentinel: SentinelProcess, server: Shard["master"]) =>
    ["ha:", `  listen: ${listen}`, "  redis: true", "  sentinels:", `   - ${sentinel.address}`, "  servers:", `   - ${server.address}:1 g`].join("\n") + "\n";

  beforeAll(async () => {
    [one, two] = await Promise.all([startSentinels({ shards: ["g"], sentinels: 1 }), startSentinels({ shards: ["g"], sentinels: 1 })]);
  });

  afterAll(async () => {
    await Promise.all([one?.stop(), two?.stop()]);
  });

  /** Reloads `proxy` to `yaml`, waits until the new pool knows where g is (a sentinel's answer,
   *  or a master inherited from the old pool: logged at once, no answer awaited), then checks
   *  that writes through it land on `on` and not on `off`. */
  async function reloadWritesTo(proxy: ReloadableProxy, yaml: string, on: Shard["master"], off: Shard["master"], prefix: string): Promise<void> {
    const logged = proxy.proxy.stderr().length;
    expect((await proxy.signalReload(yaml))[0]).toStartWith("reloaded");
    const known = ["g master (unknown) -> ", "g master stays "];
    await eventually("the reloaded pool's master of g", () => (known.some((k) => proxy.proxy.stderr().slice(logged).includes(k)) ? true : undefined));
    await writesLandOn(proxy, on, off, prefix);
  }

  /** Five SETs through the proxy: each on `on`, none on `off`. */
  async function writesLandOn(proxy: ReloadableProxy, on: Shard["master"], off: Shard["master"], prefix: string): Promise<void> {
    const keys = Array.from({ length: 5 }, (_, i) => `${prefix}:${i}`);
    const client = await RawClient.connect(proxy.endpoint("ha"));
    try {
      await client.send(pipeline(keys.map((k) => ["SET", k, prefix])));
      expect(await readPlain(client, keys.length)).toEqual(keys.map(() => "OK"));
    } finally {
      client.close();
    }
    for (const k of keys) {
      expect([k, on.address, plain(await redisCall(on, "GET", k))]).toEqual([k, on.address, prefix]);
      expect([k, off.address, plain(await redisCall(off, "EXISTS", k))]).toEqual([k, off.address, 0]);
    }
  }

  test("no sentinel kept (another deployment): the pool follows the new sentinels' master, not the one it knew", async () => {
    const [a, b] = [one.shards[0]!.master, two.shards[0]!.master];
    const proxy = await ReloadableProxy.start(pool(one.sentinels[0]!, a), { verbosity: 6 });
    try {
      await eventually("the proxy's first answer", () => (proxy.proxy.stderr().includes(`g master (unknown) -> ${a.address}`) ? true : undefined));
      await writesLandOn(proxy, a, b, "before1");
      // The same server line (name and address): only the sentinels changed.
      await reloadWritesTo(proxy, pool(two.sentinels[0]!, a), b, a, "after1");
      expect(proxy.proxy.stderr()).toContain(`server g moves from ${a.address} to ${b.address}`);
    } finally {
      await proxy.stop();
    }
  });

  test("the sentinel kept, the server's address changed: the pool goes where the sentinel says, not to the new line's address", async () => {
    const [a, b] = [one.shards[0]!.master, two.shards[0]!.master];
    const sentinel = one.sentinels[0]!;
    const proxy = await ReloadableProxy.start(pool(sentinel, a), { verbosity: 6 });
    try {
      await eventually("the proxy's first answer", () => (proxy.proxy.stderr().includes(`g master (unknown) -> ${a.address}`) ? true : undefined));
      await writesLandOn(proxy, a, b, "before2");
      // g now starts at b (a redis-server the sentinel does not watch), until the sentinel answers.
      await reloadWritesTo(proxy, pool(sentinel, b), a, b, "after2");
      expect(proxy.proxy.stderr()).toContain(`server g moves from ${b.address} to ${a.address}`);
    } finally {
      await proxy.stop();
    }
  });
});
