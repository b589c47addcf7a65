// Fuzzer for the memcached codec: random, valid and mutated requests and replies (fixed-seed
// PRNG, so every failure replays), run through the parsers like the core does (from each
// message's end to the next), checking the codec's contract on every result:
//   - no exception; each parse advances (no loop), offsets stay inside the message;
//   - NEED_MORE asks for more than is there, and never for more than the message needs (every
//     shorter prefix of a parsed message gives NEED_MORE with need <= its length);
//   - errors are single reply lines; FATAL carries one;
//   - noreply requests rebuilt by buildForward, and split fragments, parse back as the same
//     request; merged replies parse as one complete reply.
// Library use: fuzzRequests / fuzzResponses / fuzzMerge. Long runs:
//   bun test/fuzz/memcache.fuzz.ts --cases 10000000 [--seed 7]

import { ByteWriter } from "../../src/lib/bytes.ts";
import { FATAL, NEED_MORE, Req, Route, Rsp } from "../../src/proto/codec.ts";
import { memcacheCodec as codec } from "../../src/proto/memcache/index.ts";
import { makeRng, type Rng } from "../helpers/random.ts";
import { mergeReply, splitOf } from "../helpers/split.ts";
import { buildForward } from "../../src/proto/memcache/request.ts";
import { buildFragment } from "../../src/proto/memcache/split.ts";

const te = new TextEncoder();

function concat(parts: (string | Uint8Array)[]): Uint8Array {
  const chunks = parts.map((p) => (typeof p === "string" ? te.encode(p) : p));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Payload bytes, biased toward the protocol's delimiters, made once: payloads are slices of it. */
const POOL = (() => {
  const r = makeRng(0x5eed);
  const pool = new Uint8Array(1 << 18);
  for (let i = 0; i < pool.length; i++) pool[i] = r.next() < 0.1 ? r.pick([13, 10, 32, 0, 0x7f, 0x80]) : r.int(256);
  return pool;
})();

function randomBytes(r: Rng, n: number): Uint8Array {
  const at = r.int(POOL.length - n);
  return POOL.subarray(at, at + n);
}

/** Key text: printable, no spaces; keys are slices of it. */
const KEY_CHARS = Array.from({ length: 2048 }, (_, i) => String.fromCharCode(0x21 + ((i * 7919) % 94))).join("");

function key(r: Rng): string {
  const len = r.next() < 0.05 ? 240 + r.int(20) : 1 + r.int(12);
  const at = r.int(KEY_CHARS.length - len);
  return KEY_CHARS.slice(at, at + len);
}

/** A number token, now and then one that no field accepts. */
function num(r: Rng): string {
  if (r.next() < 0.1) return r.pick(["-1", "4294967296", "18446744073709551616", "1x", "+1"]);
  return r.pick(["0", "1", "42", "4294967295", "007", String(r.int(100000))]);
}

const STORAGE = ["set", "add", "replace", "append", "prepend"];

/** A well-formed request (which the parser may still reject, e.g. a 251-byte key). */
export function validRequest(r: Rng): Uint8Array {
  const noreply = r.next() < 0.3 ? " noreply" : "";
  switch (r.int(9)) {
    case 0:
    case 1: {
      const n = r.next() < 0.1 ? 1 + r.int(200) : 1 + r.int(5);
      const keys = Array.from({ length: n }, () => key(r)).join(" ");
      return concat([`${r.pick(["get", "gets"])} ${keys}\r\n`]);
    }
    case 2: {
      const keys = Array.from({ length: 1 + r.int(5) }, () => key(r)).join(" ");
      return concat([`${r.pick(["gat", "gats"])} ${num(r)} ${keys}\r\n`]);
    }
    case 3:
    case 4: {
      const data = randomBytes(r, r.next() < 0.02 ? r.int(70000) : r.int(40));
      const cas = r.next() < 0.2;
      const line = `${cas ? "cas" : r.pick(STORAGE)} ${key(r)} ${num(r)} ${num(r)} ${data.length}${cas ? ` ${num(r)}` : ""}${noreply}\r\n`;
      return concat([line, data, "\r\n"]);
    }
    case 5:
      return concat([`delete ${key(r)}${r.next() < 0.2 ? " 0" : ""}${noreply}\r\n`]);
    case 6:
      return concat([`${r.pick(["incr", "decr"])} ${key(r)} ${num(r)}${noreply}\r\n`]);
    case 7:
      return concat([`touch ${key(r)} ${num(r)}${noreply}\r\n`]);
    default:
      return concat([`${r.pick(["version", "quit", "stats", "flush_all", "verbosity 1", "mn", "ms k 2\r\nxy"])}\r\n`]);
  }
}

/** A well-formed memcached reply. */
export function validResponse(r: Rng): Uint8Array {
  if (r.next() < 0.5) {
    const parts: (string | Uint8Array)[] = [];
    for (let n = r.int(5); n > 0; n--) {
      const data = randomBytes(r, r.next() < 0.02 ? r.int(70000) : r.int(40));
      parts.push(`VALUE ${key(r)} ${r.pick([0, 1, 4294967295])} ${data.length}${r.next() < 0.5 ? ` ${r.int(1000)}` : ""}\r\n`, data, "\r\n");
    }
    parts.push(r.next() < 0.05 ? "SERVER_ERROR out of memory writing get response\r\n" : "END\r\n");
    return concat(parts);
  }
  return concat([
    r.pick([
      "STORED", "NOT_STORED", "EXISTS", "NOT_FOUND", "DELETED", "TOUCHED", "OK", "ERROR", "END",
      "VERSION 1.6.18", "CLIENT_ERROR bad data chunk", "SERVER_ERROR object too large for cache", String(r.int(1e9)),
    ]) + "\r\n",
  ]);
}

const TOKENS = [" ", "  ", "\r\n", "\n", "\r", "\t", "\0", "noreply", "0", "-", "99999999999999999999", "VALUE ", "END", "get ", "set "];

/** A few random edits of a message: flips, insertions (bytes and protocol tokens), deletions,
 *  duplicated and truncated ranges. */
export function mutate(r: Rng, msg: Uint8Array): Uint8Array {
  let out = msg;
  for (let edits = 1 + r.int(3); edits > 0; edits--) {
    const at = r.int(out.length + 1);
    switch (r.int(5)) {
      case 0:
        if (at < out.length) {
          out = out.slice();
          out[at] = r.int(256);
        }
        break;
      case 1:
        out = concat([out.subarray(0, at), r.next() < 0.5 ? r.pick(TOKENS) : randomBytes(r, 1 + r.int(4)), out.subarray(at)]);
        break;
      case 2:
        out = concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + r.int(8)))]);
        break;
      case 3: {
        const to = Math.min(out.length, at + 1 + r.int(16));
        out = concat([out.subarray(0, to), out.subarray(at, to), out.subarray(to)]);
        break;
      }
      default:
        out = out.subarray(0, at);
    }
  }
  return out;
}

/** The stream for one case: 1-3 messages, each valid, mutated, or random bytes. */
function stream(r: Rng, valid: (r: Rng) => Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let n = 1 + r.int(3); n > 0; n--) {
    const kind = r.int(10);
    if (kind < 4) parts.push(valid(r));
    else if (kind < 9) parts.push(mutate(r, valid(r)));
    else parts.push(randomBytes(r, r.int(64)));
  }
  return concat(parts);
}

export interface FuzzReport {
  cases: number;
  /** Results over all parses: complete messages, of which rejected with an error reply,
   *  incomplete tails, fatal. */
  parsed: number;
  rejected: number;
  needMore: number;
  fatal: number;
}

function show(buf: Uint8Array): string {
  const head = buf.subarray(0, 300);
  return JSON.stringify(String.fromCharCode(...head)) + (buf.length > 300 ? `... (${buf.length} bytes)` : "");
}

function check(ok: boolean, what: string, buf: Uint8Array, pos: number): void {
  if (!ok) throw new Error(`memcache fuzz: ${what} at ${pos} in ${show(buf)}`);
}

function isReplyLine(s: string | null): boolean {
  return s !== null && s.length > 0 && !/[\r\n]/.test(s);
}

const req = new Req();
const probe = new Req();
const again = new Req();
const writer = new ByteWriter(1024);

export function fuzzRequests(cases: number, seed = 1): FuzzReport {
  const r = makeRng(seed);
  const report: FuzzReport = { cases, parsed: 0, rejected: 0, needMore: 0, fatal: 0 };
  for (let c = 0; c < cases; c++) {
    const buf = stream(r, validRequest);
    let pos = 0;
    while (pos < buf.length) {
      const next = codec.parseRequest(buf, pos, buf.length, req);
      if (next === NEED_MORE) {
        check(req.need > buf.length - pos, "NEED_MORE without asking for more", buf, pos);
        report.needMore++;
        break;
      }
      if (next === FATAL) {
        check(isReplyLine(req.error), "FATAL without an error line", buf, pos);
        report.fatal++;
        break;
      }
      checkRequest(buf, pos, next, r);
      if (req.error !== null) report.rejected++;
      report.parsed++;
      pos = next;
    }
  }
  return report;
}

function checkRequest(buf: Uint8Array, pos: number, next: number, r: Rng): void {
  check(next > pos && next <= buf.length, "bad end", buf, pos);
  check(req.start === pos && req.end === next, "start/end differ from the result", buf, pos);
  for (let i = 0; i < req.nargs; i++) {
    const s = req.argStart[i]!;
    check(pos <= s && s < req.argEnd[i]! && req.argEnd[i]! <= next, "argument out of bounds", buf, pos);
  }
  for (let k = 0; k < req.nkeys; k++) check(req.keyArg[k]! < req.nargs, "key is not an argument", buf, pos);
  if (req.error !== null) check(isReplyLine(req.error), "error is not one reply line", buf, pos);
  else check(req.command !== null, "accepted without a command", buf, pos);

  // Chunking cannot change the verdict: a shorter prefix only ever asks for more, within the message.
  const cut = pos + r.int(next - pos);
  check(codec.parseRequest(buf, pos, cut, probe) === NEED_MORE, "prefix did not give NEED_MORE", buf, pos);
  check(probe.need > cut - pos && probe.need <= next - pos, "prefix need out of range", buf, pos);

  if (req.error !== null || req.command === null) return;
  if (req.noreply) {
    writer.reset();
    buildForward(buf, req, writer);
    const fwd = writer.take();
    check(codec.parseRequest(fwd, 0, fwd.length, again) === fwd.length, "forwarded request does not parse", buf, pos);
    check(again.error === null && !again.noreply && again.nargs === req.nargs - 1, "forwarded request differs", buf, pos);
    if (STORAGE.includes(req.command.name) || req.command.name === "cas") {
      check(sameBytes(fwd, again.dataStart, again.dataEnd, buf, req.dataStart, req.dataEnd), "forwarded data differs", buf, pos);
    }
  }
  if (req.command.route === Route.Get) {
    // A fragment with a random subset of the keys, in order.
    const keys = new Int32Array(req.nkeys);
    let n = 0;
    for (let k = 0; k < req.nkeys; k++) if (r.next() < 0.5) keys[n++] = k;
    if (n === 0) keys[n++] = 0;
    writer.reset();
    buildFragment(buf, req, keys, 0, n, writer);
    const frag = writer.take();
    check(codec.parseRequest(frag, 0, frag.length, again) === frag.length, "fragment does not parse", buf, pos);
    check(again.error === null && again.command === req.command && again.nkeys === n, "fragment differs", buf, pos);
  }
}

function sameBytes(a: Uint8Array, as: number, ae: number, b: Uint8Array, bs: number, be: number): boolean {
  if (ae - as !== be - bs) return false;
  for (let i = 0; i < ae - as; i++) if (a[as + i] !== b[bs + i]) return false;
  return true;
}

const rsp = new Rsp();
const rspProbe = new Rsp();

export function fuzzResponses(cases: number, seed = 1): FuzzReport {
  const r = makeRng(seed);
  const report: FuzzReport = { cases, parsed: 0, rejected: 0, needMore: 0, fatal: 0 };
  for (let c = 0; c < cases; c++) {
    const buf = stream(r, validResponse);
    let pos = 0;
    while (pos < buf.length) {
      const next = codec.parseResponse(buf, pos, buf.length, rsp);
      if (next === NEED_MORE) {
        check(rsp.need > buf.length - pos, "NEED_MORE without asking for more", buf, pos);
        report.needMore++;
        break;
      }
      if (next === FATAL) {
        check(rsp.error !== null && rsp.error.length > 0, "FATAL without a reason", buf, pos);
        report.fatal++;
        break;
      }
      check(next > pos && next <= buf.length && rsp.start === pos && rsp.end === next, "bad bounds", buf, pos);
      const cut = pos + r.int(next - pos);
      check(codec.parseResponse(buf, pos, cut, rspProbe) === NEED_MORE, "prefix did not give NEED_MORE", buf, pos);
      check(rspProbe.need > cut - pos && rspProbe.need <= next - pos, "prefix need out of range", buf, pos);
      if (rsp.isError) report.rejected++;
      report.parsed++;
      pos = next;
    }
  }
  return report;
}

/** Merges of random fragment replies (what the core hands over: replies parseResponse accepted)
 *  for random key lists: never throws, always one complete reply. */
export function fuzzMerge(cases: number, seed = 1): FuzzReport {
  const r = makeRng(seed);
  const report: FuzzReport = { cases, parsed: 0, rejected: 0, needMore: 0, fatal: 0 };
  for (let c = 0; c < cases; c++) {
    const pool = Array.from({ length: 1 + r.int(6) }, () => key(r).slice(0, 8));
    const keys = Array.from({ length: 1 + r.int(12) }, () => r.pick(pool));
    const request = te.encode(`get ${keys.join(" ")}\r\n`);
    check(codec.parseRequest(request, 0, request.length, req) === request.length, "request", request, 0);
    const nfrags = 1 + r.int(4);
    const keyFrag = Int32Array.from(keys, () => r.int(nfrags));
    const frags: Uint8Array[] = [];
    for (let f = 0; f < nfrags; f++) {
      let frag: Uint8Array;
      do frag = r.next() < 0.7 ? fragmentReply(r, keys.filter((_, i) => keyFrag[i] === f)) : validResponse(r);
      while (codec.parseResponse(frag, 0, frag.length, rsp) !== frag.length);
      frags.push(frag);
    }
    const out = mergeReply(codec, splitOf(Route.Get, request, req, keyFrag, frags));
    check(codec.parseResponse(out, 0, out.length, rsp) === out.length, "merged reply is not one complete reply", out, 0);
    if (rsp.isError) report.rejected++;
    report.parsed++;
  }
  return report;
}

/** A plausible reply to `get keys`: some hits (in order, duplicates kept), maybe an error. */
function fragmentReply(r: Rng, keys: string[]): Uint8Array {
  const parts: (string | Uint8Array)[] = [];
  for (const k of keys) {
    if (r.next() >= 0.6) continue;
    const data = randomBytes(r, r.int(20));
    parts.push(`VALUE ${k} ${r.int(10)} ${data.length}\r\n`, data, "\r\n");
  }
  parts.push(r.next() < 0.1 ? "SERVER_ERROR out of memory writing get response\r\n" : "END\r\n");
  return concat(parts);
}

if (import.meta.main) {
  const arg = (name: string, fallback: number): number => {
    const i = process.argv.indexOf(name);
    const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
    if (!Number.isInteger(v) || v < 0) {
      console.error(`usage: bun test/fuzz/memcache.fuzz.ts [--cases N] [--seed S]`);
      process.exit(1);
    }
    return v;
  };
  const cases = arg("--cases", 1_000_000);
  const seed = arg("--seed", 1);
  for (const [name, run] of [["requests", fuzzRequests], ["responses", fuzzResponses], ["merge", fuzzMerge]] as const) {
    const t = performance.now();
    const cpu = process.cpuUsage().user;
    const report = run(cases, seed);
    const wall = (performance.now() - t) / 1000;
    console.log(`${name}: ${JSON.stringify(report)} in ${wall.toFixed(1)} s (${((process.cpuUsage().user - cpu) / 1e6).toFixed(1)} s CPU)`);
  }
}
