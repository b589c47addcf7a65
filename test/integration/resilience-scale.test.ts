// Size and scale: 16 MB redis values through MSET/MGET with the smallest and largest -m,
// 1 MB memcached values (and a too-large one: the backend's own error), 10 KB redis keys, and
// 10,000 concurrent client connections, every one answered.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { expectReplies } from "../helpers/assertions.ts";
import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { redisCall, stopAll } from "../helpers/direct.ts";
import { eventually, hardFileLimit, limitedArgv, openFds, readStats, startLimitedProxy } from "../helpers/fault.ts";
import { placement } from "../helpers/fault-ring.ts";
import { line, memcacheFrame, retrieval, storage, valueBlock } from "../helpers/memcache.ts";
import { freePort } from "../helpers/ports.ts";
import { spawnManaged } from "../helpers/process.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { makeRng, spread } from "../helpers/random.ts";
import { array, bulk, command, integer, OK, respFrame } from "../helpers/resp.ts";

const MB = 1 << 20;
const BUN = join(import.meta.dir, "..", "..", "node_modules", ".bin", "bun");

let redis: Backend[] = [];
let memcached: Backend[] = [];
beforeAll(async () => {
  [redis, memcached] = await Promise.all([
    Promise.all([startRedis(), startRedis()]),
    Promise.all([startMemcached({ maxItemSize: "2m", memoryMb: 128 }), startMemcached({ maxItemSize: "2m", memoryMb: 128 })]),
  ]);
});
afterAll(async () => {
  await stopAll([...redis, ...memcached]);
});

/** Keys `prefix:N` until there is one per server of `addrs` (as the ring places them). */
function oneKeyPerServer(addrs: string[], prefix: string): string[] {
  const keys: string[] = [];
  for (let i = 0; keys.length < addrs.length; i++) {
    const k = `${prefix}:${spread(i)}`;
    const at = placement(addrs, [k])[0]!;
    if (addrs.indexOf(at) === keys.length) keys.push(k);
  }
  return keys;
}

async function session(endpoint: Endpoint, requests: Buffer[], framer = respFrame, timeoutMs = 60_000): Promise<Buffer[]> {
  const c = await RawClient.connect(endpoint);
  try {
    await c.send(Buffer.concat(requests));
    return await c.readReplies(requests.length, framer, timeoutMs);
  } finally {
    c.close();
  }
}

describe("16 MB redis values through MSET/MGET", () => {
  for (const mbuf of [512, 65536]) {
    test(`-m ${mbuf}`, async () => {
      const addrs = redis.map((r) => r.address);
      const proxy = await startProxy(TARGET, poolYaml("big", { listen: `127.0.0.1:${freePort()}`, redis: true }, addrs.map((a) => serverLine(a))), { mbufSize: mbuf });
      try {
        const rng = makeRng(mbuf);
        // One key on each server: the MSET and the MGET are split, and the pieces merged.
        const keys = oneKeyPerServer(addrs, `big${mbuf}`);
        const values = keys.map(() => rng.bytes(16 * MB));
        const mset = command("MSET", ...keys.flatMap((k, i) => [k, values[i]!]));
        const replies = await session(proxy.pools.big!, [mset, command("MGET", ...keys), command("GET", keys[1]!), command("STRLEN", keys[0]!)]);
        expectReplies(replies, [OK, array(values.map((v) => bulk(v))), bulk(values[1]!), integer(16 * MB)]);
        // Each value is stored whole on its own server.
        for (const [i, k] of keys.entries()) expect(await redisCall(redis[i]!, "STRLEN", k)).toBe(16 * MB);
      } finally {
        await proxy.stop();
      }
    }, 120_000);
  }
});

test("1 MB memcached values, split multi-get; a value over the item size gets the backend's error", async () => {
  const addrs = memcached.map((m) => m.address);
  const proxy = await startProxy(TARGET, poolYaml("mc", { listen: `127.0.0.1:${freePort()}` }, addrs.map((a) => serverLine(a))));
  try {
    const rng = makeRng(1);
    const keys = oneKeyPerServer(addrs, "mbig");
    const values = keys.map(() => rng.bytes(MB));
    const stored = Buffer.from("STORED\r\n");
    const replies = await session(proxy.pools.mc!, [...keys.map((k, i) => storage("set", k, values[i]!)), line("get", ...keys), line("get", keys[0]!)], memcacheFrame);
    expectReplies(replies, [stored, stored, retrieval(keys.map((k, i) => valueBlock(k, values[i]!))), retrieval([valueBlock(keys[0]!, values[0]!)])]);
    // 3 MB is over memcached's -I 2m: its own error (and, as memcached does, the old value is
    // dropped), and the connection goes on.
    const tooBig = await session(proxy.pools.mc!, [storage("set", keys[0]!, rng.bytes(3 * MB)), line("get", keys[0]!), line("get", keys[1]!)], memcacheFrame);
    expectReplies(tooBig, [Buffer.from("SERVER_ERROR object too large for cache\r\n"), Buffer.from("END\r\n"), retrieval([valueBlock(keys[1]!, values[1]!)])]);
  } finally {
    await proxy.stop();
  }
}, 60_000);

test("10 KB redis keys: stored on the server the ring picks, through SET, GET, MGET and DEL", async () => {
  const addrs = redis.map((r) => r.address);
  const proxy = await startProxy(TARGET, poolYaml("keys", { listen: `127.0.0.1:${freePort()}`, redis: true }, addrs.map((a) => serverLine(a))));
  try {
    const rng = makeRng(10);
    const keys = Array.from({ length: 20 }, (_, i) => Buffer.concat([Buffer.from(`long${i}:`), Buffer.from(rng.bytes(5 * 1024).toString("hex"))]).subarray(0, 10 * 1024));
    const where = placement(addrs, keys);
    const replies = await session(proxy.pools.keys!, [
      ...keys.map((k, i) => command("SET", k, `v${i}`)),
      command("MGET", ...keys),
      command("GET", keys[3]!),
      command("DEL", ...keys.slice(0, 10)),
    ]);
    expectReplies(replies, [...keys.map(() => OK), array(keys.map((_, i) => bulk(`v${i}`))), bulk("v3"), integer(10)]);
    for (const [i, k] of keys.entries()) {
      const holder = redis[addrs.indexOf(where[i]!)]!;
      expect(await redisCall(holder, "EXISTS", k)).toBe(i < 10 ? 0 : 1);
    }
  } finally {
    await proxy.stop();
  }
}, 60_000);

test("10,000 concurrent client connections, every one answered", async () => {
  const CLIENTS = 10_000;
  const nofile = Math.min(hardFileLimit(), 65536);
  if (nofile < CLIENTS + 1000) throw new Error(`the hard open-file limit is ${nofile}: this test needs ${CLIENTS + 1000}`);
  const proxy: RunningProxy = await startLimitedProxy(TARGET, poolYaml("crowd", { listen: `127.0.0.1:${freePort()}`, redis: true }, redis.map((r) => serverLine(r.address))), nofile, ["-i", "100"]);
  try {
    const { host, port } = proxy.pools.crowd as { host: string; port: number };
    const crowd = spawnManaged(limitedArgv(nofile, [BUN, join(import.meta.dir, "..", "helpers", "fault-crowd.ts"), host, String(port), String(CLIENTS), "500", "3000"]));
    await eventually(() => crowd.stdout().includes("\n") || !crowd.running, 90_000, "the crowd reports");
    const report = JSON.parse(crowd.stdout().split("\n")[0]!) as { connected: number; answered: number; failed: number; samples: string[] };
    expect(report).toEqual({ connected: CLIENTS, answered: CLIENTS, failed: 0, samples: [] });
    // While the crowd holds its connections, the proxy holds every one of them at once.
    expect(openFds(proxy.pid)).toBeGreaterThanOrEqual(CLIENTS);
    await eventually(
      async () => ((await readStats(proxy.statsPort))?.crowd as Record<string, number>).client_connections === CLIENTS,
      2000,
      `stats client_connections ${CLIENTS}`,
    );
    expect(await crowd.exited).toBe(0);
  } finally {
    await proxy.stop();
  }
  for (const r of redis) expect(await redisCall(r, "PING")).toBe("PONG");
}, 120_000);
