// memcached request parsing: what each command line yields (from the protocol, protocol.txt),
// independence from how the bytes are chunked, data blocks resumed by `need`, line limits, and
// the noreply rewrite. Reply texts for bad lines are checked against a real memcached in
// memcache-live.test.ts.

import { describe, expect, test } from "bun:test";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { FATAL, NEED_MORE, Req, Route } from "../../src/proto/codec.ts";
import { memcacheCodec as codec } from "../../src/proto/memcache/index.ts";
import { findLF, MAX_GET_LINE, MAX_LINE } from "../../src/proto/memcache/scan.ts";
import { makeRng } from "../helpers/random.ts";
import { buildForward } from "../../src/proto/memcache/request.ts";

const latin1 = (b: Uint8Array): string => Buffer.from(b).toString("latin1");
const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"));

interface Parsed {
  command: string | null;
  args: string[];
  keys: string[];
  data: string | null;
  noreply: boolean;
  error: string | null;
  length: number;
}

function snapshot(buf: Uint8Array, req: Req, end: number): Parsed {
  const arg = (i: number) => latin1(buf.subarray(req.argStart[i]!, req.argEnd[i]!));
  const storage = req.command !== null && ["set", "add", "replace", "append", "prepend", "cas"].includes(req.command.name);
  return {
    command: req.command?.name ?? null,
    args: Array.from({ length: req.nargs }, (_, i) => arg(i)),
    keys: Array.from({ length: req.nkeys }, (_, k) => arg(req.keyArg[k]!)),
    data: storage && req.error === null ? latin1(buf.subarray(req.dataStart, req.dataEnd)) : null,
    noreply: req.noreply,
    error: req.error,
    length: end - req.start,
  };
}

type Outcome = Parsed | "FATAL";

/** Feeds `stream` in chunks as the core would: after each chunk, parse while whole messages are
 *  there, and after NEED_MORE wait until `need` bytes are buffered before parsing again (so a
 *  `need` larger than the message would stall and fail the test). */
function feed(stream: Uint8Array, cuts: number[]): { outcomes: Outcome[]; calls: number; leftover: number } {
  const buf = new Uint8Array(stream.length);
  const req = new Req();
  const outcomes: Outcome[] = [];
  let have = 0;
  let pos = 0;
  let need = 0;
  let calls = 0;
  for (const cut of [...cuts, stream.length]) {
    buf.set(stream.subarray(have, cut), have);
    have = cut;
    while (pos < have && have - pos >= need) {
      calls++;
      const r = codec.parseRequest(buf, pos, have, req);
      if (r === FATAL) return { outcomes: [...outcomes, "FATAL"], calls, leftover: 0 };
      if (r === NEED_MORE) {
        expect(req.need).toBeGreaterThan(have - pos);
        need = req.need;
        break;
      }
      outcomes.push(snapshot(buf, req, r));
      pos = r;
      need = 0;
    }
  }
  return { outcomes, calls, leftover: have - pos };
}

// Each sample and what the protocol says it is (its length is the whole sample unless said
// otherwise). Concatenated, they are also a pipeline.
const SAMPLES: [string, Partial<Parsed>][] = [
  ["get a\r\n", { command: "get", args: ["get", "a"], keys: ["a"] }],
  ["gets a bb ccc\r\n", { command: "gets", args: ["gets", "a", "bb", "ccc"], keys: ["a", "bb", "ccc"] }],
  ["gat 100 k1 k2\r\n", { command: "gat", args: ["gat", "100", "k1", "k2"], keys: ["k1", "k2"] }],
  ["gats -1 k\r\n", { command: "gats", args: ["gats", "-1", "k"], keys: ["k"] }],
  // memcached's tokenizer: any run of spaces separates, leading and trailing ones are ignored.
  ["  get   a  b \r\n", { command: "get", args: ["get", "a", "b"], keys: ["a", "b"] }],
  // memcached accepts a bare LF line end.
  ["get a\n", { command: "get", args: ["get", "a"], keys: ["a"] }],
  ["set k 5 0 5\r\nhello\r\n", { command: "set", args: ["set", "k", "5", "0", "5"], keys: ["k"], data: "hello" }],
  ["add k 0 -1 0\r\n\r\n", { command: "add", args: ["add", "k", "0", "-1", "0"], keys: ["k"], data: "" }],
  [
    "cas k 4294967295 0 3 18446744073709551615 noreply\r\n\r\n\n\r\n",
    {
      command: "cas",
      args: ["cas", "k", "4294967295", "0", "3", "18446744073709551615", "noreply"],
      keys: ["k"],
      data: "\r\n\n",
      noreply: true,
    },
  ],
  ["append k 0 0 5\r\nEND\r\n\r\n", { command: "append", args: ["append", "k", "0", "0", "5"], keys: ["k"], data: "END\r\n" }],
  ["prepend k 0 0 2 noreply\r\nhi\r\n", { command: "prepend", args: ["prepend", "k", "0", "0", "2", "noreply"], keys: ["k"], data: "hi", noreply: true }],
  // Keys are bytes: 8-bit (UTF-8) keys are fine, and so are binary values.
  ["replace \xd0\xba\xd0\xbb 0 0 4\r\n\x00\xff\r\n\r\n", { command: "replace", args: ["replace", "\xd0\xba\xd0\xbb", "0", "0", "4"], keys: ["\xd0\xba\xd0\xbb"], data: "\x00\xff\r\n" }],
  ["delete k\r\n", { command: "delete", args: ["delete", "k"], keys: ["k"] }],
  ["delete k 0\r\n", { command: "delete", args: ["delete", "k", "0"], keys: ["k"] }],
  ["delete k noreply\r\n", { command: "delete", args: ["delete", "k", "noreply"], keys: ["k"], noreply: true }],
  ["delete k 0 noreply\r\n", { command: "delete", args: ["delete", "k", "0", "noreply"], keys: ["k"], noreply: true }],
  ["incr n 18446744073709551615\r\n", { command: "incr", args: ["incr", "n", "18446744073709551615"], keys: ["n"] }],
  ["decr n 1 noreply\r\n", { command: "decr", args: ["decr", "n", "1", "noreply"], keys: ["n"], noreply: true }],
  ["touch k -1\r\n", { command: "touch", args: ["touch", "k", "-1"], keys: ["k"] }],
  ["version\r\n", { command: "version", args: ["version"] }],
  ["quit\r\n", { command: "quit", args: ["quit"] }],
  // Rejected lines keep the stream in step: an unknown command or a wrong token count is one
  // line (memcached: ERROR); a storage line with a readable <bytes> owns its data block.
  ["bogus a\r\n", { args: ["bogus", "a"], error: "ERROR" }],
  ["\r\n", { error: "ERROR" }],
  ["set k 0 0\r\n", { command: "set", args: ["set", "k", "0", "0"], error: "ERROR" }],
  ["set k x 0 2\r\nhi\r\n", { command: "set", args: ["set", "k", "x", "0", "2"], keys: ["k"], error: "CLIENT_ERROR bad command line format" }],
  ["set k 0 0 abc\r\n", { command: "set", args: ["set", "k", "0", "0", "abc"], keys: ["k"], error: "CLIENT_ERROR bad command line format" }],
  // Data not followed by CRLF: like memcached, <bytes> + 2 are consumed ("x" + "yz"), and the
  // CRLF left over is an empty line.
  ["set k 0 0 1\r\nxyz\r\n", { command: "set", args: ["set", "k", "0", "0", "1"], keys: ["k"], error: "CLIENT_ERROR bad data chunk", length: 16 }],
  ["", { error: "ERROR", length: 2 }],
  ["stats\r\n", { args: ["stats"], error: "SERVER_ERROR unsupported command 'stats'" }],
  ["flush_all noreply\r\n", { args: ["flush_all", "noreply"], error: "SERVER_ERROR unsupported command 'flush_all'", noreply: true }],
  // meta set carries a data block (length in token 2): skipped with the command.
  ["ms k 2 T0\r\nxy\r\n", { args: ["ms", "k", "2", "T0"], error: "SERVER_ERROR unsupported command 'ms'" }],
];

const stream = bytes(SAMPLES.map(([s]) => s).join(""));
const expected: Parsed[] = SAMPLES.map(([text, p]) => ({
  command: null,
  args: [],
  keys: [],
  data: null,
  noreply: false,
  error: null,
  length: text.length,
  ...p,
}));

describe("memcached request parser", () => {
  test("each sample parses to what the protocol says", () => {
    expect(feed(stream, []).outcomes).toEqual(expected);
    expect(feed(stream, []).leftover).toBe(0);
  });

  test("the same at every split point of the pipeline", () => {
    for (let cut = 1; cut < stream.length; cut++) {
      const { outcomes, leftover } = feed(stream, [cut]);
      expect({ cut, outcomes, leftover }).toEqual({ cut, outcomes: expected, leftover: 0 });
    }
  });

  test("the same one byte at a time", () => {
    const cuts = Array.from({ length: stream.length - 1 }, (_, i) => i + 1);
    expect(feed(stream, cuts).outcomes).toEqual(expected);
  });

  test("the same in random chunkings", () => {
    const rng = makeRng(4);
    for (let round = 0; round < 200; round++) {
      const cuts: number[] = [];
      for (let at = rng.int(8) + 1; at < stream.length; at += rng.int(40) + 1) cuts.push(at);
      expect(feed(stream, cuts).outcomes).toEqual(expected);
    }
  });

  test("routes: get family split, storage/arith/delete/touch by key, version any, quit and a keyless gat local", () => {
    const req = new Req();
    const route = (s: string) => {
      const b = bytes(s);
      expect(codec.parseRequest(b, 0, b.length, req)).toBe(b.length);
      return req.command?.route;
    };
    for (const c of ["get a", "gets a", "gat 0 a", "gats 0 a"]) expect(route(`${c}\r\n`)).toBe(Route.Get);
    for (const c of ["set a 0 0 1\r\nx", "cas a 0 0 1 1\r\nx", "delete a", "incr a 1", "decr a 1", "touch a 1"]) {
      expect(route(`${c}\r\n`)).toBe(Route.Key);
    }
    expect(route("version\r\n")).toBe(Route.Any);
    expect(route("quit\r\n")).toBe(Route.Local);
    // gat/gats without a key: memcached's END, answered by the proxy.
    for (const c of ["gat 10", "gats 10", "  gats  -1 "]) expect(route(`${c}\r\n`)).toBe(Route.Local);
  });

  test("parses at an offset inside a larger buffer, with absolute offsets", () => {
    const b = bytes("xxxxset k 0 0 2\r\nhi\r\nyyyy");
    const req = new Req();
    expect(codec.parseRequest(b, 4, b.length - 4, req)).toBe(b.length - 4);
    expect(req.start).toBe(4);
    expect(latin1(b.subarray(req.keyStart(0), req.keyEnd(0)))).toBe("k");
    expect(latin1(b.subarray(req.dataStart, req.dataEnd))).toBe("hi");
  });
});

describe("data blocks", () => {
  test("a 1 MB block arriving in 64 KB chunks is parsed twice: the line, then the whole block", () => {
    const value = makeRng(1).bytes(1 << 20);
    const msg = new Uint8Array(Buffer.concat([Buffer.from(`set big 0 0 ${value.length}\r\n`), value, Buffer.from("\r\n")]));
    const cuts: number[] = [];
    for (let at = 1 << 16; at < msg.length; at += 1 << 16) cuts.push(at);
    const { outcomes, calls } = feed(msg, cuts);
    expect(outcomes).toHaveLength(1);
    expect((outcomes[0] as Parsed).data?.length).toBe(1 << 20);
    expect(calls).toBe(2);
  });

  test("NEED_MORE for a block asks for exactly the rest of the message", () => {
    const msg = bytes("set k 0 0 10\r\n0123456789\r\n");
    const req = new Req();
    for (let have = 15; have < msg.length; have++) {
      expect(codec.parseRequest(msg, 0, have, req)).toBe(NEED_MORE);
      expect(req.need).toBe(msg.length);
    }
  });
});

describe("findLF", () => {
  // Short lines are scanned in JS and long ones by indexOf: the answer must not depend on which.
  test("finds the first LF at any distance, never one at or past `end`", () => {
    for (const at of [0, 1, 62, 63, 64, 65, 127, 128, 300]) {
      const buf = new Uint8Array(at + 40).fill(0x61);
      buf[at] = 0x0a;
      buf[at + 20] = 0x0a;
      for (const pos of [0, 1, 5]) {
        expect(findLF(buf, pos, buf.length)).toBe(at >= pos ? at : at + 20);
        expect(findLF(buf, pos, at + 1)).toBe(at >= pos ? at : -1);
        expect(findLF(buf, pos, at)).toBe(-1);
      }
    }
  });
});

describe("line limits", () => {
  const req = new Req();
  const parse = (s: string) => {
    const b = bytes(s);
    return codec.parseRequest(b, 0, b.length, req);
  };
  const padded = (head: string, length: number) => head + " ".repeat(length - head.length);

  test(`a command line may have ${MAX_LINE} bytes before its LF, a CR included; a longer one is fatal, with or without its LF`, () => {
    expect(parse(padded("version", MAX_LINE - 1) + "\r\n")).toBe(MAX_LINE + 1);
    expect(parse(padded("version", MAX_LINE) + "\n")).toBe(MAX_LINE + 1);
    // memcached drops a connection when it has read MAX_LINE bytes and the CR, but not the LF.
    expect(parse(padded("version", MAX_LINE) + "\r\n")).toBe(FATAL);
    expect(req.error).toBe("CLIENT_ERROR line too long");
    expect(parse(padded("version", MAX_LINE))).toBe(NEED_MORE);
    expect(parse(padded("version", MAX_LINE + 1))).toBe(FATAL);
    expect(parse("x".repeat(MAX_LINE + 1))).toBe(FATAL);
  });

  test(`get/gets lines may be ${MAX_GET_LINE} bytes (many keys)`, () => {
    const keys = Array.from({ length: 4000 }, (_, i) => `key:${i}`.padEnd(250, "x")).join(" ");
    const line = `get ${keys}`;
    expect(line.length).toBeLessThanOrEqual(MAX_GET_LINE);
    expect(parse(line + "\r\n")).toBe(line.length + 2);
    expect(req.nkeys).toBe(4000);
    expect(parse(line)).toBe(NEED_MORE);
    expect(parse(padded("gets k", MAX_GET_LINE) + "\n")).toBe(MAX_GET_LINE + 1);
    expect(parse(padded("gets k", MAX_GET_LINE + 1) + "\n")).toBe(FATAL);
    expect(parse(padded("gets k", MAX_GET_LINE + 2))).toBe(FATAL);
  });

  test("but not gat/gats, nor a get after over 100 spaces (memcached drops those past 2048 bytes)", () => {
    expect(parse(padded("gat 0 k", MAX_LINE) + "\n")).toBe(MAX_LINE + 1);
    expect(parse(padded("gat 0 k", MAX_LINE + 1) + "\n")).toBe(FATAL);
    expect(parse(padded("gats 0 k", MAX_LINE + 2))).toBe(FATAL);
    expect(parse(padded(" ".repeat(100) + "get k", MAX_LINE + 1) + "\n")).toBe(MAX_LINE + 2);
    expect(parse(padded(" ".repeat(101) + "get k", MAX_LINE + 1) + "\n")).toBe(FATAL);
    expect(parse(padded(" ".repeat(101) + "get k", MAX_LINE + 2))).toBe(FATAL);
  });

  test("keys: 250 bytes at most, control characters but NUL", () => {
    for (const good of [`get ${"k".repeat(250)}\r\n`, "get a\tb\r\n", "get a\rb\r\n", "get a\x7fb\r\n", "get \x10\x10\x10\x10\x10\x10\x10\x10k\r\n"]) {
      expect(parse(good)).toBe(good.length);
      expect(req.error).toBeNull();
    }
    for (const bad of [`get ${"k".repeat(251)}\r\n`, "get a\x00b\r\n", "get ok a\x00\r\n"]) {
      expect(parse(bad)).toBe(bad.length);
      expect(req.error).toBe("CLIENT_ERROR bad command line format");
    }
  });

  test("the binary protocol is refused as a whole connection", () => {
    const b = new Uint8Array([0x80, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]);
    expect(codec.parseRequest(b, 0, b.length, req)).toBe(FATAL);
    expect(req.error).toBe("SERVER_ERROR unsupported binary protocol");
  });
});

describe("noreply forwarding", () => {
  const forward = (s: string): string => {
    const b = bytes(s);
    const req = new Req();
    expect(codec.parseRequest(b, 0, b.length, req)).toBe(b.length);
    expect(req.noreply).toBe(true);
    const w = new ByteWriter(16);
    buildForward(b, req, w);
    return latin1(w.view());
  };

  test("the same request without its noreply token", () => {
    expect(forward("set k 1 2 3 noreply\r\na\r\n\r\n")).toBe("set k 1 2 3\r\na\r\n\r\n");
    expect(forward("cas k 0 0 1 77 noreply\r\nx\r\n")).toBe("cas k 0 0 1 77\r\nx\r\n");
    expect(forward("  delete   k 0 noreply \n")).toBe("delete k 0\r\n");
    expect(forward("incr k 5 noreply\r\n")).toBe("incr k 5\r\n");
    expect(forward("touch k 10 noreply\r\n")).toBe("touch k 10\r\n");
  });
});
