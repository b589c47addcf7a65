// Fuzzer for the memcached codec: random, valid and mutated requests and replies (fixed-seed
// PRNG, so every failure replays), run through the parsers like the core does (from each
// message's end to the next), checking the codec's contract on every result:
//   - no exception; each parse advances (no loop), offsets stay inside the message;
//   - NEED_MORE asks for more than is there, and never for more than the message needs (every
//     shorter prefix of a parsed message gives NEED_MORE with need <= its length);
//   - errors are single reply lines; FATAL carries one;
//   - noreply requests rebuilt by buildForward, and split fragments, parse back as the same
//     request (a fragment with exactly its keys);
//   - every reply parsed ends where test/helpers/memcache.ts's independent framer says;
//   - round trip: requests built from their tokens (and data block), arriving in random chunks,
//     parse back to exactly those tokens, keys and data;
//   - merged replies are exactly the reply one memcached gives (the hits in key order, END; or
//     the first fragment's error), built independently from the fragments' hits;
//   - streamed: reply streams with large values, parsed as a server connection streams them
//     (parts passed on, parsing resumed), frame as the reference does; joined: the one reply of
//     a line several requests joined divides into exactly each request's hits (END for the last).
// Library use: fuzzRequests / fuzzResponses / fuzzRoundTrip / fuzzMerge / fuzzStreamed /
// fuzzJoined. Long runs:
//   bun test/fuzz/memcache.fuzz.ts --cases 10000000 [--seed 7]

import { ByteWriter } from "../../src/lib/bytes.ts";
import { FATAL, NEED_MORE, Req, Route, Rsp } from "../../src/proto/codec.ts";
import { memcacheCodec as codec } from "../../src/proto/memcache/index.ts";
import { memcacheFrame } from "../helpers/memcache.ts";
import { makeRng, type Rng } from "../helpers/random.ts";
import { mergeReply, splitOf } from "../helpers/split.ts";
import { parseStreamed } from "../helpers/streamed-parse.ts";
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
    parts.push(r.next() < 0.05 ? "SERVER_ERROR out of memory\r\n" : "END\r\n");
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
    for (let j = 0; j < n; j++) {
      const k = keys[j]!;
      check(sameBytes(frag, again.keyStart(j), again.keyEnd(j), buf, req.keyStart(k), req.keyEnd(k)), `fragment key ${j} is not key ${k}`, buf, pos);
    }
    for (let a = 0; a < req.keyArg[0]!; a++) {
      check(sameBytes(frag, again.argStart[a]!, again.argEnd[a]!, buf, req.argStart[a]!, req.argEnd[a]!), `fragment token ${a} differs`, buf, pos);
    }
  }
}

function sameBytes(a: Uint8Array, as: number, ae: number, b: Uint8Array, bs: number, be: number): boolean {
  if (ae - as !== be - bs) return false;
  for (let i = 0; i < ae - as; i++) if (a[as + i] !== b[bs + i]) return false;
  return true;
}

const rsp = new Rsp();
const rspProbe = new Rsp();

/** A line feed without its CR in buf[from, to). */
function bareLF(buf: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] === 10 && (i === from || buf[i - 1] !== 13)) return true;
  return false;
}

/** The independent framer's end of the reply at buf[pos..], -1 if incomplete, or its objection. */
function referenceEnd(buf: Uint8Array, pos: number): number | string {
  try {
    return memcacheFrame(buf, pos, buf.length);
  } catch (err) {
    return (err as Error).message;
  }
}

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
        const framed = referenceEnd(buf, pos);
        check(typeof framed !== "number" || framed < 0, `NEED_MORE, but the reference framer finds a whole reply ending at ${framed}`, buf, pos);
        report.needMore++;
        break;
      }
      if (next === FATAL) {
        check(rsp.error !== null && rsp.error.length > 0, "FATAL without a reason", buf, pos);
        report.fatal++;
        break;
      }
      check(next > pos && next <= buf.length && rsp.start === pos && rsp.end === next, "bad bounds", buf, pos);
      // (The parser also takes a bare LF as a line end, as memcached does; the reference wants CRLF.)
      check(referenceEnd(buf, pos) === next || bareLF(buf, pos, next), `parsed to ${next}, the reference framer says ${referenceEnd(buf, pos)}`, buf, pos);
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

export interface MergeReport {
  cases: number;
  /** Merges checked against the reply built independently, of which a fragment's error. */
  exact: number;
  errors: number;
  /** Merges of arbitrary valid fragment replies, checked to be one complete reply. */
  wellFormed: number;
}

/** A server's item for `key`: the same every time it is asked (memcached repeats a duplicate). */
function itemOf(key: string): { flags: number; data: Uint8Array } {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (Math.imul(h, 31) + key.charCodeAt(i)) >>> 0;
  const at = h % (POOL.length - 64);
  return { flags: h % 3 === 0 ? 4294967295 : h % 7, data: POOL.subarray(at, at + (h % 40)) };
}

const block = (key: string): (string | Uint8Array)[] => {
  const { flags, data } = itemOf(key);
  return [`VALUE ${key} ${flags} ${data.length}\r\n`, data, "\r\n"];
};
// (Not memcached's "... writing get response": the parser refuses that one, see response.ts.)
const OUT_OF_MEMORY = "SERVER_ERROR out of memory\r\n";

/**
 * Merges of fragment replies for random key lists (keys with the same name go to the same
 * fragment, as placement sends them). Fragments answer from a server state (each key a hit or a
 * miss, an item the same each time): the merge must equal the reply built here from that state
 * (the hits in request order, END), or the first failing fragment's error line. Now and then a
 * fragment is any valid reply instead, and the merge must still be one complete reply.
 */
export function fuzzMerge(cases: number, seed = 1): MergeReport {
  const r = makeRng(seed);
  const report: MergeReport = { cases, exact: 0, errors: 0, wellFormed: 0 };
  for (let c = 0; c < cases; c++) {
    const pool = Array.from({ length: 1 + r.int(6) }, () => key(r).slice(0, 8));
    const keys = Array.from({ length: 1 + r.int(12) }, () => r.pick(pool));
    const request = te.encode(`get ${keys.join(" ")}\r\n`);
    check(codec.parseRequest(request, 0, request.length, req) === request.length, "request", request, 0);
    const nservers = 1 + r.int(4);
    const serverOf = new Map(pool.map((k) => [k, r.int(nservers)]));
    const hit = new Map(pool.map((k) => [k, r.next() < 0.6]));
    // Each key's server; frags[s] is server s's reply (to its keys).
    const keyServer = Int32Array.from(keys, (k) => serverOf.get(k)!);
    const arbitrary = r.next() < 0.2;
    const failing = Array.from({ length: nservers }, () => r.next() < 0.1);
    const frags: Uint8Array[] = [];
    for (let f = 0; f < nservers; f++) {
      if (arbitrary && r.next() < 0.5) {
        let frag: Uint8Array;
        do frag = validResponse(r);
        while (codec.parseResponse(frag, 0, frag.length, rsp) !== frag.length);
        frags.push(frag);
        continue;
      }
      const parts = keys.filter((k, i) => keyServer[i] === f && hit.get(k)).flatMap(block);
      frags.push(concat([...parts, failing[f] ? OUT_OF_MEMORY : "END\r\n"]));
    }
    const out = mergeReply(codec, splitOf(Route.Get, request, req, keyServer, frags));
    check(codec.parseResponse(out, 0, out.length, rsp) === out.length, "merged reply is not one complete reply", out, 0);
    if (arbitrary) {
      report.wellFormed++;
      continue;
    }
    // Only servers with keys get a fragment (SplitPlan): a failing server without keys is never asked.
    const failed = keys.some((_, i) => failing[keyServer[i]!]);
    const expected = failed ? te.encode(OUT_OF_MEMORY) : concat([...keys.filter((k) => hit.get(k)).flatMap(block), "END\r\n"]);
    check(sameBytes(out, 0, out.length, expected, 0, expected.length), `merged ${show(out)}, memcached would say ${show(expected)}`, request, 0);
    report.exact++;
    if (failed) report.errors++;
  }
  return report;
}

// ---- round trip ----

export interface RoundTripReport {
  cases: number;
  /** Requests parsed back to their tokens, and the ones rejected (a key over 250 bytes). */
  parsed: number;
  rejected: number;
  /** Parses that stopped at NEED_MORE part way through a request. */
  resumed: number;
}

/** A request as its tokens (and data block): which tokens are its keys. */
interface Built {
  tokens: string[];
  keys: string[];
  data: Uint8Array | null;
  noreply: boolean;
}

/** Valid numbers only: the round trip is of requests memcached accepts. */
const count = (r: Rng): string => r.pick(["0", "1", "42", "4294967295", String(r.int(100000))]);

function buildRequest(r: Rng): Built {
  const noreply = r.next() < 0.3;
  const tail = noreply ? ["noreply"] : [];
  switch (r.int(7)) {
    case 0: {
      const keys = Array.from({ length: r.next() < 0.1 ? 1 + r.int(100) : 1 + r.int(5) }, () => key(r));
      return { tokens: [r.pick(["get", "gets"]), ...keys], keys, data: null, noreply: false };
    }
    case 1: {
      const keys = Array.from({ length: 1 + r.int(5) }, () => key(r));
      return { tokens: [r.pick(["gat", "gats"]), count(r), ...keys], keys, data: null, noreply: false };
    }
    case 2:
    case 3: {
      const k = key(r);
      const data = randomBytes(r, r.next() < 0.02 ? r.int(70000) : r.int(40));
      const cas = r.next() < 0.2;
      const tokens = [cas ? "cas" : r.pick(STORAGE), k, count(r), count(r), String(data.length), ...(cas ? [count(r)] : []), ...tail];
      return { tokens, keys: [k], data, noreply };
    }
    case 4: {
      const k = key(r);
      return { tokens: ["delete", k, ...tail], keys: [k], data: null, noreply };
    }
    case 5: {
      const k = key(r);
      return { tokens: [r.pick(["incr", "decr"]), k, count(r), ...tail], keys: [k], data: null, noreply };
    }
    default: {
      const k = key(r);
      return { tokens: ["touch", k, count(r), ...tail], keys: [k], data: null, noreply };
    }
  }
}

const encodeRequest = (b: Built): Uint8Array => concat([b.tokens.join(" ") + "\r\n", ...(b.data === null ? [] : [b.data, "\r\n"])]);

/** Pipelines of 1-4 requests built from their tokens, fed in random chunks, parse back exactly. */
export function fuzzRoundTrip(cases: number, seed = 1): RoundTripReport {
  const r = makeRng(seed);
  const report: RoundTripReport = { cases, parsed: 0, rejected: 0, resumed: 0 };
  for (let c = 0; c < cases; c++) {
    const built = Array.from({ length: 1 + r.int(4) }, () => buildRequest(r));
    const encoded = built.map(encodeRequest);
    const buf = concat(encoded);
    let pos = 0;
    let received = 0;
    for (const [i, b] of built.entries()) {
      const stop = pos + encoded[i]!.length;
      for (;;) {
        if (received === pos || r.next() < 0.3) received = Math.min(buf.length, received + 1 + r.int(r.next() < 0.5 ? 8 : 600));
        const next = codec.parseRequest(buf, pos, received, req);
        if (next === NEED_MORE) {
          check(received < stop, "NEED_MORE with the whole request there", buf, pos);
          check(req.need > received - pos && req.need <= stop - pos, `need ${req.need} of a ${stop - pos}-byte request`, buf, pos);
          report.resumed++;
          continue;
        }
        check(next === stop, `parsed to ${next}, the request ends at ${stop}`, buf, pos);
        break;
      }
      if (req.error !== null) {
        check(isReplyLine(req.error), "error is not one reply line", buf, pos);
        check(b.keys.some((k) => k.length > 250), `rejected ${JSON.stringify(req.error)}`, buf, pos);
        report.rejected++;
      } else {
        check(req.command?.name === b.tokens[0], `command ${req.command?.name}`, buf, pos);
        check(req.nargs === b.tokens.length, `${req.nargs} tokens, sent ${b.tokens.length}`, buf, pos);
        for (let a = 0; a < b.tokens.length; a++) {
          check(sameBytes(buf, req.argStart[a]!, req.argEnd[a]!, te.encode(b.tokens[a]!), 0, b.tokens[a]!.length), `token ${a} differs`, buf, pos);
        }
        check(req.nkeys === b.keys.length, `${req.nkeys} keys, sent ${b.keys.length}`, buf, pos);
        for (let k = 0; k < b.keys.length; k++) {
          check(sameBytes(buf, req.keyStart(k), req.keyEnd(k), te.encode(b.keys[k]!), 0, b.keys[k]!.length), `key ${k} differs`, buf, pos);
        }
        check(req.noreply === b.noreply, "noreply differs", buf, pos);
        if (b.data !== null) check(sameBytes(buf, req.dataStart, req.dataEnd, b.data, 0, b.data.length), "data block differs", buf, pos);
        report.parsed++;
      }
      pos = stop;
    }
  }
  return report;
}

// ---- streamed and joined replies ----

export interface StreamReport {
  cases: number;
  replies: number;
  /** Cases where bytes were passed on before their reply was complete. */
  streamed: number;
}

/** A retrieval reply with large values now and then, or a one-line reply. */
function streamedResponse(r: Rng): Uint8Array {
  if (r.next() < 0.3) return validResponse(r);
  const parts: (string | Uint8Array)[] = [];
  for (let n = r.int(4); n > 0; n--) {
    const data = randomBytes(r, r.next() < 0.4 ? 300 + r.int(12_000) : r.int(40));
    parts.push(`VALUE ${key(r)} ${r.int(10)} ${data.length}${r.next() < 0.3 ? ` ${r.int(1000)}` : ""}\r\n`, data, "\r\n");
  }
  parts.push(r.next() < 0.05 ? OUT_OF_MEMORY : "END\r\n");
  return concat(parts);
}

const chunkSizes = (r: Rng): number[] => Array.from({ length: 1 + r.int(3) }, () => 1 + r.int(r.next() < 0.3 ? 64 : 8000));

/** Reply streams parsed in random chunks as a server connection streams them frame exactly as
 *  the reference framer frames the whole stream. */
export function fuzzStreamed(cases: number, seed = 1): StreamReport {
  const r = makeRng(seed);
  const report: StreamReport = { cases, replies: 0, streamed: 0 };
  for (let c = 0; c < cases; c++) {
    const stream = concat(Array.from({ length: 1 + r.int(4) }, () => streamedResponse(r)));
    const expected: [number, number][] = [];
    for (let at = 0; at < stream.length; ) {
      const stop = memcacheFrame(stream, at, stream.length);
      expected.push([at, stop]);
      at = stop;
    }
    const sizes = chunkSizes(r);
    const got = parseStreamed(codec, stream, sizes, r.pick([1, 64, 4096]));
    check(got.fatal === null, `FATAL ${got.fatal} with chunks ${sizes}`, stream, 0);
    check(JSON.stringify(got.replies) === JSON.stringify(expected), `framed ${JSON.stringify(got.replies)}, the reference ${JSON.stringify(expected)} (chunks ${sizes})`, stream, 0);
    report.replies += expected.length;
    if (got.passed > 0) report.streamed++;
  }
  return report;
}

/**
 * Joined lines: 2-4 requests' keys (all different) on one `get` line, the server's one reply
 * (the hits in line order, END) parsed in random chunks, streamed, for each request in turn as
 * the server connection does (Rsp.joined with the request's keys on the line; the last request
 * takes END). Each request's part must be exactly its own hits, and the last one's END.
 */
export function fuzzJoined(cases: number, seed = 1): StreamReport {
  const r = makeRng(seed);
  const report: StreamReport = { cases, replies: 0, streamed: 0 };
  for (let c = 0; c < cases; c++) {
    const names = new Set<string>();
    while (names.size < 2 + r.int(12)) names.add(key(r).slice(0, 10));
    const all = [...names];
    // Cut the line's keys into 2-4 requests of at least one key each.
    const members: string[][] = [];
    for (let at = 0; at < all.length; ) {
      const left = all.length - at;
      const n = members.length === 3 || left === 1 ? left : 1 + r.int(Math.min(left - 1, 4));
      members.push(all.slice(at, at + n));
      at += n;
    }
    const line = `get ${all.join(" ")}\r\n`;
    const lineBytes = te.encode(line);
    const items = new Map<string, Uint8Array>();
    for (const k of all) {
      if (r.next() < 0.6) continue;
      const data = randomBytes(r, r.next() < 0.3 ? 300 + r.int(8000) : r.int(30));
      items.set(k, concat([`VALUE ${k} ${r.int(10)} ${data.length}\r\n`, data, "\r\n"]));
    }
    const parts = members.map((m, i) => concat([...m.flatMap((k) => (items.has(k) ? [items.get(k)!] : [])), ...(i === members.length - 1 ? ["END\r\n"] : [])]));
    const reply = concat(parts);
    const expected: [number, number][] = [];
    let at = 0;
    for (const p of parts) {
      expected.push([at, at + p.length]);
      at += p.length;
    }
    const ranges = members.map((m) => {
      const start = line.indexOf(` ${m[0]} `) >= 0 || line.endsWith(` ${m[0]}\r\n`) ? keyOffset(line, m[0]!) : -1;
      const last = m[m.length - 1]!;
      return [start, keyOffset(line, last) + last.length] as const;
    });
    const sizes = chunkSizes(r);
    const got = parseStreamed(codec, reply, sizes, r.pick([1, 64, 4096]), (rsp, i) => {
      rsp.joined = i < members.length - 1;
      rsp.keyBuf = lineBytes;
      rsp.keys = null;
      rsp.keyStart = ranges[i]?.[0] ?? 0;
      rsp.keyEnd = ranges[i]?.[1] ?? 0;
    });
    const detail = `members ${JSON.stringify(members)}, chunks ${sizes}`;
    check(got.fatal === null, `FATAL ${got.fatal}, ${detail}`, reply, 0);
    check(JSON.stringify(got.replies) === JSON.stringify(expected), `divided ${JSON.stringify(got.replies)}, the parts ${JSON.stringify(expected)}, ${detail}`, reply, 0);
    report.replies += members.length;
    if (got.passed > 0) report.streamed++;
  }
  return report;
}

/** Where the key `k` (a whole token) starts on `line`. */
function keyOffset(line: string, k: string): number {
  for (let at = line.indexOf(k); at >= 0; at = line.indexOf(k, at + 1)) {
    const after = line[at + k.length];
    if (line[at - 1] === " " && (after === " " || after === "\r")) return at;
  }
  throw new Error(`${k} is not on ${line}`);
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
  const runs = [
    ["requests", fuzzRequests],
    ["responses", fuzzResponses],
    ["round trip", fuzzRoundTrip],
    ["merge", fuzzMerge],
    ["streamed", fuzzStreamed],
    ["joined", fuzzJoined],
  ] as const;
  for (const [name, run] of runs) {
    const t = performance.now();
    const cpu = process.cpuUsage().user;
    const report = run(cases, seed);
    const wall = (performance.now() - t) / 1000;
    console.log(`${name}: ${JSON.stringify(report)} in ${wall.toFixed(1)} s (${((process.cpuUsage().user - cpu) / 1e6).toFixed(1)} s CPU)`);
  }
}
