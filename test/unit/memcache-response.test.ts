// memcached reply parsing: every reply form of protocol.txt, whatever the chunking, large
// values resumed by `need`, and garbage from a server refused.

import { describe, expect, test } from "bun:test";
import { FATAL, NEED_MORE, Rsp } from "../../src/proto/codec.ts";
import { memcacheCodec as codec } from "../../src/proto/memcache/index.ts";
import { makeRng } from "../helpers/random.ts";
import { parseStreamed } from "../helpers/streamed-parse.ts";

const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"));

// [reply, isError]
const REPLIES: [string, boolean][] = [
  ["STORED\r\n", false],
  ["NOT_STORED\r\n", false],
  ["EXISTS\r\n", false],
  ["NOT_FOUND\r\n", false],
  ["DELETED\r\n", false],
  ["TOUCHED\r\n", false],
  ["OK\r\n", false],
  ["18446744073709551615\r\n", false],
  ["0\r\n", false],
  ["VERSION 1.6.18\r\n", false],
  ["END\r\n", false],
  ["VALUE a 0 5\r\nhello\r\nEND\r\n", false],
  // gets/gats carry the cas unique; data may hold CRLF, END and VALUE.
  ["VALUE a 4294967295 12 99\r\nEND\r\nVALUE a\r\nVALUE b 1 0\r\n\r\nEND\r\n", false],
  ["ERROR\r\n", true],
  ["CLIENT_ERROR bad data chunk\r\n", true],
  ["SERVER_ERROR object too large for cache\r\n", true],
  // An error line after items ends the reply (memcached 1.6 sends none there, older ones did).
  ["VALUE a 0 2\r\nxy\r\nSERVER_ERROR out of memory\r\n", true],
];

const stream = bytes(REPLIES.map(([r]) => r).join(""));
const expected = REPLIES.map(([r, isError]) => ({ length: r.length, isError }));

/** Feeds chunks as the core would, honouring `need` (an overestimate would stall the test). */
function feed(data: Uint8Array, cuts: number[]): { replies: { length: number; isError: boolean }[]; calls: number } {
  const buf = new Uint8Array(data.length);
  const rsp = new Rsp();
  const replies: { length: number; isError: boolean }[] = [];
  let have = 0;
  let pos = 0;
  let need = 0;
  let calls = 0;
  for (const cut of [...cuts, data.length]) {
    buf.set(data.subarray(have, cut), have);
    have = cut;
    while (pos < have && have - pos >= need) {
      calls++;
      const r = codec.parseResponse(buf, pos, have, rsp);
      expect(r).not.toBe(FATAL);
      if (r === NEED_MORE) {
        expect(rsp.need).toBeGreaterThan(have - pos);
        need = rsp.need;
        break;
      }
      replies.push({ length: r - pos, isError: rsp.isError });
      pos = r;
      need = 0;
    }
  }
  return { replies, calls };
}

describe("memcached reply parser", () => {
  test("every reply form, as one stream", () => {
    expect(feed(stream, []).replies).toEqual(expected);
  });

  test("the same at every split point", () => {
    for (let cut = 1; cut < stream.length; cut++) expect({ cut, r: feed(stream, [cut]).replies }).toEqual({ cut, r: expected });
  });

  test("the same one byte at a time", () => {
    expect(feed(stream, Array.from({ length: stream.length - 1 }, (_, i) => i + 1)).replies).toEqual(expected);
  });

  test("a 1 MB value in 64 KB chunks is parsed twice, not once per chunk", () => {
    const value = makeRng(2).bytes(1 << 20);
    const reply = new Uint8Array(Buffer.concat([Buffer.from(`VALUE big 0 ${value.length}\r\n`), value, Buffer.from("\r\nEND\r\n")]));
    const cuts: number[] = [];
    for (let at = 1 << 16; at < reply.length; at += 1 << 16) cuts.push(at);
    const { replies, calls } = feed(reply, cuts);
    expect(replies).toEqual([{ length: reply.length, isError: false }]);
    expect(calls).toBe(2);
  });

  test("garbage from the server is fatal, with the reason", () => {
    const rsp = new Rsp();
    for (const bad of [
      "STAT pid 1\r\n",
      "HELLO\r\n",
      "\r\n",
      "VALUE a 0\r\n",
      "VALUE a x 1\r\nx\r\nEND\r\n",
      "VALUE a 0 1 2 3\r\nx\r\nEND\r\n",
      "VALUE a 0 2\r\nxyz\r\nEND\r\n",
      "VALUE a 0 2\r\nxy\r\nSTORED\r\n",
      // memcached dropped the replies it had not sent: which requests it answered is unknown.
      "SERVER_ERROR out of memory writing get response\r\n",
      "VALUE a 0 2\r\nxy\r\nSERVER_ERROR out of memory writing get response\r\n",
      "12a\r\n",
      "x".repeat(3000),
    ]) {
      const b = bytes(bad);
      expect(codec.parseResponse(b, 0, b.length, rsp)).toBe(FATAL);
      expect(rsp.error).toStartWith("invalid memcached reply: ");
    }
  });
});

describe("streaming large values (Rsp.opaque / resume)", () => {
  const data = (n: number, seed: number): Buffer => makeRng(seed).bytes(n);
  const item = (key: string, value: Buffer): Buffer => Buffer.concat([Buffer.from(`VALUE ${key} 0 ${value.length}\r\n`), value, Buffer.from("\r\n")]);
  const replies = [
    Buffer.concat([item("a", data(5000, 1)), Buffer.from("END\r\n")]),
    Buffer.from("STORED\r\n"),
    Buffer.concat([item("b", data(3000, 2)), item("c", Buffer.from("END\r\n")), item("d", data(2000, 3)), Buffer.from("END\r\n")]),
    Buffer.concat([item("e", data(4000, 4)), Buffer.from("SERVER_ERROR out of memory\r\n")]),
    Buffer.from("END\r\n"),
  ];
  const stream = new Uint8Array(Buffer.concat(replies));
  const whole: [number, number][] = [];
  for (let at = 0, i = 0; i < replies.length; at += replies[i]!.length, i++) whole.push([at, at + replies[i]!.length]);

  test("the same reply boundaries as parsing whole replies, whatever the chunking", () => {
    for (const sizes of [[1], [2], [3], [7], [64], [999], [4096], [1, 5000, 3, 17]]) {
      const got = parseStreamed(codec, stream, sizes);
      expect({ sizes, fatal: got.fatal, replies: got.replies }).toEqual({ sizes, fatal: null, replies: whole });
      expect(got.passed).toBeGreaterThan(5_000); // (a streamed reply's last part goes on with its end)
    }
  });

  test("after streamed data: a missing CRLF, or a status line instead of END, is FATAL", () => {
    const noCrlf = new Uint8Array(Buffer.from(`VALUE a 0 10\r\n${"x".repeat(10)}!!END\r\n`));
    expect(parseStreamed(codec, noCrlf, [8]).fatal).toStartWith("invalid memcached reply: VALUE data not followed by CRLF");
    const status = new Uint8Array(Buffer.from(`VALUE a 0 10\r\n${"x".repeat(10)}\r\nSTORED\r\n`));
    expect(parseStreamed(codec, status, [8]).fatal).toStartWith("invalid memcached reply: unexpected reply line");
  });
});
