// Split requests end to end against real redis-servers: the fragments built for MGET, DEL,
// UNLINK, TOUCH, EXISTS and MSET are executed by one redis-server, their replies merged, and the
// result compared with what an identical redis-server replies to the unsplit request.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { Req, type Split } from "../../src/proto/codec.ts";
import { redisCodec } from "../../src/proto/redis/index.ts";
import { merge } from "../../src/proto/redis/merge.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { exchange } from "../helpers/client.ts";
import { endpointOf, flushBackends } from "../helpers/direct.ts";
import { command, pipeline, respFrame, type Bytes } from "../helpers/resp.ts";
import { Rng } from "../fuzz/redis.fuzz.ts";
import { mergeReply, planned, withReplies } from "../helpers/split.ts";
import { buildFragment } from "../../src/proto/redis/fragment.ts";

let reference: Backend; // runs the unsplit requests
let target: Backend; // runs the fragments
let locked: Backend; // requires a password we never send: its replies are errors

beforeAll(async () => {
  [reference, target, locked] = await Promise.all([startRedis(), startRedis(), startRedis({ password: "secret" })]);
});

afterAll(async () => {
  await Promise.all([reference, target, locked].map((b) => b?.stop()));
});

const send = async (backend: Backend, data: Uint8Array): Promise<Buffer> =>
  (await exchange(endpointOf(backend), data, 1, respFrame))[0]!;

/** The same keys on both servers: strings k0..k(n-1) with every third missing, and a list. */
async function load(n: number): Promise<void> {
  await flushBackends([reference, target]);
  const sets: Bytes[][] = [["RPUSH", "list", "x"]];
  for (let i = 0; i < n; i++) if (i % 3 !== 2) sets.push(["SET", `k${i}`, `value-${i}`]);
  for (const b of [reference, target]) await exchange(endpointOf(b), pipeline(sets), sets.length, respFrame);
}

interface Fragmented {
  split: Split;
  fragments: Uint8Array[];
}

/** Parses `request` and builds its fragments for a key-to-server assignment, as the core
 *  plans them. */
function fragment(request: Uint8Array, assign: (key: number) => number): Fragmented {
  const req = new Req();
  expect(redisCodec.parseRequest(request, 0, request.length, req)).toBe(request.length);
  const keyServer = Int32Array.from({ length: req.nkeys }, (_, i) => assign(i));
  const { split, fragKeys } = planned(req.command!.route, request, req, keyServer);
  const fragments = fragKeys.map((keys) => {
    const w = new ByteWriter(256);
    buildFragment(request, req, keys, 0, keys.length, w);
    return w.take();
  });
  return { split, fragments };
}

/** Splits `args` over `nfrags` fragments at random, runs them on `target`, merges; compares
 *  with `reference`'s reply to the unsplit request. */
async function roundTrip(args: Bytes[], nfrags: number, rng: Rng): Promise<Buffer> {
  const request = command(...args);
  const { split, fragments } = fragment(request, () => rng.int(nfrags));
  // Each fragment is itself a request the proxy parses as the same command.
  for (const f of fragments) {
    const req = new Req();
    expect(redisCodec.parseRequest(f, 0, f.length, req)).toBe(f.length);
    expect(req.command!.route).toBe(split.route);
  }
  const replies = await Promise.all(fragments.map((f) => send(target, f)));
  const merged = mergeReply(redisCodec, withReplies(split, replies));
  const expected = await send(reference, request);
  expect(Buffer.from(merged).toString("latin1")).toBe(expected.toString("latin1"));
  return expected;
}

const keys = (rng: Rng, count: number, of: number): string[] => Array.from({ length: count }, () => `k${rng.int(of)}`);

describe("split and merged like one request", () => {
  test("MGET: values in key order, with misses, duplicates and a wrong-type key", async () => {
    const rng = new Rng(7);
    await load(20);
    for (let round = 0; round < 40; round++) {
      const names = [...keys(rng, 1 + rng.int(12), 24), ...(rng.chance(0.3) ? ["list"] : [])];
      await roundTrip(["MGET", ...names], 1 + rng.int(4), rng);
    }
  }, 60_000);

  test("MGET of 1,000 keys over 4 fragments", async () => {
    await load(1000);
    const reply = await roundTrip(["MGET", ...Array.from({ length: 1000 }, (_, i) => `k${i}`)], 4, new Rng(8));
    expect(reply.toString("latin1")).toStartWith("*1000\r\n$7\r\nvalue-0\r\n");
  }, 60_000);

  test("DEL, UNLINK, TOUCH and EXISTS: the counts summed", async () => {
    const rng = new Rng(9);
    for (const name of ["DEL", "UNLINK", "TOUCH", "EXISTS"]) {
      for (let round = 0; round < 8; round++) {
        await load(12);
        const reply = await roundTrip([name, ...keys(rng, 1 + rng.int(10), 14)], 1 + rng.int(4), rng);
        expect(reply.toString("latin1")).toMatch(/^:\d+\r\n$/);
      }
    }
  }, 60_000);

  test("MSET: +OK, and every key holds its value on the fragments' server", async () => {
    const rng = new Rng(10);
    await load(0);
    const pairs = Array.from({ length: 30 }, (_, i) => [`m${i % 25}`, `v${i}-${rng.int(1000)}`]).flat();
    await roundTrip(["MSET", ...pairs], 3, rng);
    const names = Array.from({ length: 25 }, (_, i) => `m${i}`);
    const [onReference, onTarget] = await Promise.all([reference, target].map((b) => send(b, command("MGET", ...names))));
    expect(onTarget!.toString("latin1")).toBe(onReference!.toString("latin1"));
  }, 60_000);

  test("keys and values whose lengths cross decimal digit counts keep their framing", async () => {
    // Fragments reuse each argument's `$<length>\r\n` header as the client sent it.
    await load(0);
    const lengths = [0, 1, 9, 10, 99, 100, 999, 1000, 65536];
    const text = (n: number, c: string) => c.repeat(n);
    const pairs = lengths.flatMap((n, i) => [`L${i}:${text(n, "k")}`, text(lengths[(i + 4) % lengths.length]!, "v")]);
    await roundTrip(["MSET", ...pairs], 3, new Rng(13));
    await roundTrip(["MGET", ...lengths.map((n) => text(n, "k")), ...pairs.filter((_, i) => i % 2 === 0)], 4, new Rng(14));
  }, 60_000);

  test("binary and empty keys and values survive the re-encoding", async () => {
    await load(0);
    const binary = ["", "\r\n", "\x00\xff", "$3\r\n*1"];
    await roundTrip(["MSET", ...binary.flatMap((k, i) => [k, binary[(i + 1) % 4]!])], 2, new Rng(11));
    await roundTrip(["MGET", ...binary, ...binary], 3, new Rng(12));
  }, 60_000);
});

describe("fragment errors", () => {
  test("the first fragment error is the reply, whatever the other fragments said", async () => {
    await load(6);
    const { split, fragments } = fragment(command("MGET", "k0", "k1", "k3", "k4"), (i) => i % 3);
    const ok = await send(target, fragments[0]!);
    const noauth = await send(locked, fragments[1]!);
    const wrongType = await send(target, command("INCR", "list"));
    expect(noauth.toString("latin1")).toStartWith("-NOAUTH");
    expect(wrongType.toString("latin1")).toStartWith("-WRONGTYPE");
    expect(mergeReply(redisCodec, withReplies(split, [ok, noauth, wrongType]))).toEqual(new Uint8Array(noauth));
    expect(mergeReply(redisCodec, withReplies(split, [wrongType, ok, noauth]))).toEqual(new Uint8Array(wrongType));
  }, 60_000);

  test("a reply of the wrong shape gets an error, not a made-up value", async () => {
    await load(3);
    const sum = fragment(command("DEL", "k0", "k1"), (i) => i);
    const notInteger = await send(target, command("GET", "k0"));
    const merged = Buffer.from(mergeReply(redisCodec, withReplies(sum.split, [notInteger, notInteger]))).toString("latin1");
    expect(merged).toStartWith("-ERR ");
    const get = fragment(command("MGET", "k0", "k1", "k3"), (i) => (i === 2 ? 1 : 0));
    const tooShort = await send(target, command("MGET", "k0"));
    expect(Buffer.from(mergeReply(redisCodec, withReplies(get.split, [tooShort, tooShort]))).toString("latin1")).toStartWith("-ERR ");
  }, 60_000);
});

describe("merged in the client's protocol (RESP3)", () => {
  const HELLO3 = command("HELLO", "3");
  /** The reply to `data` on a connection that said HELLO 3 first. */
  const send3 = async (backend: Backend, data: Uint8Array): Promise<Buffer> =>
    (await exchange(endpointOf(backend), Buffer.concat([HELLO3, data]), 2, respFrame))[1]!;
  const merged = (split: Split, replies: Uint8Array[], proto: 2 | 3): string => {
    const w = new ByteWriter(64);
    const own = merge(withReplies(split, replies), w, proto);
    return Buffer.from(own ?? w.take()).toString("latin1");
  };

  test("MGET, DEL, EXISTS and MSET from RESP3 fragments: what redis answers a RESP3 client", async () => {
    await load(30);
    const rng = new Rng(33);
    for (const args of [["MGET", ...keys(rng, 12, 30)], ["EXISTS", ...keys(rng, 9, 30)], ["MSET", "a", "1", "b", "2", "c", "3"], ["DEL", ...keys(rng, 5, 30)]]) {
      const request = command(...args);
      const { split, fragments } = fragment(request, () => rng.int(3));
      const replies = await Promise.all(fragments.map((f) => send3(target, f)));
      const expected = await send3(reference, request);
      expect(merged(split, replies, 3)).toBe(expected.toString("latin1"));
    }
  });

  test("nulls are the client's: RESP2 fragments for a RESP3 client, RESP3 fragments for a RESP2 client", async () => {
    await load(30);
    const request = command("MGET", "k0", "k2", "nothing", "k1");
    const { split, fragments } = fragment(request, (k) => k % 2);
    const as2 = await Promise.all(fragments.map((f) => send(target, f)));
    const as3 = await Promise.all(fragments.map((f) => send3(target, f)));
    expect(merged(split, as2, 3)).toBe((await send3(reference, request)).toString("latin1"));
    expect(merged(split, as3, 2)).toBe((await send(reference, request)).toString("latin1"));
    expect(merged(split, as3, 3)).toContain("_\r\n");
  });

  test("nulls between values a fragment's run copies at once are still the client's", async () => {
    await load(30);
    // Fragment 0's keys are consecutive (copied as runs), a null among them; fragment 1 likewise.
    const request = command("MGET", "k0", "nothing", "k1", "k3", "k4", "none", "k6", "k7");
    const { split, fragments } = fragment(request, (k) => (k < 4 ? 0 : 1));
    const as2 = await Promise.all(fragments.map((f) => send(target, f)));
    const as3 = await Promise.all(fragments.map((f) => send3(target, f)));
    for (const proto of [2, 3] as const) {
      const expected = (await (proto === 2 ? send : send3)(reference, request)).toString("latin1");
      expect(merged(split, as2, proto)).toBe(expected);
      expect(merged(split, as3, proto)).toBe(expected);
    }
  });

  test("a RESP3 blob error from a fragment is the reply", () => {
    const request = command("MGET", "a", "b");
    const { split } = fragment(request, (k) => k);
    const blob = Buffer.from("!9\r\nERR x y z\r\n");
    expect(merged(split, [Buffer.from("*1\r\n_\r\n"), blob], 3)).toBe(blob.toString("latin1"));
  });
});
