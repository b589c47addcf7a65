// Commands that touch every server of a redis pool (issue 17), against three real redis-servers:
// SCAN over the whole pool (10,000 keys with COUNT 100, each exactly once; across an ejection),
// DBSIZE summed, KEYS and FLUSHDB/FLUSHALL refused unless the pool enables them, RANDOMKEY,
// TIME and LASTSAVE from one server; SCRIPT LOAD / EXISTS / FLUSH on every server (so EVALSHA
// finds a script wherever its keys route), SCRIPT KILL / DEBUG refused.

import { afterAll, beforeAll, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { exchange, RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { flushBackends, redisCall, stopAll } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { eventually } from "../helpers/reload.ts";
import { command, decode, decode3, pipeline, RespError, respFrame, type Resp3, type RespValue } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

const KEYS = 10_000;
let backends: Backend[] = [];
let proxy: RunningProxy;
let plain: Endpoint;
let open: Endpoint;
let ejecting: Endpoint;

beforeAll(async () => {
  backends = await Promise.all([startRedis(), startRedis(), startRedis()]);
  // Named s0 s1 s2: the names fix the servers' positions in the pool (its sorted order).
  const servers = backends.map((b, i) => serverLine(b.address, 1, `s${i}`));
  const yaml = [
    poolYaml("plain", { listen: `127.0.0.1:${freePort()}`, redis: true }, servers),
    poolYaml("open", { listen: `127.0.0.1:${freePort()}`, redis: true, redis_allow_keys: true, redis_allow_flush: true }, servers),
    poolYaml(
      "ejecting",
      { listen: `127.0.0.1:${freePort()}`, redis: true, timeout: 300, auto_eject_hosts: true, server_failure_limit: 1, server_retry_timeout: 1500 },
      servers,
    ),
  ].join("");
  proxy = await startProxy(TARGET, yaml);
  ({ plain, open, ejecting } = proxy.pools as Record<string, Endpoint>);
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll(backends);
});

beforeEach(async () => {
  await flushBackends(backends);
});

/** One command on a connection of its own, its reply decoded. */
async function call(endpoint: Endpoint, ...args: string[]): Promise<RespValue> {
  return decode((await exchange(endpoint, command(...args), 1, respFrame))[0]!);
}

/** Writes `count` keys `${prefix}${i}` through the proxy. */
async function fill(endpoint: Endpoint, prefix: string, count: number): Promise<string[]> {
  const keys = Array.from({ length: count }, (_, i) => `${prefix}${i}`);
  const client = await RawClient.connect(endpoint);
  try {
    for (let i = 0; i < count; i += 1000) {
      const batch = keys.slice(i, i + 1000).map((k) => ["SET", k, "v"]);
      await client.send(pipeline(batch));
      await client.readReplies(batch.length, respFrame);
    }
  } finally {
    client.close();
  }
  return keys;
}

/** A whole SCAN iteration: every key returned, with how often; `between` runs after each call. */
async function scanAll(endpoint: Endpoint, extra: string[] = [], between?: (calls: number) => Promise<void>): Promise<Map<string, number>> {
  const seen = new Map<string, number>();
  const client = await RawClient.connect(endpoint);
  try {
    let cursor = "0";
    let calls = 0;
    do {
      await client.send(command("SCAN", cursor, ...extra));
      const reply = decode((await client.readReplies(1, respFrame))[0]!);
      if (!Array.isArray(reply)) throw new Error(`SCAN ${cursor}: ${JSON.stringify(reply)}`);
      const [next, keys] = reply as [Buffer, Buffer[]];
      for (const k of keys) seen.set(k.toString("latin1"), (seen.get(k.toString("latin1")) ?? 0) + 1);
      cursor = next.toString();
      calls++;
      await between?.(calls);
    } while (cursor !== "0" && calls < 100_000);
  } finally {
    client.close();
  }
  return seen;
}

/** Each backend's keys matching `pattern`, asked directly. */
const keysPerServer = (pattern: string): Promise<string[][]> =>
  Promise.all(backends.map(async (b) => ((await redisCall(b, "KEYS", pattern)) as Buffer[]).map(String)));

const repeated = (seen: Map<string, number>): string[] => [...seen].filter(([, n]) => n !== 1).map(([k]) => k);

describe.skipIf(TARGET !== "buncracker")("whole-pool commands", () => {
  test("SCAN of 10,000 keys over three servers with COUNT 100: each key exactly once", async () => {
    const keys = await fill(plain, "scan:", KEYS);
    // The keys really are spread over all three servers.
    for (const b of backends) expect((await redisCall(b, "DBSIZE")) as number).toBeGreaterThan(KEYS / 10);
    const seen = await scanAll(plain, ["COUNT", "100"]);
    expect(repeated(seen)).toEqual([]);
    expect(seen.size).toBe(KEYS);
    expect(keys.filter((k) => !seen.has(k))).toEqual([]);
  });

  test("SCAN passes MATCH and TYPE on to every server", async () => {
    await fill(plain, "m:", 300);
    const client = await RawClient.connect(plain);
    await client.send(pipeline(Array.from({ length: 30 }, (_, i) => ["SADD", `set:${i}`, "x"])));
    await client.readReplies(30, respFrame);
    client.close();
    const matched = await scanAll(plain, ["MATCH", "m:1*", "COUNT", "50"]);
    expect([...matched.keys()].sort()).toEqual(Array.from({ length: 300 }, (_, i) => `m:${i}`).filter((k) => k.startsWith("m:1")).sort());
    const sets = await scanAll(plain, ["TYPE", "set"]);
    expect(sets.size).toBe(30);
  });

  test("SCAN with a cursor that is not one: redis's error", async () => {
    expect(await call(plain, "SCAN", "abc")).toEqual(new RespError("ERR invalid cursor"));
  });

  test("SCAN across an ejection: the other servers' keys exactly once, the ejected server skipped", async () => {
    await fill(ejecting, "ej:", 3000);
    const perServer = await keysPerServer("ej:*");
    const onS1 = perServer[1]![0]!;
    let frozen = false;
    const seen = await scanAll(ejecting, ["COUNT", "100"], async (calls) => {
      // While the iteration is on s0: s1 stops answering, a request to it times out and it is
      // ejected (server_failure_limit 1); it stays out until the iteration is past it.
      if (calls === 2) {
        await backends[1]!.process.freeze();
        frozen = true;
        const reply = await call(ejecting, "GET", onS1);
        expect(reply).toBeInstanceOf(RespError);
      }
    });
    expect(frozen).toBe(true);
    backends[1]!.process.signal("SIGCONT");
    expect(repeated(seen)).toEqual([]);
    for (const s of [0, 2]) expect(perServer[s]!.filter((k) => !seen.has(k))).toEqual([]);
    expect(perServer[1]!.filter((k) => seen.has(k))).toEqual([]);
    // s1 back in the pool before the next test writes keys.
    await eventually("s1 back in the pool", async () => (String(await call(ejecting, "GET", onS1)) === "v" ? true : undefined));
  });

  test("SCAN across an ejection that ends before the iteration reaches the server: every key once", async () => {
    const keys = await fill(ejecting, "back:", 3000);
    const onS2 = (await keysPerServer("back:*"))[2]![0]!;
    const seen = await scanAll(ejecting, ["COUNT", "100"], async (calls) => {
      if (calls === 2) {
        await backends[2]!.process.freeze();
        expect(await call(ejecting, "GET", onS2)).toBeInstanceOf(RespError);
        backends[2]!.process.signal("SIGCONT");
        // Back in the pool once server_retry_timeout has passed.
        await eventually("s2 back in the pool", async () => (String(await call(ejecting, "GET", onS2)) === "v" ? true : undefined));
      }
    });
    expect(repeated(seen)).toEqual([]);
    expect(seen.size).toBe(keys.length);
  });

  test("DBSIZE is the sum over the servers", async () => {
    await fill(plain, "d:", 1234);
    expect(await call(plain, "DBSIZE")).toBe(1234);
  });

  test("KEYS and FLUSHDB / FLUSHALL are refused unless the pool enables them", async () => {
    await fill(plain, "k:", 50);
    for (const args of [["KEYS", "*"], ["FLUSHDB"], ["FLUSHALL"]]) {
      const reply = (await call(plain, ...args)) as RespError;
      expect(reply.message).toContain(args[0]!.toLowerCase());
      expect(reply.message).toMatch(/redis_allow_(keys|flush)/);
    }
    expect(await call(plain, "DBSIZE")).toBe(50);
  });

  test("KEYS merges every server's keys; FLUSHDB empties every server", async () => {
    const keys = await fill(open, "k:", 500);
    const found = ((await call(open, "KEYS", "k:*")) as Buffer[]).map(String).sort();
    expect(found).toEqual([...keys].sort());
    expect(await call(open, "FLUSHDB")).toBe("OK");
    for (const b of backends) expect(await redisCall(b, "DBSIZE")).toBe(0);
    await fill(open, "k:", 10);
    expect(await call(open, "FLUSHALL")).toBe("OK");
    expect(await call(open, "DBSIZE")).toBe(0);
  });

  test("a RESP3 client (HELLO 3) gets the same whole-pool answers, in RESP3", async () => {
    const keys = await fill(open, "r3:", 200);
    const client = await RawClient.connect(open);
    try {
      await client.send(pipeline([["HELLO", "3"], ["DBSIZE"], ["KEYS", "r3:*"], ["SCAN", "0", "COUNT", "1000"], ["RANDOMKEY"], ["GET", "none"], ["PUBSUB", "NUMPAT"]]));
      const [, dbsize, found, scan, random, nil, numpat] = await client.readReplies(7, respFrame);
      expect(decode(dbsize!)).toBe(200);
      expect((decode(found!) as Buffer[]).map(String).sort()).toEqual([...keys].sort());
      expect((decode(scan!) as RespValue[]).length).toBe(2);
      expect(keys).toContain(String(decode(random!)));
      expect(String(nil)).toBe("_\r\n");
      expect(decode(numpat!)).toBe(0);
    } finally {
      client.close();
    }
  });

  test("RANDOMKEY is a key of the pool, TIME and LASTSAVE come from a server", async () => {
    expect(await call(plain, "RANDOMKEY")).toBeNull();
    const keys = await fill(plain, "r:", 300);
    const random = String(await call(plain, "RANDOMKEY"));
    expect(keys).toContain(random);
    const time = (await call(plain, "TIME")) as Buffer[];
    expect(time.length).toBe(2);
    expect(Math.abs(Number(time[0]) - Date.now() / 1000)).toBeLessThan(3600);
    expect(typeof (await call(plain, "LASTSAVE"))).toBe("number");
  });
});

describe.skipIf(TARGET !== "buncracker")("SCRIPT on every server", () => {
  const LUA = "return redis.call('GET', KEYS[1])";
  const sha1 = (script: string): string => createHash("sha1").update(script).digest("hex");

  /** Each server's SCRIPT EXISTS of `shas`, asked directly. */
  const existsPerServer = (...shas: string[]): Promise<RespValue[]> => Promise.all(backends.map((b) => redisCall(b, "SCRIPT", "EXISTS", ...shas)));

  /** A key set through the proxy (to "v") on each server, in server order (asked directly). */
  async function oneKeyPerServer(prefix: string): Promise<string[]> {
    await fill(plain, prefix, 1000);
    const perServer = await keysPerServer(`${prefix}*`);
    for (const keys of perServer) expect(keys.length).toBeGreaterThan(0);
    return perServer.map((keys) => keys[0]!);
  }

  beforeEach(async () => {
    await Promise.all(backends.map((b) => redisCall(b, "SCRIPT", "FLUSH")));
  });

  test("SCRIPT LOAD reaches every server: EVALSHA of a key on each server runs it", async () => {
    const keys = await oneKeyPerServer("ev:");
    expect(await existsPerServer(sha1(LUA))).toEqual([[0], [0], [0]]);
    const noscript = await call(plain, "EVALSHA", sha1(LUA), "1", keys[0]!);
    expect((noscript as RespError).message).toStartWith("NOSCRIPT");
    expect(String(await call(plain, "SCRIPT", "LOAD", LUA))).toBe(sha1(LUA));
    expect(await existsPerServer(sha1(LUA))).toEqual([[1], [1], [1]]);
    for (const key of keys) expect(await call(plain, "EVALSHA", sha1(LUA), "1", key)).toEqual(Buffer.from("v"));
    // A script that does not compile: the servers' own error.
    expect(((await call(plain, "SCRIPT", "LOAD", "return (")) as RespError).message).toStartWith("ERR Error compiling script");
  });

  test("SCRIPT EXISTS: 1 only for a script every server has", async () => {
    const everywhere = String(await call(plain, "SCRIPT", "LOAD", LUA));
    const onOne = String(await redisCall(backends[1]!, "SCRIPT", "LOAD", "return 1"));
    expect(await call(plain, "SCRIPT", "EXISTS", everywhere, onOne, sha1("return 2"))).toEqual([1, 0, 0]);
    await Promise.all(backends.map((b) => redisCall(b, "SCRIPT", "LOAD", "return 1")));
    expect(await call(plain, "SCRIPT", "EXISTS", onOne, everywhere)).toEqual([1, 1]);
    expect(((await call(plain, "SCRIPT", "EXISTS")) as RespError).message).toContain("wrong number of arguments");
  });

  test("SCRIPT FLUSH (ASYNC, SYNC) empties every server's scripts: EXISTS is 0, EVALSHA gets NOSCRIPT", async () => {
    const [key] = await oneKeyPerServer("fl:");
    for (const mode of [[], ["ASYNC"], ["SYNC"]]) {
      const sha = String(await call(plain, "SCRIPT", "LOAD", LUA));
      expect(await call(plain, "SCRIPT", "EXISTS", sha)).toEqual([1]);
      expect(await call(plain, "SCRIPT", "FLUSH", ...mode)).toBe("OK");
      expect(await call(plain, "SCRIPT", "EXISTS", sha)).toEqual([0]);
      expect(await existsPerServer(sha)).toEqual([[0], [0], [0]]);
      expect(((await call(plain, "EVALSHA", sha, "1", key!)) as RespError).message).toStartWith("NOSCRIPT");
    }
    expect(((await call(plain, "SCRIPT", "FLUSH", "NOW")) as RespError).message).toStartWith("ERR ");
  });

  test("SCRIPT KILL and SCRIPT DEBUG are refused, saying what is served; the connection goes on", async () => {
    const client = await RawClient.connect(plain);
    try {
      await client.send(pipeline([["SCRIPT", "KILL"], ["SCRIPT", "DEBUG", "YES"], ["SCRIPT", "NOSUCH"], ["MULTI"], ["SCRIPT", "LOAD", LUA], ["DISCARD"], ["PING"]]));
      const [kill, debug, nosuch, multi, inTx, discard, pong] = (await client.readReplies(7, respFrame)).map(decode);
      expect((kill as RespError).message).toBe("ERR 'script kill' is not served through the proxy (served: script load, script exists, script flush)");
      expect((debug as RespError).message).toStartWith("ERR 'script debug' is not served through the proxy");
      expect((nosuch as RespError).message).toStartWith("ERR 'script nosuch' is not served through the proxy");
      expect([multi, discard, pong]).toEqual(["OK", "OK", "PONG"]);
      expect((inTx as RespError).message).toContain("not allowed in a transaction");
    } finally {
      client.close();
    }
    expect(await existsPerServer(sha1(LUA))).toEqual([[0], [0], [0]]);
  });

  test("a RESP3 client (HELLO 3): the sha and the EXISTS array in RESP3", async () => {
    const keys = await oneKeyPerServer("r3s:");
    const client = await RawClient.connect(plain);
    try {
      const requests = [["HELLO", "3"], ["SCRIPT", "LOAD", LUA], ["SCRIPT", "EXISTS", sha1(LUA), sha1("return 2")], ...keys.map((k) => ["EVALSHA", sha1(LUA), "1", k]), ["SCRIPT", "FLUSH"], ["SCRIPT", "EXISTS", sha1(LUA)]];
      await client.send(pipeline(requests));
      const [hello, load, exists, ...rest] = (await client.readReplies(requests.length, respFrame)).map(decode3);
      expect(hello!.t).toBe("map");
      expect(load).toEqual({ t: "bulk", v: sha1(LUA) });
      expect(exists).toEqual({ t: "array", v: [{ t: "int", v: 1n }, { t: "int", v: 0n }] });
      const values: Resp3[] = keys.map(() => ({ t: "bulk", v: "v" }));
      expect(rest).toEqual([...values, { t: "simple", v: "OK" }, { t: "array", v: [{ t: "int", v: 0n }] }]);
    } finally {
      client.close();
    }
  });
});
