// Joined retrievals (src/proto/memcache/join.ts): the keys a request adds to a line, and the
// division of the line's one reply into each request's part by its keys.

import { describe, expect, test } from "bun:test";
import { NEED_MORE, Req, Rsp } from "../../src/proto/codec.ts";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { memcacheCodec as codec } from "../../src/proto/memcache/index.ts";
import { appendKeys, LineKeys, openLineEnd } from "../../src/proto/memcache/join.ts";

const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"));
const text = (b: Uint8Array): string => Buffer.from(b).toString("latin1");
const item = (key: string, data: string, cas?: number): string =>
  `VALUE ${key} 0 ${data.length}${cas === undefined ? "" : ` ${cas}`}\r\n${data}\r\n`;

/** The keys of one request of a joined line, in the two forms the core gives them: a request's
 *  keys as they stand in its line (`line`, default: `keys` joined by a space), or a fragment's
 *  (`group`) among the keys its split sent elsewhere (`others`). */
type Member = { keys: string[]; line?: string; group?: number; others?: string[] };

/** Rsp set up as the server connection does for a request whose line later requests joined. */
function joinedRsp(member: Member): Rsp {
  const rsp = new Rsp();
  rsp.joined = true;
  if (member.group === undefined) {
    // Inside a longer buffer, as in a client's read buffer.
    const line = member.line ?? member.keys.join(" ");
    rsp.keyBuf = bytes(`get ${line}\r\n`);
    rsp.keys = null;
    rsp.keyStart = 4;
    rsp.keyEnd = 4 + line.length;
    return rsp;
  }
  const others = member.others ?? [];
  rsp.keyBuf = bytes([...member.keys, ...others].join(" "));
  // Split.keys: [start, end, group] per key; the other groups' keys come after its own.
  const group = member.group ?? 0;
  const own: number[] = [];
  const elsewhere: number[] = [];
  let at = 0;
  for (const k of member.keys) {
    own.push(at, at + k.length, group);
    at += k.length + 1;
  }
  for (const k of others) {
    elsewhere.push(at, at + k.length, group + 1);
    at += k.length + 1;
  }
  rsp.keys = new Int32Array([...own, ...elsewhere]);
  rsp.keyGroup = group;
  return rsp;
}

/** Parse the reply of each member in turn from one buffer, as a server connection does
 *  (Upstream.parseReply): the last member is not `joined` and takes END. Returns each part and whether it was open. */
function divide(reply: string, members: Member[]): { part: string; open: boolean; isError: boolean }[] {
  const buf = bytes(reply);
  let pos = 0;
  return members.map((m, i) => {
    const rsp = i < members.length - 1 ? joinedRsp(m) : new Rsp();
    const next = codec.parseResponse(buf, pos, buf.length, rsp);
    expect(next).toBeGreaterThanOrEqual(0);
    const part = { part: text(buf.subarray(pos, next)), open: rsp.open, isError: rsp.isError };
    pos = next;
    return part;
  });
}

describe("the reply of a joined line, divided by keys", () => {
  test("each request gets its hits, in order; all but the last lack END", () => {
    const reply = item("a", "1") + item("b", "22") + item("d", "4444") + "END\r\n";
    expect(divide(reply, [{ keys: ["a", "b"] }, { keys: ["c"] }, { keys: ["d"] }])).toEqual([
      { part: item("a", "1") + item("b", "22"), open: true, isError: false },
      { part: "", open: true, isError: false },
      { part: item("d", "4444") + "END\r\n", open: false, isError: false },
    ]);
  });

  test("a request whose keys all missed gets an empty part, also before END", () => {
    expect(divide("END\r\n", [{ keys: ["a"] }, { keys: ["b", "c"] }, { keys: ["d"] }])).toEqual([
      { part: "", open: true, isError: false },
      { part: "", open: true, isError: false },
      { part: "END\r\n", open: false, isError: false },
    ]);
  });

  test("the same key in several requests: each takes as many items as it asked for", () => {
    const reply = item("a", "x") + item("a", "x") + item("b", "y") + item("a", "x") + "END\r\n";
    expect(divide(reply, [{ keys: ["a", "a"] }, { keys: ["b", "a"] }]).map((p) => p.part)).toEqual([
      item("a", "x") + item("a", "x"),
      item("b", "y") + item("a", "x") + "END\r\n",
    ]);
    // A single key matches one item only.
    expect(divide(item("a", "x") + item("a", "x") + "END\r\n", [{ keys: ["a"] }, { keys: ["a"] }]).map((p) => p.part)).toEqual([
      item("a", "x"),
      item("a", "x") + "END\r\n",
    ]);
  });

  test("keys are matched in order: an item for an earlier key of the request ends its part", () => {
    // The request asked for b then a; an item for `b` after `a` belongs to the next request.
    const reply = item("a", "1") + item("b", "2") + "END\r\n";
    expect(divide(reply, [{ keys: ["b", "a"] }, { keys: ["b"] }]).map((p) => p.part)).toEqual([
      item("a", "1"),
      item("b", "2") + "END\r\n",
    ]);
  });

  test("a request's keys as its client spaced them", () => {
    const reply = item("ab", "1") + item("a", "2") + item("a", "3") + item("b", "4") + "END\r\n";
    expect(divide(reply, [{ keys: [], line: "a  ab   a" }, { keys: ["a", "b"] }]).map((p) => p.part)).toEqual([
      item("ab", "1") + item("a", "2"),
      item("a", "3") + item("b", "4") + "END\r\n",
    ]);
  });

  test("keys that are prefixes of each other are told apart", () => {
    const reply = item("ab", "1") + item("a", "2") + "END\r\n";
    expect(divide(reply, [{ keys: ["a", "ab"] }, { keys: ["a"] }]).map((p) => p.part)).toEqual([
      item("ab", "1"),
      item("a", "2") + "END\r\n",
    ]);
  });

  test("fragments of split requests: only the request's own group of keys counts", () => {
    const reply = item("k1", "a", 7) + item("k2", "b", 8) + "END\r\n";
    const fragment = { keys: ["k1"], group: 2, others: ["k2"] };
    expect(divide(reply, [fragment, { keys: ["k2"], group: 0 }]).map((p) => p.part)).toEqual([
      item("k1", "a", 7),
      item("k2", "b", 8) + "END\r\n",
    ]);
  });

  test("data that looks like a reply line stays inside its item", () => {
    const reply = item("a", "END\r\nVALUE b 0 1") + item("b", "z") + "END\r\n";
    expect(divide(reply, [{ keys: ["a"] }, { keys: ["b"] }]).map((p) => p.part)).toEqual([
      item("a", "END\r\nVALUE b 0 1"),
      item("b", "z") + "END\r\n",
    ]);
  });

  test("an error line ends the part it stops, and says where it starts", () => {
    const error = "SERVER_ERROR out of memory\r\n";
    const buf = bytes(item("a", "1") + error);
    const rsp = joinedRsp({ keys: ["a", "b"], group: 0 });
    expect(codec.parseResponse(buf, 0, buf.length, rsp)).toBe(buf.length);
    expect(rsp.isError).toBe(true);
    expect(rsp.open).toBe(false);
    expect(text(buf.subarray(rsp.errorStart))).toBe(error);
  });

  test("a part is only complete once the next line is: every shorter prefix needs more", () => {
    const reply = item("a", "1") + item("b", "2") + "END\r\n";
    const partEnd = item("a", "1").length;
    const nextLineEnd = partEnd + "VALUE b 0 1\r\n".length;
    const buf = bytes(reply);
    for (let end = 0; end < nextLineEnd; end++) {
      expect(codec.parseResponse(buf, 0, end, joinedRsp({ keys: ["a"] }))).toBe(NEED_MORE);
    }
    const rsp = joinedRsp({ keys: ["a"] });
    expect(codec.parseResponse(buf, 0, nextLineEnd, rsp)).toBe(partEnd);
    expect(rsp.open).toBe(true);
  });
});

describe("a joined request's large item, passed on before it is complete", () => {
  test("the part so far is final, and parsing resumes after it with the keys matched so far", () => {
    const big = "x".repeat(1000);
    const reply = item("a", "1") + item("b", big) + item("c", "3") + "END\r\n";
    const buf = bytes(reply);
    const bigDataEnd = item("a", "1").length + `VALUE b 0 ${big.length}\r\n`.length + big.length;
    // Half of b's data has arrived: everything before its end is the request's.
    const rsp = joinedRsp({ keys: ["a", "a", "b"] });
    expect(codec.parseResponse(buf, 0, bigDataEnd - 500, rsp)).toBe(NEED_MORE);
    expect(rsp.opaque).toBe(bigDataEnd);
    // The core passes those bytes on, then resumes there: `a` must not match again, and the
    // item for c (a later request's) ends the part.
    const afterData = rsp.next;
    rsp.resume = afterData;
    const next = codec.parseResponse(buf, bigDataEnd, buf.length, rsp);
    expect(text(buf.subarray(bigDataEnd, next))).toBe("\r\n");
    expect(rsp.open).toBe(true);
    // Resumed with a key list whose next key is `a` again: the item for b ends the part at once.
    const again = joinedRsp({ keys: ["b", "a"] });
    again.keyCursor = 1;
    again.resume = afterData;
    const shortReply = bytes("\r\n" + item("b", "2") + "END\r\n");
    expect(codec.parseResponse(shortReply, 0, shortReply.length, again)).toBe(2);
  });
});

describe("the keys on a line (a key goes on a line once)", () => {
  // Lines as the server connection gives them: without their line end.
  const line = bytes("get first other");

  test("the line's first request's keys and every key added are on it; nothing else is", () => {
    const keys = new LineKeys();
    keys.reset(line, 0, line.length);
    const key = (k: string) => bytes(k);
    const add = (k: string, on: Uint8Array) => keys.add(key(k), 0, k.length, on, 0, on.length);
    expect(add("first", line)).toBe(false);
    expect(add("other", line)).toBe(false);
    // 3,000 distinct keys: all go on (hash collisions are checked against the line itself).
    let joined = "get first other";
    for (let i = 0; i < 3000; i++) {
      const k = `k${i}`;
      const on = bytes(joined);
      expect([k, add(k, on)]).toEqual([k, true]);
      joined += ` ${k}`;
    }
    const full = bytes(joined);
    for (let i = 0; i < 3000; i += 97) expect(add(`k${i}`, full)).toBe(false);
    // After a reset, only the new line's keys count.
    const next = bytes("gets k5  k7 ");
    keys.reset(next, 0, next.length);
    expect(add("k5", next)).toBe(false);
    expect(add("k7", next)).toBe(false);
    expect(add("k6", next)).toBe(true);
    expect(add("gets", next)).toBe(true);
  });
});

describe("which lines may take more keys", () => {
  test("a whole line without leading spaces: its line end's length; else 0", () => {
    const open = (l: string) => openLineEnd(bytes(`xx${l}`), 2, 2 + l.length);
    expect(open("get a\r\n")).toBe(2);
    expect(open("get a\n")).toBe(1);
    expect(open("get a")).toBe(0);
    expect(open(" get a\r\n")).toBe(0);
  });
});

describe("the keys a joined request adds to the line", () => {
  test("appendKeys writes ` <key>...` in the order given, and CRLF", () => {
    const buf = bytes("get x yy zzz\r\n");
    const req = new Req();
    expect(codec.parseRequest(buf, 0, buf.length, req)).toBe(buf.length);
    const w = new ByteWriter(64);
    w.bytes(bytes("get a"));
    appendKeys(buf, req, new Int32Array([2, 0]), 0, 2, w);
    expect(text(w.view())).toBe("get a zzz x\r\n");
  });

  test("only get and gets may be joined, each with its own kind; redis never joins", async () => {
    const { COMMANDS } = await import("../../src/proto/memcache/commands.ts");
    const kinds = Object.fromEntries(
      COMMANDS.flatMap((c) => (c.route !== null && (c.join ?? 0) !== 0 ? [[c.name, c.join]] : [])),
    );
    expect(Object.keys(kinds).sort()).toEqual(["get", "gets"]);
    expect(kinds.get).not.toBe(kinds.gets);
    const { redisCodec } = await import("../../src/proto/redis/index.ts");
    expect(redisCodec.openEnd).toBeNull();
  });
});
