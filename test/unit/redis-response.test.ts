// The redis response parser: every RESP2 type, nesting to any depth, large values parsed
// resumably, error and failure flags, garbage, and real replies from a redis-server.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { FATAL, NEED_MORE, Rsp } from "../../src/proto/codec.ts";
import { redisCodec } from "../../src/proto/redis/index.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { exchange } from "../helpers/client.ts";
import { pipeline, respFrame } from "../helpers/resp.ts";
import { parseStreamed } from "../helpers/streamed-parse.ts";

const bytes = (s: string): Uint8Array => Buffer.from(s, "latin1");

interface Reply {
  start: number;
  end: number;
  isError: boolean;
  failure: boolean;
}

interface Outcome {
  replies: Reply[];
  fatal: string | null;
  calls: number;
}

/** Feeds `stream` in chunks like the proxy: after NEED_MORE, parse again once `need` bytes are there. */
function parseChunked(stream: Uint8Array, sizes: number[]): Outcome {
  const rsp = new Rsp();
  const replies: Reply[] = [];
  let received = 0;
  let pos = 0;
  let need = 0;
  let calls = 0;
  for (let i = 0; received < stream.length; i++) {
    received = Math.min(stream.length, received + sizes[i % sizes.length]!);
    if (received - pos < need) continue;
    need = 0;
    while (pos < received) {
      calls++;
      const r = redisCodec.parseResponse(stream, pos, received, rsp);
      if (r === NEED_MORE) {
        need = rsp.need;
        break;
      }
      if (r === FATAL) return { replies, fatal: rsp.error, calls };
      replies.push({ start: rsp.start, end: r, isError: rsp.isError, failure: rsp.failure });
      pos = r;
    }
  }
  return { replies, fatal: null, calls };
}

const parseWhole = (stream: Uint8Array): Outcome => parseChunked(stream, [stream.length]);

function parseOne(data: string | Uint8Array): { result: number; rsp: Rsp } {
  const buf = typeof data === "string" ? bytes(data) : data;
  const rsp = new Rsp();
  return { result: redisCodec.parseResponse(buf, 0, buf.length, rsp), rsp };
}

const SAMPLES = [
  "+OK\r\n",
  "+\r\n",
  "-ERR unknown command\r\n",
  ":0\r\n",
  ":-9223372036854775808\r\n",
  "$3\r\nabc\r\n",
  "$0\r\n\r\n",
  "$-1\r\n",
  "$6\r\n\r\n\r\n\r\n\r\n",
  "*-1\r\n",
  "*0\r\n",
  "*3\r\n:1\r\n$-1\r\n*2\r\n+a\r\n-ERR nested\r\n",
  "*2\r\n*0\r\n*1\r\n*1\r\n*-1\r\n",
];

describe("responses", () => {
  test("each RESP2 type is one reply, exactly its own bytes", () => {
    for (const s of SAMPLES) {
      const { result, rsp } = parseOne(s);
      expect([s, result, rsp.start]).toEqual([s, s.length, 0]);
    }
  });

  test("a pipeline of replies, whatever the chunking", () => {
    const stream = bytes(SAMPLES.join(""));
    const whole = parseWhole(stream);
    expect(whole.fatal).toBeNull();
    let at = 0;
    expect(whole.replies.map((r) => [r.start, r.end])).toEqual(SAMPLES.map((s) => [at, (at += s.length)]));
    for (let cut = 1; cut < stream.length; cut++) expect(parseChunked(stream, [cut, stream.length]).replies).toEqual(whole.replies);
    for (const sizes of [[1], [2], [3, 5], [7, 1]]) expect(parseChunked(stream, sizes).replies).toEqual(whole.replies);
  });

  test("error replies, and the ones that count as server failures", () => {
    const flags = (s: string) => {
      const { rsp } = parseOne(s);
      return [rsp.isError, rsp.failure];
    };
    expect(flags("-ERR x\r\n")).toEqual([true, false]);
    expect(flags("-\r\n")).toEqual([true, false]);
    expect(flags("-OOM command not allowed when used memory > 'maxmemory'.\r\n")).toEqual([true, true]);
    expect(flags("-BUSY Redis is busy running a script.\r\n")).toEqual([true, true]);
    expect(flags("-LOADING Redis is loading the dataset in memory\r\n")).toEqual([true, true]);
    expect(flags("-OOM\r\n")).toEqual([true, true]);
    expect(flags("-BUSYKEY Target key name already exists.\r\n")).toEqual([true, false]);
    expect(flags("-LOADINGX\r\n")).toEqual([true, false]);
    expect(flags("-oom lower case\r\n")).toEqual([true, false]);
    expect(flags("*1\r\n-OOM nested\r\n")).toEqual([false, false]);
    expect(flags("+OK\r\n")).toEqual([false, false]);
  });

  test("arrays nested a million deep", () => {
    const depth = 1_000_000;
    const data = bytes("*1\r\n".repeat(depth) + ":1\r\n");
    expect(parseOne(data).result).toBe(data.length);
    expect(parseOne(data.subarray(0, data.length - 1)).result).toBe(NEED_MORE);
  });

  test("an array of 100,000 values arriving slowly is re-parsed rarely", () => {
    const data = Buffer.concat([bytes("*100000\r\n"), ...Array.from({ length: 100_000 }, (_, i) => bytes(`$1\r\n${i % 10}\r\n`))]);
    const { replies, calls } = parseChunked(data, [4096]);
    expect(replies.map((r) => r.end)).toEqual([data.length]);
    // Each value not seen yet counts 3 bytes toward `need`: far fewer parses than chunks.
    expect(calls).toBeLessThan(data.length / 4096 / 2);
  });

  test("a 16 MB value arriving in 64 KB chunks is parsed twice", () => {
    const value = Buffer.alloc(16 << 20, 0x62);
    const data = Buffer.concat([bytes(`$${value.length}\r\n`), value, bytes("\r\n")]);
    const { replies, calls } = parseChunked(data, [64 * 1024]);
    expect(replies.map((r) => r.end)).toEqual([data.length]);
    expect(calls).toBe(2);
  });

  test("need never goes past the reply's real size", () => {
    const stream = bytes(SAMPLES.join(""));
    let pos = 0;
    for (const s of SAMPLES) {
      for (let cut = pos + 1; cut < pos + s.length; cut++) {
        const rsp = new Rsp();
        expect(redisCodec.parseResponse(stream, pos, cut, rsp)).toBe(NEED_MORE);
        expect(rsp.need).toBeGreaterThan(cut - pos);
        expect(rsp.need).toBeLessThanOrEqual(s.length);
      }
      pos += s.length;
    }
  });

  test("garbage is FATAL, with the reason", () => {
    const garbage = [
      "x",
      "VALUE k 0 1\r\n",
      "$abc\r\n",
      "$-2\r\n",
      "$01\r\nab\r\n",
      "*-2\r\n",
      ":abc\r\n",
      ":\r\n",
      ":1\rX",
      "$3\r\nabcd\r\n",
      "+OK\rX",
      "*2\r\n:1\r\n?",
      "$600000000\r\n",
    ];
    for (const g of garbage) {
      const { result, rsp } = parseOne(g);
      expect([g, result]).toEqual([g, FATAL]);
      expect(rsp.error).toBeString();
    }
  });
});

describe("streaming large replies (Rsp.opaque / resume)", () => {
  const big = (n: number, seed: number): string => {
    let s = "";
    for (let i = 0; i < n; i++) s += String.fromCharCode((i * 31 + seed) % 256);
    return s;
  };
  const bulkOf = (s: string): string => `$${s.length}\r\n${s}\r\n`;
  const REPLIES = [
    bulkOf(big(5000, 1)),
    "+OK\r\n",
    // A bulk in the middle of an array, nested arrays after it, and one that ends the reply.
    `*4\r\n:1\r\n${bulkOf(big(3000, 2))}*2\r\n$-1\r\n${bulkOf("xy")}${bulkOf(big(2000, 3))}`,
    bulkOf(""),
    `*2\r\n${bulkOf(big(1000, 4))}${bulkOf(big(1500, 5))}`,
    "-ERR after\r\n",
  ];
  const stream = bytes(REPLIES.join(""));
  const whole = parseWhole(stream).replies.map((r): [number, number] => [r.start, r.end]);

  test("the same reply boundaries as parsing whole replies, whatever the chunking", () => {
    expect(whole.length).toBe(REPLIES.length);
    for (const sizes of [[1], [2], [3], [7], [64], [999], [4096], [1, 5000, 3, 17]]) {
      const got = parseStreamed(redisCodec, stream, sizes);
      expect({ sizes, fatal: got.fatal, replies: got.replies }).toEqual({ sizes, fatal: null, replies: whole });
      expect(got.passed).toBeGreaterThan(5_000); // (a streamed reply's last part goes on with its end)
    }
  });

  test("the opaque part never runs past the bulk's data", () => {
    const rsp = new Rsp();
    const reply = bytes(`*3\r\n:7\r\n${bulkOf(big(100, 6))}+x\r\n`);
    // "*3\r\n" ":7\r\n" "$100\r\n": the data is reply[14, 114); cut inside it.
    expect(redisCodec.parseResponse(reply, 0, 20, rsp)).toBe(NEED_MORE);
    expect(rsp.opaque).toBe(114);
    expect(rsp.next).toBe(2); // its CRLF and one more value
  });

  test("a streamed bulk not followed by CRLF is FATAL", () => {
    const bad = bytes(`$10\r\n${"x".repeat(10)}!!+OK\r\n`);
    expect(parseStreamed(redisCodec, bad, [8]).fatal).toBe("bulk data not followed by CRLF");
  });
});

describe("real replies from redis-server", () => {
  let redis: Backend;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  test("parsed to the same boundaries as the reference framer", async () => {
    const big = Buffer.alloc(3 << 20, "z");
    const commands = [
      ["SET", "s", "v"],
      ["SET", "big", big],
      ["RPUSH", "l", "a", "", "\r\n", "d"],
      ["HSET", "h", "f1", "v1", "f2", "v2"],
      ["ZADD", "z", "1", "a", "2", "b"],
      ["GET", "s"],
      ["GET", "missing"],
      ["GET", "big"],
      ["LRANGE", "l", "0", "-1"],
      ["HGETALL", "h"],
      ["ZRANGE", "z", "0", "-1", "WITHSCORES"],
      ["MGET", "s", "missing", "l"],
      ["INCR", "l"],
      ["EVAL", "return {1, {2, {3, 'x', {}}}, redis.error_reply('E nested'), redis.status_reply('S')}", "0"],
      ["EVAL", "return redis.error_reply('OOM scripted')", "0"],
      ["COMMAND", "INFO", "get", "mset", "eval"],
      ["XADD", "st", "*", "f", "v"],
      ["XRANGE", "st", "-", "+"],
      ["PING"],
      ["NOSUCHCOMMAND"],
    ];
    const replies = await exchange({ host: redis.host, port: redis.port }, pipeline(commands), commands.length, respFrame);
    const stream = Buffer.concat(replies);
    const whole = parseWhole(stream);
    expect(whole.fatal).toBeNull();
    let at = 0;
    expect(whole.replies.map((r) => r.end)).toEqual(replies.map((r) => (at += r.length)));
    const errors = whole.replies.flatMap((r, i) => (r.isError ? [[commands[i]![0], r.failure]] : []));
    expect(errors).toEqual([["INCR", false], ["EVAL", true], ["NOSUCHCOMMAND", false]]);
    expect(parseChunked(stream, [1000]).replies).toEqual(whole.replies);
  }, 60_000);
});
