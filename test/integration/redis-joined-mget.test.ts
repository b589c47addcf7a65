// MGET fragments joined per server connection and loop turn (coalesce_gets in a redis pool,
// proto/redis/upstream.ts), against real redis-servers: every request gets its own keys' values
// in its order (RESP2 and RESP3), the servers run fewer MGETs than there are fragments (and one
// per fragment with coalesce_gets: false), and an error to a joined MGET (-NOPERM for a key the
// pool's ACL user may not read) reaches only the request that asked for that key.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { redisCall, stopAll } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { spread } from "../helpers/random.ts";
import { placer } from "../helpers/reload.ts";
import { command, decode, decode3, respFrame, RespError, type RespValue } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

let backends: Backend[] = [];
let proxy: RunningProxy;
let joined: Endpoint;
let separate: Endpoint;
/** Keys (all readable under the ACL of the NOPERM test: `k:*`) on the first and the second server. */
const onFirst: string[] = [];
const onSecond: string[] = [];
/** A key on the second server outside `k:*`. */
let secret = "";

const value = (key: string): string => `value of ${key}`;

beforeAll(async () => {
  backends = await Promise.all([startRedis(), startRedis()]);
  const servers = backends.map((b) => serverLine(b.address));
  const yaml =
    poolYaml("joined", { listen: `127.0.0.1:${freePort()}`, redis: true }, servers) +
    poolYaml("separate", { listen: `127.0.0.1:${freePort()}`, redis: true, coalesce_gets: false }, servers);
  proxy = await startProxy(TARGET, yaml);
  joined = proxy.pools.joined!;
  separate = proxy.pools.separate!;
  const serverOf = placer(yaml, "joined");
  const first = backends[0]!.address;
  for (let i = 0; onFirst.length < 30 || onSecond.length < 30; i++) {
    const key = `k:${spread(i)}`;
    (serverOf(key) === first ? onFirst : onSecond).push(key);
  }
  for (let i = 0; secret === ""; i++) if (serverOf(`secret:${spread(i)}`) !== first) secret = `secret:${spread(i)}`;
  // Every other key of each list is set; the rest are misses.
  const client = await RawClient.connect(joined);
  try {
    const sets = [...onFirst, ...onSecond, secret].filter((_, i) => i % 2 === 0).map((k) => command("SET", k, value(k)));
    await client.send(Buffer.concat(sets));
    await client.readReplies(sets.length, respFrame);
  } finally {
    client.close();
  }
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll(backends);
});

/** What redis holds for key: its value, or null for a miss. */
async function stored(key: string): Promise<string | null> {
  const v = await redisCall(backends[onFirst.includes(key) ? 0 : 1]!, "GET", key);
  return v === null ? null : (v as Buffer).toString();
}

/** MGETs (keys of both servers each) sent in one write, so that they reach the proxy together. */
function mgets(count: number): string[][] {
  return Array.from({ length: count }, (_, i) => ["MGET", onFirst[i % 30]!, onSecond[i % 30]!, onSecond[(i + 7) % 30]!, onFirst[(i + 3) % 30]!]);
}

async function send(endpoint: Endpoint, requests: string[][], hello3 = false): Promise<Buffer[]> {
  const client = await RawClient.connect(endpoint);
  try {
    if (hello3) {
      await client.send(command("HELLO", "3"));
      await client.readReplies(1, respFrame);
    }
    await client.send(Buffer.concat(requests.map((r) => command(...r))));
    return await client.readReplies(requests.length, respFrame);
  } finally {
    client.close();
  }
}

/** MGET calls the servers ran since their stats were reset. */
async function mgetCalls(): Promise<number> {
  let calls = 0;
  for (const b of backends) {
    const info = ((await redisCall(b, "INFO", "commandstats")) as Buffer).toString();
    calls += Number(/cmdstat_mget:calls=(\d+)/.exec(info)?.[1] ?? 0);
  }
  return calls;
}

/** `count` MGETs in one write through `endpoint`, each reply checked against what redis holds;
 *  returns the MGET calls the servers ran for them. */
async function mgetsThrough(endpoint: Endpoint, count: number): Promise<number> {
  const requests = mgets(count);
  const expected = await Promise.all(requests.map((r) => Promise.all(r.slice(1).map(stored))));
  for (const b of backends) await redisCall(b, "CONFIG", "RESETSTAT");
  const replies = (await send(endpoint, requests)).map(decode);
  expect(replies.map((r) => (r as (Buffer | null)[]).map((v) => (v === null ? null : v.toString())))).toEqual(expected);
  return mgetCalls();
}

describe("MGET fragments joined per server (coalesce_gets)", () => {
  test("each request gets its own keys' values in order, from fewer MGETs than fragments", async () => {
    // 20 requests of keys on both servers: 40 fragments, joined into a few MGETs.
    const calls = await mgetsThrough(joined, 20);
    expect(calls).toBeGreaterThan(0);
    expect(calls).toBeLessThanOrEqual(4);
  });

  test("with coalesce_gets: false every fragment is an MGET of its own", async () => {
    expect(await mgetsThrough(separate, 20)).toBe(40);
  });

  test("a RESP3 client's joined MGETs: its values and nulls in RESP3", async () => {
    const requests = mgets(12);
    const expected = await Promise.all(requests.map((r) => Promise.all(r.slice(1).map(stored))));
    const replies = (await send(joined, requests, true)).map(decode3);
    const values = replies.map((r) => {
      if (r.t !== "array" || r.v === null) throw new Error(`not an array: ${JSON.stringify(r)}`);
      return r.v.map((v) => {
        if (v.t === "null") return null;
        if (v.t !== "bulk") throw new Error(`not a value: ${JSON.stringify(v)}`);
        return v.v;
      });
    });
    expect(values).toEqual(expected);
    expect(values.flat()).toContain(null);
  });

  test("an error to a joined MGET reaches only the request that asked for the key (-NOPERM)", async () => {
    // The pool's connections log in as redis's default user: it may now read k:* only.
    for (const b of backends) await redisCall(b, "ACL", "SETUSER", "default", "resetkeys", "~k:*");
    try {
      const requests = [
        ["MGET", onFirst[0]!, onSecond[0]!],
        ["MGET", onFirst[1]!, secret],
        ["MGET", onFirst[2]!, onSecond[2]!],
      ];
      const replies: RespValue[] = (await send(joined, requests)).map(decode);
      const text = (r: RespValue): unknown => (Array.isArray(r) ? r.map((v) => (v === null ? null : (v as Buffer).toString())) : r);
      expect(text(replies[0]!)).toEqual([await stored(onFirst[0]!), await stored(onSecond[0]!)]);
      expect(replies[1]).toBeInstanceOf(RespError);
      expect((replies[1] as RespError).message).toStartWith("NOPERM");
      expect(text(replies[2]!)).toEqual([await stored(onFirst[2]!), await stored(onSecond[2]!)]);
    } finally {
      for (const b of backends) await redisCall(b, "ACL", "SETUSER", "default", "allkeys");
    }
  });
});
