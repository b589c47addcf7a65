// Hot reload of whole pools, with clients pipelining through every reload: add and remove pools
// (the removed pool's requests in flight finish, then its clients are closed), move a pool to
// another listen address (its clients stay connected), switch a pool's protocol or rename it
// on the same address, a listen address that cannot be bound (nothing changes), and a request
// timeout that still holds for requests left on a removed server, and for a removed pool's
// clients.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { TCPSocketListener } from "bun";
import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { stopAll } from "../helpers/direct.ts";
import { line, memcacheFrame, storage } from "../helpers/memcache.ts";
import { freePort } from "../helpers/ports.ts";
import { TARGET } from "../helpers/proxy.ts";
import { spread } from "../helpers/random.ts";
import {
  clientIds,
  eventually,
  pauseWrites,
  pipelineGets,
  placer,
  RedisTraffic,
  ReloadableProxy,
  serverStats,
  unpause,
  type StatsDoc,
} from "../helpers/reload.ts";
import { bulk, command, error, OK, pipeline, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

let redis: Backend[] = [];
let R1: Backend, R2: Backend, R3: Backend;
let mc: Backend;
let proxy: ReloadableProxy;
const port = { alpha: freePort(), alpha2: freePort(), beta: freePort(), gamma: freePort(), delta: freePort() };

const alpha = (listen = port.alpha) =>
  poolYaml("alpha", { listen: `127.0.0.1:${listen}`, redis: true }, [serverLine(R1.address), serverLine(R2.address)]);
const beta = () => poolYaml("beta", { listen: `127.0.0.1:${port.beta}`, redis: true }, [serverLine(R3.address)]);
const gamma = () => poolYaml("gamma", { listen: `127.0.0.1:${port.gamma}` }, [serverLine(mc.address)]);
const delta = (name = "delta", redisPool = true) =>
  poolYaml(name, { listen: `127.0.0.1:${port.delta}`, redis: redisPool }, [serverLine(redisPool ? R2.address : mc.address)]);

const tcp = (p: number): Endpoint => ({ host: "127.0.0.1", port: p });

/** True when nothing accepts connections on the endpoint. */
async function refused(endpoint: Endpoint): Promise<boolean> {
  try {
    (await RawClient.connect(endpoint, 2000)).close();
    return false;
  } catch {
    return true;
  }
}

async function redisRoundTrip(endpoint: Endpoint, key: string): Promise<string[]> {
  const client = await RawClient.connect(endpoint);
  await client.send(pipeline([["SET", key, `v-${key}`], ["GET", key]]));
  const replies = (await client.readReplies(2, respFrame)).map(String);
  client.close();
  return replies;
}

async function memcachedRoundTrip(endpoint: Endpoint, key: string): Promise<string[]> {
  const client = await RawClient.connect(endpoint);
  await client.send(Buffer.concat([storage("set", key, `v-${key}`), line("get", key)]));
  const replies = (await client.readReplies(2, memcacheFrame)).map(String);
  client.close();
  return replies;
}

const memcachedStored = (key: string) => ["STORED\r\n", `VALUE ${key} 0 ${`v-${key}`.length}\r\nv-${key}\r\nEND\r\n`];
const redisStored = (key: string) => [String(OK), String(bulk(`v-${key}`))];

beforeAll(async () => {
  [redis, mc] = await Promise.all([Promise.all([startRedis(), startRedis(), startRedis()]), startMemcached()]);
  [R1, R2, R3] = redis as [Backend, Backend, Backend];
  proxy = await ReloadableProxy.start(alpha() + beta());
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll([...redis, mc]);
});

describe.skipIf(TARGET !== "buncracker")("hot reload of pools", () => {
  test("add and remove pools: the removed pool finishes its requests, then closes its clients; new pools listen", async () => {
    // Enough requests before the reload that counters reset by it could not climb back.
    await pipelineGets(proxy.endpoint("alpha"), "pre.", 6000);
    const before = await proxy.statsWhere("alpha preloaded", (doc) =>
      [R1, R2].every((b) => (serverStats(doc, "alpha", b.address)?.requests ?? 0) >= 1500),
    );
    const traffic = new RedisTraffic(proxy.endpoint("alpha"), "pools.");
    await traffic.warmUp();

    // Requests held in flight on beta's only server while beta is removed.
    await pauseWrites(R3);
    const held = await RawClient.connect(proxy.endpoint("beta"));
    const idle = await RawClient.connect(proxy.endpoint("beta"));
    const keys = Array.from({ length: 5 }, (_, i) => `held.${spread(i)}`);
    await held.send(pipeline(keys.map((k) => ["SET", k, "1"])));
    await proxy.statsWhere("5 requests in flight on beta", (doc) => (serverStats(doc, "beta", R3.address)?.out_queue ?? 0) >= 5);

    traffic.signalled();
    const [logged] = await proxy.signalReload(alpha() + gamma() + delta());
    traffic.reloaded();
    expect(logged).toContain("+pool gamma");
    expect(logged).toContain("+pool delta");
    expect(logged).toContain("-pool beta");
    expect(logged).not.toContain("pool alpha");
    // The removed pool accepts nobody; the new ones serve.
    expect(await refused(tcp(port.beta))).toBe(true);
    expect(await memcachedRoundTrip(proxy.endpoint("gamma"), "g1")).toEqual(memcachedStored("g1"));
    expect(await redisRoundTrip(proxy.endpoint("delta"), "d1")).toEqual(redisStored("d1"));

    await unpause(R3);
    expect((await held.readReplies(keys.length, respFrame)).map(String)).toEqual(keys.map(() => String(OK)));
    // Then beta's clients are closed, the one that waited and the idle one.
    expect((await held.readUntilClose()).length).toBe(0);
    expect((await idle.readUntilClose()).length).toBe(0);

    await traffic.finish();
    expect(traffic.problems).toEqual([]);
    // gamma counted (aggregated) its request: the document is from after the reload.
    const after = await proxy.statsWhere("a request on gamma", (doc) => (serverStats(doc, "gamma", mc.address)?.requests ?? 0) > 0);
    expect(after.delta).toBeDefined();
    expect(after.beta).toBeUndefined();
    for (const b of [R1, R2]) {
      expect(serverStats(after, "alpha", b.address)!.requests).toBeGreaterThanOrEqual(serverStats(before, "alpha", b.address)!.requests!);
    }
    const health = await proxy.healthz();
    expect(health.status).toBe(200);
    expect(health.body.pools.map((p) => [p.name, p.listening])).toEqual([
      ["alpha", true],
      ["gamma", true],
      ["delta", true],
    ]);
  });

  test("change a listen address: connected clients keep working, new clients use the new address", async () => {
    await proxy.signalReload(alpha() + gamma() + delta());
    const traffic = new RedisTraffic(proxy.endpoint("alpha"), "listen.");
    await traffic.warmUp();
    traffic.signalled();
    const [logged] = await proxy.signalReload(alpha(port.alpha2) + gamma() + delta());
    traffic.reloaded();
    expect(logged).toContain(`pool alpha: listen 127.0.0.1:${port.alpha} -> 127.0.0.1:${port.alpha2}`);
    await traffic.finish();
    expect(traffic.problems).toEqual([]);
    expect(await refused(tcp(port.alpha))).toBe(true);
    // The same pool on the new address: it reads what the old clients wrote.
    const client = await RawClient.connect(tcp(port.alpha2));
    const key = traffic.after[0]!;
    await client.send(command("GET", key));
    expect(String(await client.readReply(respFrame))).toContain(`\r\n${key}=`);
    client.close();
    expect((await proxy.healthz()).body.pools[0]).toMatchObject({ name: "alpha", listening: true });
  });

  test("switch a pool's protocol, then rename it, on the same address", async () => {
    await proxy.signalReload(alpha() + gamma() + delta());
    const redisClient = await RawClient.connect(proxy.endpoint("delta"));
    await redisClient.send(command("PING"));
    expect(String(await redisClient.readReply(respFrame))).toBe("+PONG\r\n");

    const [switched] = await proxy.signalReload(alpha() + gamma() + delta("delta", false));
    expect(switched).toStartWith("reloaded");
    expect(switched).toContain("+pool delta");
    expect(switched).toContain("-pool delta");
    expect(await memcachedRoundTrip(proxy.endpoint("delta"), "m1")).toEqual(memcachedStored("m1"));
    // The redis pool that left closed its idle client.
    expect((await redisClient.readUntilClose()).length).toBe(0);

    const [renamed] = await proxy.signalReload(alpha() + gamma() + delta("epsilon", false));
    expect(renamed).toContain("+pool epsilon");
    expect(renamed).toContain("-pool delta");
    expect(await memcachedRoundTrip(proxy.endpoint("epsilon"), "m2")).toEqual(memcachedStored("m2"));
  });

  test("a listen address that cannot be bound: the reload is rejected and nothing changes", async () => {
    const running = alpha() + gamma() + delta();
    await proxy.signalReload(running);
    const gen = (await proxy.healthz()).body.config!.generation;
    const taken = freePort();
    const blocker: TCPSocketListener = Bun.listen({ hostname: "127.0.0.1", port: taken, socket: { data() {} } });
    try {
      // Moves alpha, drops gamma, adds a pool on the taken port: all or nothing.
      const next =
        alpha(port.alpha2) + delta() + poolYaml("zeta", { listen: `127.0.0.1:${taken}`, redis: true }, [serverLine(R1.address)]);
      const res = await proxy.postReload(next);
      expect(res.status).toBe(500);
      expect(String(res.body.error)).toContain(`cannot listen on 127.0.0.1:${taken}`);
      expect(res.logged).toEqual([`reload rejected, the running configuration is unchanged: ${res.body.error}`]);
      const [bySignal] = await proxy.signalReload(next);
      expect(bySignal).toStartWith("reload rejected");
    } finally {
      blocker.stop(true);
    }
    expect((await proxy.healthz()).body.config!.generation).toBe(gen);
    expect((await proxy.healthz()).body.pools.map((p) => p.name)).toEqual(["alpha", "gamma", "delta"]);
    // Every pool still serves where it did, alpha's new address was released, gamma listens again.
    expect(await redisRoundTrip(tcp(port.alpha), "bind.a")).toEqual(redisStored("bind.a"));
    expect(await refused(tcp(port.alpha2))).toBe(true);
    expect(await memcachedRoundTrip(tcp(port.gamma), "bind.g")).toEqual(memcachedStored("bind.g"));
    expect(await redisRoundTrip(tcp(port.delta), "bind.d")).toEqual(redisStored("bind.d"));
  });

  test("a request left on a removed server still gets the pool's timeout", async () => {
    const theta = (servers: Backend[]) =>
      poolYaml("theta", { listen: `127.0.0.1:${port.beta}`, redis: true, timeout: 400 }, servers.map((b) => serverLine(b.address)));
    const running = alpha() + theta([R1, R3]);
    await proxy.signalReload(running);
    const place = placer(running, "theta");
    const key = Array.from({ length: 100 }, (_, i) => `slow.${spread(i)}`).find((k) => place(k) === R3.address)!;
    await pauseWrites(R3);
    try {
      const client = await RawClient.connect(proxy.endpoint("theta"));
      await client.send(command("SET", key, "1"));
      const queued = (doc: StatsDoc) => serverStats(doc, "theta", R3.address)?.out_queue ?? 0;
      await proxy.statsWhere("the SET in flight on R3", (doc) => queued(doc) >= 1);
      await proxy.signalReload(alpha() + theta([R1]));
      expect(String(await client.readReply(respFrame))).toBe(String(error("ERR Connection timed out")));
      // The client stays connected and is served by the servers that remain.
      await client.send(command("SET", key, "2"));
      expect(String(await client.readReply(respFrame))).toBe(String(OK));
      client.close();
    } finally {
      await unpause(R3);
    }
    await eventually("R3 to be free of proxy connections", async () => ((await clientIds(R3)).length === 0 ? true : undefined));
  });

  test("a request of a removed pool's client still gets the pool's timeout, not the retire deadline", async () => {
    const theta = poolYaml("theta", { listen: `127.0.0.1:${port.beta}`, redis: true, timeout: 400 }, [serverLine(R3.address)]);
    await proxy.signalReload(alpha() + theta);
    await pauseWrites(R3);
    try {
      const client = await RawClient.connect(proxy.endpoint("theta"));
      await client.send(command("SET", "retiring.slow", "1"));
      await proxy.statsWhere("the SET in flight on R3", (doc) => (serverStats(doc, "theta", R3.address)?.out_queue ?? 0) >= 1);
      // The pool goes; its client stays until its requests are answered or the retire deadline
      // (--drain-timeout, 5 s) passes, which must not stand in for the pool's timeout.
      expect((await proxy.signalReload(alpha()))[0]).toContain("-pool theta");
      expect(String(await client.readReply(respFrame))).toBe(String(error("ERR Connection timed out")));
      // Nothing left in flight: the retiring pool closes its client.
      expect((await client.readUntilClose()).length).toBe(0);
    } finally {
      await unpause(R3);
    }
    await eventually("R3 to be free of proxy connections", async () => ((await clientIds(R3)).length === 0 ? true : undefined));
  });

  test("a request of a removed pool without a timeout, unanswered at the retire deadline, gets an error before its client is closed", async () => {
    const iota = poolYaml("iota", { listen: `127.0.0.1:${port.beta}`, redis: true }, [serverLine(R3.address)]);
    await proxy.signalReload(alpha() + iota);
    await pauseWrites(R3);
    try {
      const client = await RawClient.connect(proxy.endpoint("iota"));
      await client.send(command("SET", "retiring.stuck", "1"));
      await proxy.statsWhere("the SET in flight on R3", (doc) => (serverStats(doc, "iota", R3.address)?.out_queue ?? 0) >= 1);
      expect((await proxy.signalReload(alpha()))[0]).toContain("-pool iota");
      // At the retire deadline (--drain-timeout, 5 s) the pool closes: the request is answered, then the connection ends.
      const { replies } = await client.readRepliesOrClose(1, respFrame, 15_000);
      expect(replies.map(String)).toEqual([String(error("ERR Connection closed by proxy"))]);
      expect((await client.readUntilClose()).length).toBe(0);
    } finally {
      await unpause(R3);
    }
    await eventually("R3 to be free of proxy connections", async () => ((await clientIds(R3)).length === 0 ? true : undefined));
  });
});
