// Split of memcached retrieval requests and merge of the fragments' replies. Expected merges
// follow memcached's own rule (a reply lists the hits in request order, repeats included, then
// END); memcache-live.test.ts checks the same against real servers.

import { describe, expect, test } from "bun:test";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { Req, Route, type Split } from "../../src/proto/codec.ts";
import { memcacheCodec as codec } from "../../src/proto/memcache/index.ts";
import { mergeReply, splitOf } from "../helpers/split.ts";
import { buildFragment } from "../../src/proto/memcache/split.ts";

const latin1 = (b: Uint8Array): string => Buffer.from(b).toString("latin1");
const bytes = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, "latin1"));
const value = (key: string, data: string, cas?: number) =>
  `VALUE ${key} 0 ${data.length}${cas === undefined ? "" : ` ${cas}`}\r\n${data}\r\n`;

function parse(line: string): { buf: Uint8Array; req: Req } {
  const buf = bytes(line);
  const req = new Req();
  expect(codec.parseRequest(buf, 0, buf.length, req)).toBe(buf.length);
  return { buf, req };
}

/** The Split the core would build: key i went to fragment keyFrag[i]. */
function split(line: string, keyFrag: number[], frags: string[]): Split {
  const { buf, req } = parse(line);
  return splitOf(Route.Get, buf, req, keyFrag, frags.map(bytes));
}

describe("buildFragment", () => {
  const fragment = (line: string, keys: number[]) => {
    const { buf, req } = parse(line);
    const w = new ByteWriter(8);
    buildFragment(buf, req, Int32Array.from(keys), 0, keys.length, w);
    return latin1(w.view());
  };

  test("the request's command with the fragment's keys", () => {
    expect(fragment("get a b c d\r\n", [1, 3])).toBe("get b d\r\n");
    expect(fragment("  gets   a b c\n", [0])).toBe("gets a\r\n");
  });

  test("gat/gats keep their exptime", () => {
    expect(fragment("gat 300 a b c\r\n", [0, 2])).toBe("gat 300 a c\r\n");
    expect(fragment("gats -1 a b\r\n", [1])).toBe("gats -1 b\r\n");
  });
});

describe("merge", () => {
  const merged = (s: Split) => latin1(mergeReply(codec, s));

  test("hits in the request's key order, then one END", () => {
    // keys a b c d e: a, c, e on fragment 0; b, d on fragment 1; c and d miss.
    const s = split("get a b c d e\r\n", [0, 1, 0, 1, 0], [value("a", "1") + value("e", "5") + "END\r\n", value("b", "2") + "END\r\n"]);
    expect(merged(s)).toBe(value("a", "1") + value("b", "2") + value("e", "5") + "END\r\n");
  });

  test("all misses: END", () => {
    expect(merged(split("get a b\r\n", [0, 1], ["END\r\n", "END\r\n"]))).toBe("END\r\n");
  });

  test("repeated keys come out as often as requested, in place", () => {
    // get a b a: memcached answers a, b, a. With a's two copies on different fragments too.
    const v = value("a", "x");
    expect(merged(split("get a b a\r\n", [0, 1, 0], [v + v + "END\r\n", value("b", "y") + "END\r\n"]))).toBe(v + value("b", "y") + v + "END\r\n");
    expect(merged(split("get a b a\r\n", [0, 1, 1], [v + "END\r\n", value("b", "y") + v + "END\r\n"]))).toBe(v + value("b", "y") + v + "END\r\n");
    // A miss of a repeated key on one fragment does not shift the others.
    expect(merged(split("get a b a\r\n", [0, 0, 0], ["END\r\n"]))).toBe("END\r\n");
  });

  test("a key that is a prefix of another is not mistaken for it", () => {
    const s = split("get ab a\r\n", [0, 0], [value("a", "1") + "END\r\n"]);
    expect(merged(s)).toBe(value("a", "1") + "END\r\n");
  });

  test("gets values keep their cas unique; data holding VALUE/END lines is opaque", () => {
    const tricky = value("b", "END\r\nVALUE a 0 1\r\n", 8);
    const s = split("gets a b\r\n", [1, 0], [tricky + "END\r\n", value("a", "", 7) + "END\r\n"]);
    expect(merged(s)).toBe(value("a", "", 7) + tricky + "END\r\n");
  });

  test("a fragment that failed makes the whole reply its error line", () => {
    const s = split("get a b c\r\n", [0, 1, 0], [value("a", "1") + "END\r\n", "SERVER_ERROR out of memory\r\n"]);
    expect(merged(s)).toBe("SERVER_ERROR out of memory\r\n");
    const partial = split("get a b\r\n", [0, 1], [value("a", "1") + "SERVER_ERROR out of memory\r\n", "END\r\n"]);
    expect(merged(partial)).toBe("SERVER_ERROR out of memory\r\n");
    expect(merged(split("gat 1 a b\r\n", [0, 1], ["END\r\n", "ERROR\r\n"]))).toBe("ERROR\r\n");
  });
});

describe("proxy-made replies", () => {
  test("errorReply is a SERVER_ERROR line (twemproxy's form)", () => {
    expect(latin1(codec.errorReply("Connection refused"))).toBe("SERVER_ERROR Connection refused\r\n");
  });

  test("no preamble on server connections", () => {
    expect(codec.preamble({} as never, 0)).toBeNull();
  });
});
