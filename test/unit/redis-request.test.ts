// The redis request parser: framing, keys and routes, resumable parsing under any chunking, and
// error replies. Error texts are compared with what a real redis-server replies to the same bytes.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { FATAL, NEED_MORE, Req, Route } from "../../src/proto/codec.ts";
import { COMMANDS } from "../../src/proto/redis/commands.ts";
import { redisCodec } from "../../src/proto/redis/index.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { command, respFrame, type Bytes } from "../helpers/resp.ts";

const latin1 = (b: Uint8Array): string => Buffer.from(b).toString("latin1");
const bytes = (s: string): Uint8Array => Buffer.from(s, "latin1");

interface Parsed {
  start: number;
  end: number;
  command: string | null;
  route: number | null;
  args: string[];
  keys: string[];
  error: string | null;
}

function snapshot(buf: Uint8Array, req: Req): Parsed {
  const arg = (i: number) => latin1(buf.subarray(req.argStart[i]!, req.argEnd[i]!));
  return {
    start: req.start,
    end: req.end,
    command: req.command?.name ?? null,
    route: req.command?.route ?? null,
    args: Array.from({ length: req.nargs }, (_, i) => arg(i)),
    keys: Array.from({ length: req.nkeys }, (_, k) => arg(req.keyArg[k]!)),
    error: req.error,
  };
}

interface Outcome {
  parsed: Parsed[];
  /** The FATAL error line, if the stream broke. */
  fatal: string | null;
  /** Bytes left unparsed at the end. */
  left: number;
  /** parseRequest calls made. */
  calls: number;
}

/**
 * Feeds `stream` in chunks of the given sizes the way the proxy does: after NEED_MORE, parsing
 * resumes from the request start only once `need` bytes are there.
 */
function parseChunked(stream: Uint8Array, sizes: number[]): Outcome {
  const req = new Req();
  const parsed: Parsed[] = [];
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
      const r = redisCodec.parseRequest(stream, pos, received, req);
      if (r === NEED_MORE) {
        need = req.need;
        break;
      }
      if (r === FATAL) return { parsed, fatal: req.error, left: stream.length - pos, calls };
      parsed.push(snapshot(stream, req));
      pos = r;
    }
  }
  return { parsed, fatal: null, left: stream.length - pos, calls };
}

const parseWhole = (stream: Uint8Array): Outcome => parseChunked(stream, [stream.length]);

function parseOne(data: Bytes): { result: number; req: Req; parsed: Parsed } {
  const buf = typeof data === "string" ? bytes(data) : data;
  const req = new Req();
  const result = redisCodec.parseRequest(buf, 0, buf.length, req);
  return { result, req, parsed: snapshot(buf, req) };
}

const BIG = Buffer.alloc(100_000, "v");
const SAMPLE = Buffer.concat([
  command("GET", "a"),
  command("set", "bin\r\nkey", "\x00\r\n\xff value"),
  command("MGET", "a", "b", "a"),
  command("MSET", "k1", "v1", "k2", "v2"),
  command("EVAL", "return 1", "2", "x", "y", "arg"),
  command("PING"),
  command("PING", "hello"),
  command("FOO", "bar"),
  command("KEYS", "*"),
  command("GET"),
  bytes("GET a\r\n"),
  bytes("\r\n  \r\n"),
  bytes("*0\r\n"),
  command("SET", "big", BIG),
  command("DEL", "a", "b"),
  command("QUIT"),
]);

describe("requests", () => {
  test("arguments, command, keys and route of each request in a pipeline", () => {
    const { parsed, fatal, left } = parseWhole(SAMPLE);
    expect(fatal).toBeNull();
    expect(left).toBe(0);
    const brief = parsed.map((p) => [p.command, p.route, p.keys, p.error]);
    expect(brief).toEqual([
      ["get", Route.Key, ["a"], null],
      ["set", Route.Key, ["bin\r\nkey"], null],
      ["mget", Route.Get, ["a", "b", "a"], null],
      ["mset", Route.Set, ["k1", "k2"], null],
      ["eval", Route.Key, ["x", "y"], null],
      ["ping", Route.Local, [], null],
      ["ping", Route.Any, [], null], // redis echoes the message: any server answers
      [null, null, [], "-ERR unknown command 'FOO', with args beginning with: 'bar' "],
      ["keys", Route.Any, [], null], // served beyond one key (issue 17): routed by its role
      ["get", Route.Key, [], "-ERR wrong number of arguments for 'get' command"],
      ["get", Route.Key, ["a"], null], // inline
      ["set", Route.Key, ["big"], null], // the blank lines and *0 before it were skipped
      ["del", Route.Sum, ["a", "b"], null],
      ["quit", Route.Local, [], null],
    ]);
    expect(parsed[1]!.args).toEqual(["set", "bin\r\nkey", "\x00\r\n\xff value"]);
    expect(parsed[11]!.args[2]!.length).toBe(BIG.length);
    // Each request spans exactly its own bytes; the skipped lines belong to no request.
    const skipped = bytes("\r\n  \r\n*0\r\n").length;
    expect(parsed[11]!.start).toBe(parsed[10]!.end + skipped);
    for (let i = 1; i < parsed.length; i++) if (i !== 11) expect(parsed[i]!.start).toBe(parsed[i - 1]!.end);
  });

  test("the same requests whatever the split into two chunks", () => {
    const whole = parseWhole(SAMPLE);
    // Every boundary in the small requests, and a spread of them through the large value.
    for (let cut = 1; cut < SAMPLE.length; cut += cut < 400 || cut > SAMPLE.length - 100 ? 1 : 997) {
      const chunked = parseChunked(SAMPLE, [cut, SAMPLE.length]);
      expect(chunked.parsed).toEqual(whole.parsed);
      expect(chunked.left).toBe(0);
    }
  });

  test("the same requests one byte at a time, re-parsing only when `need` bytes are there", () => {
    const whole = parseWhole(SAMPLE);
    const oneByOne = parseChunked(SAMPLE, [1]);
    expect(oneByOne.parsed).toEqual(whole.parsed);
    // Once its length is read, the 100 KB value costs one more parse, not 100,000.
    expect(oneByOne.calls).toBeLessThan(SAMPLE.length - BIG.length);
  });

  test("the same requests in chunks of varying sizes", () => {
    const whole = parseWhole(SAMPLE);
    for (const sizes of [[2], [3, 7], [13, 1, 5], [64], [1000, 1]]) expect(parseChunked(SAMPLE, sizes).parsed).toEqual(whole.parsed);
  });

  test("a 16 MB value arriving in 64 KB chunks is parsed twice", () => {
    const value = Buffer.alloc(16 << 20, 0x61);
    const stream = command("SET", "k", value);
    const { parsed, calls } = parseChunked(stream, [64 * 1024]);
    expect(parsed.map((p) => p.args[2]!.length)).toEqual([value.length]);
    expect(calls).toBe(2);
  });

  test("need is exact for the current argument and counts 6 bytes for each one not seen", () => {
    expect(parseOne("*1\r\n$4\r\nPIN").req.need).toBe(14);
    expect(parseOne("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\n").req.need).toBe(26 + 100 + 2);
    expect(parseOne("*3\r\n$3\r\nSET\r\n").req.need).toBe(13 + 6 + 6);
    const { result, req } = parseOne("*2\r\n$3\r\nGET");
    expect(result).toBe(NEED_MORE);
    expect(req.need).toBeGreaterThan(11);
  });

  test("a made-up argument count cannot inflate need (the reader reserves that much)", () => {
    const { result, req } = parseOne("*2147483647\r\n");
    expect(result).toBe(NEED_MORE);
    expect(req.need).toBeLessThanOrEqual(13 + 6 + 64 * 1024);
  });

  test("the commands the proxy answers itself", () => {
    const route = (...args: string[]) => {
      const { parsed } = parseOne(command(...args));
      return [parsed.route, parsed.error];
    };
    expect(route("PING")).toEqual([Route.Local, null]);
    expect(route("QUIT")).toEqual([Route.Local, null]);
    expect(route("QUIT", "now")).toEqual([Route.Local, null]); // redis's QUIT takes anything too
    expect(route("AUTH", "secret")).toEqual([Route.Local, null]);
    // AUTH takes the password alone or a user name and the password (redis 6's ACL form).
    expect(route("AUTH")).toEqual([Route.Local, "-ERR wrong number of arguments for 'auth' command"]);
    expect(route("AUTH", "default", "secret")).toEqual([Route.Local, null]);
    for (const handshake of [["HELLO"], ["HELLO", "3"], ["CLIENT", "SETNAME", "x"], ["SELECT", "0"], ["ECHO", "x"], ["RESET"], ["READONLY"], ["READWRITE"]]) {
      expect(route(...handshake)).toEqual([Route.Local, null]);
    }
    expect(route("INFO")).toEqual([Route.All, null]);
    expect(route("INFO", "keyspace", "server")).toEqual([Route.All, null]);
  });

  test("command names in any letter case, and no false matches", () => {
    for (const name of ["get", "GET", "gEt", "Get"]) expect(parseOne(command(name, "k")).parsed.command).toBe("get");
    for (const name of ["EVAL_RO", "eval_ro"]) expect(parseOne(command(name, "s", "1", "k")).parsed.command).toBe("eval_ro");
    for (const name of ["ge", "gett", "eval\x7fro", "g\x00t", ""]) expect(parseOne(command(name, "k")).parsed.error).toStartWith("-ERR unknown command");
  });

  test("key positions", () => {
    const keys = (...args: string[]) => parseOne(command(...args)).parsed.keys;
    expect(keys("MSET", "a", "1", "b", "2", "c", "3")).toEqual(["a", "b", "c"]);
    expect(keys("EXISTS", "a", "b")).toEqual(["a", "b"]);
    expect(keys("UNLINK", "a")).toEqual(["a"]);
    expect(keys("SMOVE", "src", "dst", "member")).toEqual(["src", "dst"]);
    expect(keys("ZUNIONSTORE", "dst", "2", "a", "b", "WEIGHTS", "1", "2")).toEqual(["dst", "a", "b"]);
    expect(keys("ZUNION", "2", "a", "b")).toEqual(["a", "b"]); // twemproxy routes by "2"
    expect(keys("LMPOP", "2", "l1", "l2", "LEFT")).toEqual(["l1", "l2"]);
    expect(keys("EVALSHA", "abc", "1", "k", "arg")).toEqual(["k"]);
    expect(keys("FCALL", "f", "0")).toEqual([]); // rejected below
    expect(keys("SORT", "list", "STORE", "dst")).toEqual(["list"]);
    expect(keys("SINTER", "a", "b", "c")).toEqual(["a", "b", "c"]);
    expect(keys("GETEX", "k", "EX", "10")).toEqual(["k"]);
    expect(keys("COMMAND")).toEqual([]);
  });

  test("commands that need a key but name none are refused", () => {
    expect(parseOne(command("EVAL", "return 1", "0")).parsed.error).toBe("-ERR unsupported command 'eval' without keys");
    expect(parseOne(command("FCALL", "f", "0")).parsed.error).toBe("-ERR unsupported command 'fcall' without keys");
  });

  test("inline requests are parsed (inline.ts); blank lines and empty arrays are skipped", () => {
    const { parsed, fatal } = parseWhole(bytes("PING\r\n\n\r\n*-1\r\n*0\r\nget a\n  \t\nFOO\n"));
    expect(fatal).toBeNull();
    expect(parsed.map((p) => [p.start, p.end, p.command, p.keys, p.error])).toEqual([
      [0, 6, "ping", [], null],
      [18, 24, "get", ["a"], null],
      [28, 32, null, [], "-ERR unknown command 'FOO', with args beginning with: "],
    ]);
    expect(parseOne("PING").result).toBe(NEED_MORE);
    expect(parseOne(Buffer.alloc(70_000, "a")).req.error).toBe("-ERR Protocol error: too big inline request");
    expect(parseOne(Buffer.alloc(70_000, "\n")).req.error).toBe("-ERR Protocol error: too many empty requests");
  });
});

describe("replies to bad requests, compared with redis-server's", () => {
  let redis: Backend;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  /** Redis's reply (without CRLF) to `data`, and (when asked) whether it then closed. */
  async function redisSays(data: Bytes, waitForClose = false): Promise<{ reply: string; closed: boolean }> {
    const client = await RawClient.connect({ host: redis.host, port: redis.port });
    try {
      await client.send(data);
      const [reply] = await client.readReplies(1, respFrame);
      const closed = waitForClose && (await client.closesWithin(1000));
      return { reply: latin1(reply!).slice(0, -2), closed };
    } finally {
      client.close();
    }
  }

  test("broken framing: the same protocol error, and the connection closes", async () => {
    const broken = [
      "*1\r\n:3\r\n",
      "*1\r\nx\r\n",
      "*abc\r\n",
      "*01\r\n",
      "*-0\r\n",
      "*3000000000\r\n",
      "*1\r\n$abc\r\n",
      "*1\r\n$-1\r\n",
      "*1\r\n$03\r\nget\r\n",
      "*1\r\n$+3\r\nget\r\n",
      "*1\r\n$600000000\r\n",
      "*2\r\n$3\r\nget\r\n*1\r\n",
    ];
    for (const data of broken) {
      const ours = parseOne(data);
      expect(ours.result).toBe(FATAL);
      const theirs = await redisSays(data, true);
      expect({ data, error: ours.req.error }).toEqual({ data, error: theirs.reply });
      expect(theirs.closed).toBe(true);
    }
  }, 60_000);

  test("unknown commands: redis's own text, name as sent, arguments cut at 128 bytes", async () => {
    const cases = [
      command("FOO"),
      command("FoO", "bar", "baz"),
      command("nope", "a".repeat(200)),
      command("nope", "x".repeat(100), "y".repeat(100), "z"),
      command("bad\r\nname", "new\nline", "nul\x00byte"),
      command("x".repeat(300)),
    ];
    for (const data of cases) {
      const theirs = await redisSays(data);
      expect(parseOne(data).req.error).toBe(theirs.reply);
    }
  }, 60_000);

  test("wrong argument counts: redis's own text for every served command", async () => {
    const local = new Set(["ping", "quit", "auth"]);
    for (const c of COMMANDS) {
      if (c.route === null || local.has(c.name) || c.arity === -1) continue; // -1: any count will do
      const count = c.arity > 0 ? (c.arity === 1 ? 2 : c.arity - 1) : -c.arity - 1;
      const data = command(c.name, ...Array.from({ length: count - 1 }, (_, i) => `a${i}`));
      const ours = parseOne(data);
      expect(ours.result).toBe(data.length);
      const theirs = await redisSays(data);
      expect({ command: c.name, error: ours.req.error }).toEqual({ command: c.name, error: theirs.reply });
    }
    for (const args of [["MSET", "a", "1", "b"], ["PING", "a", "b"]]) {
      const data = command(...args);
      expect(parseOne(data).req.error).toBe((await redisSays(data)).reply);
    }
  }, 60_000);

  test("numkeys errors: redis's own text", async () => {
    for (const args of [["EVAL", "return 1", "x", "k"], ["EVAL", "return 1", "-1", "k"], ["EVAL", "return 1", "3", "k"], ["EVAL", "return 1", "01", "k"]]) {
      const data = command(...args);
      expect(parseOne(data).req.error).toBe((await redisSays(data)).reply);
    }
  }, 60_000);
});
