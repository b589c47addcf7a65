// Large requests stream: a request parsed but for the rest of its last data block (a redis SET's
// value, a memcached storage command's data) goes to its server as its bytes arrive, instead of
// being gathered whole first (ClientConn.streamOn, Req.stream). The server must get exactly the
// sent bytes, other clients' requests on the same server connection wait behind the stream and
// keep their order, and a stream that cannot be finished (its client left, or broke the
// framing) never reaches the server whole: the connection is closed once the requests before
// it are answered, and the requests behind it go on another connection.

import { describe, expect, test } from "bun:test";
import { expectReplies } from "../helpers/assertions.ts";
import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import { exchange, RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine, type Setting } from "../helpers/config.ts";
import { endpointOf, redisCall } from "../helpers/direct.ts";
import { eventually } from "../helpers/fault.ts";
import { line, memcacheFrame, retrieval, storage, valueBlock } from "../helpers/memcache.ts";
import { poolOf, readStats } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET } from "../helpers/proxy.ts";
import { makeRng } from "../helpers/random.ts";
import { bulk, command, integer, OK, respFrame } from "../helpers/resp.ts";
import { stopAfterEach } from "../helpers/track.ts";

const track = stopAfterEach();

const pool = (name: string, redis: boolean, servers: Backend[], settings: Record<string, Setting> = {}): string =>
  poolYaml(name, { listen: `127.0.0.1:${freePort()}`, redis, ...settings }, servers.map((s) => serverLine(s.address)));

/** Pseudo-random bytes, so a reordered or spliced chunk cannot match. */
const value = (size: number, seed: number): Buffer => makeRng(seed).bytes(size);

/** Bytes redis has read from all its clients (INFO stats). */
async function redisBytesIn(r: Backend): Promise<number> {
  const info = (await redisCall(r, "INFO", "stats")) as Buffer;
  return Number(/total_net_input_bytes:(\d+)/.exec(info.toString("latin1"))![1]);
}

/** Bytes memcached has read from all its clients (stats). */
async function memcachedBytesIn(m: Backend): Promise<number> {
  const [stats] = await exchange(endpointOf(m), "stats\r\n", 1, memcacheFrame);
  return Number(/STAT bytes_read (\d+)/.exec(stats!.toString("latin1"))![1]);
}

describe.skipIf(TARGET !== "buncracker")("redis", () => {
  test("a large SET reaches redis while its client is still sending it, byte for byte", async () => {
    const r = await track(startRedis());
    const proxy = await track(startProxy(TARGET, pool("r", true, [r], { server_connections: 1 })));
    const v = value(8 << 20, 1);
    const request = command("SET", "streamed", v);
    const c = await RawClient.connect(proxy.pools.r!);
    const before = await redisBytesIn(r);
    const half = request.length >> 1;
    await c.send(request.subarray(0, half));
    // Streaming: redis has most of the first half before the client sends the rest.
    await eventually(async () => (await redisBytesIn(r)) - before > half - (1 << 20), 10_000, "the first half at redis");
    await c.send(request.subarray(half));
    expect(await c.readReply(respFrame)).toEqual(OK);
    expect(await redisCall(r, "GET", "streamed")).toEqual(v);
    c.close();
  }, 60_000);

  test("pipelined large and small requests of several clients on one server connection keep their order", async () => {
    const r = await track(startRedis());
    const proxy = await track(startProxy(TARGET, pool("r", true, [r], { server_connections: 1 })));
    const clients = await Promise.all([0, 1, 2].map(() => RawClient.connect(proxy.pools.r!)));
    const sizes = [40_000, 3_000_000, 1, 700_000, 0, 1_200_000];
    const values = clients.map((_, ci) => sizes.map((n, i) => value(n, 10 * ci + i)));
    // Each large SET is followed by an APPEND whose reply (the new length) tells its place, and
    // each client sends its pipeline in uneven pieces, so streams start and stop mid-value.
    const pipelines = clients.map((_, ci) =>
      Buffer.concat(values[ci]!.flatMap((v, i) => [command("SET", `big:${ci}:${i}`, v), command("APPEND", `order:${ci}`, `${i},`)])),
    );
    await Promise.all(
      clients.map(async (c, ci) => {
        const p = pipelines[ci]!;
        for (let at = 0, step = 65_536 + 7919 * ci; at < p.length; at += step) {
          await c.send(p.subarray(at, at + step));
          if (at % 3 === 0) await Bun.sleep(1);
        }
      }),
    );
    const log = sizes.map((_, i) => `${i},`);
    const lengths = log.map((_, i) => log.slice(0, i + 1).join("").length);
    for (const c of clients) expectReplies(await c.readReplies(2 * sizes.length, respFrame, 30_000), lengths.flatMap((n) => [OK, integer(n)]));
    for (const [ci, vs] of values.entries()) {
      for (const [i, v] of vs.entries()) expect(await redisCall(r, "GET", `big:${ci}:${i}`)).toEqual(v);
      // Read back through the proxy too (replies stream the other way).
      await clients[ci]!.send(command("GET", `big:${ci}:1`));
      expect(await clients[ci]!.readReply(respFrame, 30_000)).toEqual(bulk(vs[1]!));
    }
    for (const c of clients) c.close();
  }, 60_000);

  test("two large SETs for one connection at once: the second is gathered and sent once whole; one that leaves half-sent is dropped", async () => {
    const r = await track(startRedis());
    await redisCall(r, "SET", "b", "old");
    // Stats every 100 ms: the proxy's count of connected clients.
    const proxy = await track(startProxy(TARGET, pool("r", true, [r], { server_connections: 1 }), { args: ["-i", "100"] }));
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => RawClient.connect(proxy.pools.r!)));
    const [va, vb, vc] = [value(3 << 20, 6), value(2 << 20, 7), value(1 << 20, 8)];
    const [ra, rb, rc] = [command("SET", "a", va), command("SET", "b", vb), command("SET", "c", vc)];
    const before = await redisBytesIn(r);
    await a!.send(ra.subarray(0, 1 << 20));
    await eventually(async () => (await redisBytesIn(r)) - before > 512 << 10, 10_000, "a's stream started at redis");
    // b and c start while a streams on the connection: they wait, gathered.
    await b!.send(rb.subarray(0, 1 << 20));
    await c!.send(rc.subarray(0, 100_000));
    c!.close();
    await a!.send(ra.subarray(1 << 20));
    await b!.send(rb.subarray(1 << 20));
    expect(await a!.readReply(respFrame, 10_000)).toEqual(OK);
    expect(await b!.readReply(respFrame, 10_000)).toEqual(OK);
    expect(await redisCall(r, "GET", "a")).toEqual(va);
    expect(await redisCall(r, "GET", "b")).toEqual(vb);
    expect(await redisCall(r, "EXISTS", "c")).toEqual(0);
    // The proxy closed the half-sent client's connection: it owed it nothing.
    await eventually(async () => poolOf(await readStats(proxy.statsPort), "r").client_connections === 2, 10_000, "the half-sent client closed");
    a!.close();
    b!.close();
  }, 60_000);

  test("a client leaving mid-stream: the value is not written, and other clients' requests on that connection are answered", async () => {
    const r = await track(startRedis());
    await redisCall(r, "SET", "victim", "old");
    await redisCall(r, "SET", "small", "ok");
    const proxy = await track(startProxy(TARGET, pool("r", true, [r], { server_connections: 1 })));
    const others = await Promise.all([0, 1].map(() => RawClient.connect(proxy.pools.r!)));
    const leaver = await RawClient.connect(proxy.pools.r!);
    const request = command("SET", "victim", value(4 << 20, 2));
    const before = await redisBytesIn(r);
    await leaver.send(request.subarray(0, 1 << 20));
    await eventually(async () => (await redisBytesIn(r)) - before > 512 << 10, 10_000, "the stream started at redis");
    // Behind the stream on the same connection: these wait for it...
    await Promise.all(others.map((c, i) => c.send(Buffer.concat([command("GET", "small"), command("INCR", `n${i}`)]))));
    // ...and its client leaves: they go on another connection.
    leaver.close();
    for (const [i, c] of others.entries()) {
      expectReplies(await c.readReplies(2, respFrame, 10_000), [bulk("ok"), integer(1)]);
      await c.send(command("INCR", `n${i}`));
      expect(await c.readReply(respFrame)).toEqual(integer(2));
      c.close();
    }
    expect(await redisCall(r, "GET", "victim")).toEqual(Buffer.from("old"));
  }, 60_000);

  test("a streamed value not followed by CRLF: the client gets redis's protocol error, its one reply, and is closed; the value is not written", async () => {
    const r = await track(startRedis());
    await redisCall(r, "SET", "victim", "old");
    const proxy = await track(startProxy(TARGET, pool("r", true, [r], { server_connections: 1 })));
    const bad = await RawClient.connect(proxy.pools.r!);
    const v = value(1 << 20, 3);
    await bad.send(Buffer.from(`*3\r\n$3\r\nSET\r\n$6\r\nvictim\r\n$${v.length}\r\n`));
    await bad.send(v.subarray(0, 100_000));
    await Bun.sleep(20);
    await bad.send(Buffer.concat([v.subarray(100_000), Buffer.from("XX")]));
    // As redis itself answers it: the protocol error, then the connection closes.
    const { replies, closed } = await bad.readRepliesOrClose(2, respFrame, 10_000);
    expect({ replies: replies.map((b) => b.toString("latin1")), closed }).toEqual({
      replies: ["-ERR Protocol error: expected CRLF after bulk data\r\n"],
      closed: true,
    });
    expect(await redisCall(r, "GET", "victim")).toEqual(Buffer.from("old"));
    const other = await RawClient.connect(proxy.pools.r!);
    await other.send(command("GET", "victim"));
    expect(await other.readReply(respFrame)).toEqual(bulk("old"));
    other.close();
  }, 60_000);
});

describe.skipIf(TARGET !== "buncracker")("memcached", () => {
  test("large sets stream to memcached, pipelined with gets by several clients, in order and byte for byte", async () => {
    const m = await track(startMemcached({ maxItemSize: "8m", memoryMb: 256 }));
    const proxy = await track(startProxy(TARGET, pool("m", false, [m], { server_connections: 1 })));
    const c0 = await RawClient.connect(proxy.pools.m!);
    const big = value(6 << 20, 4);
    const request = storage("set", "mbig", big);
    const before = await memcachedBytesIn(m);
    const half = request.length >> 1;
    await c0.send(request.subarray(0, half));
    await eventually(async () => (await memcachedBytesIn(m)) - before > half - (1 << 20), 10_000, "the first half at memcached");
    await c0.send(request.subarray(half));
    expect((await c0.readReply(memcacheFrame)).toString("latin1")).toBe("STORED\r\n");

    const clients = await Promise.all([0, 1, 2].map(() => RawClient.connect(proxy.pools.m!)));
    const sizes = [50_000, 2_000_000, 3, 600_000];
    const values = clients.map((_, ci) => sizes.map((n, i) => value(n, 20 + 10 * ci + i)));
    await Promise.all(
      clients.map(async (c, ci) => {
        const p = Buffer.concat(values[ci]!.flatMap((v, i) => [storage("set", `m:${ci}:${i}`, v), line("get", `m:${ci}:${i}`, "mbig")]));
        for (let at = 0, step = 50_000 + 1000 * ci; at < p.length; at += step) await c.send(p.subarray(at, at + step));
      }),
    );
    for (const [ci, c] of clients.entries()) {
      expectReplies(
        await c.readReplies(2 * sizes.length, memcacheFrame, 30_000),
        values[ci]!.flatMap((v, i) => [Buffer.from("STORED\r\n"), retrieval([valueBlock(`m:${ci}:${i}`, v), valueBlock("mbig", big)])]),
      );
      c.close();
    }
    c0.close();
  }, 60_000);

  test("a client leaving mid-stream: nothing is stored, and other clients are answered", async () => {
    const m = await track(startMemcached({ maxItemSize: "8m", memoryMb: 256 }));
    const proxy = await track(startProxy(TARGET, pool("m", false, [m], { server_connections: 1 })));
    const setup = await RawClient.connect(proxy.pools.m!);
    await setup.send(storage("set", "victim", "old"));
    expect((await setup.readReply(memcacheFrame)).toString("latin1")).toBe("STORED\r\n");
    const leaver = await RawClient.connect(proxy.pools.m!);
    const before = await memcachedBytesIn(m);
    await leaver.send(storage("set", "victim", value(4 << 20, 5)).subarray(0, 1 << 20));
    await eventually(async () => (await memcachedBytesIn(m)) - before > 512 << 10, 10_000, "the stream started at memcached");
    await setup.send(Buffer.concat([line("get", "victim"), storage("set", "after", "x"), line("get", "after")]));
    leaver.close();
    expectReplies(await setup.readReplies(3, memcacheFrame, 10_000), [
      retrieval([valueBlock("victim", "old")]),
      Buffer.from("STORED\r\n"),
      retrieval([valueBlock("after", "x")]),
    ]);
    setup.close();
  }, 60_000);

  test("a streamed value not followed by CRLF: one reply, memcached's own, then the client is closed; nothing is stored, other clients are answered", async () => {
    const m = await track(startMemcached({ maxItemSize: "8m", memoryMb: 256 }));
    const proxy = await track(startProxy(TARGET, pool("m", false, [m], { server_connections: 1 })));
    const setup = await RawClient.connect(proxy.pools.m!);
    await setup.send(storage("set", "victim", "old"));
    expect((await setup.readReply(memcacheFrame)).toString("latin1")).toBe("STORED\r\n");
    const bad = await RawClient.connect(proxy.pools.m!);
    const request = storage("set", "victim", value(2 << 20, 6));
    const before = await memcachedBytesIn(m);
    await bad.send(request.subarray(0, 1 << 20));
    await eventually(async () => (await memcachedBytesIn(m)) - before > 512 << 10, 10_000, "the stream started at memcached");
    await setup.send(line("get", "victim"));
    // memcached itself answers a data block not followed by CRLF with this one reply.
    await bad.send(Buffer.concat([request.subarray(1 << 20, request.length - 2), Buffer.from("XXget victim\r\n")]));
    const { replies, closed } = await bad.readRepliesOrClose(2, memcacheFrame);
    expect({ replies: replies.map((r) => r.toString("latin1")), closed }).toEqual({ replies: ["CLIENT_ERROR bad data chunk\r\n"], closed: true });
    expectReplies(await setup.readReplies(1, memcacheFrame), [retrieval([valueBlock("victim", "old")])]);
    setup.close();
  }, 60_000);
});
