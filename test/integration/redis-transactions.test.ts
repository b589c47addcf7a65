// Transactions through a redis pool of three real redis-servers (issue 17): MULTI/EXEC on keys
// that share a hash tag run on their server on a connection of the client's own; WATCH works
// across other clients' writes; a transaction over two servers is refused (-CROSSSLOT, then
// -EXECABORT, nothing written); ioredis's multi(); scripts with keys on one server run, on
// several get a clear error; the pinned connection closes with its client.

import { afterAll, beforeAll, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import Redis from "ioredis";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { spread } from "../helpers/random.ts";
import { clientList } from "../helpers/client-list.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { flushBackends, stopAll } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { eventually, placer } from "../helpers/reload.ts";
import { command, decode, RespError, respFrame, type RespValue } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

let backends: Backend[] = [];
let proxy: RunningProxy;
let pool: Endpoint;
/** Two hash tags whose keys live on different servers. */
let tagA: string;
let tagB: string;

beforeAll(async () => {
  backends = await Promise.all([startRedis(), startRedis(), startRedis()]);
  const yaml = poolYaml("tx", { listen: `127.0.0.1:${freePort()}`, redis: true, hash_tag: "{}" }, backends.map((b) => serverLine(b.address)));
  proxy = await startProxy(TARGET, yaml);
  pool = proxy.pools.tx!;
  const serverOf = placer(yaml, "tx");
  // Spread tags: fnv1a_64 places texts that differ only in their last digits close together, so
  // {user2}..{user101} all landed on {user1}'s server for 28 of 300 random port triples.
  const tags = Array.from({ length: 100 }, (_, i) => `{user:${spread(i)}}`);
  tagA = tags[0]!;
  const other = tags.find((t) => serverOf(t) !== serverOf(tagA));
  if (other === undefined) throw new Error(`no tag of 100 lands on another server than ${tagA}`);
  tagB = other;
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll(backends);
});

beforeEach(async () => {
  await flushBackends(backends);
});

/** Sends the requests one after another on one connection; every reply decoded. */
async function session(client: RawClient, ...requests: string[][]): Promise<RespValue[]> {
  await client.send(Buffer.concat(requests.map((r) => command(...r))));
  return (await client.readReplies(requests.length, respFrame)).map(decode);
}

async function run(...requests: string[][]): Promise<RespValue[]> {
  const client = await RawClient.connect(pool);
  try {
    return await session(client, ...requests);
  } finally {
    client.close();
  }
}

/** Connections in a transaction on the servers (CLIENT LIST flags x: in MULTI). */
const inMulti = async (): Promise<number> =>
  (await Promise.all(backends.map(async (b) => (await clientList(b)).filter((c) => (c["flags"] ?? "").includes("x")).length))).reduce((a, b) => a + b, 0);

describe.skipIf(TARGET !== "buncracker")("transactions", () => {
  test("MULTI ... EXEC on tagged keys", async () => {
    const replies = await run(["MULTI"], ["SET", `${tagA}a`, "1"], ["INCR", `${tagA}b`], ["PING"], ["GET", `${tagA}a`], ["EXEC"], ["GET", `${tagA}b`]);
    expect(replies).toEqual(["OK", "QUEUED", "QUEUED", "QUEUED", "QUEUED", ["OK", 1, "PONG", Buffer.from("1")], Buffer.from("1")]);
  });

  test("DISCARD: nothing is written", async () => {
    expect(await run(["MULTI"], ["SET", `${tagA}a`, "1"], ["DISCARD"], ["GET", `${tagA}a`])).toEqual(["OK", "QUEUED", "OK", null]);
  });

  test("WATCH: another client's write makes EXEC return nil; untouched, EXEC runs", async () => {
    const client = await RawClient.connect(pool);
    expect(await session(client, ["WATCH", `${tagA}w`], ["GET", `${tagA}w`])).toEqual(["OK", null]);
    expect(await run(["SET", `${tagA}w`, "other"])).toEqual(["OK"]);
    expect(await session(client, ["MULTI"], ["SET", `${tagA}w`, "mine"], ["EXEC"])).toEqual(["OK", "QUEUED", null]);
    expect(await session(client, ["WATCH", `${tagA}w`], ["MULTI"], ["SET", `${tagA}w`, "mine"], ["EXEC"], ["GET", `${tagA}w`])).toEqual(["OK", "OK", "QUEUED", ["OK"], Buffer.from("mine")]);
    client.close();
  });

  test("a transaction over two servers is refused: -CROSSSLOT, then -EXECABORT, nothing written", async () => {
    const replies = await run(["MULTI"], ["SET", `${tagA}a`, "1"], ["SET", `${tagB}b`, "2"], ["EXEC"], ["GET", `${tagA}a`], ["GET", `${tagB}b`]);
    expect(replies[0]).toBe("OK");
    expect(replies[1]).toBe("QUEUED");
    expect((replies[2] as RespError).message).toStartWith("CROSSSLOT ");
    expect((replies[3] as RespError).message).toStartWith("EXECABORT ");
    expect(replies.slice(4)).toEqual([null, null]);
    const watch = await run(["WATCH", `${tagA}a`, `${tagB}b`]);
    expect((watch[0] as RespError).message).toStartWith("CROSSSLOT ");
  });

  test("many clients' transactions at once, each on its own tag", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => run(["MULTI"], ["INCR", `{c${i}}n`], ["INCR", `{c${i}}n`], ["EXEC"])),
    );
    for (const r of results) expect(r).toEqual(["OK", "QUEUED", "QUEUED", [1, 2]]);
  });

  test("ioredis multi()", async () => {
    const client = new Redis({ host: "127.0.0.1", port: (pool as { port: number }).port, lazyConnect: true });
    try {
      await client.connect();
      const result = await client.multi().set(`${tagA}x`, "1").incr(`${tagA}x`).get(`${tagA}x`).exec();
      expect(result).toEqual([[null, "OK"], [null, 2], [null, "2"]]);
    } finally {
      client.disconnect();
    }
  });

  test("EVAL with keys on one server runs; with keys on several, a clear error", async () => {
    const script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('SET', KEYS[2], ARGV[1])";
    expect(await run(["EVAL", script, "2", `${tagA}1`, `${tagA}2`, "v"])).toEqual(["OK"]);
    const [cross] = await run(["EVAL", script, "2", `${tagA}1`, `${tagB}2`, "v"]);
    expect((cross as RespError).message).toStartWith("CROSSSLOT ");
  });

  test("RESET in MULTI (and after WATCH): +RESET, nothing written, the pinned connection goes, the client goes on as a new one", async () => {
    const client = await RawClient.connect(pool);
    try {
      const replies = await session(client, ["WATCH", `${tagA}w`], ["MULTI"], ["SET", `${tagA}a`, "1"], ["RESET"], ["EXEC"], ["GET", `${tagA}a`], ["MULTI"], ["INCR", `${tagA}n`], ["EXEC"]);
      expect(replies.slice(0, 4)).toEqual(["OK", "OK", "QUEUED", "RESET"]);
      expect((replies[4] as RespError).message).toBe("ERR EXEC without MULTI");
      expect(replies.slice(5)).toEqual([null, "OK", "QUEUED", [1]]);
      await eventually("the pinned connection released", async () => ((await inMulti()) === 0 ? true : undefined));
      // The WATCH went with it: another client's write does not abort a new transaction.
      expect(await run(["SET", `${tagA}w`, "other"])).toEqual(["OK"]);
      expect(await session(client, ["MULTI"], ["SET", `${tagA}w`, "mine"], ["EXEC"])).toEqual(["OK", "QUEUED", ["OK"]]);
    } finally {
      client.close();
    }
  });

  test("a client that disconnects in MULTI leaves no transaction behind on the server", async () => {
    const client = await RawClient.connect(pool);
    await session(client, ["MULTI"], ["SET", `${tagA}a`, "1"]);
    expect(await inMulti()).toBe(1);
    client.close();
    await eventually("the pinned connection closed", async () => ((await inMulti()) === 0 ? true : undefined));
    expect(await run(["GET", `${tagA}a`])).toEqual([null]);
  });
});
