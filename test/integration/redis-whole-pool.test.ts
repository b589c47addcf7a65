// Commands that touch every server of a redis pool (issue 17), against three real redis-servers:
// SCAN over the whole pool (10,000 keys with COUNT 100, each exactly once; across an ejection),
// DBSIZE summed, KEYS and FLUSHDB/FLUSHALL refused unless the pool enables them, RANDOMKEY,
// TIME and LASTSAVE from one server.

import { afterAll, beforeAll, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { flushBackends, redisCall, stopAll } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { eventually } from "../helpers/reload.ts";
import { command, decode, pipeline, RespError, respFrame, type RespValue } from "../helpers/resp.ts";

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

async function call(endpoint: Endpoint, ...args: string[]): Promise<RespValue> {
  const client = await RawClient.connect(endpoint);
  try {
    await client.send(command(...args));
    return decode((await client.readReplies(1, respFrame))[0]!);
  } finally {
    client.close();
  }
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
