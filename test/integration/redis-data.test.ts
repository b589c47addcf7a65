// The redis data path, byte for byte: a 4-server ketama pool in front of real redis-servers.
// Expected replies come from redis's protocol and semantics (or from redis itself), never from
// the proxy under test. Run against nutcracker with BC_TARGET=nutcracker.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { expectReplies, latin1 } from "../helpers/assertions.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { exchange, RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { testDeliberate } from "../helpers/deliberate.ts";
import { endpointOf, flushBackends, redisHolders, redisKeys, stopAll } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { makeRng } from "../helpers/random.ts";
import { redisWorkload } from "../helpers/redis-workload.ts";
import { array, bulk, command, decode, error, integer, OK, pipeline, respFrame, simple } from "../helpers/resp.ts";

// Real processes and large payloads: allow more than bun's 5 s default per test and hook.
setDefaultTimeout(60_000);

let backends: Backend[] = [];
let proxy: RunningProxy;
let pool: Endpoint;

beforeAll(async () => {
  backends = await Promise.all([startRedis(), startRedis(), startRedis(), startRedis()]);
  const yaml = poolYaml(
    "data",
    { listen: `127.0.0.1:${freePort()}`, redis: true, hash: "fnv1a_64", distribution: "ketama" },
    backends.map((b) => serverLine(b.address)),
  );
  proxy = await startProxy(TARGET, yaml);
  pool = proxy.pools.data!;
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll(backends);
});

/** Sends `requests` on a new connection and returns exactly `requests.length` replies. */
async function roundTrip(requests: Buffer[], opts: { chunks?: number | number[]; gapMs?: number } = {}): Promise<Buffer[]> {
  const client = await RawClient.connect(pool);
  try {
    await client.send(Buffer.concat(requests), opts);
    return await client.readReplies(requests.length, respFrame, 60000);
  } finally {
    client.close();
  }
}

/** `count` keys starting with `prefix` that land on different backends (placement probed via the proxy). */
async function keysOnDistinctServers(prefix: string, count: number): Promise<string[]> {
  const rng = makeRng(count);
  const candidates = Array.from({ length: 64 }, () => `${prefix}${rng.bytes(6).toString("hex")}`);
  await roundTrip(candidates.map((k) => command("SET", k, "probe")));
  const chosen = new Map<number, string>();
  for (const key of candidates) {
    const [holder] = await redisHolders(backends, key);
    if (holder !== undefined && !chosen.has(holder)) chosen.set(holder, key);
  }
  await roundTrip(candidates.map((k) => command("DEL", k)));
  expect(chosen.size).toBeGreaterThanOrEqual(count);
  return [...chosen.values()].slice(0, count);
}

describe("framing and delivery", () => {
  const session = () => {
    const requests = [
      command("SET", "fr:a", "1"),
      command("GET", "fr:a"),
      command("PING"),
      command("MSET", "fr:b", "bee", "fr:c", "", "fr:d", "d\r\nd"),
      command("MGET", "fr:a", "fr:b", "fr:c", "fr:d", "fr:missing"),
      command("DEL", "fr:a", "fr:b", "fr:missing"),
      command("GET", "fr:a"),
      command("INCR", "fr:n"),
      command("EVAL", "return {1,{2,'x'}}", "1", "fr:n"),
      command("DEL", "fr:c", "fr:d", "fr:n"),
    ];
    const expected = [
      OK,
      bulk("1"),
      simple("PONG"),
      OK,
      array([bulk("1"), bulk("bee"), bulk(""), bulk("d\r\nd"), bulk(null)]),
      integer(2),
      bulk(null),
      integer(1),
      array([integer(1), array([integer(2), bulk("x")])]),
      integer(3),
    ];
    return { requests, expected };
  };

  test("a pipeline delivered one byte at a time", async () => {
    const { requests, expected } = session();
    expectReplies(await roundTrip(requests, { chunks: 1, gapMs: 1 }), expected);
  });

  test("the same pipeline in odd chunk sizes", async () => {
    const { requests, expected } = session();
    expectReplies(await roundTrip(requests, { chunks: [2, 3, 5, 7, 11, 13, 64], gapMs: 1 }), expected);
  });

  test("each request in its own write, waiting for its reply", async () => {
    const { requests, expected } = session();
    const client = await RawClient.connect(pool);
    for (let i = 0; i < requests.length; i++) {
      await client.send(requests[i]!);
      expectReplies([await client.readReply(respFrame)], [expected[i]!]);
    }
    client.close();
  });

  test("PING is answered by the proxy", async () => {
    expectReplies(await roundTrip([command("PING"), command("ping")]), [simple("PONG"), simple("PONG")]);
  });

  test("QUIT: earlier replies are written, then the connection closes with no reply of its own", async () => {
    const client = await RawClient.connect(pool);
    await client.send(pipeline([["SET", "quit:a", "1"], ["GET", "quit:a"], ["QUIT"], ["GET", "quit:a"]]));
    expect(latin1(await client.readUntilClose())).toBe("+OK\r\n$1\r\n1\r\n");
  });

  test("backend errors pass through unchanged and the connection keeps working", async () => {
    const replies = await roundTrip([
      command("SET", "err:s", "text"),
      command("INCR", "err:s"),
      command("LPUSH", "err:s", "x"),
      command("GET", "err:s"),
    ]);
    expectReplies(replies, [
      OK,
      error("ERR value is not an integer or out of range"),
      error("WRONGTYPE Operation against a key holding the wrong kind of value"),
      bulk("text"),
    ]);
  });
});

describe("keys and values", () => {
  test("the empty key: SET, GET, MGET, DEL", async () => {
    const replies = await roundTrip([
      command("SET", "", "empty-key-value"),
      command("GET", ""),
      command("MGET", "", "ek:other"),
      command("DEL", ""),
      command("GET", ""),
    ]);
    expectReplies(replies, [OK, bulk("empty-key-value"), array([bulk("empty-key-value"), bulk(null)]), integer(1), bulk(null)]);
  });

  test("binary keys and values: every byte value, CR/LF, NUL, RESP look-alikes", async () => {
    await flushBackends(backends);
    const rng = makeRng(7);
    const keys: Buffer[] = [];
    for (let b = 0; b < 256; b++) keys.push(Buffer.from([b]));
    keys.push(Buffer.from("a\r\nb"), Buffer.from("\r\n$3\r\nfoo\r\n"), Buffer.from("sp ace"), Buffer.from([0, 0, 0]), rng.bytes(300));
    const values = keys.map((_, i) => Buffer.concat([rng.bytes(i % 50), Buffer.from("\r\n*1\r\n$-1\r\n"), rng.bytes(7)]));
    const sets = keys.map((k, i) => command("SET", k, values[i]!));
    expectReplies(await roundTrip(sets), sets.map(() => OK));
    expectReplies(await roundTrip(keys.map((k) => command("GET", k))), values.map((v) => bulk(v)));
    expectReplies(await roundTrip([command("MGET", ...keys)]), [array(values.map((v) => bulk(v)))]);
    // Each key is stored, intact, on exactly one backend.
    const stored = (await Promise.all(backends.map((b) => redisKeys(b)))).flat();
    expect(stored.length).toBe(keys.length);
    for (const [i, key] of keys.entries()) {
      const holders = await redisHolders(backends, key);
      expect(holders.length).toBe(1);
      expect(decode((await direct(backends[holders[0]!]!, [command("GET", key)]))[0]!) as Buffer).toEqual(values[i]!);
    }
  });

  test("nested EVAL replies are relayed exactly as redis sends them", async () => {
    const scripts = [
      "return {1,{2,{3,{4,{5,'deep'}}}},'y',{},redis.status_reply('S')}",
      "return {1,false,'x',{false,{}}}",
      "return redis.error_reply('MYERR custom')",
      "local t = {} for i=1,300 do t[i] = {i, tostring(i), {}} end return t",
      "return 42",
      "return nil",
    ];
    const requests = scripts.map((s) => command("EVAL", s, "1", "eval:key"));
    // The expectation is what redis itself answers to the same request.
    const fromRedis = await direct(backends[0]!, requests);
    expectReplies(await roundTrip(requests), fromRedis);
    expectReplies(await roundTrip(requests, { chunks: [1, 4, 9, 100], gapMs: 0 }), fromRedis);
  });
});

describe("pipelines and multi-key commands", () => {
  test("10,000 mixed commands in one pipeline across 4 servers: every reply matches its request", async () => {
    await flushBackends(backends);
    const work = redisWorkload(20240601, 10000, "p1:");
    expectReplies(await roundTrip(work.requests), work.expected, work.labels);
    // The pipeline really was spread over all four backends.
    for (const b of backends) expect((await redisKeys(b)).length).toBeGreaterThan(0);
  });

  test("10,000 mixed commands sent in random chunk sizes", async () => {
    const work = redisWorkload(99, 10000, "p2:");
    const rng = makeRng(5);
    const sizes = Array.from({ length: 97 }, () => 1 + rng.int(4096));
    expectReplies(await roundTrip(work.requests, { chunks: sizes, gapMs: 0 }), work.expected, work.labels);
  });

  test("8 clients pipelining 1,000 commands each at the same time", async () => {
    const works = Array.from({ length: 8 }, (_, i) => redisWorkload(1000 + i, 1000, `cc${i}:`));
    const results = await Promise.all(works.map((w) => roundTrip(w.requests, { chunks: [512, 4096], gapMs: 0 })));
    results.forEach((replies, i) => expectReplies(replies, works[i]!.expected, works[i]!.labels));
  });

  test("MSET, MGET and DEL of 1,000 keys (with misses)", async () => {
    await flushBackends(backends);
    const rng = makeRng(11);
    const keys = Array.from({ length: 1000 }, (_, i) => `multi:${i}:${rng.int(1e9)}`);
    const values = keys.map((_, i) => Buffer.concat([Buffer.from(`${i}:`), rng.bytes(rng.int(100))]));
    const missing = Array.from({ length: 50 }, (_, i) => `multi:missing:${i}`);
    const mixed = [...keys.slice(0, 500), ...missing, ...keys.slice(500)];
    const valueOf = new Map(keys.map((k, i) => [k, values[i]!]));

    expectReplies(await roundTrip([command("MSET", ...keys.flatMap((k, i) => [k, values[i]!]))]), [OK]);
    expectReplies(await roundTrip([command("MGET", ...mixed)]), [array(mixed.map((k) => bulk(valueOf.get(k) ?? null)))]);
    const perBackend = await Promise.all(backends.map((b) => redisKeys(b)));
    expect(perBackend.reduce((n, ks) => n + ks.length, 0)).toBe(1000);
    for (const ks of perBackend) expect(ks.length).toBeGreaterThan(0);
    expectReplies(await roundTrip([command("DEL", ...mixed)]), [integer(1000)]);
    for (const b of backends) expect(await redisKeys(b)).toEqual([]);
  });

  test("a single-key MGET is answered as an array", async () => {
    expectReplies(await roundTrip([command("SET", "one:k", "v"), command("MGET", "one:k")]), [OK, array([bulk("v")])]);
  });

  test("16 MB values through SET, MSET, GET and MGET", async () => {
    const [k1, k2] = await keysOnDistinctServers("big:", 2);
    const rng = makeRng(16);
    const v1 = rng.bytes(16 * 1024 * 1024);
    const v2 = rng.bytes(16 * 1024 * 1024 + 17);
    expectReplies(await roundTrip([command("MSET", k1!, v1, k2!, v2)]), [OK]);
    const [mget] = await roundTrip([command("MGET", k1!, "big:absent", k2!)]);
    expect(Buffer.compare(mget!, array([bulk(v1), bulk(null), bulk(v2)]))).toBe(0);
    const replies = await roundTrip([command("SET", k1!, v2), command("GET", "big:absent"), command("GET", k1!), command("DEL", k1!, k2!)]);
    expect(replies.length).toBe(4);
    expectReplies([replies[0]!, replies[1]!, replies[3]!], [OK, bulk(null), integer(2)]);
    expect(Buffer.compare(replies[2]!, bulk(v2))).toBe(0);
  });
});

describe("deliberate differences from nutcracker", () => {
  testDeliberate("an unsupported command gets an error and the connection stays open", {
    buncracker: async () => {
      const replies = await roundTrip([command("rename", "a", "b"), command("PING")]);
      expectReplies(replies, [error("ERR unsupported command 'rename'"), simple("PONG")]);
    },
    nutcracker: async () => {
      const client = await RawClient.connect(pool);
      await client.send(pipeline([["rename", "a", "b"], ["PING"]]));
      expect(latin1(await client.readUntilClose())).toBe("");
    },
  });

  testDeliberate("a wrong argument count gets redis's own error and the connection stays open", {
    buncracker: async () => {
      const [fromRedis] = await direct(backends[0]!, [command("GET")]);
      expect(latin1(fromRedis!)).toBe("-ERR wrong number of arguments for 'get' command\r\n");
      expectReplies(await roundTrip([command("GET"), command("PING")]), [fromRedis!, simple("PONG")]);
    },
    nutcracker: async () => {
      const client = await RawClient.connect(pool);
      await client.send(pipeline([["GET"], ["PING"]]));
      expect(latin1(await client.readUntilClose())).toBe("");
    },
  });

  testDeliberate("EXISTS over keys on several servers counts all of them", {
    buncracker: async () => {
      const keys = await keysOnDistinctServers("exists:", 3);
      await roundTrip(keys.map((k) => command("SET", k, "1")));
      expectReplies(await roundTrip([command("EXISTS", ...keys, "exists:none", keys[0]!)]), [integer(4)]);
    },
    nutcracker: async () => {
      // 0.5.0 sends the whole EXISTS to the first key's server, which only knows its own key.
      const keys = await keysOnDistinctServers("exists:", 3);
      await roundTrip(keys.map((k) => command("SET", k, "1")));
      expectReplies(await roundTrip([command("EXISTS", ...keys, "exists:none", keys[0]!)]), [integer(2)]);
    },
  });

  testDeliberate("broken framing: an error, then the connection closes", {
    buncracker: async () => {
      const client = await RawClient.connect(pool);
      await client.send("*1\r\n$x\r\n");
      expect(latin1(await client.readUntilClose())).toStartWith("-ERR Protocol error");
    },
    nutcracker: async () => {
      const client = await RawClient.connect(pool);
      await client.send("*1\r\n$x\r\n");
      expect(latin1(await client.readUntilClose())).toBe("");
    },
  });
});

/** Sends `requests` straight to a backend (no proxy) and returns its replies. */
function direct(backend: Backend, requests: Buffer[]): Promise<Buffer[]> {
  return exchange(endpointOf(backend), Buffer.concat(requests), requests.length, respFrame);
}
