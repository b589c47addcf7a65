// memcached codec microbenchmarks (mitata): request and reply parsing per message of typical
// sizes, and a 10-key multi-get split over 4 servers and merged. Reports only, never asserts.
//   bun bench/micro/memcache.bench.ts

import { bench, do_not_optimize, group, run } from "mitata";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { Req, Route, Rsp } from "../../src/proto/codec.ts";
import { memcacheCodec as codec } from "../../src/proto/memcache/index.ts";
import { splitOf } from "../../test/helpers/split.ts";
import { buildFragment } from "../../src/proto/memcache/split.ts";

const te = new TextEncoder();
const key = (i: number) => `user:${i * 7919}:session:${i}`; // 16-32 bytes
const value = (n: number) => "v".repeat(n);

const req = new Req();
const rsp = new Rsp();

function parseRequestBench(name: string, text: string): void {
  const buf = te.encode(text);
  bench(name, () => do_not_optimize(codec.parseRequest(buf, 0, buf.length, req)));
}

function parseResponseBench(name: string, text: string): void {
  const buf = te.encode(text);
  bench(name, () => do_not_optimize(codec.parseResponse(buf, 0, buf.length, rsp)));
}

const valueBlock = (k: string, n: number) => `VALUE ${k} 0 ${n}\r\n${value(n)}\r\n`;
const KEYS10 = Array.from({ length: 10 }, (_, i) => key(i + 1));

group("parse request", () => {
  parseRequestBench("get, 1 key", `get ${key(1)}\r\n`);
  parseRequestBench("get, 10 keys", `get ${KEYS10.join(" ")}\r\n`);
  parseRequestBench("set, 32-byte value", `set ${key(1)} 0 0 32\r\n${value(32)}\r\n`);
  parseRequestBench("set, 4 KB value", `set ${key(1)} 0 0 4096\r\n${value(4096)}\r\n`);
  parseRequestBench("set noreply, 32-byte value", `set ${key(1)} 0 0 32 noreply\r\n${value(32)}\r\n`);
  parseRequestBench("incr", `incr ${key(1)} 1\r\n`);
  // Pipelining: 16 gets in one read, parsed one after the other.
  const pipeline = te.encode(Array.from({ length: 16 }, (_, i) => `get ${key(i)}\r\n`).join(""));
  bench("16 pipelined gets (whole batch)", () => {
    let pos = 0;
    while (pos < pipeline.length) pos = codec.parseRequest(pipeline, pos, pipeline.length, req);
    return do_not_optimize(pos);
  });
});

group("parse reply", () => {
  parseResponseBench("STORED", "STORED\r\n");
  parseResponseBench("VALUE, 1 hit of 32 bytes", `${valueBlock(key(1), 32)}END\r\n`);
  parseResponseBench("VALUE, 10 hits of 32 bytes", `${KEYS10.map((k) => valueBlock(k, 32)).join("")}END\r\n`);
  parseResponseBench("VALUE, 1 hit of 100 KB", `${valueBlock(key(1), 100_000)}END\r\n`);
});

group("10-key multi-get over 4 servers", () => {
  const line = te.encode(`get ${KEYS10.join(" ")}\r\n`);
  const keyFrag = Int32Array.from(KEYS10, (_, i) => (i * 7) % 4);
  const fragKeys = [0, 1, 2, 3].map((f) => Int32Array.from(KEYS10.flatMap((_, i) => (keyFrag[i] === f ? [i] : []))));
  // Each server has 8 of the 10 keys (2 misses), 32-byte values.
  const frags = fragKeys.map((keys) =>
    te.encode(`${Array.from(keys).filter((i) => i % 5 !== 4).map((i) => valueBlock(KEYS10[i]!, 32)).join("")}END\r\n`),
  );
  const w = new ByteWriter(4096);
  codec.parseRequest(line, 0, line.length, req);
  const split = splitOf(Route.Get, line, req, keyFrag, frags);
  bench("split: parse + build 4 fragments", () => {
    codec.parseRequest(line, 0, line.length, req);
    w.reset();
    for (const keys of fragKeys) buildFragment(line, req, keys, 0, keys.length, w);
    return do_not_optimize(w.len);
  });
  bench("merge 4 fragment replies", () => {
    w.reset();
    return do_not_optimize(codec.merge(split, w, {}));
  });
});

await run();
