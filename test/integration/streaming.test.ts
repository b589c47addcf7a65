// Large payloads: replies are passed on as they arrive (ServerConn streaming, Rsp.opaque) when
// their client waits for them next, and gathered whole otherwise; what a socket does not take is
// held as views, never copied (HeldViews). Either way the peer must get exactly the sent bytes,
// in order; a reply cut short by its server cuts the client's connection instead of splicing an
// error reply into the middle of it.

import { describe, expect, test } from "bun:test";
import { expectReplies } from "../helpers/assertions.ts";
import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine, type Setting } from "../helpers/config.ts";
import { testDeliberate } from "../helpers/deliberate.ts";
import { redisCall, redisHolders } from "../helpers/direct.ts";
import { eventually } from "../helpers/fault.ts";
import { Flood } from "../helpers/fault-flood.ts";
import { readStats, serverOf } from "../helpers/ops.ts";
import { line, memcacheFrame, retrieval, storage, valueBlock } from "../helpers/memcache.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET } from "../helpers/proxy.ts";
import { makeRng } from "../helpers/random.ts";
import { startRelay, type Relay } from "../helpers/relay.ts";
import { bulk, command, integer, OK, respFrame } from "../helpers/resp.ts";
import { stopAfterEach } from "../helpers/track.ts";

const track = stopAfterEach();

const pool = (name: string, redis: boolean, servers: Backend[], settings: Record<string, Setting> = {}): string =>
  poolYaml(name, { listen: `127.0.0.1:${freePort()}`, redis, ...settings }, servers.map((s) => serverLine(s.address)));

/** A redis pool whose one server is `relay` (in front of the real one). */
const relayedPool = (relay: Relay, settings: Record<string, Setting>): string =>
  poolYaml("r", { listen: `127.0.0.1:${freePort()}`, redis: true, ...settings }, [serverLine(relay.address)]);

/** Sends GET huge (128 MB) on c after its server connection is open (a GET small first), with
 *  the relay letting through only the first 16 KB of what redis sends on it from then on: to
 *  the proxy, the server stopped in the middle of the reply. (Freezing redis once the first
 *  bytes arrived raced with it: on a busy machine the whole reply could be through first.) */
async function stopsMidReply(c: RawClient, relay: Relay): Promise<void> {
  await c.send(command("GET", "small"));
  expect(await c.readReply(respFrame)).toEqual(bulk("ok"));
  relay.muteAfter(16 << 10);
  await c.send(command("GET", "huge"));
}

/** Stats every 100 ms, so a test can wait for what the proxy has received from a server. */
const STATS_100MS = { args: ["-i", "100"] };

/** Waits until the proxy's stats show `server` of `pool` sent at least `bytes` of replies. */
async function serverSent(statsPort: number, pool: string, server: Backend, bytes: number): Promise<void> {
  let seen = 0;
  await eventually(
    async () => {
      seen = serverOf(await readStats(statsPort), pool, server.address).response_bytes as number;
      return seen >= bytes;
    },
    10_000,
    `${bytes} reply bytes from ${server.address} at the proxy (${seen} so far)`,
  );
}

/** Pseudo-random bytes, so a reordered or spliced chunk cannot match. */
const value = (size: number, seed: number): Buffer => makeRng(seed).bytes(size);

/** A key of `prefix` that the pool puts on `backend` (of `all`). */
async function keyOn(prefix: string, backend: Backend, all: Backend[], client: RawClient): Promise<string> {
  for (let i = 0; ; i++) {
    const key = `${prefix}-${i}`;
    expect(await client.send(command("SET", key, "probe")).then(() => client.readReply(respFrame))).toEqual(OK);
    const holders = await redisHolders(all, key);
    if (all[holders[0]!] === backend) return key;
  }
}

describe("redis", () => {
  test("large replies, pipelined by clients sharing one server connection, arrive whole and in order", async () => {
    const servers = await Promise.all([track(startRedis()), track(startRedis())]);
    const proxy = await track(startProxy(TARGET, pool("r", true, servers, { server_connections: 1 })));
    const sizes = [40_000, 3, 700_000, 0, 65_536, 2_500_000, 100];
    const writer = await RawClient.connect(proxy.pools.r!);
    const keys = sizes.map((_, i) => `stream-${i}`);
    const values = sizes.map((n, i) => value(n, i));
    await writer.send(Buffer.concat(keys.map((k, i) => command("SET", k, values[i]!))));
    expectReplies(await writer.readReplies(keys.length, respFrame), keys.map(() => OK));
    writer.close();

    // Each client asks for every value in its own order, with a multi-key MGET in between.
    const clients = await Promise.all([0, 1, 2, 3].map(() => RawClient.connect(proxy.pools.r!)));
    const orders = clients.map((_, c) => keys.map((_, i) => (i * (c + 3)) % keys.length));
    const mget = command("MGET", ...keys);
    const mgetReply = Buffer.concat([Buffer.from(`*${keys.length}\r\n`), ...values.map((v) => bulk(v))]);
    await Promise.all(
      clients.map((c, ci) => c.send(Buffer.concat([...orders[ci]!.map((i) => command("GET", keys[i]!)), mget]))),
    );
    const replies = await Promise.all(clients.map((c) => c.readReplies(keys.length + 1, respFrame, 30_000)));
    for (const [ci, got] of replies.entries()) {
      expectReplies(got, [...orders[ci]!.map((i) => bulk(values[i]!)), mgetReply]);
    }
    for (const c of clients) c.close();
  }, 60_000);

  test("a large reply behind a slower one waits for it, then both arrive in order", async () => {
    const servers = await Promise.all([track(startRedis()), track(startRedis())]);
    const [slow, fast] = servers as [Backend, Backend];
    const proxy = await track(startProxy(TARGET, pool("r", true, servers, { server_connections: 1 }), STATS_100MS));
    const c = await RawClient.connect(proxy.pools.r!);
    const small = await keyOn("small", slow, servers, c);
    const large = await keyOn("large", fast, servers, c);
    const big = value(1_000_000, 7);
    await c.send(command("SET", large, big));
    expect(await c.readReply(respFrame)).toEqual(OK);

    await slow.process.freeze();
    try {
      const before = serverOf(await readStats(proxy.statsPort), "r", fast.address).response_bytes as number;
      await c.send(Buffer.concat([command("GET", small), command("GET", large)]));
      // The large reply is complete at the proxy, and must not be written before the first one.
      await serverSent(proxy.statsPort, "r", fast, before + big.length);
      expect(c.buffered.length).toBe(0);
    } finally {
      slow.process.signal("SIGCONT");
    }
    expectReplies(await c.readReplies(2, respFrame), [bulk("probe"), bulk(big)]);
    c.close();
  }, 30_000);

  test("a client that stops reading large replies gets every one, in order, once it reads again", async () => {
    const r = await track(startRedis());
    const proxy = await track(startProxy(TARGET, pool("r", true, [r]), STATS_100MS));
    const big = value(200_000, 11);
    await redisCall(r, "SET", "big", big);
    const flood = await Flood.connect(proxy.pools.r!, bulk(big));
    flood.stopReading();
    // 40 MB of replies wait in the proxy (the client reads nothing), then are read in one go:
    // the proxy takes all 200 requests without the client reading (no stall), and has every
    // reply from redis before the client reads again.
    const stalled = await flood.pushUntilStalled(() => command("GET", "big"), 2000, 200 * command("GET", "big").length);
    expect(stalled).toBe(false);
    await flood.finish();
    await serverSent(proxy.statsPort, "r", r, 200 * bulk(big).length);
    expect(flood.replies).toBe(0);
    flood.startReading();
    await flood.readReplies(200, 30_000);
    expect(flood.mismatch).toBeNull();
    expect(flood.replies).toBe(200);
    flood.close();
  }, 60_000);

  test("large requests to a backend that stops reading are all delivered, in order, once it reads again", async () => {
    const r = await track(startRedis());
    const proxy = await track(startProxy(TARGET, pool("r", true, [r], { server_connections: 1 })));
    const values = Array.from({ length: 40 }, (_, i) => value(100_000 + i * 1000, 200 + i));
    const clients = await Promise.all([0, 1].map(() => RawClient.connect(proxy.pools.r!)));
    await redisCall(r, "PING");
    await r.process.freeze();
    try {
      // Both clients' large SETs, each followed by a small APPEND whose reply (the new length)
      // tells its place, queue up on the one server connection while redis reads nothing.
      // Every byte of both clients' requests is taken before redis reads again.
      await Promise.all(
        clients.map((c, ci) => c.send(Buffer.concat(values.flatMap((v, i) => [command("SET", `held:${ci}:${i}`, v), command("APPEND", `order:${ci}`, `${i},`)])))),
      );
    } finally {
      r.process.signal("SIGCONT");
    }
    const log = values.map((_, i) => `${i},`);
    const lengths = log.map((_, i) => log.slice(0, i + 1).join("").length);
    for (const c of clients) {
      expectReplies(await c.readReplies(2 * values.length, respFrame, 30_000), lengths.flatMap((n) => [OK, integer(n)]));
    }
    for (const ci of [0, 1]) {
      expect(await redisCall(r, "GET", `order:${ci}`)).toEqual(Buffer.from(log.join("")));
      for (const [i, v] of values.entries()) expect(await redisCall(r, "GET", `held:${ci}:${i}`)).toEqual(v);
    }
    for (const c of clients) c.close();
  }, 60_000);

  testDeliberate("a server that stops mid-reply: the part already sent stays, then the client is disconnected", {
    buncracker: async () => {
      const r = await track(startRedis());
      const size = 128 << 20;
      // A 128 MB string made in place (no transfer): SETRANGE pads with zero bytes.
      await redisCall(r, "SETRANGE", "huge", String(size - 1), "x");
      await redisCall(r, "SET", "small", "ok");
      const relay = startRelay(r.host, r.port);
      try {
        const proxy = await track(startProxy(TARGET, relayedPool(relay, { timeout: 1000 })));
        const c = await RawClient.connect(proxy.pools.r!);
        await stopsMidReply(c, relay);
        // Streaming: the first bytes reached the client while the backend was still writing.
        await eventually(() => c.buffered.length > 0, 10_000, "the start of the reply");
        await eventually(() => c.closed, 10_000, "the client disconnected after the timeout");
        const got = c.buffered;
        expect(got.subarray(0, 12).toString("latin1")).toBe(`$${size}\r\n`);
        expect(got.length).toBeLessThan(size);
        // Other clients are unaffected (on a new server connection, relayed whole).
        const other = await RawClient.connect(proxy.pools.r!);
        await other.send(command("GET", "small"));
        expect(await other.readReply(respFrame)).toEqual(bulk("ok"));
        other.close();
      } finally {
        relay.stop();
      }
    },
  }, 60_000);

  testDeliberate("a server that fails mid-reply: other clients' requests queued behind it each get an error reply", {
    buncracker: async () => {
      const r = await track(startRedis());
      const size = 128 << 20;
      await redisCall(r, "SETRANGE", "huge", String(size - 1), "x");
      await redisCall(r, "SET", "small", "ok");
      const relay = startRelay(r.host, r.port);
      try {
        const proxy = await track(startProxy(TARGET, relayedPool(relay, { timeout: 1000, server_connections: 1 })));
        const streamed = await RawClient.connect(proxy.pools.r!);
        await stopsMidReply(streamed, relay);
        await eventually(() => streamed.buffered.length > 0, 10_000, "the start of the reply");
        // Two other clients' requests go on the same server connection, behind the large reply.
        const others = await Promise.all([0, 1].map(() => RawClient.connect(proxy.pools.r!)));
        await Promise.all(others.map((c) => c.send(Buffer.concat([command("GET", "small"), command("EXISTS", "small")]))));
        await eventually(() => streamed.closed, 10_000, "the streamed client disconnected after the timeout");
        // Each queued request gets one error reply, in order; those clients stay connected.
        for (const c of others) {
          const replies = (await c.readReplies(2, respFrame)).map((b) => b.toString("latin1"));
          expect(replies).toEqual(["-ERR Connection timed out\r\n", "-ERR Connection timed out\r\n"]);
          expect(c.closed).toBe(false);
        }
        // On a new server connection, relayed whole.
        for (const c of others) {
          await c.send(command("GET", "small"));
          expect(await c.readReply(respFrame)).toEqual(bulk("ok"));
          c.close();
        }
      } finally {
        relay.stop();
      }
    },
  }, 60_000);
});

describe("memcached", () => {
  test("large values, single and multi-key gets from one server, pipelined by several clients", async () => {
    const m = await track(startMemcached({ maxItemSize: "4m", memoryMb: 256 }));
    const proxy = await track(startProxy(TARGET, pool("m", false, [m], { server_connections: 1 })));
    const sizes = [90_000, 1, 1_500_000, 0, 300_000];
    const keys = sizes.map((_, i) => `mstream-${i}`);
    const values = sizes.map((n, i) => value(n, 100 + i));
    const writer = await RawClient.connect(proxy.pools.m!);
    await writer.send(Buffer.concat(keys.map((k, i) => storage("set", k, values[i]!))));
    expectReplies(await writer.readReplies(keys.length, memcacheFrame), keys.map(() => Buffer.from("STORED\r\n")));
    writer.close();

    const clients = await Promise.all([0, 1, 2].map(() => RawClient.connect(proxy.pools.m!)));
    const requests = [...keys.map((k) => line("get", k)), line("get", ...keys), line("get", "missing")];
    const expected = [
      ...keys.map((k, i) => retrieval([valueBlock(k, values[i]!)])),
      retrieval(keys.map((k, i) => valueBlock(k, values[i]!))),
      retrieval([]),
    ];
    await Promise.all(clients.map((c) => c.send(Buffer.concat(requests))));
    for (const c of clients) expectReplies(await c.readReplies(requests.length, memcacheFrame, 30_000), expected);
    for (const c of clients) c.close();
  }, 60_000);
});
