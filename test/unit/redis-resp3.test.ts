// RESP3 replies: the response parser frames every type (null, double, big number, boolean,
// verbatim string, blob error, map, set, push, attributes, streamed strings and aggregates) to
// exactly its bytes, nested, under any chunking and when large values stream (Rsp.opaque);
// random values round-trip (the parser's boundaries are the encoding's, and the test decoder
// gives the value back); the reply builders (src/proto/redis/reply.ts) write what redis writes
// in each protocol; a real redis-server's RESP3 replies (HELLO 3, DEBUG PROTOCOL of every type,
// maps from HGETALL, doubles from ZSCORE, nulls in MGET) parse to the reference framer's
// boundaries.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { FATAL, NEED_MORE, Rsp } from "../../src/proto/codec.ts";
import { redisCodec } from "../../src/proto/redis/index.ts";
import * as reply from "../../src/proto/redis/reply.ts";
import { Rng } from "../fuzz/redis.fuzz.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { command, decode, decode3, respFrame, type Resp3 } from "../helpers/resp.ts";
import { encodeResp3, randomResp3 } from "../helpers/resp3-values.ts";
import { parseStreamed } from "../helpers/streamed-parse.ts";

const bytes = (s: string): Uint8Array => Buffer.from(s, "latin1");

function parseOne(data: string | Uint8Array, end?: number): { result: number; rsp: Rsp } {
  const buf = typeof data === "string" ? bytes(data) : data;
  const rsp = new Rsp();
  return { result: redisCodec.parseResponse(buf, 0, end ?? buf.length, rsp), rsp };
}

/** Every prefix is NEED_MORE, with a need past the prefix and never past the reply. */
function expectPrefixesIncomplete(buf: Uint8Array): void {
  for (let cut = 0; cut < buf.length; cut++) {
    const { result, rsp } = parseOne(buf, cut);
    expect({ cut, result }).toEqual({ cut, result: NEED_MORE });
    expect(rsp.need).toBeGreaterThan(cut);
    expect(rsp.need).toBeLessThanOrEqual(buf.length);
  }
}

const SAMPLES = [
  "_\r\n",
  ",1.23\r\n",
  ",-inf\r\n",
  ",nan\r\n",
  "(3492890328409238509324850943850943825024385\r\n",
  "#t\r\n",
  "#f\r\n",
  "=15\r\ntxt:Some string\r\n",
  "!21\r\nSYNTAX invalid syntax\r\n",
  "%2\r\n+first\r\n:1\r\n+second\r\n,2.5\r\n",
  "~3\r\n+a\r\n+b\r\n_\r\n",
  ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
  "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.19\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n",
  "$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n",
  "*?\r\n:1\r\n:2\r\n*?\r\n.\r\n.\r\n",
  "%?\r\n+a\r\n:1\r\n+b\r\n$?\r\n;1\r\nx\r\n;0\r\n.\r\n",
  "~?\r\n.\r\n",
  "*3\r\n%1\r\n_\r\n~0\r\n|1\r\n+a\r\n+b\r\n#t\r\n*1\r\n>1\r\n,1e+300\r\n",
];

describe("RESP3 replies", () => {
  test("each type is one reply, exactly its own bytes, and its every prefix is incomplete", () => {
    for (const s of SAMPLES) {
      const buf = bytes(s + "+NEXT\r\n");
      const { result, rsp } = parseOne(buf);
      expect({ s, result }).toEqual({ s, result: s.length });
      expect(rsp.end).toBe(s.length);
      expectPrefixesIncomplete(bytes(s));
      expect(respFrame(buf, 0, buf.length)).toBe(s.length); // the reference agrees
    }
  });

  test("errors: a blob error is an error reply; an error inside an aggregate is not", () => {
    expect(parseOne("!3\r\nERR\r\n").rsp.isError).toBe(true);
    expect(parseOne("-LOADING x\r\n").rsp.failure).toBe(true);
    expect(parseOne("%1\r\n!1\r\nx\r\n-ERR\r\n").rsp.isError).toBe(false);
  });

  test("garbage is FATAL, with the reason", () => {
    const bad = ["_x\r\n", "#x\r\n", "#tt\r\n", "%-1\r\n", "~-1\r\n", "=-1\r\n", "!-1\r\n", "$?\r\n:1\r\n", "$?x\r\n", "*?\r\n.x\r\n", "|?\r\n"];
    for (const s of bad) {
      const { result, rsp } = parseOne(s);
      expect({ s, result }).toEqual({ s, result: FATAL });
      expect(rsp.error).not.toBeNull();
    }
  });

  test("aggregates nested 100,000 deep in maps, sets and streamed arrays", () => {
    const depth = 100_000;
    const open = ["%1\r\n+k\r\n", "~1\r\n", "*?\r\n", "|1\r\n+a\r\n+b\r\n>1\r\n"];
    let head = "";
    let tail = "";
    for (let i = 0; i < depth; i++) {
      const o = open[i % open.length]!;
      head += o;
      if (o === "*?\r\n") tail = ".\r\n" + tail;
    }
    const s = head + "_\r\n" + tail;
    expect(parseOne(s).result).toBe(s.length);
  });

  test("random values round-trip: the parser's boundaries are the encoding's, whole, chunked and streamed", () => {
    const rng = new Rng(3);
    for (let i = 0; i < 2000; i++) {
      const values = Array.from({ length: 1 + rng.int(4) }, () => randomResp3(rng));
      const encoded = values.map((v) => encodeResp3(v, rng.chance(0.5) ? rng : null));
      const stream = bytes(encoded.join(""));
      // The test's decoder gives every value back (the encoding is right) ...
      let at = 0;
      for (let k = 0; k < values.length; k++) {
        expect(decode3(stream.subarray(at, at + encoded[k]!.length))).toEqual(values[k]!);
        at += encoded[k]!.length;
      }
      // ... and the parser ends each reply exactly where its encoding ends.
      const ends: number[] = [];
      at = 0;
      for (const e of encoded) ends.push((at += e.length));
      const sizes = [1 + rng.int(7), 1 + rng.int(50), stream.length];
      const framing = parseStreamed(redisCodec, stream, sizes, 1 + rng.int(8));
      expect(framing.fatal).toBeNull();
      expect(framing.replies.map(([, end]) => end)).toEqual(ends);
    }
  });
});

describe("reply builders, in the client's protocol", () => {
  const w = new ByteWriter(256);
  const built = (build: (w: ByteWriter) => void): Uint8Array => {
    w.reset();
    build(w);
    return w.take();
  };
  /** A map of one pair, k -> [-7, null], as HELLO and CLIENT build theirs. */
  const mapOfArray = (proto: 2 | 3) => (w: ByteWriter) => {
    reply.writeMapHeader(w, proto, 1);
    reply.writeBulkText(w, "k");
    reply.writeArrayHeader(w, 2);
    reply.writeInteger(w, -7);
    reply.writeNull(w, proto);
  };

  test("RESP3: every builder writes the RESP3 type, parsed as one reply", () => {
    const cases: [(w: ByteWriter) => void, Resp3][] = [
      [(w) => reply.writeNull(w, 3), { t: "null" }],
      [(w) => reply.writeVerbatim(w, 3, "a\r\nb"), { t: "verbatim", format: "txt", v: "a\r\nb" }],
      [mapOfArray(3), { t: "map", v: [[{ t: "bulk", v: "k" }, { t: "array", v: [{ t: "int", v: -7n }, { t: "null" }] }]] }],
      [(w) => reply.writeError(w, "NOPROTO x\r\ny"), { t: "error", v: "NOPROTO x  y" }],
      [(w) => reply.writeSimple(w, "RESET"), { t: "simple", v: "RESET" }],
      [(w) => reply.writeBulk(w, Buffer.from("xabcx"), 1, 4), { t: "bulk", v: "abc" }],
    ];
    for (const [build, value] of cases) {
      const out = built(build);
      expect(decode3(out)).toEqual(value);
      expect(parseOne(out).result).toBe(out.length);
    }
  });

  test("RESP2: the same values as redis writes them to a RESP2 client", () => {
    expect(decode(built((w) => reply.writeNull(w, 2)))).toBeNull();
    expect(decode(built((w) => reply.writeVerbatim(w, 2, "a\r\nb")))).toEqual(Buffer.from("a\r\nb"));
    expect(decode(built(mapOfArray(2)))).toEqual([Buffer.from("k"), [-7, null]]);
  });
});

describe("a real redis-server's RESP3 replies", () => {
  let redis: Backend;
  beforeAll(async () => {
    redis = await startRedis({ args: ["--enable-debug-command", "yes"] });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  test("parsed to the same boundaries as the reference framer, whole and in small chunks", async () => {
    const types = ["string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib", "push", "verbatim", "true", "false"];
    const requests = [
      command("HELLO", "3"),
      ...types.map((t) => command("DEBUG", "PROTOCOL", t)),
      command("HSET", "h", "a", "1", "b", "2"),
      command("HGETALL", "h"),
      command("ZADD", "z", "1.5", "m"),
      command("ZSCORE", "z", "m"),
      command("MGET", "h-none", "nothing"),
      command("SADD", "s", "x", "y"),
      command("SMEMBERS", "s"),
      command("GET", "h"),
      command("CLIENT", "INFO"),
      command("INFO", "server"),
      command("COMMAND", "INFO", "get"),
    ];
    const client = await RawClient.connect({ host: redis.host, port: redis.port });
    let replies: Buffer[];
    try {
      await client.send(Buffer.concat(requests));
      // DEBUG PROTOCOL push sends a push, then a reply of its own: one more.
      replies = await client.readReplies(requests.length + 1, respFrame);
    } finally {
      client.close();
    }
    const stream = new Uint8Array(Buffer.concat(replies));
    const ends: number[] = [];
    let at = 0;
    for (const r of replies) ends.push((at += r.length));
    for (const sizes of [[stream.length], [1], [3, 7], [64]]) {
      const framing = parseStreamed(redisCodec, stream, sizes);
      expect(framing.fatal).toBeNull();
      expect(framing.replies.map(([, end]) => end)).toEqual(ends);
    }
    // The types are RESP3's: a map, a double, nulls, a set, an error, a verbatim string.
    const value = (i: number) => decode3(replies[i]!);
    expect(value(0).t).toBe("map");
    expect(value(1 + types.indexOf("attrib")).t).toBe("attr");
    expect(value(1 + types.indexOf("push")).t).toBe("push");
    expect(value(1 + types.indexOf("bignum")).t).toBe("big");
    expect(value(2 + types.indexOf("push")).t).toBe("bulk");
    const after = 2 + types.length;
    expect(value(after + 1).t).toBe("map");
    expect(value(after + 3)).toEqual({ t: "double", v: "1.5" });
    expect(value(after + 4)).toEqual({ t: "array", v: [{ t: "null" }, { t: "null" }] });
    expect(value(after + 6).t).toBe("set");
    expect(value(after + 7).t).toBe("error");
    expect(value(after + 8).t).toBe("verbatim");
  }, 30_000);
});
