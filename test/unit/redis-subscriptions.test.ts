// A client's subscriptions across servers (src/proto/redis/subscriptions.ts): the confirmations
// the proxy writes are compared byte for byte with a real redis-server's for the same requests,
// and what goes upstream is exactly what changes, on the server each channel routes to (every
// server for a pattern); and the topics of shared subscriptions, checked against the messages
// redis sends.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { PubSubOp } from "../../src/proto/redis/commands.ts";
import { Unasked, type Outbound } from "../../src/proto/codec.ts";
import {
  allowedWhileSubscribed,
  endedChannel,
  notAllowedWhileSubscribed,
  pushTopic,
  sharedTopic,
  SUBSCRIBER_PING,
  Subscriptions,
  subscribedPong,
  unasked,
  writeSubscription,
} from "../../src/proto/redis/subscriptions.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { command, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

let redis: Backend;
let direct: RawClient;

beforeAll(async () => {
  redis = await startRedis();
  direct = await RawClient.connect({ host: redis.host, port: redis.port });
});

afterAll(async () => {
  direct.close();
  await redis.stop();
});

const OP: Record<string, PubSubOp> = {
  SUBSCRIBE: PubSubOp.Subscribe,
  UNSUBSCRIBE: PubSubOp.Unsubscribe,
  PSUBSCRIBE: PubSubOp.PSubscribe,
  PUNSUBSCRIBE: PubSubOp.PUnsubscribe,
  SSUBSCRIBE: PubSubOp.SSubscribe,
  SUNSUBSCRIBE: PubSubOp.SUnsubscribe,
};
const bytes = (s: string) => Buffer.from(s, "latin1");
const names = (list: readonly { name: Uint8Array }[] | undefined) => (list ?? []).map((h) => Buffer.from(h.name).toString("latin1"));

/** redis's replies to a request, as many as it sends (one per name, or one). */
async function redisReplies(args: string[], count: number): Promise<Buffer> {
  await direct.send(command(...args));
  return Buffer.concat(await direct.readReplies(count, respFrame));
}

describe("confirmations are a redis-server's, byte for byte (one server)", () => {
  const subs = new Subscriptions();
  const steps: string[][] = [
    ["SUBSCRIBE", "a", "b", "a"],
    ["PSUBSCRIBE", "p*", "q?"],
    ["SSUBSCRIBE", "s1"],
    ["UNSUBSCRIBE", "b", "never"],
    ["SUBSCRIBE", "bin\r\n\x00\xff"],
    ["PUNSUBSCRIBE", "p*"],
    ["SUNSUBSCRIBE"],
    ["SUNSUBSCRIBE"],
    ["PUNSUBSCRIBE", "q?"],
    ["UNSUBSCRIBE", "a"],
    ["UNSUBSCRIBE", "bin\r\n\x00\xff"],
    ["UNSUBSCRIBE"],
    ["PUNSUBSCRIBE"],
  ];
  for (const args of steps) {
    test(args.join(" ").replace(/[^\x20-\x7e]/g, "?"), async () => {
      const change = subs.change(OP[args[0]!]!, args.slice(1).map(bytes), () => 0, [0], false);
      const count = Math.max(1, args.length - 1);
      expect(Buffer.from(change.reply).toString("latin1")).toBe((await redisReplies(args, count)).toString("latin1"));
    });
  }

  test("out of subscribed mode at the end", () => {
    expect(subs.subscribed).toBe(false);
    expect(subs.count + subs.shardCount).toBe(0);
  });
});

describe("upstream: only what changes, where it lives", () => {
  const route = (name: Uint8Array) => name[0]! % 3;

  test("channels go to their server, patterns to every server, each once", () => {
    const subs = new Subscriptions();
    const first = subs.change(PubSubOp.Subscribe, ["a", "b", "c", "a"].map(bytes), route, [0, 1, 2], false);
    // "a" = 97 -> 1, "b" = 98 -> 2, "c" = 99 -> 0.
    expect(names(first.upstream.get(0))).toEqual(["c"]);
    expect(names(first.upstream.get(1))).toEqual(["a"]);
    expect(names(first.upstream.get(2))).toEqual(["b"]);
    const again = subs.change(PubSubOp.Subscribe, ["a", "d"].map(bytes), route, [0, 1, 2], false);
    expect([...again.upstream.keys()]).toEqual([1]);
    expect(names(again.upstream.get(1))).toEqual(["d"]);
    const patterns = subs.change(PubSubOp.PSubscribe, [bytes("n*")], route, [0, 2], false);
    expect(names(patterns.upstream.get(0))).toEqual(["n*"]);
    expect(names(patterns.upstream.get(2))).toEqual(["n*"]);
    expect(patterns.upstream.has(1)).toBe(false);
    expect(subs.count).toBe(5);
  });

  test("unsubscribe goes where the subscription was made, even after the routing changed", () => {
    const subs = new Subscriptions();
    subs.change(PubSubOp.Subscribe, [bytes("a")], () => 2, [0, 1, 2], false);
    subs.change(PubSubOp.PSubscribe, [bytes("p*")], route, [0, 1], false);
    const off = subs.change(PubSubOp.Unsubscribe, [bytes("a"), bytes("zz")], () => 0, [0, 1, 2], false);
    expect([...off.upstream.keys()]).toEqual([2]);
    const all = subs.change(PubSubOp.PUnsubscribe, [], route, [0, 1, 2], false);
    expect([...all.upstream.keys()].sort()).toEqual([0, 1]);
    expect(subs.subscribed).toBe(false);
  });

  test("RESP3: confirmations are push messages", () => {
    const subs = new Subscriptions();
    const change = subs.change(PubSubOp.SSubscribe, [bytes("s")], route, [0], true);
    expect(Buffer.from(change.reply).toString()).toBe(">3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n");
  });
});

describe("RESP2 subscribed mode", () => {
  test("which commands are allowed, and redis's error and PING replies", async () => {
    expect(allowedWhileSubscribed("subscribe", PubSubOp.Subscribe)).toBe(true);
    expect(allowedWhileSubscribed("ping", null)).toBe(true);
    expect(allowedWhileSubscribed("publish", PubSubOp.Publish)).toBe(false);
    expect(allowedWhileSubscribed("get", null)).toBe(false);
    await direct.send(command("SUBSCRIBE", "x"));
    await direct.readReplies(1, respFrame);
    const pong = new ByteWriter(16);
    subscribedPong(null, pong);
    subscribedPong(bytes("hi"), pong);
    const expected = Buffer.concat([notAllowedWhileSubscribed("get"), pong.take()]);
    await direct.send(Buffer.concat([command("GET", "k"), command("PING"), command("PING", "hi")]));
    expect(Buffer.concat(await direct.readReplies(3, respFrame)).toString()).toBe(Buffer.from(expected).toString());
  });
});

describe("messages pushed on a subscriber connection", () => {
  test("message, pmessage and smessage, in RESP2 and RESP3, are pushes; confirmations and replies are not", async () => {
    const sub = await RawClient.connect({ host: redis.host, port: redis.port });
    const pub = await RawClient.connect({ host: redis.host, port: redis.port });
    await sub.send(Buffer.concat([command("SUBSCRIBE", "c"), command("PSUBSCRIBE", "c*"), command("SSUBSCRIBE", "s")]));
    const confirmations = await sub.readReplies(3, respFrame);
    await pub.send(Buffer.concat([command("PUBLISH", "c", "x"), command("SPUBLISH", "s", "y")]));
    await pub.readReplies(2, respFrame);
    const pushed = await sub.readReplies(3, respFrame);
    await sub.send(command("PING"));
    const [pong] = await sub.readReplies(1, respFrame);
    const is = (b: Uint8Array) => unasked(b, 0, b.length, null) === Unasked.Message;
    expect(confirmations.map(is)).toEqual([false, false, false]);
    expect(pushed.map(is)).toEqual([true, true, true]);
    expect(is(pong!)).toBe(false);
    // RESP3: the same messages as pushes.
    for (const p of pushed) expect(is(Buffer.concat([Buffer.from(">"), p.subarray(1)]))).toBe(true);
    sub.close();
    pub.close();
  });
});

/** A request on a subscriber connection, as the core keeps it (its bytes in keyBuf). */
function sent(bytes: Uint8Array): Outbound {
  return { bytes: bytes.length, joined: false, snext: null, keyBuf: bytes, keys: null, keyGroup: 0, keyStart: 0, keyEnd: bytes.length, values: 0 };
}

function request(op: PubSubOp, name: string): Outbound {
  const w = new ByteWriter(64);
  writeSubscription(w, op, Buffer.from(name, "latin1"));
  return sent(w.take());
}

describe("replies a subscriber connection's requests did not ask for", () => {
  test("a sunsubscribe answers only a SUNSUBSCRIBE of that name; after the PING that follows one, what is not its pong is stale; redis's bytes, RESP2 and RESP3", async () => {
    const sub = await RawClient.connect({ host: redis.host, port: redis.port });
    await sub.send(Buffer.concat([command("SSUBSCRIBE", "s", "t"), command("SUNSUBSCRIBE", "s"), command("PING"), command("SUNSUBSCRIBE", "t"), command("PING")]));
    const [, , endS, pongSubscribed, endT, pong] = await sub.readReplies(6, respFrame);
    sub.close();
    const what = (reply: Uint8Array, head: Outbound | null) => unasked(reply, 0, reply.length, head);
    const resp3 = (b: Uint8Array) => Buffer.concat([Buffer.from(">"), b.subarray(1)]);
    for (const s of [endS!, resp3(endS!)]) {
      expect(what(s, request(PubSubOp.SUnsubscribe, "s"))).toBe(Unasked.Reply);
      expect(what(s, request(PubSubOp.SUnsubscribe, "t"))).toBe(Unasked.Ended);
      expect(what(s, request(PubSubOp.SUnsubscribe, "ss"))).toBe(Unasked.Ended);
      expect(what(s, request(PubSubOp.SSubscribe, "s"))).toBe(Unasked.Ended);
      expect(what(s, null)).toBe(Unasked.Ended);
      expect(what(s, sent(SUBSCRIBER_PING))).toBe(Unasked.Ended);
      expect(Buffer.from(endedChannel(s, 0, s.length)).toString()).toBe("s");
    }
    // Other confirmations and errors are the head's reply, as before.
    expect(what(endT!, request(PubSubOp.SUnsubscribe, "t"))).toBe(Unasked.Reply);
    const moved = Buffer.from("-MOVED 1 127.0.0.1:7000\r\n");
    expect(what(moved, request(PubSubOp.SSubscribe, "s"))).toBe(Unasked.Reply);
    // The PING after a SUNSUBSCRIBE: its pong (subscribed or not) is its reply; anything else
    // before it (the MOVED of a SUNSUBSCRIBE a node's own sunsubscribe answered) is stale.
    expect(what(pongSubscribed!, sent(SUBSCRIBER_PING))).toBe(Unasked.Reply);
    expect(what(pong!, sent(SUBSCRIBER_PING))).toBe(Unasked.Reply);
    expect(what(moved, sent(SUBSCRIBER_PING))).toBe(Unasked.Dropped);
  });

  /** SSUBSCRIBE `names` as plan.ts sends it: one request per name, each to `node`; the requests. */
  function shardSubscribe(subs: Subscriptions, names: Buffer[], node: object): Uint8Array[] {
    const requests: Uint8Array[] = [];
    for (const list of subs.change(PubSubOp.SSubscribe, names, () => 0, [], false).upstream.values()) {
      for (const held of list) {
        const w = new ByteWriter(32);
        writeSubscription(w, PubSubOp.SSubscribe, held.name);
        held.request = w.take();
        subs.sentTo(held.request, node);
        requests.push(held.request);
      }
    }
    return requests;
  }

  test("a shard channel the server holding it ended is no longer held; the client is told with its own count, once", () => {
    const subs = new Subscriptions();
    const node = {};
    const names = ["a", "b"].map((n) => Buffer.from(n));
    shardSubscribe(subs, names, node);
    subs.change(PubSubOp.Subscribe, [Buffer.from("c")], () => 0, [], false);
    expect(Buffer.from(subs.ended(names[0]!, node, false)!).toString()).toBe("*3\r\n$12\r\nsunsubscribe\r\n$1\r\na\r\n:1\r\n");
    expect(subs.ended(names[0]!, node, false)).toBeNull();
    expect(Buffer.from(subs.ended(names[1]!, node, true)!).toString()).toBe(">3\r\n$12\r\nsunsubscribe\r\n$1\r\nb\r\n:0\r\n");
    expect([subs.shardCount, subs.count, subs.subscribed]).toEqual([0, 1, true]);
  });

  test("another server's sunsubscribe of a held shard channel ends nothing: the old owner's, once the client subscribed again on the new one", () => {
    const subs = new Subscriptions();
    const [oldNode, newNode] = [{}, {}];
    const name = Buffer.from("a");
    shardSubscribe(subs, [name], oldNode);
    subs.change(PubSubOp.SUnsubscribe, [name], () => 0, [], false);
    shardSubscribe(subs, [name], newNode);
    expect(subs.ended(name, oldNode, false)).toBeNull();
    expect(subs.shardCount).toBe(1);
    // A request of the same bytes that did not make it (an older one) moves nothing.
    const w = new ByteWriter(32);
    writeSubscription(w, PubSubOp.SSubscribe, name);
    subs.sentTo(w.take(), oldNode);
    expect(subs.ended(name, oldNode, false)).toBeNull();
    expect(Buffer.from(subs.ended(name, newNode, false)!).toString()).toBe("*3\r\n$12\r\nsunsubscribe\r\n$1\r\na\r\n:0\r\n");
  });

  test("a shard channel whose SSUBSCRIBE a MOVED sent on is held where it went last", () => {
    const subs = new Subscriptions();
    const [oldNode, newNode] = [{}, {}];
    const name = Buffer.from("a");
    const [request] = shardSubscribe(subs, [name], oldNode);
    subs.sentTo(request!, newNode);
    expect(subs.ended(name, oldNode, false)).toBeNull();
    expect(Buffer.from(subs.ended(name, newNode, false)!).toString()).toBe("*3\r\n$12\r\nsunsubscribe\r\n$1\r\na\r\n:0\r\n");
  });
});

describe("topics of shared subscriptions (redis_shared_subscriptions)", () => {
  test("a message's topic is the one its subscription was made with, per kind, in RESP2 and RESP3; a confirmation has none; the leave request is redis's unsubscribe", async () => {
    const sub = await RawClient.connect({ host: redis.host, port: redis.port });
    const pub = await RawClient.connect({ host: redis.host, port: redis.port });
    const name = Buffer.from("ch\u00e9:1", "latin1");
    await sub.send(Buffer.concat([command("SUBSCRIBE", name), command("PSUBSCRIBE", "ch*"), command("SSUBSCRIBE", name)]));
    const confirmations = await sub.readReplies(3, respFrame);
    await pub.send(Buffer.concat([command("PUBLISH", name, "x".repeat(300)), command("SPUBLISH", name, "y")]));
    await pub.readReplies(2, respFrame);
    const [message, pmessage, smessage] = await sub.readReplies(3, respFrame);
    const topic = (b: Uint8Array) => pushTopic(b, 0, b.length);
    const resp3 = (b: Uint8Array) => Buffer.concat([Buffer.from(">"), b.subarray(1)]);
    const cases: Array<[Uint8Array, PubSubOp, Uint8Array]> = [
      [message!, PubSubOp.Subscribe, name],
      [pmessage!, PubSubOp.PSubscribe, Buffer.from("ch*")],
      [smessage!, PubSubOp.SSubscribe, name],
    ];
    const seen = new Set<string>();
    for (const [pushed, op, subscribed] of cases) {
      const shared = sharedTopic(op, subscribed);
      expect(shared.subscribe).toBe(true);
      expect(Buffer.from(topic(pushed)!)).toEqual(Buffer.from(shared.bytes));
      expect(Buffer.from(topic(resp3(pushed))!)).toEqual(Buffer.from(shared.bytes));
      seen.add(Buffer.from(shared.bytes).toString("latin1"));
    }
    expect(seen.size).toBe(3); // a channel, a pattern and a shard channel of one name differ
    for (const c of confirmations) expect(topic(c)).toBeNull();
    // The leave request, sent to redis, ends each subscription: redis confirms with count 2, 1, 0.
    const leaves = cases.map(([, op, subscribed]) => sharedTopic(op, subscribed).leave);
    await sub.send(Buffer.concat([leaves[0]!, leaves[1]!]));
    const left = await sub.readReplies(2, respFrame);
    expect(left.map((b) => Buffer.from(b).toString("latin1"))).toEqual([
      `*3\r\n$11\r\nunsubscribe\r\n$${name.length}\r\n${name.toString("latin1")}\r\n:1\r\n`,
      "*3\r\n$12\r\npunsubscribe\r\n$3\r\nch*\r\n:0\r\n",
    ]);
    await sub.send(leaves[2]!);
    const [sleft] = await sub.readReplies(1, respFrame);
    expect(Buffer.from(sleft!).toString("latin1")).toBe(`*3\r\n$12\r\nsunsubscribe\r\n$${name.length}\r\n${name.toString("latin1")}\r\n:0\r\n`);
    expect(sharedTopic(PubSubOp.Unsubscribe, name).subscribe).toBe(false);
    sub.close();
    pub.close();
  });
});
