// The newer redis parsers (mitata): RESP3 replies (maps, sets, pushes, doubles, attributes),
// inline commands (a line of text instead of a RESP array), and the Redis Cluster key slot
// when the tree has it (src/route/key-slot.ts, from the cluster work; skipped otherwise).
// Reports only; prints a markdown table for bench/README.md at the end.
//   bun bench/micro/resp3.bench.ts

import { existsSync } from "node:fs";
import { bench, do_not_optimize, group, run } from "mitata";
import { Req, Rsp } from "../../src/proto/codec.ts";
import { redisCodec } from "../../src/proto/redis/index.ts";

const enc = new TextEncoder();
const VALUE = "v".repeat(32);
const key = (i: number): string => `key:${String(i).padStart(12, "0")}`;
const bulk = (v: string): string => `$${v.length}\r\n${v}\r\n`;

const RESP3_REPLIES: Record<string, Uint8Array> = {
  "_ (null)": enc.encode("_\r\n"),
  "#t (boolean)": enc.encode("#t\r\n"),
  ",3.14 (double)": enc.encode(",3.14\r\n"),
  "%2 map (HELLO-like, 2 pairs)": enc.encode(`%2\r\n${bulk("server")}${bulk("redis")}${bulk("proto")}:3\r\n`),
  "%7 map (HELLO 3 reply)": enc.encode(
    `%7\r\n${bulk("server")}${bulk("redis")}${bulk("version")}${bulk("7.0.15")}${bulk("proto")}:3\r\n` +
      `${bulk("id")}:5\r\n${bulk("mode")}${bulk("standalone")}${bulk("role")}${bulk("master")}${bulk("modules")}*0\r\n`,
  ),
  "~10 set of $32 (SMEMBERS)": enc.encode(`~10\r\n${bulk(VALUE).repeat(10)}`),
  ">3 push (pub/sub message)": enc.encode(`>3\r\n${bulk("message")}${bulk("channel:1")}${bulk(VALUE)}`),
  "|1 attribute + $32": enc.encode(`|1\r\n${bulk("ttl")}:100\r\n${bulk(VALUE)}`),
  "*10 of $32 (RESP2 MGET, for scale)": enc.encode(`*10\r\n${bulk(VALUE).repeat(10)}`),
};

const QUOTED = 'SET with a "quoted value" and escapes';
const INLINE: Record<string, Uint8Array> = {
  PING: enc.encode("PING\r\n"),
  "GET (16 B key)": enc.encode(`GET ${key(1)}\r\n`),
  "SET (16 B key, 32 B value)": enc.encode(`SET ${key(1)} ${VALUE}\r\n`),
  [QUOTED]: enc.encode(`SET ${key(1)} "a b\\tc\\x41 ${VALUE}"\r\n`),
  "MGET of 10 keys": enc.encode(`MGET ${Array.from({ length: 10 }, (_, i) => key(i)).join(" ")}\r\n`),
  "RESP GET (16 B key), for scale": enc.encode(`*2\r\n${bulk("GET")}${bulk(key(1))}`),
};

const req = new Req();
const rsp = new Rsp();

// Every message must parse whole, or its figure would time an error path.
for (const [name, bytes] of Object.entries(RESP3_REPLIES)) {
  if (redisCodec.parseResponse(bytes, 0, bytes.length, rsp) !== bytes.length) throw new Error(`reply "${name}" did not parse`);
}
for (const [name, bytes] of Object.entries(INLINE)) {
  if (redisCodec.parseRequest(bytes, 0, bytes.length, req) !== bytes.length) throw new Error(`inline "${name}" did not parse`);
}

group("parse one RESP3 reply", () => {
  for (const [name, bytes] of Object.entries(RESP3_REPLIES)) {
    bench(name, () => do_not_optimize(redisCodec.parseResponse(bytes, 0, bytes.length, rsp)));
  }
});

group("parse one inline command", () => {
  for (const [name, bytes] of Object.entries(INLINE)) {
    if (name !== QUOTED) bench(name, () => do_not_optimize(redisCodec.parseRequest(bytes, 0, bytes.length, req)));
  }
  // Quoted arguments are unescaped in place (inline.ts), so each iteration restores the line first.
  const pristine = INLINE[QUOTED]!;
  const line = new Uint8Array(pristine.length);
  bench(`${QUOTED} (+ restoring its line)`, () => {
    line.set(pristine);
    do_not_optimize(redisCodec.parseRequest(line, 0, line.length, req));
  });
});

// The slot hash arrives with the Redis Cluster work: loaded by path so that this file runs (and
// type-checks) on a tree without it.
const KEY_SLOT = new URL("../../src/route/key-slot.ts", import.meta.url);
if (existsSync(KEY_SLOT)) {
  const { KeySlots } = (await import(KEY_SLOT.href)) as {
    KeySlots: new () => { slot(buf: Uint8Array, start: number, end: number): number };
  };
  const slots = new KeySlots();
  const keys: Record<string, Uint8Array> = {
    "16 B key": enc.encode(key(1)),
    "16 B key with a {tag}": enc.encode(`{user:1000}:${key(1).slice(0, 4)}`),
    "256 B key": enc.encode("k".repeat(256)),
  };
  group("Redis Cluster key slot (CRC-16 + hash tag, WASM)", () => {
    for (const [name, bytes] of Object.entries(keys)) bench(name, () => do_not_optimize(slots.slot(bytes, 0, bytes.length)));
  });
} else {
  console.log(`key slot: SKIPPED: ${KEY_SLOT.pathname} is not in this tree (the Redis Cluster work has not landed)`);
}

const { benchmarks } = await run();

// A markdown table for bench/README.md. The minimum is the figure least disturbed by other
// processes on a busy machine; the median is the usual one.
const rows: string[] = ["", "| step | min | median | p99 |", "|---|---|---|---|"];
const fmt = (t: number): string => (t >= 1e3 ? `${(t / 1e3).toFixed(2)} µs` : `${t.toFixed(1)} ns`);
for (const trial of benchmarks) {
  for (const r of trial.runs) if (r.stats) rows.push(`| ${r.name.replace(/\|/g, "\\|")} | ${fmt(r.stats.min)} | ${fmt(r.stats.p50)} | ${fmt(r.stats.p99)} |`);
}
console.log(rows.join("\n"));
