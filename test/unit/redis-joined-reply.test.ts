// The reply to a joined MGET (coalesce_gets in a redis pool, proto/redis/upstream.ts) divided
// among its fragments by their key counts: each fragment's part is exactly its run of values,
// whatever the values are (bulk strings with CRLF in their data, empty ones, RESP2 and RESP3
// nulls), wherever the bytes are cut; broken values are refused.

import { describe, expect, test } from "bun:test";
import type { PoolConfig } from "../../src/conf/types.ts";
import { FATAL, NEED_MORE, Rsp } from "../../src/proto/codec.ts";
import { redisCodec } from "../../src/proto/redis/index.ts";
import { outbounds } from "../helpers/split.ts";

const latin1 = new TextDecoder("latin1");

const pool = { name: "joined-reply", coalesceGets: true, distribution: "ketama" } as PoolConfig;

/** Each fragment's part of `reply` as the upstream divides it, fed first `cut` bytes then all
 *  of it; a FATAL ends the list with "FATAL". */
function divide(counts: number[], reply: string, cut: number): string[] {
  const upstream = redisCodec.upstream(pool);
  const bytes = Buffer.from(reply, "latin1");
  const frags = outbounds(counts);
  const parts: string[] = [];
  const rsp = new Rsp();
  let pos = 0;
  // What has arrived ends at `end`; the buffer holds the rest already, which must not be read.
  let end = cut;
  for (const frag of frags) {
    let next = upstream.parseReply(bytes, pos, end, rsp, frag);
    if (next === NEED_MORE) {
      expect(end).toBeLessThan(bytes.length);
      end = bytes.length;
      next = upstream.parseReply(bytes, pos, end, rsp, frag);
    }
    if (next === FATAL) return [...parts, "FATAL"];
    expect(next).toBeLessThanOrEqual(end);
    expect(next).toBe(rsp.end);
    parts.push(latin1.decode(bytes.subarray(rsp.start, rsp.end)));
    pos = next;
  }
  expect(pos).toBe(bytes.length);
  return parts;
}

describe("a joined MGET's reply, divided among its fragments", () => {
  const values = ["$3\r\nabc\r\n", "$-1\r\n", "$0\r\n\r\n", "$6\r\na\r\nb\r\n\r\n", "$12\r\nhello, world\r\n", "$-1\r\n"];
  const reply = `*${values.length}\r\n${values.join("")}`;

  test("each fragment gets its run of values, cut anywhere", () => {
    for (let cut = 0; cut <= reply.length; cut++) {
      expect(divide([2, 3, 1], reply, cut)).toEqual([values.slice(0, 2).join(""), values.slice(2, 5).join(""), values[5]!]);
    }
  });

  test("RESP3 nulls and other values go through the general parser", () => {
    const mixed = ["_\r\n", "$2\r\nok\r\n", "+simple\r\n", "_\r\n"];
    const text = `*4\r\n${mixed.join("")}`;
    for (let cut = 0; cut <= text.length; cut++) expect(divide([1, 3], text, cut)).toEqual([mixed[0]!, mixed.slice(1).join("")]);
  });

  test("a bulk string without its CRLF, or longer than redis allows, is refused", () => {
    expect(divide([1, 1], "*2\r\n$3\r\nabcX\r\n$1\r\na\r\n", 30)).toEqual(["FATAL"]);
    expect(divide([1, 1], "*2\r\n$1\r\na\r\n$3\r\nabc\n\n", 30)).toEqual(["$1\r\na\r\n", "FATAL"]);
    expect(divide([1, 1], "*2\r\n$999999999999\r\n", 30)).toEqual(["FATAL"]);
  });

  test("a reply with fewer values than the fragments' keys is refused", () => {
    expect(divide([2, 2], "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", 40)).toEqual(["$1\r\na\r\n$1\r\nb\r\n", "FATAL"]);
  });
});
