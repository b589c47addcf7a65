// Inline commands (src/proto/redis/inline.ts) split exactly as redis-server splits them: each
// line goes to a real redis-server as `EVAL "return ARGV" 0 <line>`, which answers with the
// arguments it parsed, and to our parser; the arguments (or the unbalanced-quotes error that
// closes the connection) must be the same. Hand-written cases cover every rule; random lines
// from an alphabet of quotes, backslashes, hex digits, spaces and NUL cover their mixtures.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PoolConfig } from "../../src/conf/types.ts";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { FATAL, NEED_MORE, Req } from "../../src/proto/codec.ts";
import { redisCodec } from "../../src/proto/redis/index.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { decode, respFrame, RespError } from "../helpers/resp.ts";
import { outbounds } from "../helpers/split.ts";
import { Rng } from "../fuzz/redis.fuzz.ts";

const PREFIX = `EVAL "return ARGV" 0 `;

/** Our parse of `line` (+ CRLF): the arguments after the EVAL prefix, or the FATAL error. */
function ours(line: string): string[] | string {
  const buf = Buffer.from(line + "\r\n", "latin1");
  const req = new Req();
  const r = redisCodec.parseRequest(buf, 0, buf.length, req);
  if (r === FATAL) return req.error!;
  expect(r).toBe(buf.length);
  expect(req.inline).toBe(true);
  const args = Array.from({ length: req.nargs }, (_, i) => Buffer.from(buf.subarray(req.argStart[i]!, req.argEnd[i]!)).toString("latin1"));
  expect(args.slice(0, 3)).toEqual(["EVAL", "return ARGV", "0"]);
  return args.slice(3);
}

let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

/** Redis's parse of `line`: the arguments, or its error line when it refused the line. */
async function theirs(client: RawClient, line: string): Promise<string[] | string> {
  await client.send(line + "\r\n");
  const value = decode((await client.readReplies(1, respFrame))[0]!);
  if (value instanceof RespError) return `-${value.message}`;
  return (value as Buffer[]).map((b) => b.toString("latin1"));
}

async function compare(lines: string[]): Promise<void> {
  let client = await RawClient.connect({ host: redis.host, port: redis.port });
  try {
    for (const tail of lines) {
      const line = PREFIX + tail;
      const expected = await theirs(client, line).catch((e) => { throw new Error(`${JSON.stringify(tail)}: ${e}`); });
      expect({ tail, args: ours(line) }).toEqual({ tail, args: expected });
      if (typeof expected === "string") {
        // Redis closes after a protocol error: a new connection for the next line.
        client.close();
        client = await RawClient.connect({ host: redis.host, port: redis.port });
      }
    }
  } finally {
    client.close();
  }
}

describe("inline commands, split as redis-server splits them", () => {
  test("every quoting rule", async () => {
    await compare([
      "a b   c",
      "\ta\tb\t",
      `"a b" 'c d'`,
      `"\\n\\r\\t\\b\\a\\\\\\"\\q"`,
      `"\\x41\\x4a\\x4A\\xZZ\\x4"`,
      `'it\\'s' 'a\\b' 'x"y'`,
      `pre"mid dle"`,
      `pre'mid dle'`,
      `"" ''`,
      `"unbalanced`,
      `'unbalanced`,
      `"closed"next`,
      `'closed'next`,
      `"ends with backslash\\`,
      "a\x0bb\x0cc",
      `"x"\x0b"y"`,
      "",
    ]);
  }, 60_000);

  test("random lines over the quoting alphabet", async () => {
    const rng = new Rng(16);
    const alphabet = [`"`, `'`, "\\", "x", "4", "F", "z", " ", "\t", "n", "\x0b", "\r"];
    const lines: string[] = [];
    for (let i = 0; i < 400; i++) {
      let line = "";
      const n = rng.int(12);
      for (let k = 0; k < n; k++) line += rng.pick(alphabet);
      lines.push(line);
    }
    await compare(lines);
  }, 120_000);
});

describe("inline framing", () => {
  const parse = (text: string) => {
    const buf = Buffer.from(text, "latin1");
    const req = new Req();
    return { r: redisCodec.parseRequest(buf, 0, buf.length, req), req };
  };

  test("a line needs its LF; CR before it is not an argument; blank lines are skipped", () => {
    expect(parse("GET a").r).toBe(NEED_MORE);
    expect(parse("GET a\r").r).toBe(NEED_MORE);
    const { r, req } = parse("  \r\n\nGET a\n");
    expect(r).toBe(11);
    expect(req.start).toBe(5);
    expect(req.nargs).toBe(2);
    expect(req.command?.name).toBe("get");
  });

  test("a NUL byte is a protocol error (redis waits for 64 KB, then closes)", () => {
    const { r, req } = parse("GET a\x00b\r\n");
    expect(r).toBe(FATAL);
    expect(req.error).toBe("-ERR Protocol error: NUL byte in inline request");
  });

  test("redis's size limit: 64 KB without a line end is fatal, a 60 KB line is parsed", () => {
    const { r, req } = parse("SET k " + "v".repeat(70_000));
    expect(r).toBe(FATAL);
    expect(req.error).toBe("-ERR Protocol error: too big inline request");
    const long = parse(`SET k ${"v".repeat(60_000)}\r\n`);
    expect(long.req.error).toBeNull();
    expect(long.req.argEnd[2]! - long.req.argStart[2]!).toBe(60_000);
  });

  test("an inline command goes upstream as a RESP array of its unescaped arguments", () => {
    const buf = Buffer.from(`SET "a b" 'c\\'d'\r\n`, "latin1");
    const req = new Req();
    redisCodec.parseRequest(buf, 0, buf.length, req);
    const out = new ByteWriter(64);
    const sink = { out, send: (b: Uint8Array, start: number, end: number) => out.bytes(b, start, end) };
    const msg = outbounds([0])[0]!;
    redisCodec.upstream({} as PoolConfig).forward(buf, req, msg, sink);
    const expected = "*3\r\n$3\r\nSET\r\n$3\r\na b\r\n$3\r\nc'd\r\n";
    expect(Buffer.from(out.view()).toString("latin1")).toBe(expected);
    expect(msg.bytes).toBe(expected.length);
  });
});
