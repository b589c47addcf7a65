// RESP codec microbenchmarks (mitata): parsing typical requests and replies (16-byte keys,
// 32-byte values), and a 10-key MGET split over 4 servers and merged, its fragments joined
// into one MGET on one connection (coalesce_gets) and that MGET's reply divided among them.
// Reports only.
//   bun bench/micro/redis.bench.ts

import { bench, do_not_optimize, group, run } from "mitata";
import type { PoolConfig } from "../../src/conf/types.ts";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { Req, Rsp, type Split, type UpstreamSink } from "../../src/proto/codec.ts";
import { redisCodec } from "../../src/proto/redis/index.ts";
import { outbounds, splitOf } from "../../test/helpers/split.ts";
import { buildFragment } from "../../src/proto/redis/fragment.ts";

const enc = new TextEncoder();
const SERVERS = 4;
const VALUE = "v".repeat(32);
const key = (i: number): string => `key:${String(i).padStart(12, "0")}`;

function command(...args: string[]): Uint8Array {
  return enc.encode(`*${args.length}\r\n${args.map((a) => `$${a.length}\r\n${a}\r\n`).join("")}`);
}

const bulk = (v: string): string => `$${v.length}\r\n${v}\r\n`;

const GET = command("GET", key(1));
const SET = command("SET", key(1), VALUE);
const PIPELINE = enc.encode(Array.from({ length: 16 }, (_, i) => new TextDecoder().decode(command("GET", key(i)))).join(""));
const MGET = command("MGET", ...Array.from({ length: 10 }, (_, i) => key(i)));

const REPLIES: Record<string, Uint8Array> = {
  "+OK": enc.encode("+OK\r\n"),
  ":1": enc.encode(":1\r\n"),
  "$-1 (miss)": enc.encode("$-1\r\n"),
  "$32 (hit)": enc.encode(bulk(VALUE)),
  "*10 of $32 (MGET)": enc.encode(`*10\r\n${bulk(VALUE).repeat(10)}`),
};

/** A client session (merge builds the reply in its protocol). */
const SESSION = redisCodec.newSession({ redisAuth: null } as PoolConfig);
const req = new Req();
const rsp = new Rsp();
const out = new ByteWriter(4096);

/** The 10-key MGET split like the core splits it: key i to server i % 4, one fragment each. */
function splitMget(): { split: Split; fragKeys: Int32Array[] } {
  redisCodec.parseRequest(MGET, 0, MGET.length, req);
  const n = req.nkeys;
  const keyFrag = Int32Array.from({ length: n }, (_, i) => i % SERVERS);
  const fragKeys = Array.from({ length: SERVERS }, (_, f) => Int32Array.from({ length: n }, (_, i) => i).filter((i) => i % SERVERS === f));
  const frags = fragKeys.map((keys) => enc.encode(`*${keys.length}\r\n${bulk(VALUE).repeat(keys.length)}`));
  const split = splitOf(req.command!.route, MGET, req, keyFrag, frags);
  return { split, fragKeys };
}

const { split, fragKeys } = splitMget();

/** What a server connection's queue holds for the 4 fragments: the first, then those joined to it. */
const outbound = outbounds(fragKeys.map((keys) => keys.length));
const joining = redisCodec.upstream({ name: "bench", coalesceGets: true, distribution: "ketama" } as PoolConfig);
const sink: UpstreamSink = { out, send: (b, start, end) => out.bytes(b, start, end) };
const JOINED_REPLY = enc.encode(`*10\r\n${bulk(VALUE).repeat(10)}`);

// Both steps do what they are measured for: one MGET of the 10 keys, a reply divided to its end.
out.reset();
for (let f = 0; f < SERVERS; f++) joining.fragment(req, split, f, fragKeys[f]!, 0, fragKeys[f]!.length, outbound[f]!, sink);
joining.sent();
if (!new TextDecoder().decode(out.view()).startsWith("*11\r\n$4\r\nMGET\r\n")) throw new Error("the fragments were not joined");
let divided = 0;
for (let f = 0; f < SERVERS; f++) divided = joining.parseReply(JOINED_REPLY, divided, JOINED_REPLY.length, rsp, outbound[f]!);
if (divided !== JOINED_REPLY.length) throw new Error(`the joined reply was divided up to ${divided} of ${JOINED_REPLY.length} bytes`);

// The split/merge group runs first: after the single-message groups the JIT has specialised
// the parsers for them, and the same steps measured later came out several times slower.
group("MGET of 10 keys over 4 servers", () => {
  bench("build the 4 fragments", () => {
    out.reset();
    for (const keys of fragKeys) buildFragment(MGET, req, keys, 0, keys.length, out);
  });
  bench("merge the 4 replies", () => {
    out.reset();
    do_not_optimize(redisCodec.merge(split, out, SESSION));
  });
  bench("join the 4 fragments into one MGET (coalesce_gets)", () => {
    out.reset();
    for (let f = 0; f < SERVERS; f++) joining.fragment(req, split, f, fragKeys[f]!, 0, fragKeys[f]!.length, outbound[f]!, sink);
    joining.sent();
  });
  bench("divide the joined MGET's reply among the 4", () => {
    for (let f = 0, p = 0; f < SERVERS; f++) p = joining.parseReply(JOINED_REPLY, p, JOINED_REPLY.length, rsp, outbound[f]!);
  });
  bench("parse + build + parse 4 replies + merge", () => {
    redisCodec.parseRequest(MGET, 0, MGET.length, req);
    out.reset();
    for (const keys of fragKeys) buildFragment(MGET, req, keys, 0, keys.length, out);
    for (let f = 0; f < split.nfrags; f++) redisCodec.parseResponse(split.fragBuf[f]!, split.fragPos[2 * f]!, split.fragPos[2 * f + 1]!, rsp);
    out.reset();
    do_not_optimize(redisCodec.merge(split, out, SESSION));
  });
});

group("parse one request", () => {
  bench("GET (16 B key)", () => do_not_optimize(redisCodec.parseRequest(GET, 0, GET.length, req)));
  bench("SET (16 B key, 32 B value)", () => do_not_optimize(redisCodec.parseRequest(SET, 0, SET.length, req)));
  bench("MGET of 10 keys", () => do_not_optimize(redisCodec.parseRequest(MGET, 0, MGET.length, req)));
  bench("pipeline of 16 GETs (all 16)", () => {
    for (let p = 0; p < PIPELINE.length; ) p = redisCodec.parseRequest(PIPELINE, p, PIPELINE.length, req);
  });
});

group("parse one reply", () => {
  for (const [name, bytes] of Object.entries(REPLIES)) {
    bench(name, () => do_not_optimize(redisCodec.parseResponse(bytes, 0, bytes.length, rsp)));
  }
});

const { benchmarks } = await run();

// A markdown table for bench/README.md. The minimum is the figure least disturbed by other
// processes on a busy machine; the median is the usual one.
const rows: string[] = ["", "| step | min | median | p99 |", "|---|---|---|---|"];
const fmt = (t: number): string => (t >= 1e3 ? `${(t / 1e3).toFixed(2)} µs` : `${t.toFixed(1)} ns`);
for (const trial of benchmarks) {
  for (const r of trial.runs) if (r.stats) rows.push(`| ${r.name} | ${fmt(r.stats.min)} | ${fmt(r.stats.p50)} | ${fmt(r.stats.p99)} |`);
}
console.log(rows.join("\n"));
