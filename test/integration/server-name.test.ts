// The server_name distribution (issue 6), buncracker only: each key goes to the server its
// routing part names (the hash-tag text when hash_tag is set and the tag is non-empty, else the
// whole key). 3 real redis and 3 real memcached backends; TCP and unix-socket listeners.
// nutcracker 0.5.0 has no such distribution: against it, only the check that it rejects the
// config runs.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { expectReplies, latin1 } from "../helpers/assertions.ts";
import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import { exchange, RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { endpointOf, flushBackends, redisKeys, stopAll } from "../helpers/direct.ts";
import { line, memcacheFrame, parseRetrieval, retrieval, storage, valueBlock } from "../helpers/memcache.ts";
import { readStats, waitFor } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, testConfig, type RunningProxy } from "../helpers/proxy.ts";
import { array, bulk, command, integer, OK, respFrame, simple } from "../helpers/resp.ts";
import { makeTempDir, type TempDir } from "../helpers/tmp.ts";

// Real processes: allow more than bun's 5 s default per test and hook.
setDefaultTimeout(60_000);

const NAMES = ["r1", "r2", "r3"] as const;
const settings = (listen: string, extra: Record<string, string | boolean> = {}) => ({
  listen,
  hash: "server_name",
  distribution: "server_name",
  ...extra,
});
/** r1..r3 on the three backends, plus `alias` on the first one (names may share an address). */
const namedServers = (backends: Backend[]) => [
  ...backends.map((b, i) => serverLine(b.address, 1, NAMES[i])),
  serverLine(backends[0]!.address, 1, "alias"),
];

async function session(endpoint: Endpoint, requests: Buffer[], framer = respFrame): Promise<Buffer[]> {
  const client = await RawClient.connect(endpoint);
  try {
    await client.send(Buffer.concat(requests));
    return await client.readReplies(requests.length, framer);
  } finally {
    client.close();
  }
}

/** The index of the only backend holding each key (-1 when none or several). */
async function redisPlacement(backends: Backend[], keys: string[]): Promise<number[]> {
  const stored = await Promise.all(backends.map(async (b) => new Set((await redisKeys(b)).map(latin1))));
  return keys.map((k) => {
    const holders = stored.flatMap((set, i) => (set.has(k) ? [i] : []));
    return holders.length === 1 ? holders[0]! : -1;
  });
}

/** Checks an error reply for an unknown name: the protocol's error form, naming the routing part and the pool. */
function expectUnknownName(reply: Buffer, prefix: "-ERR " | "SERVER_ERROR ", routingPart: string, pool: string): void {
  const text = latin1(reply);
  expect(text).toStartWith(prefix);
  expect(text).toEndWith("\r\n");
  expect(text).toContain(routingPart);
  expect(text).toContain(pool);
}

describe.skipIf(TARGET !== "buncracker")("redis pools", () => {
  let socketDir: TempDir;
  let backends: Backend[] = [];
  let proxy: RunningProxy;

  beforeAll(async () => {
    socketDir = makeTempDir("bct-sn-");
    backends = await Promise.all([startRedis(), startRedis(), startRedis()]);
    proxy = await startProxy(
      "buncracker",
      poolYaml("sn_plain", settings(`127.0.0.1:${freePort()}`, { redis: true }), namedServers(backends)) +
        poolYaml("sn_tagged", settings(`${socketDir.file("sn.sock")} 0600`, { redis: true, hash_tag: "{}" }), namedServers(backends)),
    );
  });

  afterAll(async () => {
    await proxy?.stop();
    await stopAll(backends);
    socketDir?.remove();
  });

  test("without hash_tag the whole key is the name: each key lands on the named backend", async () => {
    await flushBackends(backends);
    const keys = ["r1", "r2", "r3", "alias"];
    expectReplies(await session(proxy.pools.sn_plain!, keys.map((k) => command("SET", k, `v-${k}`))), keys.map(() => OK));
    expect(await redisPlacement(backends, keys)).toEqual([0, 1, 2, 0]);
    expectReplies(await session(proxy.pools.sn_plain!, keys.map((k) => command("GET", k))), keys.map((k) => bulk(`v-${k}`)));
  });

  test("with hash_tag the tag names the server, over the unix socket", async () => {
    await flushBackends(backends);
    const keys = ["{r3}user:42", "{r1}a", "x{r2}y", "r2", "{alias}z", "{r1}"];
    expectReplies(await session(proxy.pools.sn_tagged!, keys.map((k) => command("SET", k, "v"))), keys.map(() => OK));
    expect(await redisPlacement(backends, keys)).toEqual([2, 0, 1, 1, 0, 0]);
  });

  test("MSET, MGET and DEL across names split and merge", async () => {
    await flushBackends(backends);
    const pool = proxy.pools.sn_tagged!;
    const keys = ["{r1}a", "{r2}b", "{r3}c", "{r1}d", "{alias}e"];
    expectReplies(await session(pool, [command("MSET", ...keys.flatMap((k) => [k, `v${k}`]))]), [OK]);
    expect(await redisPlacement(backends, keys)).toEqual([0, 1, 2, 0, 0]);
    const asked = ["{r3}c", "{r1}missing", "{r1}a", "{r2}b", "{alias}e", "{r1}d"];
    expectReplies(await session(pool, [command("MGET", ...asked)]), [
      array(asked.map((k) => bulk(keys.includes(k) ? `v${k}` : null))),
    ]);
    expectReplies(await session(pool, [command("DEL", ...keys, "{r2}missing")]), [integer(keys.length)]);
    for (const b of backends) expect(await redisKeys(b)).toEqual([]);
  });

  test("an unknown name gets an error naming it and the pool, and the connection keeps working", async () => {
    const client = await RawClient.connect(proxy.pools.sn_plain!);
    await client.send(Buffer.concat([command("SET", "user:42", "v"), command("PING"), command("SET", "r1", "ok"), command("GET", "R1"), command("GET", "r1")]));
    const [unknown, pong, set, upper, get] = await client.readReplies(5, respFrame);
    expectUnknownName(unknown!, "-ERR ", "user:42", "sn_plain");
    expectReplies([pong!, set!, get!], [simple("PONG"), OK, bulk("ok")]);
    expectUnknownName(upper!, "-ERR ", "R1", "sn_plain"); // names match exactly, case included
    client.close();
  });

  test("with hash_tag, an unknown tag is named in the error; an empty tag falls back to the whole key", async () => {
    const replies = await session(proxy.pools.sn_tagged!, [command("GET", "{r9}x"), command("GET", "{}r1"), command("PING")]);
    expectUnknownName(replies[0]!, "-ERR ", "r9", "sn_tagged");
    expectUnknownName(replies[1]!, "-ERR ", "{}r1", "sn_tagged");
    expectReplies([replies[2]!], [simple("PONG")]);
  });

  test("a multi-key request with one unknown name gets one error, and the connection keeps working", async () => {
    const replies = await session(proxy.pools.sn_tagged!, [command("MGET", "{r1}a", "{nope}b", "{r2}c"), command("PING")]);
    expectUnknownName(replies[0]!, "-ERR ", "nope", "sn_tagged");
    expectReplies([replies[1]!], [simple("PONG")]);
  });
});

describe.skipIf(TARGET !== "buncracker")("an ejected named server", () => {
  test("its keys get connection errors and are never sent to another server; forward_error counts them", async () => {
    const backends = await Promise.all([startRedis(), startRedis()]);
    const [named, other] = backends as [Backend, Backend];
    const yaml = poolYaml(
      "sn_eject",
      settings(`127.0.0.1:${freePort()}`, { redis: true, hash_tag: "{}", auto_eject_hosts: true, server_failure_limit: "1", server_retry_timeout: "60000" }),
      [serverLine(named.address, 1, "r1"), serverLine(other.address, 1, "r2")],
    );
    const proxy = await startProxy("buncracker", yaml, { args: ["-i", "100"] });
    const client = await RawClient.connect(proxy.pools.sn_eject!);
    try {
      await client.send(Buffer.concat([command("SET", "{r1}before", "1"), command("SET", "{r2}before", "1")]));
      expectReplies(await client.readReplies(2, respFrame), [OK, OK]);
      await named.kill();
      // Before and after the ejection alike: an error, never +OK from the other server.
      const replies: string[] = [];
      for (let i = 0; i < 6; i++) {
        await client.send(command("SET", `{r1}k${i}`, "v"));
        replies.push(latin1(await client.readReply(respFrame)));
      }
      for (const r of replies) expect(r).toMatch(/^-ERR Connection (refused|reset by peer)\r\n$/);
      expect((await redisKeys(other)).map(latin1).sort()).toEqual(["{r2}before"]);
      // The other name is served all along.
      await client.send(Buffer.concat([command("GET", "{r2}before"), command("PING")]));
      expectReplies(await client.readReplies(2, respFrame), [bulk("1"), simple("PONG")]);
      let seen: Record<string, any> = {};
      await waitFor(
        "server_ejects 1 and forward_error for the refused requests",
        async () => {
          seen = (await readStats(proxy.statsPort)).sn_eject as Record<string, any>;
          return seen.server_ejects === 1 && seen.forward_error >= replies.length - 1;
        },
        5000,
        () => JSON.stringify({ server_ejects: seen.server_ejects, forward_error: seen.forward_error }),
      );
    } finally {
      client.close();
      await proxy.stop();
      await stopAll(backends);
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("memcached pool", () => {
  let backends: Backend[] = [];
  let proxy: RunningProxy;

  beforeAll(async () => {
    backends = await Promise.all([startMemcached(), startMemcached(), startMemcached()]);
    proxy = await startProxy(
      "buncracker",
      poolYaml("sn_cache", settings(`127.0.0.1:${freePort()}`, { hash_tag: "{}" }), namedServers(backends)),
    );
  });

  afterAll(async () => {
    await proxy?.stop();
    await stopAll(backends);
  });

  /** The index of the only memcached backend holding each key (-1 when none or several). */
  async function placement(keys: string[]): Promise<number[]> {
    const found = await Promise.all(
      backends.map((b) => exchange(endpointOf(b), Buffer.concat(keys.map((k) => line("get", k))), keys.length, memcacheFrame)),
    );
    return keys.map((_, k) => {
      const holders = found.flatMap((replies, i) => (parseRetrieval(replies[k]!).length > 0 ? [i] : []));
      return holders.length === 1 ? holders[0]! : -1;
    });
  }

  test("keys land on the backend their tag names; a multi-get merges in key order", async () => {
    await flushBackends(backends);
    const keys = ["{r1}a", "{r2}b", "{r3}c", "{alias}d", "r3"];
    const pool = proxy.pools.sn_cache!;
    expectReplies(await session(pool, keys.map((k) => storage("set", k, `v${k}`)), memcacheFrame), keys.map(() => Buffer.from("STORED\r\n")));
    expect(await placement(keys)).toEqual([0, 1, 2, 0, 2]);
    const asked = ["{r3}c", "{r1}none", "{r1}a", "{alias}d", "{r2}b"];
    expectReplies(await session(pool, [line("get", ...asked)], memcacheFrame), [
      retrieval(asked.filter((k) => keys.includes(k)).map((k) => valueBlock(k, `v${k}`))),
    ]);
  });

  test("an unknown name gets SERVER_ERROR naming it and the pool, and the connection keeps working", async () => {
    const replies = await session(
      proxy.pools.sn_cache!,
      [line("get", "{zz}k"), storage("set", "nobody", "v"), storage("set", "{r2}after", "ok"), line("get", "{r2}after")],
      memcacheFrame,
    );
    expectUnknownName(replies[0]!, "SERVER_ERROR ", "zz", "sn_cache");
    expectUnknownName(replies[1]!, "SERVER_ERROR ", "nobody", "sn_cache");
    expectReplies(replies.slice(2), [Buffer.from("STORED\r\n"), retrieval([valueBlock("{r2}after", "ok")])]);
  });
});

describe("config checks (-t)", () => {
  const backendLike = ["127.0.0.1:30001", "127.0.0.1:30002"];
  const check = (servers: string[], extra: Record<string, string> = {}) =>
    testConfig(TARGET, poolYaml("snpool", { ...settings("127.0.0.1:30000", { redis: true }), ...extra }, servers));

  test.skipIf(TARGET !== "buncracker")("a pool of named servers is valid, names may share an address", async () => {
    const result = await check([serverLine(backendLike[0]!, 1, "a"), serverLine(backendLike[1]!, 1, "b"), serverLine(backendLike[0]!, 1, "c")]);
    expect(result.code).toBe(0);
    expect(result.stdout + result.stderr).toContain("syntax is ok");
  });

  test.skipIf(TARGET !== "buncracker")("another hash with distribution server_name is accepted (ignored, with a warning)", async () => {
    const result = await check([serverLine(backendLike[0]!, 1, "a")], { hash: "md5" });
    expect(result.code).toBe(0);
    expect(result.stdout + result.stderr).toContain("syntax is ok");
    const warnings = (result.stdout + result.stderr).split("\n").filter((l) => l.includes("ignored"));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/warning: .*proxy.yml:\d+: pool "snpool": hash "md5" is ignored with distribution server_name/);
  });

  test.skipIf(TARGET !== "buncracker")("a server without a name is an error naming the pool and the server", async () => {
    const result = await check([serverLine(backendLike[0]!, 1, "a"), serverLine(backendLike[1]!, 1)]);
    expect(result.code).toBe(1);
    const output = result.stdout + result.stderr;
    expect(output).toContain("snpool");
    expect(output).toContain(backendLike[1]!);
    expect(output).toContain("is invalid");
  });

  test.skipIf(TARGET !== "buncracker")("duplicate names are an error naming the pool and the name", async () => {
    const result = await check([serverLine(backendLike[0]!, 1, "twin"), serverLine(backendLike[1]!, 1, "twin")]);
    expect(result.code).toBe(1);
    const output = result.stdout + result.stderr;
    expect(output).toContain("snpool");
    expect(output).toContain("twin");
  });

  test.skipIf(TARGET !== "nutcracker")("nutcracker 0.5.0 rejects distribution server_name", async () => {
    const result = await check([serverLine(backendLike[0]!, 1, "a")], { hash: "md5" });
    expect(result.code).toBe(1);
    expect(result.stdout + result.stderr).toContain("is invalid");
  });
});
