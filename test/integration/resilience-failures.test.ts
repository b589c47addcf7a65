// Backend failures seen through the proxy: request timeouts, a backend killed mid-pipeline,
// ejection (auto_eject_hosts / server_failure_limit / server_retry_timeout) on connection
// failures and on redis -OOM / -BUSY / -LOADING, every server ejected, and a server whose host
// name does not resolve. Real redis-server and memcached processes, stopped (SIGSTOP), killed
// (SIGKILL) and restarted; the expected error texts are twemproxy's (REFERENCE.md, checked with
// BC_TARGET=nutcracker), the expected placements come from the ring over the live servers.

import { afterEach, describe, expect, test } from "bun:test";
import { expectReplies, latin1 } from "../helpers/assertions.ts";
import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine, type Setting } from "../helpers/config.ts";
import { endpointOf, redisCall, redisHolders } from "../helpers/direct.ts";
import { eventually, readStats, startBlackhole, type Blackhole } from "../helpers/fault.ts";
import { placement } from "../helpers/fault-ring.ts";
import { line, memcacheFrame, retrieval, storage, valueBlock } from "../helpers/memcache.ts";
import { freePort } from "../helpers/ports.ts";
import { unreadBytes } from "../helpers/procfs.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { spread } from "../helpers/random.ts";
import { bulk, command, error, OK, respFrame, simple, type RespValue } from "../helpers/resp.ts";
import { makeTempDir, removeTempDirs } from "../helpers/tmp.ts";

// Every process a test starts is stopped after it, whatever happened.
const started: { stop(): Promise<unknown> }[] = [];
const holes: Blackhole[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.stop()));
  for (const h of holes.splice(0)) h.stop();
  removeTempDirs();
});

async function redis(args?: string[]): Promise<Backend> {
  const b = await startRedis({ args });
  started.push(b);
  return b;
}

async function memcached(): Promise<Backend> {
  const b = await startMemcached();
  started.push(b);
  return b;
}

async function proxyFor(pools: string[]): Promise<RunningProxy> {
  // -i 100: stats aggregated every 100 ms, so they show what just happened.
  const p = await startProxy(TARGET, pools.join(""), { args: ["-i", "100"] });
  started.push(p);
  return p;
}

const listen = (): string => `127.0.0.1:${freePort()}`;
const redisPool = (name: string, servers: string[], settings: Record<string, Setting> = {}): string =>
  poolYaml(name, { listen: listen(), redis: true, ...settings }, servers.map((s) => serverLine(s)));
const memcachePool = (name: string, servers: string[], settings: Record<string, Setting> = {}): string =>
  poolYaml(name, { listen: listen(), ...settings }, servers.map((s) => serverLine(s)));

const keysNamed = (prefix: string, n: number): string[] => Array.from({ length: n }, (_, i) => `${prefix}:${spread(i)}`);

/** One request, one reply, on an open client. */
async function call(c: RawClient, ...args: (string | Buffer)[]): Promise<string> {
  await c.send(command(...args));
  return latin1(await c.readReply(respFrame));
}

async function pipelineReplies(endpoint: Endpoint | RawClient, requests: Buffer[], framer = respFrame): Promise<Buffer[]> {
  const c = endpoint instanceof RawClient ? endpoint : await RawClient.connect(endpoint);
  await c.send(Buffer.concat(requests));
  return c.readReplies(requests.length, framer);
}

/** The proxy's connections as the redis server lists them (CLIENT LIST, without our own). */
async function proxyConnections(b: Backend): Promise<string[]> {
  const list = latin1((await redisCall(b, "CLIENT", "LIST")) as Buffer);
  return list
    .split("\n")
    .filter((l) => l.includes(" addr=") && !l.includes(" cmd=client|list"))
    .map((l) => /addr=(\S+)/.exec(l)![1]!);
}

/** Waits until the stats document satisfies `check` (counters are aggregated every -i ms). */
async function expectStats(proxy: RunningProxy, what: string, check: (doc: Record<string, any>) => boolean): Promise<void> {
  await eventually(async () => {
    const doc = await readStats(proxy.statsPort);
    return doc !== null && check(doc as Record<string, any>);
  }, 3000, `stats: ${what}`);
}

/**
 * The client for the next phase of a test. nutcracker 0.5.0 may close a client after sending it
 * a proxy-made error (after a split request's error, after Host is down); we keep it open, so
 * only the nutcracker run of these tests starts the next phase on a new connection.
 */
async function nextPhase(c: RawClient, endpoint: Endpoint): Promise<RawClient> {
  if (TARGET === "buncracker") return c;
  c.close();
  return RawClient.connect(endpoint);
}

/** Two redis backends behind a pool with `timeout`, `count` keys `prefix...` written through a
 *  connected client, and which of them landed on the first backend (some, not all). */
async function keysOverTwo(prefix: string, count: number, timeout: number) {
  const [a, b] = await Promise.all([redis(), redis()]);
  const proxy = await proxyFor([redisPool("t", [a.address, b.address], { timeout })]);
  const keys = keysNamed(prefix, count);
  const c = await RawClient.connect(proxy.pools.t!);
  expectReplies(await pipelineReplies(c, keys.map((k) => command("SET", k, `v-${k}`))), keys.map(() => OK));
  const onA = (await Promise.all(keys.map((k) => redisHolders([a], k)))).map((h) => h.length > 0);
  const n = onA.filter(Boolean).length;
  expect(n).toBeGreaterThan(0);
  expect(n).toBeLessThan(keys.length);
  return { a, c, keys, onA };
}

const ERR_TIMEOUT = error("ERR Connection timed out");
const ERR_REFUSED = error("ERR Connection refused");
const ERR_RESET = error("ERR Connection reset by peer");

describe("request timeout", () => {
  test("redis: a stopped backend's requests time out, its connection is closed, the next request reconnects", async () => {
    const { a, c, keys, onA: placed } = await keysOverTwo("tmo", 30, 400);
    const onA = new Set(keys.filter((_, i) => placed[i]));
    const before = await proxyConnections(a);
    expect(before.length).toBe(1);

    await a.process.freeze();
    try {
      const requests = [...keys.map((k) => command("GET", k)), command("PING")];
      const expected = [...keys.map((k) => (onA.has(k) ? ERR_TIMEOUT : bulk(`v-${k}`))), simple("PONG")];
      expectReplies(await pipelineReplies(c, requests), expected);
      // Exactly one reply each: the next reply on the connection is the next request's.
      expect(await call(c, "PING")).toBe("+PONG\r\n");
    } finally {
      a.process.signal("SIGCONT");
    }
    const back = [...onA].map((k) => command("GET", k));
    expectReplies(await pipelineReplies(c, back), [...onA].map((k) => bulk(`v-${k}`)));
    // The timed-out connection was closed and a new one made.
    await eventually(async () => {
      const now = await proxyConnections(a);
      return now.length === 1 && now[0] !== before[0];
    }, 5000, "one proxy connection, not the timed-out one");
    c.close();
  }, 30_000);

  test("redis: replies ready before a stopped backend's are written without waiting for it", async () => {
    const { a, c, keys, onA } = await keysOverTwo("ready", 40, 20_000);
    const onB = keys.filter((_, i) => !onA[i]);
    const order = [...onB, ...keys.filter((_, i) => onA[i])];
    await a.process.freeze();
    try {
      // A pipeline whose first replies come from b, then ones that wait for the stopped a: the
      // ready ones arrive while a is still stopped (the proxy holds ready replies back only
      // briefly, hoping to write a whole pipeline at once).
      await c.send(Buffer.concat(order.map((k) => command("GET", k))));
      const ready = await c.readReplies(onB.length, respFrame, 10_000);
      expectReplies(ready, onB.map((k) => bulk(`v-${k}`)));
    } finally {
      a.process.signal("SIGCONT");
    }
    const rest = await c.readReplies(keys.length - onB.length, respFrame, 10_000);
    expectReplies(rest, order.slice(onB.length).map((k) => bulk(`v-${k}`)));
    c.close();
  }, 60_000);

  test("memcached: a backend that accepts and never answers; every outstanding request gets the error", async () => {
    const hole = startBlackhole();
    holes.push(hole);
    const proxy = await proxyFor([memcachePool("m", [hole.address], { timeout: 300 })]);
    let c = await RawClient.connect(proxy.pools.m!);
    const requests = [line("get", "a"), storage("set", "b", "xyz"), line("get", "a", "b", "c"), line("delete", "b")];
    const timedOut = Buffer.from("SERVER_ERROR Connection timed out\r\n");
    expectReplies(await pipelineReplies(c, requests, memcacheFrame), requests.map(() => timedOut));
    await eventually(() => hole.open === 0, 5000, "the proxy closes the timed-out server connection");
    expect(hole.accepted).toBe(1);
    c = await nextPhase(c, proxy.pools.m!);
    expectReplies(await pipelineReplies(c, [line("get", "z")], memcacheFrame), [timedOut]);
    expect(hole.accepted).toBe(2);
    c.close();
  }, 30_000);

  test("redis: a connect that is never answered counts toward timeout", async () => {
    // A stopped redis whose accept queue (backlog 1) is full: the kernel drops further SYNs, so
    // the proxy's connect never completes.
    const r = await redis(["--tcp-backlog", "1"]);
    await r.process.freeze();
    const filler = await RawClient.connect({ host: r.host, port: r.port });
    try {
      const proxy = await proxyFor([redisPool("t", [r.address], { timeout: 300 })]);
      const c = await RawClient.connect(proxy.pools.t!);
      expectReplies(await pipelineReplies(c, [command("GET", "a"), command("SET", "b", "1")]), [ERR_TIMEOUT, ERR_TIMEOUT]);
      await expectStats(proxy, "server_timedout", (doc) => {
        const server = Object.entries(doc.t as Record<string, any>).find(([name]) => name.startsWith(r.address))?.[1];
        return server?.server_timedout >= 1;
      });
      c.close();
    } finally {
      filler.close();
      r.process.signal("SIGCONT");
    }
  }, 30_000);

  test("memcached: a stopped memcached times out, then serves again after SIGCONT", async () => {
    const m = await memcached();
    const proxy = await proxyFor([memcachePool("m", [m.address], { timeout: 300 })]);
    let c = await RawClient.connect(proxy.pools.m!);
    expectReplies(await pipelineReplies(c, [storage("set", "k", "v1")], memcacheFrame), [Buffer.from("STORED\r\n")]);
    await m.process.freeze();
    try {
      const timedOut = Buffer.from("SERVER_ERROR Connection timed out\r\n");
      expectReplies(await pipelineReplies(c, [line("get", "k"), line("get", "k", "q")], memcacheFrame), [timedOut, timedOut]);
    } finally {
      m.process.signal("SIGCONT");
    }
    c = await nextPhase(c, proxy.pools.m!);
    expectReplies(await pipelineReplies(c, [line("get", "k")], memcacheFrame), [retrieval([valueBlock("k", "v1")])]);
    c.close();
  }, 30_000);
});

describe("backend killed mid-pipeline", () => {
  test("redis: one error per outstanding request, in order; the client stays; traffic resumes after a restart", async () => {
    const [a, b] = await Promise.all([redis(), redis()]);
    const proxy = await proxyFor([redisPool("k", [a.address, b.address])]);
    const keys = keysNamed("kill", 40);
    const c = await RawClient.connect(proxy.pools.k!);
    expectReplies(await pipelineReplies(c, keys.map((k) => command("SET", k, `v-${k}`))), keys.map(() => OK));
    const onA = new Set((await Promise.all(keys.map((k) => redisHolders([a], k)))).flatMap((h, i) => (h.length > 0 ? [keys[i]!] : [])));
    expect(onA.size).toBeGreaterThan(0);

    // Stopped, the backend leaves the requests unread in its socket; killed, it resets them.
    await a.process.freeze();
    const requests: Buffer[] = [];
    const expected: Buffer[][] = [];
    for (let round = 0; round < 5; round++) {
      for (const k of keys) {
        const get = round % 2 === 0;
        requests.push(get ? command("GET", k) : command("APPEND", k, ""));
        const own = get ? bulk(`v-${k}`) : Buffer.from(`:${`v-${k}`.length}\r\n`);
        // Forwarded before the kill: reset; reaching the proxy after it: refused.
        expected.push(onA.has(k) ? [ERR_RESET, ERR_REFUSED] : [own]);
      }
    }
    await c.send(Buffer.concat(requests));
    // Every request for the stopped backend waits in its socket (forwarded as sent) before the kill.
    const forA = requests.filter((_, i) => onA.has(keys[i % keys.length]!)).reduce((n, r) => n + r.length, 0);
    await eventually(() => unreadBytes(a.port) >= forA, 5000, `${forA} request bytes unread at the stopped backend`);
    await a.kill();
    const replies = await c.readReplies(requests.length, respFrame);
    replies.forEach((r, i) => {
      if (!expected[i]!.some((e) => e.equals(r))) throw new Error(`reply ${i}: ${JSON.stringify(latin1(r))}, expected one of ${expected[i]!.map((e) => JSON.stringify(latin1(e))).join(" ")}`);
    });
    expect(replies.filter((r) => r.equals(ERR_RESET)).length).toBeGreaterThan(0);
    expect(await call(c, "PING")).toBe("+PONG\r\n");
    const downKey = [...onA][0]!;
    expect(await call(c, "GET", downKey)).toBe(latin1(ERR_REFUSED));

    await a.restart();
    await eventually(async () => (await call(c, "GET", downKey)) === "$-1\r\n", 5000, "the restarted backend answers");
    expectReplies(await pipelineReplies(c, [...onA].map((k) => command("SET", k, "again"))), [...onA].map(() => OK));
    expect(c.closed).toBe(false);
    c.close();
  }, 30_000);

  test("memcached: one error per outstanding request, in order; traffic resumes after a restart", async () => {
    const [a, b] = await Promise.all([memcached(), memcached()]);
    const proxy = await proxyFor([memcachePool("k", [a.address, b.address])]);
    const keys = keysNamed("mkill", 30);
    const c = await RawClient.connect(proxy.pools.k!);
    const stored = Buffer.from("STORED\r\n");
    expectReplies(await pipelineReplies(c, keys.map((k) => storage("set", k, `v-${k}`)), memcacheFrame), keys.map(() => stored));
    const direct = await RawClient.connect(endpointOf(a));
    const hits = await pipelineReplies(direct, keys.map((k) => line("get", k)), memcacheFrame);
    direct.close();
    const onA = new Set(keys.filter((_, i) => hits[i]!.length > 5));
    expect(onA.size).toBeGreaterThan(0);

    await a.process.freeze();
    const requests = keys.flatMap((k) => [line("get", k), storage("set", k, "new")]);
    const reset = Buffer.from("SERVER_ERROR Connection reset by peer\r\n");
    const refused = Buffer.from("SERVER_ERROR Connection refused\r\n");
    const expected = keys.flatMap((k) =>
      onA.has(k) ? [[reset, refused], [reset, refused]] : [[retrieval([valueBlock(k, `v-${k}`)])], [stored]],
    );
    await c.send(Buffer.concat(requests));
    // The requests for the stopped backend wait in its socket before the kill: at least the sets
    // (forwarded as sent) and each get's key (gets may share a line).
    const forA = [...onA].reduce((n, k) => n + storage("set", k, "new").length + k.length + 1, 0);
    await eventually(() => unreadBytes(a.port) >= forA, 5000, `${forA} request bytes unread at the stopped backend`);
    await a.kill();
    const replies = await c.readReplies(requests.length, memcacheFrame);
    replies.forEach((r, i) => {
      if (!expected[i]!.some((e) => e.equals(r))) throw new Error(`reply ${i}: ${JSON.stringify(latin1(r))}`);
    });
    await a.restart();
    const k = [...onA][0]!;
    await eventually(async () => latin1((await pipelineReplies(c, [line("get", k)], memcacheFrame))[0]!) === "END\r\n", 5000, "the restarted memcached answers");
    expect(c.closed).toBe(false);
    c.close();
  }, 30_000);
});

describe("auto_eject_hosts", () => {
  test("ejected after server_failure_limit failures, keys re-routed over the live servers, put back after server_retry_timeout", async () => {
    const servers = await Promise.all([redis(), redis(), redis()]);
    const addrs = servers.map((s) => s.address);
    const settings = { auto_eject_hosts: true, server_failure_limit: 2, server_retry_timeout: 1500 };
    const proxy = await proxyFor([redisPool("e", addrs, settings)]);
    const keys = keysNamed("ej", 60);
    const full = placement(addrs, keys);
    const dead = servers[1]!;
    const live = placement([addrs[0]!, addrs[2]!], keys);
    const byAddr = new Map(servers.map((s) => [s.address, s]));
    const c = await RawClient.connect(proxy.pools.e!);

    // All live: keys land where the full ring says.
    expectReplies(await pipelineReplies(c, keys.map((k) => command("SET", k, "1"))), keys.map(() => OK));
    for (const [i, k] of keys.entries()) expect(await redisHolders(servers, k)).toEqual([addrs.indexOf(full[i]!)]);

    await dead.kill();
    const deadKeys = keys.filter((_, i) => full[i] === dead.address);
    expect(deadKeys.length).toBeGreaterThan(2);
    // Its keys fail until it is ejected: at most server_failure_limit errors, then they move.
    let errors = 0;
    for (const k of deadKeys) {
      const r = await call(c, "SET", k, "2");
      if (r === "+OK\r\n") break;
      expect([latin1(ERR_REFUSED), latin1(ERR_RESET)]).toContain(r);
      errors++;
    }
    expect(errors).toBeLessThanOrEqual(2);
    expectReplies(await pipelineReplies(c, keys.map((k) => command("SET", k, "3"))), keys.map(() => OK));
    for (const [i, k] of keys.entries()) expect(await redisCall(byAddr.get(live[i]!)!, "GET", k)).toEqual(Buffer.from("3"));

    await expectStats(proxy, "server_ejects and server_ejected_at of the dead server", (doc) => {
      const server = Object.entries(doc.e as Record<string, any>).find(([name]) => name.startsWith(dead.address))?.[1];
      return doc.e.server_ejects >= 1 && server?.server_ejected_at > 0;
    });

    // Back after server_retry_timeout: its keys go to it again.
    await dead.restart();
    const probe = deadKeys[0]!;
    await eventually(
      async () => (await call(c, "SET", probe, "4")) === "+OK\r\n" && (await redisHolders([dead], probe)).length === 1,
      10000,
      "the server is put back after server_retry_timeout",
    );
    expectReplies(await pipelineReplies(c, keys.map((k) => command("SET", k, "5"))), keys.map(() => OK));
    for (const [i, k] of keys.entries()) expect(await redisCall(byAddr.get(full[i]!)!, "GET", k)).toEqual(Buffer.from("5"));
    c.close();
  }, 30_000);

  test("ejected after server_failure_limit timeouts: a stopped server's keys move to the live one", async () => {
    const servers = await Promise.all([redis(), redis()]);
    const [stopped, live] = servers as [Backend, Backend];
    const addrs = servers.map((s) => s.address);
    const settings = { timeout: 300, auto_eject_hosts: true, server_failure_limit: 2, server_retry_timeout: 60_000 };
    const proxy = await proxyFor([redisPool("to", addrs, settings)]);
    const keys = keysNamed("to", 40);
    const full = placement(addrs, keys);
    const stoppedKeys = keys.filter((_, i) => full[i] === stopped.address);
    expect(stoppedKeys.length).toBeGreaterThan(2);
    const c = await RawClient.connect(proxy.pools.to!);
    expect(await call(c, "PING")).toBe("+PONG\r\n");
    await stopped.process.freeze();
    try {
      // One at a time: each times out until the second timeout ejects the server.
      const replies: string[] = [];
      for (const k of stoppedKeys.slice(0, 3)) replies.push(await call(c, "SET", k, "1"));
      expect(replies).toEqual([latin1(ERR_TIMEOUT), latin1(ERR_TIMEOUT), "+OK\r\n"]);
      const c2 = await nextPhase(c, proxy.pools.to!);
      expectReplies(await pipelineReplies(c2, keys.map((k) => command("SET", k, "2"))), keys.map(() => OK));
      for (const k of keys) expect(await redisCall(live, "GET", k)).toEqual(Buffer.from("2"));
      await expectStats(proxy, "server_ejects and the stopped server's timeouts", (doc) => {
        const server = Object.entries(doc.to as Record<string, any>).find(([name]) => name.startsWith(stopped.address))?.[1];
        return doc.to.server_ejects === 1 && server?.server_timedout >= 2;
      });
      c2.close();
    } finally {
      stopped.process.signal("SIGCONT");
    }
  }, 30_000);

  test("memcached: ejected after server_failure_limit failures, its keys move to the live server", async () => {
    const servers = await Promise.all([memcached(), memcached()]);
    const [dead, live] = servers as [Backend, Backend];
    const addrs = servers.map((s) => s.address);
    const proxy = await proxyFor([memcachePool("me", addrs, { auto_eject_hosts: true, server_failure_limit: 2, server_retry_timeout: 60_000 })]);
    const keys = keysNamed("me", 40);
    const full = placement(addrs, keys);
    const deadKeys = keys.filter((_, i) => full[i] === dead.address);
    expect(deadKeys.length).toBeGreaterThan(2);
    let c = await RawClient.connect(proxy.pools.me!);
    const stored = Buffer.from("STORED\r\n");
    expectReplies(await pipelineReplies(c, keys.map((k) => storage("set", k, "1")), memcacheFrame), keys.map(() => stored));
    await dead.kill();
    // Its keys fail until it is ejected (the closed connection may count as the first failure):
    // at least one error, at most server_failure_limit, then they are stored elsewhere.
    const replies: string[] = [];
    for (const k of deadKeys) {
      c = await nextPhase(c, proxy.pools.me!);
      const [reply] = await pipelineReplies(c, [storage("set", k, "2")], memcacheFrame);
      replies.push(latin1(reply!));
      if (replies.at(-1) === "STORED\r\n") break;
    }
    const failed = replies.slice(0, -1);
    expect(replies.at(-1)).toBe("STORED\r\n");
    expect(failed.length).toBeGreaterThanOrEqual(1);
    expect(failed.length).toBeLessThanOrEqual(2);
    for (const r of failed) expect(["SERVER_ERROR Connection refused\r\n", "SERVER_ERROR Connection reset by peer\r\n"]).toContain(r);
    c = await nextPhase(c, proxy.pools.me!);
    expectReplies(await pipelineReplies(c, keys.map((k) => storage("set", k, "3")), memcacheFrame), keys.map(() => stored));
    const direct = await RawClient.connect(endpointOf(live));
    expectReplies(await pipelineReplies(direct, keys.map((k) => line("get", k)), memcacheFrame), keys.map((k) => retrieval([valueBlock(k, "3")])));
    direct.close();
    await expectStats(proxy, "server_ejects", (doc) => doc.me.server_ejects === 1);
    c.close();
  }, 30_000);

  test("every server ejected: Connection refused for every key", async () => {
    const servers = await Promise.all([redis(), redis()]);
    const proxy = await proxyFor([redisPool("all", servers.map((s) => s.address), { auto_eject_hosts: true, server_failure_limit: 1, server_retry_timeout: 60000 })]);
    const keys = keysNamed("all", 20);
    const c = await RawClient.connect(proxy.pools.all!);
    await Promise.all(servers.map((s) => s.kill()));
    // Each server fails once (limit 1) and is out; then nothing is left.
    for (let i = 0; i < 2; i++) await pipelineReplies(c, keys.map((k) => command("GET", k)));
    expectReplies(await pipelineReplies(c, keys.map((k) => command("GET", k))), keys.map(() => ERR_REFUSED));
    await expectStats(proxy, "server_ejects 2", (doc) => doc.all.server_ejects === 2);
    c.close();
  }, 30_000);

  // Each way redis says it cannot serve: the reply counts as a failure (twemproxy's
  // redis_failure); two in a row eject the server and its keys move to the healthy one.
  const failing: { name: string; reply: string; start: () => Promise<{ bad: Backend; cleanup?: () => Promise<void> }> }[] = [
    {
      name: "-OOM (maxmemory 1, noeviction)",
      reply: "-OOM ",
      start: async () => ({ bad: await redis(["--maxmemory", "1", "--maxmemory-policy", "noeviction"]) }),
    },
    {
      name: "-BUSY (a script over busy-reply-threshold)",
      reply: "-BUSY ",
      start: async () => {
        const bad = await redis(["--busy-reply-threshold", "20"]);
        const script = await RawClient.connect(endpointOf(bad));
        await script.send(command("EVAL", "while true do end", "0"));
        await eventually(async () => {
          const probe = await RawClient.connect(endpointOf(bad));
          await probe.send(command("GET", "x"));
          const r = latin1(await probe.readReply(respFrame));
          probe.close();
          return r.startsWith("-BUSY");
        }, 5000, "redis is busy");
        return {
          bad,
          cleanup: async () => {
            await redisCall(bad, "SCRIPT", "KILL");
            script.close();
          },
        };
      },
    },
    {
      name: "-LOADING (a slow dataset load)",
      reply: "-LOADING ",
      start: async () => {
        const dir = makeTempDir("bc-loading-");
        const seed = await startRedis({ args: ["--dir", dir.path, "--enable-debug-command", "local"] });
        await redisCall(seed, "DEBUG", "POPULATE", "100000");
        await redisCall(seed, "SAVE");
        await seed.stop();
        // 100,000 keys at 50 µs each: loading lasts about 5 s, far longer than the test needs.
        const bad = await startRedis({ args: ["--dir", dir.path, "--key-load-delay", "50", "--loading-process-events-interval-bytes", "1024"] });
        // SIGKILL: a SIGTERM would wait for the load to finish.
        started.push({ stop: () => bad.kill() });
        return { bad };
      },
    },
  ];
  for (const mode of failing) {
    test(`redis ${mode.name} counts as a failure and ejects the server`, async () => {
      const good = await redis();
      const { bad, cleanup } = await mode.start();
      try {
        const addrs = [good.address, bad.address];
        const proxy = await proxyFor([redisPool("f", addrs, { auto_eject_hosts: true, server_failure_limit: 2, server_retry_timeout: 60000 })]);
        const keys = keysNamed("fail", 24);
        const full = placement(addrs, keys);
        const c = await RawClient.connect(proxy.pools.f!);
        const replies: string[] = [];
        for (const k of keys) replies.push(await call(c, "SET", k, "v"));
        const badReplies = keys.flatMap((_, i) => (full[i] === bad.address ? [replies[i]!] : []));
        expect(badReplies.length).toBeGreaterThan(3);
        // nutcracker 0.5.0 replaces the backend's error with "-ERR Invalid argument"; we pass it through.
        const failure = TARGET === "buncracker" ? mode.reply : "-ERR Invalid argument";
        expect(badReplies.slice(0, 2).map((r) => r.startsWith(failure))).toEqual([true, true]);
        expect(badReplies.slice(2)).toEqual(badReplies.slice(2).map(() => "+OK\r\n"));
        expect(replies.filter((r, i) => full[i] === good.address && r !== "+OK\r\n")).toEqual([]);
        // Every key that got +OK is on the healthy server.
        for (const [i, k] of keys.entries()) if (replies[i] === "+OK\r\n") expect(await redisCall(good, "EXISTS", k)).toBe(1);
        c.close();
      } finally {
        await cleanup?.();
      }
    }, 30_000);
  }
});

// An empty label: the resolver fails it at once, where a well-formed unknown name (say
// nonexistent.invalid) may wait out DNS timeouts on a machine without a name server.
const UNRESOLVABLE = "nonexistent..invalid:6379";

describe("unresolvable server host name", () => {
  test("its keys get Host is down on every attempt, the rest of the pool is unaffected", async () => {
    const live = await redis();
    const addrs = [UNRESOLVABLE, live.address];
    const proxy = await proxyFor([redisPool("dns", addrs)]);
    const keys = keysNamed("dns", 40);
    const full = placement(addrs, keys);
    expect(full.filter((a) => a === addrs[0]).length).toBeGreaterThan(0);
    const expected = keys.map((_, i) => (full[i] === addrs[0] ? "-ERR Host is down\r\n" : "+OK\r\n"));
    let c = await RawClient.connect(proxy.pools.dns!);
    const oneByOne: string[] = [];
    for (const k of keys) oneByOne.push(await call(c, "SET", k, "r0"));
    expect(oneByOne).toEqual(expected);
    // Pipelined, on the same connection. (nutcracker 0.5.0 stops answering such a pipeline on a
    // second connection: its run sends one request at a time again.)
    const round1 =
      TARGET === "buncracker"
        ? (await pipelineReplies(c, keys.map((k) => command("SET", k, "r1")))).map(latin1)
        : await Array.fromAsync(keys, (k) => call(c, "SET", k, "r1"));
    expect(round1).toEqual(expected);
    for (const [i, k] of keys.entries()) {
      const value: RespValue = await redisCall(live, "GET", k);
      expect(value).toEqual(full[i] === addrs[0] ? null : Buffer.from("r1"));
    }
    expect(await call(c, "PING")).toBe("+PONG\r\n");
    c.close();
  }, 30_000);

  test("with auto_eject_hosts: ejected, its keys re-routed, and retried after server_retry_timeout", async () => {
    const live = await redis();
    const addrs = [UNRESOLVABLE, live.address];
    const proxy = await proxyFor([redisPool("dns", addrs, { auto_eject_hosts: true, server_failure_limit: 1, server_retry_timeout: 500 })]);
    const keys = keysNamed("dnse", 40);
    const full = placement(addrs, keys);
    const downKey = keys[full.indexOf(addrs[0]!)]!;
    const c = await RawClient.connect(proxy.pools.dns!);
    expect(await call(c, "SET", downKey, "x")).toBe("-ERR Host is down\r\n");
    // Ejected: every key goes to the live server.
    expectReplies(await pipelineReplies(c, keys.map((k) => command("SET", k, "y"))), keys.map(() => OK));
    // Retried after the timeout: the name is resolved again, and fails again.
    await eventually(async () => (await call(c, "SET", downKey, "z")) === "-ERR Host is down\r\n", 5000, "the server is retried");
    c.close();
  }, 30_000);
});
