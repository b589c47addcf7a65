// Shared subscriptions (redis_shared_subscriptions: true) through a redis pool of three real
// redis-servers: every client's pub/sub goes through one connection per server and connection
// group (RESP2 clients share one, RESP3 clients another), and the proxy hands each message that
// arrives on it to every client subscribed to its channel or pattern. Clients see what they see
// without the option (their own counts in confirmations, each message once and in publish order,
// pushes for RESP3; a session compared with a single redis); upstream, a server has one pub/sub
// connection per group however many clients subscribe (CLIENT LIST), so PUBSUB NUMSUB on the
// server and PUBLISH count the proxy once (against a pool without the option, which counts each
// client); the last client to leave a channel or pattern (UNSUBSCRIBE, PUNSUBSCRIBE,
// SUNSUBSCRIBE, disconnect, RESET) unsubscribes it upstream, not before; shard channels; 200
// subscribers of one channel each get every message once, in order; a subscriber that does not
// read is closed past 32 MB while the others get everything, and one that does not talk is never
// idle; redis_max_subscribers still counts clients; a client never gets a message published
// before it subscribed; a subscribe the server refuses (-BUSY, a long script) while the
// channel's other holder leaves leaves nothing subscribed upstream, and one refused by an ACL
// (-NOPERM) is not counted (compared with redis, also without the option); hot reloads turning the
// option on and off, changing redis_auth (a rotated password: later subscribers go through a
// new connection, the old one closes once its clients left), removing a server (its
// subscribers are disconnected, the proxy's connection to it closes) and renumbering the
// servers (an unsubscribe still reaches the channel's server); a PUNSUBSCRIBE while a server is
// ejected (auto_eject_hosts) is confirmed and unsubscribes on every server; the option is
// refused with distribution redis_cluster; and when a server goes away, the clients subscribed
// through it are disconnected, the others stay.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { once } from "node:events";
import { createConnection } from "node:net";
import Redis from "ioredis";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { latin1 } from "../helpers/assertions.ts";
import { RawClient, exchange, type Endpoint } from "../helpers/client.ts";
import { clientList, subscribers, type ClientInfo } from "../helpers/client-list.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { endpointOf, redisCall, stopAll } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { metricSample } from "../helpers/prometheus.ts";
import { startProxy, TARGET, testConfig, type RunningProxy } from "../helpers/proxy.ts";
import { spread } from "../helpers/random.ts";
import { eventually, placer, ReloadableProxy } from "../helpers/reload.ts";
import { array, bulk, command, decode, integer, RespError, respFrame, type RespValue } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

const MB = 1024 * 1024;

let backends: Backend[] = [];
let proxy: RunningProxy;
/** redis_shared_subscriptions: true. */
let shared: Endpoint;
/** The same servers without the option, for contrast. */
let plain: Endpoint;
/** Shared, and redis_max_subscribers: 2. */
let capped: Endpoint;
/** Shared, and client_idle_timeout: 300 (ms). */
let idle: Endpoint;
let serverOf: (key: string) => string;
const metricsPort = freePort();

beforeAll(async () => {
  if (TARGET !== "buncracker") return;
  backends = await Promise.all([startRedis(), startRedis(), startRedis()]);
  const servers = backends.map((b) => serverLine(b.address));
  const yaml = [
    poolYaml("shared", { listen: `127.0.0.1:${freePort()}`, redis: true, redis_shared_subscriptions: true }, servers),
    poolYaml("plain", { listen: `127.0.0.1:${freePort()}`, redis: true }, servers),
    poolYaml("capped", { listen: `127.0.0.1:${freePort()}`, redis: true, redis_shared_subscriptions: true, redis_max_subscribers: 2 }, servers),
    poolYaml("idle", { listen: `127.0.0.1:${freePort()}`, redis: true, redis_shared_subscriptions: true, client_idle_timeout: 300 }, servers),
  ].join("");
  proxy = await startProxy(TARGET, yaml, { args: ["--metrics-port", String(metricsPort)] });
  shared = proxy.pools.shared!;
  plain = proxy.pools.plain!;
  capped = proxy.pools.capped!;
  idle = proxy.pools.idle!;
  serverOf = placer(yaml, "shared");
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll(backends);
});

// --- expected bytes -------------------------------------------------------------------------

/** An array (RESP2) or a push (RESP3) of `items`. */
const frame = (items: Buffer[], resp3: boolean): Buffer => (resp3 ? Buffer.concat([Buffer.from(`>${items.length}\r\n`), ...items]) : array(items));
const confirm = (word: string, name: string | null, count: number, resp3 = false): string => latin1(frame([bulk(word), bulk(name), integer(count)], resp3));
const message = (channel: string, payload: string, resp3 = false): string => latin1(frame([bulk("message"), bulk(channel), bulk(payload)], resp3));
const pmessage = (pattern: string, channel: string, payload: string, resp3 = false): string =>
  latin1(frame([bulk("pmessage"), bulk(pattern), bulk(channel), bulk(payload)], resp3));
const smessage = (channel: string, payload: string): string => latin1(array([bulk("smessage"), bulk(channel), bulk(payload)]));

// --- clients --------------------------------------------------------------------------------

/** Reads `n` replies of `client` as latin1 text. */
const take = async (client: RawClient, n: number): Promise<string[]> => (await client.readReplies(n, respFrame)).map(latin1);

/** A new client of `endpoint` (RESP3 after HELLO 3 when `resp3`). */
async function connect(endpoint: Endpoint, resp3 = false): Promise<RawClient> {
  const client = await RawClient.connect(endpoint);
  if (resp3) {
    await client.send(command("HELLO", "3"));
    expect((await take(client, 1))[0]!).toStartWith("%");
  }
  return client;
}

/** `verb` (SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE) of `names` on `client`, checking each confirmation
 *  carries the client's own count (counted from `from`). */
async function sub(client: RawClient, verb: string, names: readonly string[], from = 0, resp3 = false): Promise<RawClient> {
  await client.send(command(verb, ...names));
  expect(await take(client, names.length)).toEqual(names.map((n, i) => confirm(verb.toLowerCase(), n, from + i + 1, resp3)));
  return client;
}

/** A new client subscribed (SUBSCRIBE) to `channels`. */
const subscriber = async (endpoint: Endpoint, channels: readonly string[], resp3 = false): Promise<RawClient> =>
  sub(await connect(endpoint, resp3), "SUBSCRIBE", channels, 0, resp3);

/** PUBLISH through `endpoint` of each payload on `channel`, pipelined: the replies. */
async function publish(endpoint: Endpoint, channel: string, payloads: readonly string[], verb = "PUBLISH"): Promise<RespValue[]> {
  const replies = await exchange(endpoint, Buffer.concat(payloads.map((p) => command(verb, channel, p))), payloads.length, respFrame);
  return replies.map(decode);
}

/** A subscribed RESP2 client's PING answer: nothing was waiting for it before (no message). */
async function nothingPending(client: RawClient, subscribed = true): Promise<void> {
  await client.send(command("PING"));
  expect(await take(client, 1)).toEqual([subscribed ? latin1(array([bulk("pong"), bulk("")])) : "+PONG\r\n"]);
}

// --- the servers' side ----------------------------------------------------------------------

const backendOf = (channel: string): Backend => backends.find((b) => b.address === serverOf(channel))!;

/** PUBSUB NUMSUB of `channel` on `backend`. */
const numsubOn = async (backend: Backend, channel: string): Promise<number> => ((await redisCall(backend, "PUBSUB", "NUMSUB", channel)) as RespValue[])[1] as number;

/** PUBSUB NUMSUB of `channel` on its server. */
const numsub = (channel: string): Promise<number> => numsubOn(backendOf(channel), channel);

/** PUBSUB SHARDNUMSUB of `channel` on its server. */
const shardNumsub = async (channel: string): Promise<number> =>
  ((await redisCall(backendOf(channel), "PUBSUB", "SHARDNUMSUB", channel)) as RespValue[])[1] as number;

/** PUBSUB CHANNELS `channel` on its server: the channel, or nothing. */
const listed = async (channel: string): Promise<string[]> => ((await redisCall(backendOf(channel), "PUBSUB", "CHANNELS", channel)) as Buffer[]).map(String);

/** PUBSUB NUMPAT on every server. */
const numpats = (): Promise<number[]> => Promise.all(backends.map(async (b) => (await redisCall(b, "PUBSUB", "NUMPAT")) as number));

/** Pub/sub connections on `backend` (CLIENT LIST: any channel, pattern or shard channel). */
const pubsubConns = async (backend: Backend): Promise<ClientInfo[]> => subscribers(await clientList(backend));

/** Pub/sub connections on each server. */
const pubsubCounts = (): Promise<number[]> => Promise.all(backends.map(async (b) => (await pubsubConns(b)).length));

/** Earlier tests' subscriptions are gone from the servers. */
const noSubscribersLeft = (): Promise<boolean> =>
  eventually("no pub/sub connections on the servers", async () => ((await pubsubCounts()).every((n) => n === 0) ? true : undefined));

/** The shared pool's client connections (the proxy's gauge). */
const sharedClients = (): Promise<number> => metricSample(metricsPort, 'buncracker_pool_client_connections{pool="shared"}');

const settles = <T>(what: string, check: () => Promise<T>, expected: T): Promise<boolean> =>
  eventually(what, async () => (Bun.deepEquals(await check(), expected) ? true : undefined));

/** A script that keeps redis busy for about 0.7 s. */
const BUSY_SCRIPT =
  "local t=redis.call('TIME') while true do local n=redis.call('TIME') " +
  "if (n[1]-t[1])*1000000+(n[2]-t[2]) > 700000 then break end end return 1";

/** Runs `during` while `backend` runs BUSY_SCRIPT (sent first, on a connection of its own),
 *  its busy-reply-threshold lowered to `thresholdMs`: a request that reaches it meanwhile is
 *  answered once the threshold has passed, with -BUSY. Returns once the script has ended and
 *  the threshold is back. */
async function whileBusy<T>(backend: Backend, thresholdMs: number, during: () => Promise<T>): Promise<T> {
  const [, before] = (await redisCall(backend, "CONFIG", "GET", "busy-reply-threshold")) as Buffer[];
  expect(await redisCall(backend, "CONFIG", "SET", "busy-reply-threshold", String(thresholdMs))).toBe("OK");
  const script = await RawClient.connect(endpointOf(backend));
  try {
    // The server serves this connection already: the script runs before anything sent later.
    await script.send(command("PING"));
    expect(await take(script, 1)).toEqual(["+PONG\r\n"]);
    await script.send(command("EVAL", BUSY_SCRIPT, "0"));
    return await during();
  } finally {
    await script.readReplies(1, respFrame).catch(() => {});
    script.close();
    await redisCall(backend, "CONFIG", "SET", "busy-reply-threshold", String(before));
  }
}

/** The client connections of `backend`, a redis-server with requirepass `password` (besides the
 *  one asking). */
async function guardedClientList(backend: Backend, password: string): Promise<ClientInfo[]> {
  const replies = await exchange(endpointOf(backend), Buffer.concat([command("AUTH", password), command("CLIENT", "LIST")]), 2, respFrame);
  expect(latin1(replies[0]!)).toBe("+OK\r\n");
  return String(decode(replies[1]!))
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => Object.fromEntries(line.trim().split(" ").map((field) => [field.slice(0, field.indexOf("=")), field.slice(field.indexOf("=") + 1)])))
    .filter((c) => c["cmd"] !== "client|list");
}

/** A channel named `tag:<spread>` that `place` (a placer) routes to `address`. */
function channelAt(tag: string, place: (key: string) => string, address: string): string {
  for (let i = 0; ; i++) if (place(`${tag}:${spread(i)}`) === address) return `${tag}:${spread(i)}`;
}

/** `count` channels named `tag:<spread>` placed on the server `backend`. */
function channelsOn(tag: string, backend: Backend, count: number): string[] {
  const found: string[] = [];
  for (let i = 0; found.length < count; i++) {
    const channel = `${tag}:${spread(i)}`;
    if (serverOf(channel) === backend.address) found.push(channel);
  }
  return found;
}

describe.skipIf(TARGET !== "buncracker")("shared subscriptions", () => {
  test("test channels land where the tests expect: spread over the three servers", () => {
    // 60 channels miss one of 3 servers with a chance of about 1e-10, whatever the ports.
    const spreadOut = Array.from({ length: 60 }, (_, i) => `chan:${spread(i)}`);
    expect(new Set(spreadOut.map(serverOf)).size).toBe(3);
  });

  test("clients on one channel: one upstream pub/sub connection, NUMSUB 1 on the server, PUBLISH 1, each client's own counts, every message to every client once and in order", async () => {
    await noSubscribersLeft();
    const channel = "one:main";
    const others = Array.from({ length: 4 }, (_, i) => `one:${spread(i)}`);
    // Client k holds k other channels first: its confirmation of `channel` says k + 1.
    const clients = await Promise.all(Array.from({ length: 5 }, async (_, k) => subscriber(shared, [...others.slice(0, k), channel])));
    try {
      for (const c of [channel, ...others]) expect(await numsub(c)).toBe(1);
      // One connection on each server that has any of the channels, none elsewhere.
      const used = new Set([channel, ...others].map(serverOf));
      expect(await pubsubCounts()).toEqual(backends.map((b) => (used.has(b.address) ? 1 : 0)));
      const onChannelServer = await pubsubConns(backendOf(channel));
      expect(Number(onChannelServer[0]!["sub"])).toBe([channel, ...others].filter((c) => serverOf(c) === serverOf(channel)).length);

      const payloads = Array.from({ length: 10 }, (_, i) => `m${i}`);
      expect(await publish(shared, channel, payloads)).toEqual(payloads.map(() => 1));
      for (const client of clients) expect(await take(client, payloads.length)).toEqual(payloads.map((p) => message(channel, p)));
      // Nothing more: the next publish is the next message each sees.
      expect(await publish(shared, channel, ["last"])).toEqual([1]);
      for (const client of clients) expect(await take(client, 1)).toEqual([message(channel, "last")]);
      // Another channel's message reaches only its holders (clients 1 to 4 hold others[0]).
      expect(await publish(shared, others[0]!, ["o"])).toEqual([1]);
      for (const client of clients.slice(1)) expect(await take(client, 1)).toEqual([message(others[0]!, "o")]);
      await nothingPending(clients[0]!);
    } finally {
      for (const client of clients) client.close();
    }
  });

  test("contrast with a pool without the option: there NUMSUB and PUBLISH count each client (3), here the proxy once (1)", async () => {
    const own = "contrast:own";
    const one = "contrast:shared";
    const plainClients = await Promise.all([0, 1, 2].map(() => subscriber(plain, [own])));
    const sharedClients = await Promise.all([0, 1, 2].map(() => subscriber(shared, [one])));
    try {
      expect(await numsub(own)).toBe(3);
      expect(await numsub(one)).toBe(1);
      expect(await publish(plain, own, ["p"])).toEqual([3]);
      expect(await publish(shared, one, ["s"])).toEqual([1]);
      for (const client of plainClients) expect(await take(client, 1)).toEqual([message(own, "p")]);
      for (const client of sharedClients) expect(await take(client, 1)).toEqual([message(one, "s")]);
    } finally {
      for (const client of [...plainClients, ...sharedClients]) client.close();
    }
  });

  test("a session of two clients (RESP2 and RESP3) as a single redis answers it: confirmations, messages, pmessages, unsubscribing, RESET", async () => {
    const [c1, c2, c3] = [0, 1, 2].map((i) => `sess:${spread(i)}`) as [string, string, string];
    const run = async (endpoint: Endpoint, publisher: Endpoint): Promise<string[]> => {
      const r3 = await connect(endpoint, true);
      const r2 = await connect(endpoint);
      const seen: string[] = [];
      const read = async (client: RawClient, n: number) => seen.push(...(await take(client, n)));
      const pub = async (channel: string, payload: string) => {
        await publish(publisher, channel, [payload]);
      };
      try {
        await r3.send(Buffer.concat([command("SUBSCRIBE", c1, c2), command("PSUBSCRIBE", "sess:*")]));
        await read(r3, 3);
        await r2.send(Buffer.concat([command("SUBSCRIBE", c2, c3), command("PSUBSCRIBE", "sess:*")]));
        await read(r2, 3);
        await pub(c2, "a");
        await read(r3, 2);
        await read(r2, 2);
        await r3.send(command("UNSUBSCRIBE", c2));
        await read(r3, 1);
        await pub(c2, "b");
        await read(r3, 1);
        await read(r2, 2);
        await pub(c1, "c");
        await read(r3, 2);
        await read(r2, 1);
        await r2.send(Buffer.concat([command("PUNSUBSCRIBE"), command("UNSUBSCRIBE", c3, c2), command("PING")]));
        await read(r2, 4);
        await pub(c2, "d");
        await read(r3, 1);
        await r3.send(command("RESET"));
        await read(r3, 1);
        await pub(c1, "e");
        await pub(c2, "f");
        await r3.send(command("PING"));
        await read(r3, 1);
        await r2.send(command("PING"));
        await read(r2, 1);
        return seen;
      } finally {
        r3.close();
        r2.close();
      }
    };
    const direct = { host: backends[0]!.host, port: backends[0]!.port };
    const single = await run(direct, direct);
    const proxied = await run(shared, shared);
    expect(proxied).toEqual(single);
    // What the comparison covers.
    expect(proxied.filter((r) => r.startsWith(">")).length).toBe(10);
    expect(proxied).toContain(message(c2, "b"));
    expect(proxied).toContain(pmessage("sess:*", c2, "d", true));
    expect(proxied.slice(-2)).toEqual(["+PONG\r\n", "+PONG\r\n"]);
  });

  test("patterns: one upstream connection per server, each with the pattern once; pmessage once each; a client with a channel and a matching pattern gets both, as from redis", async () => {
    await noSubscribersLeft();
    const channel = "pat:main";
    const pattern = "pat:*";
    const a = await subscriber(shared, [channel]);
    const b = await sub(await connect(shared), "PSUBSCRIBE", [pattern]);
    const c = await subscriber(shared, [channel]);
    await sub(c, "PSUBSCRIBE", [pattern], 1);
    try {
      expect(await numpats()).toEqual([1, 1, 1]);
      expect(await numsub(channel)).toBe(1);
      for (const backend of backends) {
        const conns = await pubsubConns(backend);
        expect(conns.length).toBe(1);
        expect(conns[0]!["psub"]).toBe("1");
        expect(conns[0]!["sub"]).toBe(backend === backendOf(channel) ? "1" : "0");
      }
      // redis counts the shared connection twice: once for the channel, once for the pattern.
      expect(await publish(shared, channel, ["x"])).toEqual([2]);
      expect(await take(a, 1)).toEqual([message(channel, "x")]);
      expect(await take(b, 1)).toEqual([pmessage(pattern, channel, "x")]);
      expect(await take(c, 2)).toEqual([message(channel, "x"), pmessage(pattern, channel, "x")]);
      // A channel on each server: the pattern's subscribers get each once.
      const elsewhere = backends.map((backend) => channelsOn("pat", backend, 1)[0]!);
      for (const ch of elsewhere) {
        expect(await publish(shared, ch, [`on ${ch}`])).toEqual([1]);
        expect(await take(b, 1)).toEqual([pmessage(pattern, ch, `on ${ch}`)]);
        expect(await take(c, 1)).toEqual([pmessage(pattern, ch, `on ${ch}`)]);
      }
      await nothingPending(a);
      await nothingPending(b);
      await nothingPending(c);
    } finally {
      a.close();
      b.close();
      c.close();
    }
  });

  test("upstream stays subscribed while any client holds a channel or pattern, and unsubscribes when the last one leaves (UNSUBSCRIBE, PUNSUBSCRIBE, RESET, disconnect)", async () => {
    await noSubscribersLeft();
    const [byUnsubscribe, byReset, byClose] = ["last:unsub", "last:reset", "last:close"];
    const [pattern, patternOff] = ["lastp:*", "lastq:*"];
    const channels = [byUnsubscribe, byReset, byClose];
    const a = await subscriber(shared, channels);
    await sub(a, "PSUBSCRIBE", [pattern], 3);
    const b = await subscriber(shared, channels);
    await sub(b, "PSUBSCRIBE", [pattern, patternOff], 3);
    try {
      for (const ch of channels) expect(await numsub(ch)).toBe(1);
      expect(await numpats()).toEqual([2, 2, 2]);

      // A leaves one channel, then goes away: B still holds everything.
      await a.send(command("UNSUBSCRIBE", byUnsubscribe));
      expect(await take(a, 1)).toEqual([confirm("unsubscribe", byUnsubscribe, 3)]);
      expect(await numsub(byUnsubscribe)).toBe(1);
      expect(await publish(shared, byUnsubscribe, ["1"])).toEqual([1]);
      expect(await take(b, 1)).toEqual([message(byUnsubscribe, "1")]);
      await nothingPending(a);
      const clients = await sharedClients();
      a.close();
      await settles("A's close seen by the proxy", sharedClients, clients - 1);
      for (const ch of channels) expect(await numsub(ch)).toBe(1);
      expect(await numpats()).toEqual([2, 2, 2]);
      for (const ch of channels) {
        expect(await publish(shared, ch, ["2"])).toEqual([1]);
        expect(await take(b, 1)).toEqual([message(ch, "2")]);
      }

      // B, the last holder, leaves by UNSUBSCRIBE: gone upstream, the rest stays.
      await b.send(command("UNSUBSCRIBE", byUnsubscribe));
      expect(await take(b, 1)).toEqual([confirm("unsubscribe", byUnsubscribe, 4)]);
      await settles("NUMSUB of the unsubscribed channel", () => numsub(byUnsubscribe), 0);
      expect(await listed(byUnsubscribe)).toEqual([]);
      expect(await publish(shared, byUnsubscribe, ["gone"])).toEqual([0]);
      expect(await numsub(byReset)).toBe(1);
      expect(await listed(byReset)).toEqual([byReset]);

      // PUNSUBSCRIBE of B's own pattern: gone on every server; the shared one stays.
      await b.send(command("PUNSUBSCRIBE", patternOff));
      expect(await take(b, 1)).toEqual([confirm("punsubscribe", patternOff, 3)]);
      await settles("NUMPAT after PUNSUBSCRIBE", numpats, [1, 1, 1]);

      // C joins byClose; B leaves everything by RESET: byReset and the pattern go, byClose stays.
      const c = await subscriber(shared, [byClose]);
      try {
        await b.send(command("RESET"));
        expect(await take(b, 1)).toEqual(["+RESET\r\n"]);
        await settles("NUMSUB of the channel RESET left", () => numsub(byReset), 0);
        expect(await listed(byReset)).toEqual([]);
        await settles("NUMPAT after RESET", numpats, [0, 0, 0]);
        expect(await numsub(byClose)).toBe(1);
        expect(await publish(shared, byClose, ["3"])).toEqual([1]);
        expect(await take(c, 1)).toEqual([message(byClose, "3")]);
        await nothingPending(b, false);

        // C, the last holder of byClose, disconnects.
        c.close();
        await settles("NUMSUB of the channel whose last client went away", () => numsub(byClose), 0);
        expect(await listed(byClose)).toEqual([]);
        expect(await publish(shared, byClose, ["gone"])).toEqual([0]);
        await noSubscribersLeft();
      } finally {
        c.close();
      }
    } finally {
      a.close();
      b.close();
    }
  });

  test("unsubscribing from all: that client gets no more messages, the other holder still does; subscribing again (also at once after unsubscribing) works", async () => {
    const [mine, ours] = ["all:mine", "all:ours"];
    const a = await subscriber(shared, [mine, ours]);
    const b = await subscriber(shared, [ours]);
    try {
      expect(await numsub(ours)).toBe(1);
      await a.send(command("UNSUBSCRIBE"));
      const confirmations = await take(a, 2);
      expect(confirmations.map((r) => (decode(Buffer.from(r, "latin1")) as RespValue[])[1]!.toString()).sort()).toEqual([ours, mine].sort());
      expect(confirmations.map((r) => (decode(Buffer.from(r, "latin1")) as RespValue[])[2])).toEqual([1, 0]);
      await settles("NUMSUB of the channel no client holds", () => numsub(mine), 0);
      expect(await numsub(ours)).toBe(1);
      expect(await publish(shared, ours, ["after"])).toEqual([1]);
      expect(await take(b, 1)).toEqual([message(ours, "after")]);
      // A is out of subscribed mode, and nothing reached it.
      await a.send(command("GET", "all:nokey"));
      expect(await take(a, 1)).toEqual(["$-1\r\n"]);

      // Again, counted from 1.
      await sub(a, "SUBSCRIBE", [mine]);
      expect(await numsub(mine)).toBe(1);
      expect(await publish(shared, mine, ["again"])).toEqual([1]);
      expect(await take(a, 1)).toEqual([message(mine, "again")]);

      // SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE at once by the channel's only holder: it ends subscribed.
      await a.send(Buffer.concat([command("UNSUBSCRIBE", mine), command("SUBSCRIBE", mine), command("UNSUBSCRIBE", mine), command("SUBSCRIBE", mine)]));
      expect(await take(a, 4)).toEqual([
        confirm("unsubscribe", mine, 0),
        confirm("subscribe", mine, 1),
        confirm("unsubscribe", mine, 0),
        confirm("subscribe", mine, 1),
      ]);
      expect(await publish(shared, mine, ["still"])).toEqual([1]);
      expect(await take(a, 1)).toEqual([message(mine, "still")]);
      expect(await numsub(mine)).toBe(1);

      // The same on a channel another client holds (B): the unsubscribes go nowhere, the
      // confirmations still come in order.
      await a.send(Buffer.concat([command("SUBSCRIBE", ours), command("UNSUBSCRIBE", ours), command("SUBSCRIBE", ours), command("PING")]));
      expect(await take(a, 4)).toEqual([
        confirm("subscribe", ours, 2),
        confirm("unsubscribe", ours, 1),
        confirm("subscribe", ours, 2),
        latin1(array([bulk("pong"), bulk("")])),
      ]);
      expect(await numsub(ours)).toBe(1);
      expect(await publish(shared, ours, ["both"])).toEqual([1]);
      expect(await take(a, 1)).toEqual([message(ours, "both")]);
      expect(await take(b, 1)).toEqual([message(ours, "both")]);
      await nothingPending(a);
      await nothingPending(b);
    } finally {
      a.close();
      b.close();
    }
  });

  test("shard channels: SSUBSCRIBE of several clients through one connection (SHARDNUMSUB 1), smessage to each, SUNSUBSCRIBE of the last one unsubscribes upstream", async () => {
    const channel = "shard:one";
    const a = await sub(await connect(shared), "SSUBSCRIBE", [channel]);
    const b = await sub(await connect(shared), "SSUBSCRIBE", ["shard:other", channel]);
    try {
      expect(await shardNumsub(channel)).toBe(1);
      const conns = (await pubsubConns(backendOf(channel))).filter((c) => c["ssub"] !== "0");
      expect(conns.length).toBe(1);
      expect(await publish(shared, channel, ["s1", "s2"], "SPUBLISH")).toEqual([1, 1]);
      expect(await take(a, 2)).toEqual([smessage(channel, "s1"), smessage(channel, "s2")]);
      expect(await take(b, 2)).toEqual([smessage(channel, "s1"), smessage(channel, "s2")]);
      await a.send(command("SUNSUBSCRIBE", channel));
      expect(await take(a, 1)).toEqual([confirm("sunsubscribe", channel, 0)]);
      expect(await shardNumsub(channel)).toBe(1);
      expect(await publish(shared, channel, ["s3"], "SPUBLISH")).toEqual([1]);
      expect(await take(b, 1)).toEqual([smessage(channel, "s3")]);
      await b.send(command("SUNSUBSCRIBE", channel));
      expect(await take(b, 1)).toEqual([confirm("sunsubscribe", channel, 1)]);
      await settles("SHARDNUMSUB after the last SUNSUBSCRIBE", () => shardNumsub(channel), 0);
      expect(await shardNumsub("shard:other")).toBe(1);
      await nothingPending(a, false);
    } finally {
      a.close();
      b.close();
    }
  });

  test("a channel, a pattern and a shard channel of one name are told apart; binary and empty names", async () => {
    const name = "lit:*";
    const ch = await subscriber(shared, [name]);
    const pat = await sub(await connect(shared), "PSUBSCRIBE", [name]);
    const shard = await sub(await connect(shared), "SSUBSCRIBE", [name]);
    const binary = "bin:\r\n$3\r\n\x00\xff message";
    const odd = await subscriber(shared, [binary, "", "message"]);
    try {
      // On the channel's server, the shared connection has the channel and the pattern: 2.
      expect(await publish(shared, name, ["x"])).toEqual([2]);
      expect(await publish(shared, name, ["y"], "SPUBLISH")).toEqual([1]);
      expect(await publish(shared, "lit:a", ["z"])).toEqual([1]);
      expect(await take(ch, 1)).toEqual([message(name, "x")]);
      expect(await take(pat, 2)).toEqual([pmessage(name, name, "x"), pmessage(name, "lit:a", "z")]);
      expect(await take(shard, 1)).toEqual([smessage(name, "y")]);
      for (const c of [binary, "", "message"]) expect(await publish(shared, c, [`to ${c}`])).toEqual([1]);
      // Each channel may be on another server: their messages come in any order.
      expect((await take(odd, 3)).sort()).toEqual([binary, "", "message"].map((c) => message(c, `to ${c}`)).sort());
      await nothingPending(ch);
      await nothingPending(pat);
      await nothingPending(odd);
    } finally {
      for (const c of [ch, pat, shard, odd]) c.close();
    }
  });

  test("a client that subscribes gets no message published before it subscribed (one still arriving on the shared connection when it joins)", async () => {
    const channel = "before:chan";
    const holder = await subscriber(shared, [channel]);
    const body = "b".repeat(16 * MB);
    try {
      // A large message: the server writes it to the shared connection over many turns, and
      // acknowledges the PUBLISH before the proxy has all of it.
      for (let round = 0; round < 5; round++) {
        expect(await publish(shared, channel, [`${round}:${body}`])).toEqual([1]);
        // Published and acknowledged before this client even connects.
        const late = await connect(shared);
        try {
          await late.send(command("SUBSCRIBE", channel));
          expect(latin1((await late.readReplies(1, respFrame, { more: true }))[0]!)).toBe(confirm("subscribe", channel, 1));
          expect(await publish(shared, channel, [`after ${round}`])).toEqual([1]);
          const [first] = await late.readReplies(1, respFrame, { more: true, timeoutMs: 20_000 });
          const seen = first!.length < 1000 ? latin1(first!) : `a message of ${first!.length} bytes, published before the client subscribed`;
          expect(`round ${round}: ${seen}`).toBe(`round ${round}: ${message(channel, `after ${round}`)}`);
        } finally {
          late.close();
        }
        const [big, after] = await holder.readReplies(2, respFrame, { timeoutMs: 20_000 });
        expect(latin1(big!) === message(channel, `${round}:${body}`)).toBe(true);
        expect(latin1(after!)).toBe(message(channel, `after ${round}`));
      }
    } finally {
      holder.close();
    }
  });

  test("subscribers that go away before their confirmations leave nothing subscribed upstream, and the shared connections keep serving", async () => {
    await noSubscribersLeft();
    const channel = "hasty:chan";
    // Each sends its (P)SUBSCRIBE and closes at once, some after a partial read.
    await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const client = await RawClient.connect(shared);
        await client.send(Buffer.concat([command("SUBSCRIBE", channel, `hasty:${spread(i)}`), command("PSUBSCRIBE", `hasty${i % 3}:*`)]));
        if (i % 2 === 1) await client.readReplies(1, respFrame, { more: true });
        client.close();
      }),
    );
    await noSubscribersLeft();
    for (const b of backends) expect((await redisCall(b, "PUBSUB", "CHANNELS", "hasty*")) as Buffer[]).toEqual([]);
    expect(await numpats()).toEqual([0, 0, 0]);
    const again = await subscriber(shared, [channel]);
    try {
      expect(await publish(shared, channel, ["served"])).toEqual([1]);
      expect(await take(again, 1)).toEqual([message(channel, "served")]);
    } finally {
      again.close();
    }
  });

  test("RESP2 and RESP3 clients on one channel: two upstream connections on its server (one per protocol), each client gets each message in its own protocol", async () => {
    await noSubscribersLeft();
    const channel = "mixed:chan";
    const port = (shared as { port: number }).port;
    const r2 = await subscriber(shared, [channel]);
    const r2b = await subscriber(shared, [channel]);
    const r3 = await subscriber(shared, [channel], true);
    const io = new Redis({ host: "127.0.0.1", port, lazyConnect: true });
    try {
      await io.connect();
      const got: string[] = [];
      io.on("message", (ch: string, m: string) => got.push(`${ch}=${m}`));
      expect(await io.subscribe(channel)).toBe(1);
      const conns = await pubsubConns(backendOf(channel));
      expect(conns.map((c) => c["resp"]).sort()).toEqual(["2", "3"]);
      expect(await pubsubCounts()).toEqual(backends.map((b) => (b === backendOf(channel) ? 2 : 0)));
      expect(await numsub(channel)).toBe(2);
      const payloads = ["one", "two", "three"];
      expect(await publish(shared, channel, payloads)).toEqual([2, 2, 2]);
      expect(await take(r2, 3)).toEqual(payloads.map((p) => message(channel, p)));
      expect(await take(r2b, 3)).toEqual(payloads.map((p) => message(channel, p)));
      expect(await take(r3, 3)).toEqual(payloads.map((p) => message(channel, p, true)));
      await eventually("ioredis got the messages", () => (got.length >= 3 ? true : undefined));
      expect(got).toEqual(payloads.map((p) => `${channel}=${p}`));
      // The RESP3 group's last client leaves: its connection unsubscribes, the RESP2 one stays.
      r3.close();
      await io.unsubscribe(channel);
      await settles("NUMSUB with only RESP2 clients left", () => numsub(channel), 1);
      expect((await pubsubConns(backendOf(channel))).map((c) => c["resp"])).toEqual(["2"]);
      expect(await publish(shared, channel, ["four"])).toEqual([1]);
      expect(await take(r2, 1)).toEqual([message(channel, "four")]);
      expect(await take(r2b, 1)).toEqual([message(channel, "four")]);
      // A message to it would come before the reply to its next request, on its connection.
      expect(await io.ping()).toBe("PONG");
      expect(got.length).toBe(3);
    } finally {
      io.disconnect();
      r2.close();
      r2b.close();
      r3.close();
    }
  });

  test("200 subscribers of one channel, subscribing at once: one upstream connection, NUMSUB 1, each gets every one of 50 messages once and in order", async () => {
    await noSubscribersLeft();
    const channel = "many:chan";
    const clients = await Promise.all(Array.from({ length: 200 }, () => subscriber(shared, [channel])));
    try {
      expect(await pubsubCounts()).toEqual(backends.map((b) => (b === backendOf(channel) ? 1 : 0)));
      expect(await numsub(channel)).toBe(1);
      const payloads = Array.from({ length: 50 }, (_, i) => `n${i}:${"v".repeat(i * 10)}`);
      expect(await publish(shared, channel, payloads)).toEqual(payloads.map(() => 1));
      const expected = payloads.map((p) => message(channel, p));
      const received = await Promise.all(clients.map((client) => take(client, payloads.length)));
      const wrong = received.map((got, i) => (Bun.deepEquals(got, expected) ? -1 : i)).filter((i) => i >= 0);
      expect(wrong).toEqual([]);
      expect(await publish(shared, channel, ["end"])).toEqual([1]);
      const ends = await Promise.all(clients.map((client) => take(client, 1)));
      expect(ends.filter((got) => got[0] !== message(channel, "end")).length).toBe(0);
    } finally {
      for (const client of clients) client.close();
    }
    await settles("NUMSUB once the 200 went away", () => numsub(channel), 0);
  });

  test("redis_max_subscribers still counts clients: the third gets the error, the two share one connection, a place frees when one leaves", async () => {
    const channel = "cap:chan";
    const first = await subscriber(capped, [channel]);
    const second = await subscriber(capped, [channel]);
    const third = await connect(capped);
    try {
      expect(await numsub(channel)).toBe(1);
      await third.send(command("SUBSCRIBE", channel));
      const refused = decode((await third.readReplies(1, respFrame))[0]!) as RespError;
      expect(refused).toBeInstanceOf(RespError);
      expect(refused.message).toContain("redis_max_subscribers");
      await third.send(command("PING"));
      expect(await take(third, 1)).toEqual(["+PONG\r\n"]);
      expect(await publish(capped, channel, ["c"])).toEqual([1]);
      expect(await take(first, 1)).toEqual([message(channel, "c")]);
      expect(await take(second, 1)).toEqual([message(channel, "c")]);
      first.close();
      await eventually("the place freed", async () => {
        await third.send(command("SUBSCRIBE", channel));
        const [reply] = await take(third, 1);
        return reply!.startsWith("*3") ? true : undefined;
      });
      expect(await numsub(channel)).toBe(1);
      expect(await publish(capped, channel, ["d"])).toEqual([1]);
      expect(await take(second, 1)).toEqual([message(channel, "d")]);
      expect(await take(third, 1)).toEqual([message(channel, "d")]);
    } finally {
      first.close();
      second.close();
      third.close();
    }
  });

  test("a client subscribed through the shared connections is never idle (client_idle_timeout), as one with its own", async () => {
    const channel = "idle:chan";
    const subscribed = await subscriber(idle, [channel]);
    const idler = await RawClient.connect(idle);
    try {
      // The client connected with it and idle since is closed: the timeout has passed.
      expect(await idler.closesWithin(5000)).toBe(true);
      expect(await publish(idle, channel, ["still here"])).toEqual([1]);
      expect(await take(subscribed, 1)).toEqual([message(channel, "still here")]);
      expect(subscribed.closed).toBe(false);
    } finally {
      idler.close();
      subscribed.close();
    }
  });

  test("a subscriber that does not read its messages is closed past 32 MB of them; the other subscribers of the channel get every message", async () => {
    const channel = "slow:chan";
    const backend = backendOf(channel);
    const slowClosed = (): Promise<number> => metricSample(metricsPort, 'buncracker_pool_client_slow_closed_total{pool="shared"}');
    const before = await slowClosed();
    const reader = await subscriber(shared, [channel]);
    const reader3 = await subscriber(shared, [channel], true);
    const port = (shared as { port: number }).port;
    const slow = createConnection({ host: "127.0.0.1", port });
    await once(slow, "connect");
    slow.write(command("SUBSCRIBE", channel));
    await once(slow, "data");
    slow.pause();
    // Closed with a reset: the reset is the expected end.
    slow.on("error", () => {});
    const closed = new Promise((resolve) => slow.on("close", resolve));
    try {
      // One message at a time, each read by the readers before the next: the proxy has taken
      // it from redis (redis holds no backlog for the shared connection), so the backlog is the
      // slow subscriber's, in the proxy. 64 MB is twice the limit.
      const body = "m".repeat(MB);
      let sent = 0;
      for (; sent < 64 && (await slowClosed()) === before; sent++) {
        // Two receivers: the RESP2 group's connection (reader, slow) and the RESP3 one's.
        expect(await publish(shared, channel, [`${sent}:${body}`])).toEqual([2]);
        const [got] = await reader.readReplies(1, respFrame);
        const [got3] = await reader3.readReplies(1, respFrame);
        expect(latin1(got!) === message(channel, `${sent}:${body}`)).toBe(true);
        expect(latin1(got3!) === message(channel, `${sent}:${body}`, true)).toBe(true);
      }
      await eventually("the slow subscriber closed", async () => ((await slowClosed()) === before + 1 ? true : undefined));
      expect(sent).toBeGreaterThan(32);
      expect(sent).toBeLessThan(64);
      // The readers keep getting everything, in order.
      const after = ["after:1", "after:2", "after:3"];
      expect(await publish(shared, channel, after)).toEqual([2, 2, 2]);
      expect(await take(reader, 3)).toEqual(after.map((p) => message(channel, p)));
      expect(await take(reader3, 3)).toEqual(after.map((p) => message(channel, p, true)));
      expect(await numsub(channel)).toBe(2);
      slow.resume();
      await closed;
      await nothingPending(reader);
      // Still one connection per group.
      expect((await pubsubConns(backend)).map((c) => c["resp"]).sort()).toEqual(["2", "3"]);
    } finally {
      slow.destroy();
      reader.close();
      reader3.close();
    }
  });

  test("when a server goes away, every client subscribed through it is disconnected (channel or pattern); clients subscribed through other servers stay and keep receiving", async () => {
    await noSubscribersLeft();
    const victim = backends[0]!;
    const [onVictim] = channelsOn("gone", victim, 1) as [string];
    const [elsewhere, onlyDropped] = channelsOn("gone", backends[1]!, 2) as [string, string];
    const a = await subscriber(shared, [onVictim]);
    const both = await subscriber(shared, [onVictim, elsewhere, onlyDropped]);
    const patterned = await sub(await connect(shared), "PSUBSCRIBE", ["nomatch:*"]);
    const stays = await subscriber(shared, [elsewhere]);
    const stays3 = await subscriber(shared, [elsewhere], true);
    const plainClient = await connect(shared);
    await victim.kill();
    try {
      expect(latin1(await a.readUntilClose())).toBe("");
      expect(latin1(await both.readUntilClose())).toBe("");
      expect(latin1(await patterned.readUntilClose())).toBe("");
      await plainClient.send(command("PING"));
      expect(await take(plainClient, 1)).toEqual(["+PONG\r\n"]);
      expect(stays.closed).toBe(false);
      expect(await publish(shared, elsewhere, ["still"])).toEqual([2]);
      expect(await take(stays, 1)).toEqual([message(elsewhere, "still")]);
      expect(await take(stays3, 1)).toEqual([message(elsewhere, "still", true)]);
      // `both` went away: the channel only it held on a server still up is unsubscribed there;
      // elsewhere is still held by the others, once per protocol.
      await settles("NUMSUB of the channel only a disconnected client held", () => numsub(onlyDropped), 0);
      expect(await numsub(elsewhere)).toBe(2);
    } finally {
      a.close();
      both.close();
      patterned.close();
      plainClient.close();
      await victim.restart();
    }
    try {
      // The server back: a new subscriber of its channel is served through a new connection.
      const again = await eventually("subscribing on the restarted server", async () => {
        const client = await connect(shared);
        try {
          await client.send(command("SUBSCRIBE", onVictim));
          const [reply] = await take(client, 1);
          if (reply === confirm("subscribe", onVictim, 1)) return client;
        } catch {
          // Closed while the proxy still sees the server down: try again.
        }
        client.close();
        return undefined;
      });
      try {
        expect(await numsub(onVictim)).toBe(1);
        expect(await publish(shared, onVictim, ["back"])).toEqual([1]);
        expect(await take(again, 1)).toEqual([message(onVictim, "back")]);
      } finally {
        again.close();
      }
    } finally {
      stays.close();
      stays3.close();
    }
  });

  // Last in this block: on a proxy that leaves the channel subscribed upstream, the other tests'
  // checks that no subscription is left would fail too.
  test("a subscribe the server refuses (-BUSY) while the channel's other holder unsubscribes: nobody holds the channel, so it is unsubscribed upstream (NUMSUB 0, PUBLISH 0)", async () => {
    await noSubscribersLeft();
    const channel = "busy:chan";
    const a = await subscriber(shared, [channel]);
    const b = await connect(shared);
    try {
      expect(await numsub(channel)).toBe(1);
      const refused = await whileBusy(backendOf(channel), 300, async () => {
        // B's SUBSCRIBE waits in the busy server; meanwhile A, the channel's only holder, leaves:
        // B joins it, so A's UNSUBSCRIBE does not go up (the proxy confirms it).
        await b.send(command("SUBSCRIBE", channel));
        await a.send(command("UNSUBSCRIBE", channel));
        expect(await take(a, 1)).toEqual([confirm("unsubscribe", channel, 0)]);
        return (await take(b, 1))[0]!;
      });
      expect(refused).toStartWith("-BUSY ");
      // Neither holds the channel: the one subscription upstream (A's) is gone.
      await settles("NUMSUB of the channel nobody holds", () => numsub(channel), 0);
      expect(await listed(channel)).toEqual([]);
      expect(await publish(shared, channel, ["nobody"])).toEqual([0]);
      await nothingPending(a, false);
      // The refused channel is not B's, as redis does not count it: B is not in subscribed mode.
      await nothingPending(b, false);
      await b.send(Buffer.concat([command("UNSUBSCRIBE", channel), command("GET", "busy:nokey")]));
      expect(await take(b, 2)).toEqual([confirm("unsubscribe", channel, 0), "$-1\r\n"]);
      // The connection serves the next subscriber.
      const again = await subscriber(shared, [channel]);
      try {
        expect(await numsub(channel)).toBe(1);
        expect(await publish(shared, channel, ["again"])).toEqual([1]);
        expect(await take(again, 1)).toEqual([message(channel, "again")]);
      } finally {
        again.close();
      }
    } finally {
      a.close();
      b.close();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("a subscribe the server refuses (an ACL without the channel), through shared connections and without them", () => {
  for (const shared of [true, false]) {
    test(`${shared ? "shared" : "own"} connections: the client gets redis's -NOPERM and is not subscribed, as with redis: other commands run, counts leave the channel out, a pattern refused on every server is not held`, async () => {
      const server = await startRedis();
      // The default user (the proxy's connections and the direct one alike) may use allowed:* only.
      expect(await redisCall(server, "ACL", "SETUSER", "default", "resetchannels", "&allowed:*")).toBe("OK");
      const proxy = await startProxy(TARGET, poolYaml("acl", { listen: `127.0.0.1:${freePort()}`, redis: true, redis_shared_subscriptions: shared }, [serverLine(server.address)]));
      // One request at a time, each after the reply before it, as clients subscribe. (Pipelined
      // behind a refused subscribe, a request is planned before the refusal arrives, while the
      // proxy still counts the channel.)
      const session = [
        command("SUBSCRIBE", "forbidden:x"),
        command("GET", "acl:k"),
        command("PSUBSCRIBE", "forbidden:*"),
        command("PING"),
        command("SUBSCRIBE", "allowed:1"),
        command("UNSUBSCRIBE"),
      ];
      const play = async (endpoint: Endpoint): Promise<string[]> => {
        const client = await RawClient.connect(endpoint);
        const replies: string[] = [];
        try {
          for (const request of session) {
            await client.send(request);
            replies.push(...(await take(client, 1)));
          }
        } finally {
          client.close();
        }
        return replies;
      };
      try {
        const through = await play(proxy.pools.acl!);
        const direct = await play(endpointOf(server));
        expect(through[0]!).toStartWith("-NOPERM");
        expect(through[4]).toEqual(confirm("subscribe", "allowed:1", 1));
        expect(through).toEqual(direct);
        expect(((await redisCall(server, "PUBSUB", "NUMSUB", "forbidden:x")) as RespValue[])[1]).toBe(0);
      } finally {
        await proxy.stop();
        await server.stop();
      }
    });
  }
});

describe.skipIf(TARGET !== "buncracker")("redis_shared_subscriptions across hot reloads", () => {
  test("turned on, then off, in a running pool: each client keeps the way it subscribed by, new subscribers take the new one, all get every message", async () => {
    const listen = `127.0.0.1:${freePort()}`;
    const servers = backends.map((b) => serverLine(b.address));
    const config = (on: boolean) => poolYaml("reloaded", { listen, redis: true, redis_shared_subscriptions: on }, servers);
    const reloadable = await ReloadableProxy.start(config(false));
    const endpoint = reloadable.endpoint("reloaded");
    const channel = "reload:chan";
    const clients: RawClient[] = [];
    const everyone = async (payload: string, receivers: number) => {
      expect(await publish(endpoint, channel, [payload])).toEqual([receivers]);
      for (const client of clients) expect(await take(client, 1)).toEqual([message(channel, payload)]);
    };
    try {
      clients.push(await subscriber(endpoint, [channel])); // its own connection
      expect(await numsub(channel)).toBe(1);
      expect((await reloadable.signalReload(config(true)))[0]).toStartWith("reloaded");
      clients.push(await subscriber(endpoint, [channel]), await subscriber(endpoint, [channel])); // shared
      expect(await numsub(channel)).toBe(2);
      await everyone("on", 2);
      expect((await reloadable.signalReload(config(false)))[0]).toStartWith("reloaded");
      clients.push(await subscriber(endpoint, [channel])); // its own connection
      expect(await numsub(channel)).toBe(3);
      await everyone("off", 3);
      // The two shared ones go: the shared connection unsubscribes, the own ones stay.
      const [own1, shared1, shared2, own2] = clients as [RawClient, RawClient, RawClient, RawClient];
      shared1.close();
      shared2.close();
      clients.splice(0, clients.length, own1, own2);
      await settles("NUMSUB once the shared subscribers went away", () => numsub(channel), 2);
      await everyone("own", 2);
    } finally {
      for (const client of clients) client.close();
      await reloadable.stop();
    }
    await settles("NUMSUB once the proxy stopped", () => numsub(channel), 0);
  });

  test("a reload that changes redis_auth (the server's password rotated): later subscribers go through a new connection, opened with the new password; the old one serves its clients and closes once they leave", async () => {
    const guarded = await startRedis({ password: "rotate-1" });
    const listen = `127.0.0.1:${freePort()}`;
    const config = (password: string) =>
      poolYaml("rotated", { listen, redis: true, redis_auth: password, redis_shared_subscriptions: true }, [serverLine(guarded.address)]);
    const clients: RawClient[] = [];
    let reloadable: ReloadableProxy | undefined;
    /** PUBLISH through the proxy, after AUTH with the password of the running config. */
    const authedPublish = async (endpoint: Endpoint, channel: string, payload: string): Promise<RespValue> => {
      const replies = await exchange(endpoint, Buffer.concat([command("AUTH", "rotate-2"), command("PUBLISH", channel, payload)]), 2, respFrame);
      expect(latin1(replies[0]!)).toBe("+OK\r\n");
      return decode(replies[1]!);
    };
    const authed = async (endpoint: Endpoint, password: string): Promise<RawClient> => {
      const client = await connect(endpoint);
      clients.push(client);
      await client.send(command("AUTH", password));
      expect(await take(client, 1)).toEqual(["+OK\r\n"]);
      return client;
    };
    try {
      reloadable = await ReloadableProxy.start(config("rotate-1"));
      const endpoint = reloadable.endpoint("rotated");
      const a = await sub(await authed(endpoint, "rotate-1"), "SUBSCRIBE", ["rotate:a"]);
      const [first] = subscribers(await guardedClientList(guarded, "rotate-1"));
      expect(first!["sub"]).toBe("1");

      const rotated = await exchange(
        endpointOf(guarded),
        Buffer.concat([command("AUTH", "rotate-1"), command("CONFIG", "SET", "requirepass", "rotate-2")]),
        2,
        respFrame,
      );
      expect(rotated.map(latin1)).toEqual(["+OK\r\n", "+OK\r\n"]);
      expect((await reloadable.signalReload(config("rotate-2")))[0]).toStartWith("reloaded");

      const b = await sub(await authed(endpoint, "rotate-2"), "SUBSCRIBE", ["rotate:b"]);
      // Two pub/sub connections: A's channel on the first, B's on one opened since (AUTH
      // rotate-1 would be refused now).
      const both = subscribers(await guardedClientList(guarded, "rotate-2"));
      expect(both.map((c) => [c["id"] === first!["id"] ? "first" : "new", c["sub"]]).sort()).toEqual([
        ["first", "1"],
        ["new", "1"],
      ]);
      const second = both.find((c) => c["id"] !== first!["id"])!;
      expect(await authedPublish(endpoint, "rotate:a", "to a")).toBe(1);
      expect(await authedPublish(endpoint, "rotate:b", "to b")).toBe(1);
      expect(await take(a, 1)).toEqual([message("rotate:a", "to a")]);
      expect(await take(b, 1)).toEqual([message("rotate:b", "to b")]);

      // A leaves: the first connection closes; B's stays and serves it.
      a.close();
      await eventually("the first pub/sub connection closed", async () =>
        (await guardedClientList(guarded, "rotate-2")).some((c) => c["id"] === first!["id"]) ? undefined : true,
      );
      expect(subscribers(await guardedClientList(guarded, "rotate-2")).map((c) => c["id"])).toEqual([second["id"]]);
      expect(await authedPublish(endpoint, "rotate:b", "still")).toBe(1);
      expect(await take(b, 1)).toEqual([message("rotate:b", "still")]);
      await nothingPending(b);
    } finally {
      for (const client of clients) client.close();
      await reloadable?.stop();
      await guarded.stop();
    }
  });

  test("a reload that removes a server: the clients subscribed through it are disconnected, the proxy's connection to it closes (nothing of the proxy's left there: CLIENT LIST), the other subscribers stay", async () => {
    const removed = await startRedis();
    const listen = `127.0.0.1:${freePort()}`;
    // Named: the names sort the servers, "s3" last, so the others keep their positions.
    const kept = backends.map((b, i) => serverLine(b.address, 1, `s${i}`));
    const before = poolYaml("shrunk", { listen, redis: true, redis_shared_subscriptions: true }, [...kept, serverLine(removed.address, 1, "s3")]);
    const after = poolYaml("shrunk", { listen, redis: true, redis_shared_subscriptions: true }, kept);
    const place = placer(before, "shrunk");
    const channel = channelAt("removed", place, removed.address);
    const stays = channelAt("removed", place, backends[0]!.address);
    const clients: RawClient[] = [];
    let reloadable: ReloadableProxy | undefined;
    try {
      reloadable = await ReloadableProxy.start(before);
      const endpoint = reloadable.endpoint("shrunk");
      clients.push(
        await subscriber(endpoint, [channel]),
        await subscriber(endpoint, [stays, channel], true),
        await sub(await connect(endpoint), "PSUBSCRIBE", ["removed:*"]),
        await subscriber(endpoint, [stays]),
      );
      const [a, b3, patterned, other] = clients as [RawClient, RawClient, RawClient, RawClient];
      expect(await numsubOn(removed, channel)).toBe(2);
      expect(await redisCall(removed, "PUBSUB", "NUMPAT")).toBe(1);
      // The two pub/sub connections (RESP2, RESP3) are all the proxy has there.
      expect((await clientList(removed)).map((c) => c["resp"]).sort()).toEqual(["2", "3"]);
      expect((await reloadable.signalReload(after))[0]).toStartWith("reloaded");

      for (const client of [a, b3, patterned]) expect(latin1(await client.readUntilClose())).toBe("");
      await eventually("no connection of the proxy on the removed server", async () => ((await clientList(removed)).length === 0 ? true : undefined));
      expect(await numsubOn(removed, channel)).toBe(0);
      expect(await redisCall(removed, "PUBLISH", channel, "nobody")).toBe(0);
      // The subscriber through a server that stays keeps its subscription.
      expect(other.closed).toBe(false);
      expect(await publish(endpoint, stays, ["still"])).toEqual([1]);
      expect(await take(other, 1)).toEqual([message(stays, "still")]);
      await nothingPending(other);
    } finally {
      for (const client of clients) client.close();
      await reloadable?.stop();
      await removed.stop();
    }
  });

  test("a reload that renumbers the servers (one inserted first): a client subscribed before it that unsubscribes after it gets no more messages, and the channel's server has NUMSUB 0", async () => {
    const inserted = await startRedis();
    const listen = `127.0.0.1:${freePort()}`;
    // Named: the names sort the servers, and "s0" comes before the others (positions 0 to 2
    // become 1 to 3).
    const servers = backends.map((b, i) => serverLine(b.address, 1, `s${i + 1}`));
    const before = poolYaml("renumbered", { listen, redis: true, redis_shared_subscriptions: true }, servers);
    const after = poolYaml("renumbered", { listen, redis: true, redis_shared_subscriptions: true }, [serverLine(inserted.address, 1, "s0"), ...servers]);
    // A channel on the same server under both configs, at another position after the reload.
    const [placeBefore, placeAfter] = [placer(before, "renumbered"), placer(after, "renumbered")];
    let channel = "";
    for (let i = 0; channel === ""; i++) if (placeBefore(`renum:${spread(i)}`) === placeAfter(`renum:${spread(i)}`)) channel = `renum:${spread(i)}`;
    const home = backends.find((b) => b.address === placeBefore(channel))!;
    const clients: RawClient[] = [];
    let reloadable: ReloadableProxy | undefined;
    try {
      reloadable = await ReloadableProxy.start(before);
      const endpoint = reloadable.endpoint("renumbered");
      const a = await subscriber(endpoint, [channel]);
      clients.push(a);
      expect(await numsubOn(home, channel)).toBe(1);
      expect((await reloadable.signalReload(after))[0]).toStartWith("reloaded");

      expect(await redisCall(home, "PUBLISH", channel, "across")).toBe(1);
      expect(await take(a, 1)).toEqual([message(channel, "across")]);
      await a.send(command("UNSUBSCRIBE", channel));
      expect(await take(a, 1)).toEqual([confirm("unsubscribe", channel, 0)]);
      await settles("NUMSUB of the channel on its server", () => numsubOn(home, channel), 0);
      expect(await redisCall(home, "PUBLISH", channel, "gone")).toBe(0);
      await a.send(command("GET", "renum:nokey"));
      expect(await take(a, 1)).toEqual(["$-1\r\n"]);
      expect(await numsubOn(inserted, channel)).toBe(0);
    } finally {
      for (const client of clients) client.close();
      await reloadable?.stop();
      await inserted.stop();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("pub/sub with an ejected server (auto_eject_hosts), through shared connections and without them", () => {
  for (const shared of [true, false]) test(`${shared ? "shared" : "own"} connections: PUNSUBSCRIBE while a server the pattern is subscribed on is ejected: confirmed with count 0, no more pmessages from the live servers, NUMPAT 0 on every server`, async () => {
    const servers = await Promise.all([startRedis(), startRedis(), startRedis()]);
    const listen = `127.0.0.1:${freePort()}`;
    // A server_retry_timeout longer than the test: the server stays ejected.
    const settings = { listen, redis: true, redis_shared_subscriptions: shared, auto_eject_hosts: true, server_failure_limit: 1, server_retry_timeout: 60_000 };
    const yaml = poolYaml("ejecting", settings, servers.map((b, i) => serverLine(b.address, 1, `s${i}`)));
    const [victim, live1, live2] = servers as [Backend, Backend, Backend];
    const pattern = "eject:*";
    const onLive = [channelAt("eject", placer(yaml, "ejecting"), live1.address), channelAt("eject", placer(yaml, "ejecting"), live2.address)];
    const numpatsOf = () => Promise.all(servers.map(async (b) => (await redisCall(b, "PUBSUB", "NUMPAT")) as number));
    let reloadable: ReloadableProxy | undefined;
    let client: RawClient | undefined;
    try {
      reloadable = await ReloadableProxy.start(yaml);
      const endpoint = reloadable.endpoint("ejecting");
      client = await sub(await connect(endpoint), "PSUBSCRIBE", [pattern]);
      expect(await numpatsOf()).toEqual([1, 1, 1]);
      // The victim fails a request (-BUSY, one failure is the limit): ejected. A killed server
      // would not do: its pub/sub connection would close, disconnecting the client.
      const key = channelAt("ejectkey", placer(yaml, "ejecting"), victim.address);
      const failed = await whileBusy(victim, 100, async () => latin1((await exchange(endpoint, command("GET", key), 1, respFrame))[0]!));
      expect(failed).toStartWith("-BUSY ");
      const ejected = async () => (await reloadable!.healthz()).body.pools[0]!;
      expect(await ejected()).toMatchObject({ live: ["s1", "s2"], ejected: ["s0"] });

      // Still subscribed through the live servers...
      expect(await redisCall(live1, "PUBLISH", onLive[0]!, "before")).toBe(1);
      expect(await take(client, 1)).toEqual([pmessage(pattern, onLive[0]!, "before")]);
      // ...until it unsubscribes, the victim still ejected.
      await client.send(command("PUNSUBSCRIBE", pattern));
      expect(await take(client, 1)).toEqual([confirm("punsubscribe", pattern, 0)]);
      expect(await ejected()).toMatchObject({ ejected: ["s0"] });
      await settles("NUMPAT on every server", numpatsOf, [0, 0, 0]);
      expect(await redisCall(live1, "PUBLISH", onLive[0]!, "after")).toBe(0);
      expect(await redisCall(live2, "PUBLISH", onLive[1]!, "after")).toBe(0);
      await nothingPending(client, false);
    } finally {
      client?.close();
      await reloadable?.stop();
      await stopAll(servers);
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("redis_shared_subscriptions in the config (-t)", () => {
  const servers = [serverLine("127.0.0.1:30001"), serverLine("127.0.0.1:30002")];

  test("accepted in a redis pool", async () => {
    const result = await testConfig(TARGET, poolYaml("sharing", { listen: "127.0.0.1:30000", redis: true, redis_shared_subscriptions: true }, servers));
    expect(result.stdout + result.stderr).toContain("syntax is ok");
    expect(result.code).toBe(0);
  });

  test("refused with distribution redis_cluster, naming the pool and both settings", async () => {
    const result = await testConfig(
      TARGET,
      poolYaml("clustered", { listen: "127.0.0.1:30000", redis: true, distribution: "redis_cluster", redis_shared_subscriptions: true }, servers),
    );
    expect(result.code).toBe(1);
    const output = result.stdout + result.stderr;
    expect(output).toContain("clustered");
    expect(output).toContain("redis_shared_subscriptions");
    expect(output).toContain("redis_cluster");
  });
});
