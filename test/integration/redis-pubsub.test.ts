// Pub/sub through a redis pool of three real redis-servers (issue 17): channels routed like keys
// (PUBLISH and SUBSCRIBE of a channel meet on one server), patterns on every server, the
// client's own counts in confirmations, RESP2 subscribed-mode rules, RESP3 pushes (a RESP2 and a
// RESP3 client on one channel, compared with a single redis), PUBSUB introspection
// merged, the subscriber limit, and no upstream connection left behind by a subscriber that
// goes away (checked with CLIENT LIST on the servers); across hot reloads, an unsubscribe after
// the servers were renumbered, and a removed server's subscribers disconnected.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import Redis from "ioredis";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { spread } from "../helpers/random.ts";
import { exchange, RawClient, type Endpoint } from "../helpers/client.ts";
import { latin1 } from "../helpers/assertions.ts";
import { clientList, subscribers } from "../helpers/client-list.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { redisCall, stopAll } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { metricSample } from "../helpers/prometheus.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { eventually, placer, ReloadableProxy } from "../helpers/reload.ts";
import { array, bulk, command, decode, error, integer, RespError, respFrame, type RespValue } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

let backends: Backend[] = [];
let proxy: RunningProxy;
let pool: Endpoint;
let limited: Endpoint;
let serverOf: (key: string) => string;
const metricsPort = freePort();
const CHANNELS = Array.from({ length: 30 }, (_, i) => `chan:${spread(i)}`);

beforeAll(async () => {
  backends = await Promise.all([startRedis(), startRedis(), startRedis()]);
  const servers = backends.map((b) => serverLine(b.address));
  const yaml = [
    poolYaml("pubsub", { listen: `127.0.0.1:${freePort()}`, redis: true }, servers),
    poolYaml("limited", { listen: `127.0.0.1:${freePort()}`, redis: true, redis_max_subscribers: 1 }, servers),
  ].join("");
  proxy = await startProxy(TARGET, yaml, { args: TARGET === "buncracker" ? ["--metrics-port", String(metricsPort)] : [] });
  pool = proxy.pools.pubsub!;
  limited = proxy.pools.limited!;
  serverOf = placer(yaml, "pubsub");
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll(backends);
});

const confirm = (word: string, name: string | null, count: number): Buffer => array([bulk(word), bulk(name), integer(count)]);
const text = (v: RespValue): string => (Buffer.isBuffer(v) ? v.toString("latin1") : JSON.stringify(v));

/** The first `n` messages ioredis client `sub` receives, as "channel=message", sorted. */
function messages(sub: Redis, n: number): Promise<string[]> {
  const got: string[] = [];
  return new Promise((resolve) => {
    sub.on("message", (channel: string, message: string) => {
      got.push(`${channel}=${message}`);
      if (got.length === n) resolve(got.sort());
    });
  });
}

/** One command on a connection of its own, its reply decoded. */
async function call(endpoint: Endpoint, ...args: string[]): Promise<RespValue> {
  return decode((await exchange(endpoint, command(...args), 1, respFrame))[0]!);
}

/** Subscriber connections on every backend (CLIENT LIST). */
const upstreamSubscribers = async (): Promise<number> => (await Promise.all(backends.map(async (b) => subscribers(await clientList(b)).length))).reduce((a, b) => a + b, 0);

/** Earlier tests' subscribers are gone from the servers (they close as their clients do). */
const noSubscribersLeft = (): Promise<boolean> =>
  eventually("no subscriber connections on the servers", async () => ((await upstreamSubscribers()) === 0 ? true : undefined));

describe.skipIf(TARGET !== "buncracker")("pub/sub", () => {
  test("the channels are spread over the three servers", () => {
    expect(new Set(CHANNELS.map(serverOf)).size).toBe(3);
  });

  test("between two clients: confirmations with the client's counts, in order; every message delivered once", async () => {
    const sub = await RawClient.connect(pool);
    await sub.send(command("SUBSCRIBE", ...CHANNELS));
    const confirmations = await sub.readReplies(CHANNELS.length, respFrame);
    expect(Buffer.concat(confirmations).toString()).toBe(Buffer.concat(CHANNELS.map((c, i) => confirm("subscribe", c, i + 1))).toString());
    const pub = await RawClient.connect(pool);
    await pub.send(Buffer.concat(CHANNELS.map((c) => command("PUBLISH", c, `hello ${c}`))));
    expect((await pub.readReplies(CHANNELS.length, respFrame)).map((r) => r.toString())).toEqual(CHANNELS.map(() => ":1\r\n"));
    const messages = (await sub.readReplies(CHANNELS.length, respFrame)).map((r) => (decode(r) as RespValue[]).map(text));
    expect(messages.sort()).toEqual(CHANNELS.map((c) => ["message", c, `hello ${c}`]).sort());
    pub.close();
    sub.close();
  });

  test("a pattern subscription receives from every server, each message once", async () => {
    const sub = await RawClient.connect(pool);
    await sub.send(command("PSUBSCRIBE", "chan:*"));
    expect((await sub.readReplies(1, respFrame))[0]!.toString()).toBe(confirm("psubscribe", "chan:*", 1).toString());
    const pub = await RawClient.connect(pool);
    await pub.send(Buffer.concat(CHANNELS.map((c) => command("PUBLISH", c, c))));
    expect((await pub.readReplies(CHANNELS.length, respFrame)).map(String)).toEqual(CHANNELS.map(() => ":1\r\n"));
    const messages = (await sub.readReplies(CHANNELS.length, respFrame)).map((r) => (decode(r) as RespValue[]).map(text));
    expect(messages.sort()).toEqual(CHANNELS.map((c) => ["pmessage", "chan:*", c, c]).sort());
    // Nothing more: one more PUBLISH is the next message.
    await pub.send(command("PUBLISH", CHANNELS[0]!, "last"));
    await pub.readReplies(1, respFrame);
    expect((decode((await sub.readReplies(1, respFrame))[0]!) as RespValue[]).map(text)).toEqual(["pmessage", "chan:*", CHANNELS[0]!, "last"]);
    pub.close();
    sub.close();
  });

  test("a message answers no request: the pool's latency histogram counts the requests only", async () => {
    const requests = (): Promise<number> => metricSample(metricsPort, 'buncracker_pool_request_duration_seconds_count{pool="pubsub"}');
    const channel = "chan:latency";
    const sub = await RawClient.connect(pool);
    const pub = await RawClient.connect(pool);
    try {
      await sub.send(command("SUBSCRIBE", channel));
      await sub.readReplies(1, respFrame);
      const before = await requests();
      await pub.send(Buffer.concat(Array.from({ length: 20 }, (_, i) => command("PUBLISH", channel, `m${i}`))));
      expect((await pub.readReplies(20, respFrame)).map(String)).toEqual(Array.from({ length: 20 }, () => ":1\r\n"));
      const messages = await sub.readReplies(20, respFrame);
      expect(messages.map((r) => text((decode(r) as RespValue[])[2]!))).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
      expect(await requests()).toBe(before + 20);
    } finally {
      pub.close();
      sub.close();
    }
  });

  test("a large message (1 MB) arrives whole, also while the subscriber waits for a confirmation", async () => {
    const sub = await RawClient.connect(pool);
    await sub.send(command("SUBSCRIBE", CHANNELS[1]!));
    await sub.readReplies(1, respFrame);
    const big = "x".repeat(1 << 20);
    const pub = await RawClient.connect(pool);
    await pub.send(command("PUBLISH", CHANNELS[1]!, big));
    await sub.send(command("SUBSCRIBE", CHANNELS[2]!));
    expect(decode((await pub.readReplies(1, respFrame))[0]!)).toBe(1);
    const replies = (await sub.readReplies(2, respFrame)).map((r) => (decode(r) as RespValue[]).map(text));
    expect(replies).toContainEqual(["message", CHANNELS[1]!, big]);
    expect(replies).toContainEqual(["subscribe", CHANNELS[2]!, "2"]);
    pub.close();
    sub.close();
  });

  test("between a RESP2 and a RESP3 client: pushes for RESP3 (confirmations and messages), other commands while subscribed; as a single redis answers", async () => {
    const channel = CHANNELS[3]!;
    // The same session against the proxy and against one redis-server directly.
    const run = async (endpoint: Endpoint): Promise<string[]> => {
      const r3 = await RawClient.connect(endpoint);
      const r2 = await RawClient.connect(endpoint);
      const pub = await RawClient.connect(endpoint);
      try {
        await r3.send(command("HELLO", "3"));
        const [hello] = await r3.readReplies(1, respFrame);
        expect(latin1(hello!)).toStartWith("%");
        const seen: string[] = [];
        const take = async (client: RawClient, n: number) => seen.push(...(await client.readReplies(n, respFrame)).map(latin1));
        await r3.send(Buffer.concat([command("SUBSCRIBE", channel), command("PSUBSCRIBE", "chan:*")]));
        await take(r3, 2);
        // RESP3 lets a subscribed client run any command.
        await r3.send(Buffer.concat([command("SET", `${channel}:k`, "v"), command("GET", `${channel}:k`), command("PING")]));
        await take(r3, 3);
        await r2.send(command("SUBSCRIBE", channel));
        await take(r2, 1);
        await pub.send(command("PUBLISH", channel, "hello"));
        await take(pub, 1);
        await take(r3, 2);
        await take(r2, 1);
        await r3.send(Buffer.concat([command("UNSUBSCRIBE"), command("PUNSUBSCRIBE"), command("GET", `${channel}:k`)]));
        await take(r3, 3);
        await pub.send(command("DEL", `${channel}:k`));
        await take(pub, 1);
        return seen;
      } finally {
        r3.close();
        r2.close();
        pub.close();
      }
    };
    const direct = await run({ host: backends[0]!.host, port: backends[0]!.port });
    const proxied = await run(pool);
    expect(proxied).toEqual(direct);
    // What the comparison covers: the RESP3 client's replies are pushes, the RESP2 one's arrays.
    expect(proxied.filter((r) => r.startsWith(">")).length).toBe(6);
    expect(proxied.filter((r) => r.startsWith("*3\r\n$7\r\nmessage")).length).toBe(1);
  });

  test("ioredis with its default options (RESP3): subscribe, receive, and a command while subscribed", async () => {
    const port = (pool as { port: number }).port;
    const sub = new Redis({ host: "127.0.0.1", port, lazyConnect: true });
    const pub = new Redis({ host: "127.0.0.1", port, lazyConnect: true });
    try {
      await sub.connect();
      await pub.connect();
      const got = messages(sub, 5);
      expect(await sub.subscribe(...CHANNELS.slice(10, 15))).toBe(5);
      expect(await sub.set("resp3:k", "v")).toBe("OK");
      expect(await sub.get("resp3:k")).toBe("v");
      for (const c of CHANNELS.slice(10, 15)) expect(await pub.publish(c, c.toUpperCase())).toBe(1);
      expect(await got).toEqual(CHANNELS.slice(10, 15).map((c) => `${c}=${c.toUpperCase()}`).sort());
      await pub.del("resp3:k");
    } finally {
      sub.disconnect();
      pub.disconnect();
    }
  });

  test("RESP2 subscribed mode: redis's rules, then back to normal once every subscription is gone", async () => {
    const sub = await RawClient.connect(pool);
    await sub.send(Buffer.concat([command("SUBSCRIBE", "chan:1", "chan:2"), command("PSUBSCRIBE", "p*"), command("GET", "k"), command("PING"), command("PING", "hi")]));
    const replies = await sub.readReplies(6, respFrame);
    expect(Buffer.concat(replies).toString()).toBe(
      Buffer.concat([
        confirm("subscribe", "chan:1", 1),
        confirm("subscribe", "chan:2", 2),
        confirm("psubscribe", "p*", 3),
        error("ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"),
        array([bulk("pong"), bulk("")]),
        array([bulk("pong"), bulk("hi")]),
      ]).toString(),
    );
    await sub.send(Buffer.concat([command("UNSUBSCRIBE", "chan:2", "nothere"), command("UNSUBSCRIBE"), command("PUNSUBSCRIBE"), command("GET", "k")]));
    const after = await sub.readReplies(5, respFrame);
    expect(Buffer.concat(after).toString()).toBe(
      Buffer.concat([
        confirm("unsubscribe", "chan:2", 2),
        confirm("unsubscribe", "nothere", 2),
        confirm("unsubscribe", "chan:1", 1),
        confirm("punsubscribe", "p*", 0),
        bulk(null),
      ]).toString(),
    );
    sub.close();
  });

  test("RESET while subscribed: +RESET, the client is out of subscribed mode on the same connection, its subscriber connections close, and no message reaches it any more", async () => {
    await noSubscribersLeft();
    const sub = await RawClient.connect(pool);
    try {
      await sub.send(Buffer.concat([command("SUBSCRIBE", ...CHANNELS.slice(0, 6)), command("PSUBSCRIBE", "r*"), command("RESET"), command("SET", "after-reset", "1"), command("GET", "after-reset")]));
      const replies = (await sub.readReplies(10, respFrame)).map(decode);
      expect(replies.slice(7)).toEqual(["RESET", "OK", Buffer.from("1")]);
      await noSubscribersLeft();
      for (const channel of CHANNELS.slice(0, 6)) expect(await call(pool, "PUBLISH", channel, "late")).toBe(0);
      expect(await call(pool, "PUBLISH", "r1", "late")).toBe(0);
      // Subscribing again works as for a new client (counts from 1).
      await sub.send(command("SUBSCRIBE", CHANNELS[0]!));
      expect((await sub.readReplies(1, respFrame))[0]!.toString()).toBe(confirm("subscribe", CHANNELS[0]!, 1).toString());
      expect(await call(pool, "PUBLISH", CHANNELS[0]!, "again")).toBe(1);
      expect((decode((await sub.readReplies(1, respFrame))[0]!) as RespValue[]).map(text)).toEqual(["message", CHANNELS[0]!, "again"]);
      expect(sub.buffered.length).toBe(0);
    } finally {
      sub.close();
    }
  });

  test("RESET while subscribed in RESP3: back to RESP2, as redis", async () => {
    const sub = await RawClient.connect(pool);
    try {
      await sub.send(Buffer.concat([command("HELLO", "3"), command("SUBSCRIBE", "chan:9"), command("RESET"), command("GET", "nokey")]));
      const replies = await sub.readReplies(4, respFrame);
      expect(replies[2]!.toString()).toBe("+RESET\r\n");
      expect(replies[3]!.toString()).toBe("$-1\r\n");
    } finally {
      sub.close();
    }
  });

  test("shard channels: SSUBSCRIBE and SPUBLISH meet on the channel's server", async () => {
    const sub = await RawClient.connect(pool);
    await sub.send(command("SSUBSCRIBE", "chan:3", "chan:4"));
    expect(Buffer.concat(await sub.readReplies(2, respFrame)).toString()).toBe(Buffer.concat([confirm("ssubscribe", "chan:3", 1), confirm("ssubscribe", "chan:4", 2)]).toString());
    expect(await call(pool, "SPUBLISH", "chan:4", "x")).toBe(1);
    expect((decode((await sub.readReplies(1, respFrame))[0]!) as RespValue[]).map(text)).toEqual(["smessage", "chan:4", "x"]);
    sub.close();
  });

  test("PUBSUB CHANNELS, NUMSUB and NUMPAT count the pool's subscribers", async () => {
    await noSubscribersLeft();
    const a = await RawClient.connect(pool);
    const b = await RawClient.connect(pool);
    await a.send(Buffer.concat([command("SUBSCRIBE", "chan:5", "chan:6"), command("PSUBSCRIBE", "x*")]));
    await a.readReplies(3, respFrame);
    await b.send(command("SUBSCRIBE", "chan:6"));
    await b.readReplies(1, respFrame);
    expect(((await call(pool, "PUBSUB", "CHANNELS", "chan:*")) as Buffer[]).map(String).sort()).toEqual(["chan:5", "chan:6"]);
    expect((await call(pool, "PUBSUB", "NUMSUB", "chan:5", "chan:6", "chan:7")) as RespValue[]).toEqual([
      Buffer.from("chan:5"), 1, Buffer.from("chan:6"), 2, Buffer.from("chan:7"), 0,
    ]);
    expect(await call(pool, "PUBSUB", "NUMPAT")).toBe(1);
    a.close();
    b.close();
  });

  test("ioredis on RESP2: subscribe, publish, receive", async () => {
    const sub = new Redis({ host: "127.0.0.1", port: (pool as { port: number }).port, lazyConnect: true, protocol: 2 });
    const pub = new Redis({ host: "127.0.0.1", port: (pool as { port: number }).port, lazyConnect: true, protocol: 2 });
    try {
      await sub.connect();
      await pub.connect();
      const got = messages(sub, 10);
      expect(await sub.subscribe(...CHANNELS.slice(0, 10))).toBe(10);
      for (const c of CHANNELS.slice(0, 10)) expect(await pub.publish(c, c.toUpperCase())).toBe(1);
      expect(await got).toEqual(CHANNELS.slice(0, 10).map((c) => `${c}=${c.toUpperCase()}`).sort());
    } finally {
      sub.disconnect();
      pub.disconnect();
    }
  });

  test("redis_max_subscribers: one more subscriber gets a clear error, and a place frees when one leaves", async () => {
    const first = await RawClient.connect(limited);
    await first.send(command("SUBSCRIBE", "a"));
    await first.readReplies(1, respFrame);
    const second = await RawClient.connect(limited);
    await second.send(command("SUBSCRIBE", "b"));
    const refused = decode((await second.readReplies(1, respFrame))[0]!) as RespError;
    expect(refused.message).toContain("redis_max_subscribers");
    // Still a normal client.
    await second.send(command("PING"));
    expect((await second.readReplies(1, respFrame))[0]!.toString()).toBe("+PONG\r\n");
    first.close();
    await eventually("the place freed", async () => {
      await second.send(command("SUBSCRIBE", "b"));
      const [reply] = await second.readReplies(1, respFrame);
      return reply!.toString().startsWith("*3") ? true : undefined;
    });
    second.close();
  });

  test("a subscriber that disconnects leaves no upstream connection behind", async () => {
    await noSubscribersLeft();
    const before = await Promise.all(backends.map(async (b) => (await clientList(b)).length));
    const sub = await RawClient.connect(pool);
    await sub.send(Buffer.concat([command("SUBSCRIBE", ...CHANNELS), command("PSUBSCRIBE", "q*")]));
    await sub.readReplies(CHANNELS.length + 1, respFrame);
    // Its own connection on every server (the pattern is on all three).
    expect(await upstreamSubscribers()).toBe(3);
    sub.close();
    await noSubscribersLeft();
    const after = await Promise.all(backends.map(async (b) => (await clientList(b)).length));
    expect(after).toEqual(before);
  });

  test("a subscriber whose server goes away is disconnected (it would wait for messages for ever)", async () => {
    const channel = CHANNELS[0]!;
    const backend = backends.find((b) => b.address === serverOf(channel))!;
    const sub = await RawClient.connect(pool);
    await sub.send(command("SUBSCRIBE", channel));
    await sub.readReplies(1, respFrame);
    const other = await RawClient.connect(pool);
    await backend.kill();
    try {
      expect(latin1(await sub.readUntilClose())).toBe("");
      // Other clients are not touched.
      await other.send(command("PING"));
      expect((await other.readReplies(1, respFrame))[0]!.toString()).toBe("+PONG\r\n");
    } finally {
      other.close();
      await backend.restart();
    }
  });
});

// The same through shared connections: redis-pubsub-shared.test.ts.
describe.skipIf(TARGET !== "buncracker")("pub/sub across hot reloads", () => {
  // Names sort the servers (twemproxy's order): "s0" before "s1" renumbers the others.
  const named = (i: number, name: string) => serverLine(backends[i]!.address, 1, name);
  const numsubOn = async (b: Backend, channel: string) => ((await redisCall(b, "PUBSUB", "NUMSUB", channel)) as RespValue[])[1] as number;

  test("after a reload renumbered the servers, an unsubscribe reaches the server the channel was subscribed on", async () => {
    const listen = `127.0.0.1:${freePort()}`;
    const yaml = (servers: string[]) => poolYaml("renumbered", { listen, redis: true }, servers);
    const before = yaml([named(1, "s1"), named(2, "s2")]);
    const reloadable = await ReloadableProxy.start(before);
    const endpoint = reloadable.endpoint("renumbered");
    const at = placer(before, "renumbered");
    const channel = Array.from({ length: 50 }, (_, i) => `renum:${spread(i)}`).find((c) => at(c) === backends[2]!.address)!;
    const sub = await RawClient.connect(endpoint);
    try {
      await sub.send(command("SUBSCRIBE", channel));
      await sub.readReplies(1, respFrame);
      expect(await numsubOn(backends[2]!, channel)).toBe(1);
      // s0 sorts first: s1 and s2 move from positions 0 and 1 to 1 and 2.
      expect((await reloadable.signalReload(yaml([named(0, "s0"), named(1, "s1"), named(2, "s2")])))[0]).toStartWith("reloaded");
      await sub.send(command("UNSUBSCRIBE", channel));
      expect((await sub.readReplies(1, respFrame)).map(latin1)).toEqual([latin1(array([bulk("unsubscribe"), bulk(channel), integer(0)]))]);
      await eventually("NUMSUB 0 on the channel's server", async () => ((await numsubOn(backends[2]!, channel)) === 0 ? true : undefined));
      // Out of subscribed mode, and no message of the channel comes any more.
      expect(await redisCall(backends[2]!, "PUBLISH", channel, "late")).toBe(0);
      await sub.send(command("PING"));
      expect((await sub.readReplies(1, respFrame)).map(latin1)).toEqual(["+PONG\r\n"]);
    } finally {
      sub.close();
      await reloadable.stop();
    }
  });

  test("a reload that removes a server disconnects the clients subscribed on it, and only them", async () => {
    const listen = `127.0.0.1:${freePort()}`;
    const yaml = (servers: string[]) => poolYaml("shrunk", { listen, redis: true }, servers);
    const before = yaml([named(0, "s0"), named(1, "s1"), named(2, "s2")]);
    const reloadable = await ReloadableProxy.start(before);
    const endpoint = reloadable.endpoint("shrunk");
    const at = placer(before, "shrunk");
    const channelOn = (b: number) => Array.from({ length: 50 }, (_, i) => `shrunk:${spread(i)}`).find((c) => at(c) === backends[b]!.address)!;
    const [gone, kept] = [channelOn(2), channelOn(0)];
    const [goneSub, keptSub] = await Promise.all([RawClient.connect(endpoint), RawClient.connect(endpoint)]);
    try {
      await goneSub.send(command("SUBSCRIBE", gone));
      await keptSub.send(command("SUBSCRIBE", kept));
      await Promise.all([goneSub.readReplies(1, respFrame), keptSub.readReplies(1, respFrame)]);
      expect((await reloadable.signalReload(yaml([named(0, "s0"), named(1, "s1")])))[0]).toStartWith("reloaded");
      expect(latin1(await goneSub.readUntilClose())).toBe("");
      await eventually("no subscriber left on the removed server", async () => ((await numsubOn(backends[2]!, gone)) === 0 ? true : undefined));
      expect(await redisCall(backends[0]!, "PUBLISH", kept, "still")).toBe(1);
      expect((await keptSub.readReplies(1, respFrame)).map(latin1)).toEqual([latin1(array([bulk("message"), bulk(kept), bulk("still")]))]);
    } finally {
      goneSub.close();
      keptSub.close();
      await reloadable.stop();
    }
  });
});
