// The memcached codec against real memcached processes: reply texts for bad lines, what it
// accepts memcached accepts, noreply rewrites, real replies parsed, and split multi-gets merged
// into exactly the reply one memcached gives for the whole request.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { FATAL, NEED_MORE, Req, Route, Rsp } from "../../src/proto/codec.ts";
import { memcacheCodec as codec } from "../../src/proto/memcache/index.ts";
import { startMemcached, type Backend } from "../helpers/backends.ts";
import { exchange, RawClient, type Framer } from "../helpers/client.ts";
import { endpointOf, stopAll } from "../helpers/direct.ts";
import { memcacheFrame, parseRetrieval, storage } from "../helpers/memcache.ts";
import { eventually } from "../helpers/fault.ts";
import { unreadBytes } from "../helpers/procfs.ts";
import { makeRng } from "../helpers/random.ts";
import { mergeReply, splitOf } from "../helpers/split.ts";
import { buildForward } from "../../src/proto/memcache/request.ts";
import { buildFragment } from "../../src/proto/memcache/split.ts";

const latin1 = (b: Uint8Array): string => Buffer.from(b).toString("latin1");
const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"));
const LONG_KEY = "k".repeat(251);

let reference: Backend;
let shards: Backend[];

beforeAll(async () => {
  [reference, ...shards] = await Promise.all(Array.from({ length: 5 }, () => startMemcached()));
});

afterAll(async () => {
  await stopAll([reference, ...shards]);
});

/** memcached's whole answer to `line`: everything before the reply to a meta no-op sent after
 *  it (so a suppressed reply shows as nothing instead of a timeout). */
const untilNoop: Framer = (buf, start, end) => {
  const at = Buffer.from(buf.buffer, buf.byteOffset + start, end - start).indexOf("MN\r\n");
  return at < 0 ? -1 : start + at + 4;
};

async function memcachedSays(line: string): Promise<string> {
  const [transcript] = await exchange(endpointOf(reference), line + "mn\r\n", 1, untilNoop);
  return latin1(transcript!).slice(0, -4);
}

function ourVerdict(line: string): Req {
  const b = bytes(line);
  const req = new Req();
  expect(codec.parseRequest(b, 0, b.length, req)).toBe(b.length);
  return req;
}

const firstLine = (s: string) => s.slice(0, s.indexOf("\r\n"));

describe("bad lines get memcached's own reply", () => {
  // [what we parse, what memcached gets (default: the same)]. Where we swallow a rejected
  // storage command's data block and memcached does not, memcached gets the line alone.
  const CASES: [string, string?][] = [
    ["foo a\r\n"],
    ["\r\n"],
    ["\n"],
    ["GET a\r\n"],
    ["get\r\n"],
    ["get \r\n"],
    ["gets\r\n"],
    ["gat\r\n"],
    ["set a 0 0\r\n"],
    ["set a 0 0 1 2 3\r\n"],
    ["cas a 0 0 1\r\n"],
    [`set ${LONG_KEY} 0 0 1\r\nx\r\n`, `set ${LONG_KEY} 0 0 1\r\n`],
    ["set a x 0 1\r\nx\r\n", "set a x 0 1\r\n"],
    ["set a -1 0 1\r\nx\r\n", "set a -1 0 1\r\n"],
    ["set a 0 1x 1\r\nx\r\n", "set a 0 1x 1\r\n"],
    ["set b 0 0 -1\r\n"],
    ["set a 0 0 abc\r\n"],
    ["set a 0 0 2147483646\r\n"],
    ["cas a 0 0 1 x\r\nx\r\n", "cas a 0 0 1 x\r\n"],
    ["cas a 0 0 1 -1\r\nx\r\n", "cas a 0 0 1 -1\r\n"],
    ["set a 0 0 1\r\nxy\r"],
    ["set a 0 0 3\r\nxy\r\ng"],
    ["set a 0 0 1\r\nx\ng"],
    ["delete a 1\r\n"],
    ["delete a x y\r\n"],
    ["delete a 0 noreply x\r\n"],
    ["delete\r\n"],
    [`delete ${LONG_KEY}\r\n`],
    ["incr n x\r\n"],
    ["incr n -1\r\n"],
    ["incr n 18446744073709551616\r\n"],
    ["incr n\r\n"],
    ["decr\r\n"],
    [`incr ${LONG_KEY} 1\r\n`],
    ["touch a x\r\n"],
    ["touch a\r\n"],
    [`touch ${LONG_KEY} 1\r\n`],
    ["gat x a\r\n"],
    ["gats x\r\n"],
    [`gat 10 ${LONG_KEY}\r\n`],
    [`get a ${LONG_KEY}\r\n`],
    [`gets ${LONG_KEY}\r\n`],
    // noreply: memcached sends nothing, not even the error; nor do we (req.noreply).
    ["set a 0 0 abc noreply\r\n"],
    ["set a x 0 1 noreply\r\nx\r\n", "set a x 0 1 noreply\r\n"],
    ["set a 0 0 1 noreply\r\nxy\r"],
    [`set ${LONG_KEY} 0 0 1 noreply\r\nx\r\n`, `set ${LONG_KEY} 0 0 1 noreply\r\n`],
    ["incr n x noreply\r\n"],
    [`incr ${LONG_KEY} 1 noreply\r\n`],
    ["touch a x noreply\r\n"],
    ["delete a x noreply\r\n"],
    [`delete ${LONG_KEY} noreply\r\n`],
  ];

  for (const [ours, theirs = ours] of CASES) {
    test(JSON.stringify(ours.length > 60 ? ours.slice(0, 40) + "..." : ours), async () => {
      const said = await memcachedSays(theirs);
      const req = ourVerdict(ours);
      expect(req.error).not.toBeNull();
      if (said === "") expect(req.noreply).toBe(true);
      else expect({ error: req.error, noreply: req.noreply }).toEqual({ error: firstLine(said), noreply: false });
    });
  }
});

describe("what we accept, memcached accepts", () => {
  const ACCEPTED = [
    "get a b\r\n",
    "  get   a  b \r\n",
    "get a\n",
    "gets \xd0\xba\r\n",
    "set k 5 0 5\r\nhello\r\n",
    "set k 4294967295 9223372036854775807 1\r\nx\r\n",
    "set k 0 -9223372036854775808 1\r\nx\r\n",
    "set k 0 0 1\nx\r\n",
    "add k2 0 -1 0\r\n\r\n",
    "cas k 0 0 1 18446744073709551615\r\nx\r\n",
    "append k 0 0 3\r\n\r\n\0\r\n",
    "delete k 0\r\n",
    "incr n 18446744073709551615\r\n",
    "touch k -1\r\n",
    "gat 100 k\r\n",
    "gats -1 k k\r\n",
    // No key: memcached answers an empty END (the proxy too, itself: local.ts).
    "gat 10\r\n",
    "gats 10\r\n",
    "version\r\n",
    "version x\r\n",
    // Control characters in keys, as memcached (and twemproxy) take them: memaslap's keys
    // start with 0x10.
    "get a\tb\r\n",
    "get a\rb\r\n",
    "set \x10\x10\x10key 0 0 1\r\nx\r\n",
    "get a\x7fb \x01\r\n",
    "verbosity 1\r\n",
    "verbosity 1 2\r\n",
  ];
  for (const line of ACCEPTED) {
    test(JSON.stringify(line), async () => {
      expect(ourVerdict(line).error).toBeNull();
      expect(await memcachedSays(line)).not.toMatch(/^(ERROR|CLIENT_ERROR|SERVER_ERROR)/m);
    });
  }
});

describe("deliberate differences from memcached", () => {
  // [line, memcached's first reply line (asserted, so the difference is real), ours]
  const BAD_FORMAT = "CLIENT_ERROR bad command line format";
  const DIFFERENCES: [string, RegExp, string][] = [
    // A word other than noreply where noreply goes: memcached ignores it; a client that
    // misspelt noreply would then mistake the reply for the next one's.
    ["set a 0 0 1 junk\r\nx\r\n", /^STORED$/, BAD_FORMAT],
    ["incr n 1 junk\r\n", /^(\d+|NOT_FOUND)$/, BAD_FORMAT],
    ["touch a 10 junk\r\n", /^(TOUCHED|NOT_FOUND)$/, BAD_FORMAT],
    // Numbers: memcached's strtoul takes "+5" and silently truncates flags to 32 bits.
    ["set a +5 0 1\r\nx\r\n", /^STORED$/, BAD_FORMAT],
    ["set a 4294967296 0 1\r\nx\r\n", /^STORED$/, BAD_FORMAT],
    // A NUL in a key: memcached reads the line as a C string, up to the NUL: it answers for `a`.
    ["get a\x00b\r\n", /^(VALUE a \d+ \d+|END)$/, BAD_FORMAT],
    // Not proxied: named in the error.
    ["stats\r\n", /^STAT pid/, "SERVER_ERROR unsupported command 'stats'"],
    ["flush_all\r\n", /^OK$/, "SERVER_ERROR unsupported command 'flush_all'"],
  ];
  for (const [line, theirs, ours] of DIFFERENCES) {
    test(JSON.stringify(line), async () => {
      expect(firstLine(await memcachedSays(line))).toMatch(theirs);
      expect(ourVerdict(line).error).toBe(ours);
    });
  }

  test("a rejected storage line's data block is swallowed, not run as a command", async () => {
    const line = "set a x 0 7\r\ndelete \r\n";
    // memcached rejects the line, then runs the data as `delete` (ERROR: no key).
    expect(await memcachedSays(line)).toBe("CLIENT_ERROR bad command line format\r\nERROR\r\n");
    const req = ourVerdict(line);
    expect(req.error).toBe("CLIENT_ERROR bad command line format");
    expect(req.end).toBe(line.length);
  });
});

describe("line limits are memcached's", () => {
  const keys = Array.from({ length: 4000 }, (_, i) => `key:${i}`.padEnd(250, "x")).join(" ");

  /** Sends `line` in two reads (a `head`-byte head first); the reply, or null if memcached closed. */
  async function sendInTwoReads(line: string, head = 2500): Promise<string | null> {
    const client = await RawClient.connect(endpointOf(reference));
    try {
      await client.send(line.slice(0, head));
      // memcached has read the head when nothing waits unread in its socket.
      await eventually(() => unreadBytes(reference.port) === 0, 5000, "memcached reading the head");
      await client.send(line.slice(head)).catch(() => {}); // it may have closed on the head alone
      const { replies, closed } = await client.readRepliesOrClose(1, memcacheFrame);
      return closed ? null : latin1(replies[0]!);
    } finally {
      client.close();
    }
  }

  test("a 1 MB get line is served by memcached, and accepted", async () => {
    const line = `get ${keys}\r\n`;
    expect(await sendInTwoReads(line)).toBe("END\r\n");
    expect(ourVerdict(line).error).toBeNull();
  });

  test("a gat line over 2048 bytes makes memcached drop the connection; we refuse it as fatal", async () => {
    const line = `gat 0 ${keys.slice(0, 3000)}\r\n`;
    expect(await sendInTwoReads(line)).toBeNull();
    const b = bytes(line);
    expect(codec.parseRequest(b, 0, b.length, new Req())).toBe(FATAL);
  });

  test("so does a 2048-byte line read with its CR but not its LF: the CR counts", async () => {
    const line = `${"version".padEnd(2048, " ")}\r\n`;
    expect(await sendInTwoReads(line, 2049)).toBeNull();
    const b = bytes(line);
    expect(codec.parseRequest(b, 0, b.length, new Req())).toBe(FATAL);
    const shorter = `${"version".padEnd(2047, " ")}\r\n`;
    expect(await sendInTwoReads(shorter, 2048)).toStartWith("VERSION ");
    expect(ourVerdict(shorter).error).toBeNull();
  });

  test("so does a long get line after over 100 spaces", async () => {
    const line = `${" ".repeat(101)}get ${keys.slice(0, 3000)}\r\n`;
    expect(await sendInTwoReads(line)).toBeNull();
    const b = bytes(line);
    expect(codec.parseRequest(b, 0, b.length, new Req())).toBe(FATAL);
  });
});

describe("noreply requests as forwarded", () => {
  test("get exactly one reply each, and do what they say", async () => {
    const lines = ["set nr 0 0 3 noreply\r\nabc\r\n", "append nr 0 0 1 noreply\r\nd\r\n", "set n 0 0 1 noreply\r\n5\r\n", "incr n 2 noreply\r\n", "touch nr 100 noreply\r\n", "delete gone 0 noreply\r\n"];
    const w = new ByteWriter(64);
    for (const line of lines) {
      const b = bytes(line);
      const req = new Req();
      expect(codec.parseRequest(b, 0, b.length, req)).toBe(b.length);
      expect(req.noreply).toBe(true);
      buildForward(b, req, w);
    }
    const replies = await exchange(endpointOf(reference), Buffer.concat([w.view(), Buffer.from("get nr n\r\n")]), lines.length + 1, memcacheFrame);
    expect(replies.map(latin1)).toEqual(["STORED\r\n", "STORED\r\n", "STORED\r\n", "7\r\n", "TOUCHED\r\n", "NOT_FOUND\r\n", "VALUE nr 0 4\r\nabcd\r\nVALUE n 0 1\r\n7\r\nEND\r\n"]);
  });
});

describe("real memcached replies", () => {
  test("parse with the same boundaries as memcached's framing, whatever the chunking", async () => {
    const rng = makeRng(9);
    const big = rng.bytes(1_000_000);
    const tooBig = rng.bytes(2 << 20);
    const requests = [
      storage("set", "r1", big, { flags: 7 }),
      storage("set", "r2", "x\r\ny"),
      storage("set", "r3", tooBig),
      Buffer.from("get r1 r2 missing r2\r\ngets r2\r\nincr r2 1\r\ndelete r2\r\ndelete r2\r\ntouch r1 0\r\nversion\r\nbogus\r\nincr r1 x\r\nget r1\r\n"),
    ];
    const count = 3 + 10;
    const client = await RawClient.connect(endpointOf(reference));
    let raw: Buffer[];
    try {
      await client.send(Buffer.concat(requests));
      raw = await client.readReplies(count, memcacheFrame);
    } finally {
      client.close();
    }
    expect(latin1(raw[2]!)).toBe("SERVER_ERROR object too large for cache\r\n");
    const all = new Uint8Array(Buffer.concat(raw));
    const boundaries = raw.map((r) => r.length);
    for (let round = 0; round < 20; round++) {
      const rsp = new Rsp();
      const seen: number[] = [];
      let pos = 0;
      let have = 0;
      while (pos < all.length) {
        have = Math.min(all.length, have + 1 + rng.int(round === 0 ? 3 : 200_000));
        for (;;) {
          const r = codec.parseResponse(all, pos, have, rsp);
          if (r === NEED_MORE) break;
          expect(r).toBeGreaterThan(pos);
          seen.push(r - pos);
          pos = r;
        }
        if (round === 0 && have > 4000) break; // byte-sized steps: the small replies only
      }
      expect(seen).toEqual(round === 0 ? boundaries.slice(0, seen.length) : boundaries);
    }
  });
});

describe("split multi-gets merge into memcached's own reply", () => {
  const KEYS = 300;
  const keyName = (i: number) => `mk:${i}:${(Math.imul(i + 1, 0x9e3779b1) >>> 0).toString(36)}`;

  beforeAll(async () => {
    // The same items on the reference and on every shard; every fourth key is never stored.
    const rng = makeRng(11);
    const sets: Buffer[] = [];
    for (let i = 0; i < KEYS; i++) {
      if (i % 4 === 3) continue;
      const size = i % 50 === 0 ? 100_000 + rng.int(100_000) : rng.int(120);
      sets.push(storage("set", keyName(i), rng.bytes(size), { flags: rng.int(2 ** 32) }));
    }
    const all = Buffer.concat(sets);
    await Promise.all([reference, ...shards].map((b) => exchange(endpointOf(b), all, sets.length, memcacheFrame)));
  });

  async function compare(command: string, keyIds: number[], keyFrag: number[], nfrags: number): Promise<void> {
    const line = `${command} ${keyIds.map(keyName).join(" ")}\r\n`;
    const buf = bytes(line);
    const req = new Req();
    expect(codec.parseRequest(buf, 0, buf.length, req)).toBe(buf.length);
    expect(req.command?.route).toBe(Route.Get);
    // Fragments in use, numbered compactly, each sent to its own shard.
    const used = [...new Set(keyFrag)].sort();
    const compact = Int32Array.from(keyFrag, (f) => used.indexOf(f));
    const frags = await Promise.all(
      used.map(async (_, f) => {
        const keys = Int32Array.from(keyIds.flatMap((_, k) => (compact[k] === f ? [k] : [])));
        const w = new ByteWriter(256);
        buildFragment(buf, req, keys, 0, keys.length, w);
        const [reply] = await exchange(endpointOf(shards[f % nfrags]!), w.take(), 1, memcacheFrame);
        return new Uint8Array(reply!);
      }),
    );
    const merged = mergeReply(codec, splitOf(Route.Get, buf, req, compact, frags));
    const [direct] = await exchange(endpointOf(reference), line, 1, memcacheFrame);
    if (command.startsWith("gets") || command.startsWith("gats")) {
      // cas uniques differ between servers; everything else must match.
      const strip = (reply: Uint8Array) => parseRetrieval(reply).map((v) => ({ ...v, data: latin1(v.data), cas: v.cas !== null }));
      expect(strip(merged)).toEqual(strip(direct!));
    } else {
      expect(latin1(merged)).toBe(latin1(direct!));
    }
  }

  test("random multi-gets over 2-4 servers: order, misses, repeats, large values", async () => {
    const rng = makeRng(12);
    for (let round = 0; round < 80; round++) {
      const command = rng.pick(["get", "gets", "gat 0", "gats 0"]);
      const n = 1 + rng.int(40);
      // Keys beyond KEYS never existed; repeats are likely with this range.
      const keyIds = Array.from({ length: n }, () => rng.int(KEYS + 20) % (round % 3 === 0 ? 12 : KEYS + 20));
      const nfrags = 2 + (round % 3);
      const keyFrag = keyIds.map(() => rng.int(nfrags));
      await compare(command, keyIds, keyFrag, nfrags);
    }
  });

  test("every key of a request on one fragment but one", async () => {
    await compare("get", [0, 1, 2, 3, 4, 5, 0, 3], [0, 0, 0, 1, 0, 0, 0, 0], 2);
  });
});
