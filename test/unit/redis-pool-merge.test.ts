// Replies of a command sent to every server merged into one (src/proto/redis/pool-merge.ts), on
// replies taken from three real redis-servers holding known keys, subscribers and scripts.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { PoolMerge } from "../../src/proto/redis/commands.ts";
import { mergePool, type ServerReplies } from "../../src/proto/redis/pool-merge.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { stopAll } from "../helpers/direct.ts";
import { command, decode, pipeline, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

let servers: Backend[] = [];
let clients: RawClient[] = [];
let subscribers: RawClient[] = [];

/** Replies at offsets inside larger buffers, as the core records them. */
function placed(replies: Uint8Array[]): ServerReplies {
  const fragPos = new Int32Array(2 * replies.length);
  const fragBuf = replies.map((r, f) => {
    const b = new Uint8Array(r.length + 8).fill(0x21);
    b.set(r, 4);
    fragPos[2 * f] = 4;
    fragPos[2 * f + 1] = 4 + r.length;
    return b;
  });
  return { nfrags: replies.length, fragBuf, fragPos };
}

/** Every server's reply to one command. */
async function everyServer(...args: string[]): Promise<Uint8Array[]> {
  return Promise.all(
    clients.map(async (c) => {
      await c.send(command(...args));
      return (await c.readReplies(1, respFrame))[0]!;
    }),
  );
}

function merged(how: PoolMerge, replies: Uint8Array[]): Uint8Array {
  const w = new ByteWriter(16);
  w.text("earlier");
  const own = mergePool(how, placed(replies), w);
  const all = w.take();
  expect(Buffer.from(all.subarray(0, 7)).toString()).toBe("earlier");
  if (own !== null) {
    expect(all.length).toBe(7);
    return own;
  }
  return all.subarray(7);
}

beforeAll(async () => {
  servers = await Promise.all([startRedis(), startRedis(), startRedis()]);
  clients = await Promise.all(servers.map((s) => RawClient.connect({ host: s.host, port: s.port })));
  // Server s holds s + 1 keys; channel "shared" has a subscriber on every server, "only1" on
  // server 1; the pattern "p*" is on servers 0 and 2.
  for (let s = 0; s < 3; s++) {
    const sets = Array.from({ length: s + 1 }, (_, i) => ["SET", `s${s}:${i}`, "v"]);
    await clients[s]!.send(pipeline(sets));
    await clients[s]!.readReplies(sets.length, respFrame);
    const sub = await RawClient.connect({ host: servers[s]!.host, port: servers[s]!.port });
    const channels = s === 1 ? ["shared", "only1"] : ["shared"];
    const patterns = s === 1 ? [] : ["p*"];
    await sub.send(pipeline([["SUBSCRIBE", ...channels], ...(patterns.length > 0 ? [["PSUBSCRIBE", ...patterns]] : [])]));
    await sub.readReplies(channels.length + patterns.length, respFrame);
    subscribers.push(sub);
  }
});

afterAll(async () => {
  for (const c of [...clients, ...subscribers]) c.close();
  await stopAll(servers);
});

describe("merged replies from three servers", () => {
  test("DBSIZE: the sum", async () => {
    expect(decode(merged(PoolMerge.Sum, await everyServer("DBSIZE")))).toBe(1 + 2 + 3);
  });

  test("KEYS: every server's keys", async () => {
    const keys = decode(merged(PoolMerge.Concat, await everyServer("KEYS", "*"))) as Buffer[];
    expect(keys.map(String).sort()).toEqual(["s0:0", "s1:0", "s1:1", "s2:0", "s2:1", "s2:2"]);
  });

  test("PUBSUB CHANNELS: each channel once", async () => {
    const channels = decode(merged(PoolMerge.Union, await everyServer("PUBSUB", "CHANNELS"))) as Buffer[];
    expect(channels.map(String).sort()).toEqual(["only1", "shared"]);
  });

  test("PUBSUB NUMSUB: counts summed per channel, in the order asked", async () => {
    const reply = decode(merged(PoolMerge.PairSum, await everyServer("PUBSUB", "NUMSUB", "shared", "none", "only1")));
    expect(reply).toEqual([Buffer.from("shared"), 3, Buffer.from("none"), 0, Buffer.from("only1"), 1]);
  });

  test("PUBSUB NUMPAT: the largest", async () => {
    expect(decode(merged(PoolMerge.Max, await everyServer("PUBSUB", "NUMPAT")))).toBe(1);
  });

  test("FLUSHDB: +OK from every server is +OK", async () => {
    expect(Buffer.from(merged(PoolMerge.AllOk, await everyServer("PING"))).toString()).toStartWith("-ERR unexpected");
    expect(Buffer.from(merged(PoolMerge.AllOk, await everyServer("SELECT", "0"))).toString()).toBe("+OK\r\n");
  });

  test("RANDOMKEY: a key of a server that has any, nil when none has", async () => {
    for (let i = 0; i < 20; i++) {
      const key = String(decode(merged(PoolMerge.RandomOne, await everyServer("RANDOMKEY"))));
      expect(["s0:0", "s1:0", "s1:1", "s2:0", "s2:1", "s2:2"]).toContain(key);
    }
    const replies = await everyServer("GET", "nothing");
    expect(decode(merged(PoolMerge.RandomOne, [replies[0]!, replies[1]!, await everyServer("GET", "s2:0").then((r) => r[2]!)]))).toEqual(Buffer.from("v"));
    expect(decode(merged(PoolMerge.RandomOne, replies))).toBeNull();
  });

  test("SCRIPT LOAD: the sha every server gave; an error when they differ", async () => {
    const sha = await everyServer("SCRIPT", "LOAD", "return 1");
    expect(decode(merged(PoolMerge.Same, sha))).toEqual(decode(sha[0]!));
    const other = [sha[0]!, sha[1]!, (await everyServer("SCRIPT", "LOAD", "return 2"))[2]!];
    expect(Buffer.from(merged(PoolMerge.Same, other)).toString()).toBe("-ERR the servers answered differently\r\n");
  });

  test("SCRIPT EXISTS: 1 where every server says 1", async () => {
    const sha = String(decode((await everyServer("SCRIPT", "LOAD", "return 'everywhere'"))[0]!));
    await clients[1]!.send(command("SCRIPT", "LOAD", "return 'on one'"));
    const onOne = String(decode((await clients[1]!.readReplies(1, respFrame))[0]!));
    expect(decode(merged(PoolMerge.And, await everyServer("SCRIPT", "EXISTS", onOne, sha, onOne)))).toEqual([0, 1, 0]);
    const uneven = [...(await everyServer("SCRIPT", "EXISTS", sha, sha))];
    uneven[1] = (await everyServer("SCRIPT", "EXISTS", sha))[1]!;
    expect(Buffer.from(merged(PoolMerge.And, uneven)).toString()).toStartWith("-ERR unexpected reply");
    expect(Buffer.from(merged(PoolMerge.And, await everyServer("KEYS", "s1:*"))).toString()).toStartWith("-ERR unexpected reply");
  });

  test("a server's error is the reply", async () => {
    const replies = await everyServer("DBSIZE");
    replies[1] = Buffer.from("-ERR boom\r\n");
    expect(Buffer.from(merged(PoolMerge.Sum, replies)).toString()).toBe("-ERR boom\r\n");
  });

  test("replies of the wrong shape: a proxy error, the output untouched", async () => {
    const wrong = await everyServer("KEYS", "*");
    expect(Buffer.from(merged(PoolMerge.Sum, wrong)).toString()).toStartWith("-ERR unexpected reply");
    expect(Buffer.from(merged(PoolMerge.PairSum, await everyServer("DBSIZE"))).toString()).toStartWith("-ERR unexpected reply");
    const uneven = [...(await everyServer("PUBSUB", "NUMSUB", "a", "b"))];
    uneven[2] = (await everyServer("PUBSUB", "NUMSUB", "a"))[2]!;
    expect(Buffer.from(merged(PoolMerge.PairSum, uneven)).toString()).toStartWith("-ERR unexpected reply");
  });
});

describe("in RESP3, and with a server that failed", () => {
  /** Every server's reply to one command on a connection that said HELLO 3. */
  async function everyServer3(...args: string[]): Promise<Uint8Array[]> {
    return Promise.all(
      servers.map(async (s) => {
        const c = await RawClient.connect({ host: s.host, port: s.port });
        try {
          await c.send(pipeline([["HELLO", "3"], args]));
          return (await c.readReplies(2, respFrame))[1]!;
        } finally {
          c.close();
        }
      }),
    );
  }

  test("RESP3 replies merge as RESP2 ones do; RANDOMKEY's nil is RESP3's", async () => {
    expect(decode(merged(PoolMerge.Sum, await everyServer3("DBSIZE")))).toBe(6);
    expect((decode(merged(PoolMerge.Concat, await everyServer3("KEYS", "*"))) as Buffer[]).length).toBe(6);
    const numsub = decode(merged(PoolMerge.PairSum, await everyServer3("PUBSUB", "NUMSUB", "shared")));
    expect(numsub).toEqual([Buffer.from("shared"), 3]);
    expect(Buffer.from(merged(PoolMerge.RandomOne, await everyServer3("GET", "nothing"))).toString()).toBe("_\r\n");
    expect(decode(merged(PoolMerge.And, await everyServer3("SCRIPT", "EXISTS", "0000000000000000000000000000000000000000")))).toEqual([0]);
    const blobError = await everyServer3("DBSIZE");
    blobError[2] = Buffer.from("!4\r\nboom\r\n");
    expect(Buffer.from(merged(PoolMerge.Sum, blobError)).toString()).toBe("!4\r\nboom\r\n");
  });

  test("a server that failed (no reply) is left out; FLUSHDB's +OK needs every server", async () => {
    const dbsize = await everyServer("DBSIZE");
    dbsize[0] = new Uint8Array(0);
    expect(decode(merged(PoolMerge.Sum, dbsize))).toBe(2 + 3);
    const keys = await everyServer("KEYS", "*");
    keys[2] = new Uint8Array(0);
    expect((decode(merged(PoolMerge.Concat, keys)) as Buffer[]).map(String).sort()).toEqual(["s0:0", "s1:0", "s1:1"]);
    const ok = await everyServer("SELECT", "0");
    ok[1] = new Uint8Array(0);
    expect(Buffer.from(merged(PoolMerge.AllOk, ok)).toString()).toStartWith("-ERR not every server answered");
    const sha = await everyServer("SCRIPT", "LOAD", "return 1");
    sha[2] = new Uint8Array(0);
    expect(Buffer.from(merged(PoolMerge.Same, sha)).toString()).toStartWith("-ERR not every server answered");
    const exists = await everyServer("SCRIPT", "EXISTS", String(decode(sha[0]!)));
    exists[0] = new Uint8Array(0);
    expect(Buffer.from(merged(PoolMerge.And, exists)).toString()).toStartWith("-ERR not every server answered");
  });
});
