// Fuzzing the redis request and response parsers (RESP2 and RESP3 replies): random and mutated valid messages from a
// fixed-seed generator, fed the way the proxy feeds them (parse from pos, advance, repeat).
// Each call must return NEED_MORE with a `need` beyond the bytes available (else the caller
// would spin), FATAL with an error line, or a position in (pos, end]; never throw or hang.
// Every message parsed without error ends where test/helpers/resp.ts's independent framer says
// (an array) or at its line feed (inline), and its prefixes are all incomplete (with a `need`
// that never overshoots the real size). Round trip: requests encoded by the test encoder
// (resp.ts `command`) and fed in random chunks parse back to exactly their arguments. Streaming:
// reply streams with large values, parsed as a server connection streams them (opaque parts
// passed on, parsing resumed after them), frame exactly as the reference framer does.
//
// A module for test/unit/redis-fuzz.test.ts, and a script for long runs:
//   bun test/fuzz/redis.fuzz.ts --cases 10000000 [--seed N]

import { FATAL, NEED_MORE, Req, Rsp } from "../../src/proto/codec.ts";
import { COMMANDS } from "../../src/proto/redis/commands.ts";
import { redisCodec } from "../../src/proto/redis/index.ts";
import { command, respFrame } from "../helpers/resp.ts";
import { encodeResp3, randomResp3 } from "../helpers/resp3-values.ts";
import { parseStreamed } from "../helpers/streamed-parse.ts";
import { ByteWriter } from "../../src/lib/bytes.ts";

/** mulberry32: small, fast, good enough for fuzzing, and reproducible from its seed. */
export class Rng {
  constructor(private state: number) {}

  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

const enc = new TextEncoder();
const SPECIAL = enc.encode("*$+-:\r\n0123456789 ");
const NAMES = COMMANDS.map((c) => enc.encode(c.name));

/** Bytes, mostly printable, sometimes binary, sometimes RESP-looking. */
function randomBytes(rng: Rng, w: ByteWriter, max: number): void {
  const n = rng.chance(0.1) ? 0 : rng.int(max + 1);
  const mode = rng.int(3);
  w.reserve(n);
  for (let i = 0; i < n; i++) {
    w.buf[w.len++] = mode === 0 ? 97 + rng.int(26) : mode === 1 ? rng.int(256) : SPECIAL[rng.int(SPECIAL.length)]!;
  }
}

/** A bulk string holding what `body` writes. */
function bulk(w: ByteWriter, body: (b: ByteWriter) => void): void {
  const b = bulkBody;
  b.reset();
  body(b);
  w.byte(36);
  w.int(b.len);
  w.crlf();
  w.bytes(b.buf, 0, b.len);
  w.crlf();
}
const bulkBody = new ByteWriter(1024);

/** A RESP array of bulk strings: a known command (any case) or not, with random arguments,
 *  mostly as many as the command takes. */
export function randomRequest(rng: Rng, w: ByteWriter): void {
  const known = rng.chance(0.9);
  const index = rng.int(COMMANDS.length);
  const arity = known ? COMMANDS[index]!.arity : 1;
  const nargs = rng.chance(0.01) ? rng.int(300) : rng.chance(0.7) ? Math.abs(arity) - 1 + (arity < 0 ? rng.int(4) : 0) : rng.int(6);
  w.byte(42);
  w.int(nargs + 1);
  w.crlf();
  bulk(w, (name) => {
    if (!known) return randomBytes(rng, name, 8);
    for (const b of NAMES[index]!) name.byte(b >= 97 && b <= 122 && rng.chance(0.5) ? b - 32 : b);
  });
  for (let i = 0; i < nargs; i++) {
    bulk(w, (arg) => (rng.chance(0.2) ? arg.int(rng.int(5) - 1) : randomBytes(rng, arg, 40)));
  }
}

/** What a client might send besides arrays: inline lines, blank lines, empty arrays. */
function randomOddRequest(rng: Rng, w: ByteWriter): void {
  if (rng.chance(0.5)) w.text(rng.pick(["*0\r\n", "*-1\r\n", "\r\n"]));
  else w.text(`${rng.pick(["PING", "get a", "SET k v", ""])}${rng.pick(["\r\n", "\n", " \r\n"])}`);
}

/** A RESP2 reply of any type, nested up to `depth`. */
export function randomResponse(rng: Rng, w: ByteWriter, depth = 4): void {
  switch (rng.int(depth > 0 ? 7 : 5)) {
    case 0:
      return w.text(`+${rng.pick(["OK", "PONG", "QUEUED", ""])}\r\n`);
    case 1:
      return w.text(`-${rng.pick(["ERR x", "OOM command not allowed", "BUSY script", "LOADING", "BUSYKEY y", "WRONGTYPE z"])}\r\n`);
    case 2:
      w.byte(58);
      w.int(rng.int(2000) - 1000);
      return w.crlf();
    case 3:
      return bulk(w, (value) => randomBytes(rng, value, 60));
    case 4:
      return w.text(rng.pick(["$-1\r\n", "*-1\r\n", "*0\r\n"]));
    default: {
      const n = rng.int(8);
      w.byte(42);
      w.int(n);
      w.crlf();
      for (let i = 0; i < n; i++) randomResponse(rng, w, depth - 1);
    }
  }
}

/** Valid bytes, damaged: flipped, inserted, deleted, duplicated or replaced bytes, or a
 *  length turned into a huge, negative or malformed number. */
export function mutate(rng: Rng, input: Uint8Array): Uint8Array {
  let bytes: number[] = [];
  for (let i = 0; i < input.length; i++) bytes.push(input[i]!);
  const edits = 1 + rng.int(4);
  for (let e = 0; e < edits; e++) {
    const at = bytes.length === 0 ? 0 : rng.int(bytes.length);
    switch (rng.int(7)) {
      case 0:
        if (bytes.length > 0) bytes[at] = rng.int(256);
        break;
      case 1:
        bytes.splice(at, 0, SPECIAL[rng.int(SPECIAL.length)]!);
        break;
      case 2:
        bytes.splice(at, 1 + rng.int(4));
        break;
      case 3:
        bytes.splice(at, 0, ...bytes.slice(at, at + rng.int(20)));
        break;
      case 4:
        if (bytes.length > 0) bytes[at] = SPECIAL[rng.int(SPECIAL.length)]!;
        break;
      case 5: {
        const number = rng.pick(["99999999999999999999", "2147483648", "536870913", "-2", "-0", "01", "", "4294967296"]);
        bytes.splice(at, 0, ...enc.encode(number));
        break;
      }
      default:
        bytes = bytes.slice(0, at);
    }
  }
  return Uint8Array.from(bytes);
}

/** One fuzz input: a pipeline of a few messages, some damaged, sometimes pure noise. */
function fuzzInput(rng: Rng, message: (rng: Rng, w: ByteWriter) => void): Uint8Array {
  const w = inputWriter;
  w.reset();
  if (rng.chance(0.05)) {
    randomBytes(rng, w, 200);
    return w.view();
  }
  const n = 1 + rng.int(4);
  for (let i = 0; i < n; i++) {
    if (!rng.chance(0.3)) {
      message(rng, w);
      continue;
    }
    const from = w.len;
    message(rng, w);
    const damaged = mutate(rng, w.buf.subarray(from, w.len));
    w.len = from;
    w.bytes(damaged);
  }
  return w.view();
}
const inputWriter = new ByteWriter(64 * 1024);

export interface FuzzStats {
  cases: number;
  parsed: number;
  incomplete: number;
  fatal: number;
  rejected: number; // requests only: well framed, answered with an error line
}

type Parse = (buf: Uint8Array, pos: number, end: number) => number;

function fail(what: string, buf: Uint8Array, pos: number, detail: string): never {
  const shown = JSON.stringify(Buffer.from(buf.subarray(pos, pos + 200)).toString("latin1"));
  throw new Error(`${what}: ${detail} at ${pos} in ${shown}`);
}

/** What the independent framer says about buf[pos, end): an end, -1, or null (not RESP at all). */
function frameEnd(buf: Uint8Array, pos: number, end: number): number | null {
  try {
    return respFrame(buf, pos, end);
  } catch {
    return null;
  }
}

/**
 * Drives `parse` over the whole input like the proxy does and checks every call. `need` reads
 * the last NEED_MORE's need, `error` the last error line, `start` where the message began.
 * `thorough` adds the reference framer and prefix checks (the slower ones).
 */
function drive(
  what: string,
  input: Uint8Array,
  parse: Parse,
  last: { need(): number; error(): string | null; start(): number },
  stats: FuzzStats,
  rng: Rng,
  thorough: boolean,
): void {
  // Padding past `end` must never be read: fill it with bytes that would change the outcome.
  const buf = new Uint8Array(input.length + 16).fill(10);
  buf.set(input);
  const end = input.length;
  let pos = 0;
  while (pos < end) {
    const r = parse(buf, pos, end);
    if (r === NEED_MORE) {
      const need = last.need();
      if (!Number.isSafeInteger(need) || need <= end - pos) fail(what, buf, pos, `NEED_MORE with need ${need}`);
      // (A request array of no elements, *0 or *-1, is skipped: NEED_MORE is then for the next.)
      if (thorough && (what === "response" || (buf[pos] === 42 && buf[pos + 1]! > 48 && buf[pos + 1]! <= 57))) {
        const framed = frameEnd(buf, pos, end);
        if (framed !== null && framed >= 0) fail(what, buf, pos, `NEED_MORE, but the reference framer finds a whole message ending at ${framed}`);
      }
      stats.incomplete++;
      return;
    }
    if (r === FATAL) {
      const error = last.error();
      if (error === null || !error.startsWith("-ERR Protocol error: ") || /[\r\n]/.test(error)) {
        fail(what, buf, pos, `FATAL error line ${JSON.stringify(error)}`);
      }
      stats.fatal++;
      return;
    }
    if (!(r > pos && r <= end)) fail(what, buf, pos, `returned ${r}`);
    const start = last.start();
    if (start < pos || start >= r) fail(what, buf, pos, `message start ${start} outside (${pos}, ${r})`);
    const error = last.error();
    if (error !== null) {
      if (!error.startsWith("-") || /[\r\n]/.test(error)) fail(what, buf, pos, `error line ${JSON.stringify(error)}`);
      stats.rejected++;
    } else stats.parsed++;
    if (thorough && error === null) {
      // A message taken as valid is one the reference frames the same way (a throw is a failure).
      let framed: number;
      if (buf[start] === 42 || what === "response") {
        try {
          framed = respFrame(buf, start, end);
        } catch (err) {
          fail(what, buf, pos, `parsed to ${r}, the reference framer rejects it: ${(err as Error).message}`);
        }
      } else framed = buf.indexOf(10, start) + 1; // an inline request ends at its line feed
      if (framed !== r) fail(what, buf, pos, `parsed to ${r}, the reference framer says ${framed}`);
    }
    if (thorough) {
      for (let k = 0; k < 3; k++) {
        const cut = pos + 1 + rng.int(r - pos - 1 || 1);
        if (cut >= r) continue;
        const p = parse(buf, pos, cut);
        if (p !== NEED_MORE) fail(what, buf, pos, `prefix of ${cut - pos} bytes gave ${p}, not NEED_MORE`);
        const need = last.need();
        if (need <= cut - pos || need > r - pos) fail(what, buf, pos, `prefix of ${cut - pos} bytes: need ${need}, size ${r - pos}`);
      }
    }
    pos = r;
  }
}

function newStats(): FuzzStats {
  return { cases: 0, parsed: 0, incomplete: 0, fatal: 0, rejected: 0 };
}

export function fuzzRequests(cases: number, seed: number): FuzzStats {
  const rng = new Rng(seed);
  const req = new Req();
  const stats = newStats();
  const parse: Parse = (buf, pos, end) => {
    const r = redisCodec.parseRequest(buf, pos, end, req);
    if (r > 0 && req.error === null) checkRequest(buf, r);
    return r;
  };
  const checkRequest = (buf: Uint8Array, r: number): void => {
    if (req.command === null || req.nargs < 1 || req.end !== r) fail("request", buf, req.start, "parsed without a command");
    for (let i = 0; i < req.nargs; i++) {
      const s = req.argStart[i]!;
      const e = req.argEnd[i]!;
      if (s < req.start || e < s || e > req.end) fail("request", buf, req.start, `argument ${i} at [${s}, ${e})`);
    }
    for (let k = 0; k < req.nkeys; k++) {
      if (req.keyArg[k]! < 1 || req.keyArg[k]! >= req.nargs) fail("request", buf, req.start, `key ${k} is argument ${req.keyArg[k]}`);
    }
  };
  const last = { need: () => req.need, error: () => req.error, start: () => req.start };
  const message = (r: Rng, w: ByteWriter) => (r.chance(0.1) ? randomOddRequest(r, w) : randomRequest(r, w));
  for (let i = 0; i < cases; i++) {
    drive("request", fuzzInput(rng, message), parse, last, stats, rng, i % 4 === 0);
    stats.cases++;
  }
  return stats;
}

export function fuzzResponses(cases: number, seed: number): FuzzStats {
  const rng = new Rng(seed);
  const rsp = new Rsp();
  const stats = newStats();
  const parse: Parse = (buf, pos, end) => redisCodec.parseResponse(buf, pos, end, rsp);
  const last = { need: () => rsp.need, error: () => (rsp.error === null ? null : `-ERR Protocol error: ${rsp.error}`), start: () => rsp.start };
  for (let i = 0; i < cases; i++) {
    drive("response", fuzzInput(rng, (r, w) => randomResponse(r, w)), parse, last, stats, rng, i % 4 === 0);
    stats.cases++;
  }
  return stats;
}

/** A request's arguments: a command of the table (any case, mostly one the proxy serves), mostly
 *  with as many arguments as it takes, each random (binary, empty, CRLF inside). */
const SERVED = COMMANDS.filter((c) => c.route !== null);

function requestArgs(rng: Rng): Buffer[] {
  const spec = rng.chance(0.9) ? rng.pick(SERVED) : rng.pick(COMMANDS);
  const name = Buffer.from(spec.name.replace(/[a-z]/g, (c) => (rng.chance(0.5) ? c.toUpperCase() : c)), "latin1");
  const want = Math.abs(spec.arity) - 1 + (spec.arity < 0 ? rng.int(4) : 0);
  const nargs = rng.chance(0.9) ? want : rng.int(6);
  const args = [name];
  const w = new ByteWriter(64);
  for (let i = 0; i < nargs; i++) {
    w.reset();
    randomBytes(rng, w, rng.chance(0.02) ? 5000 : 40);
    args.push(Buffer.from(w.view()));
  }
  return args;
}

export interface RoundTripStats {
  cases: number;
  /** Requests parsed back to their arguments, and the ones rejected with an error reply. */
  parsed: number;
  rejected: number;
  /** Parses that stopped at NEED_MORE part way through a request. */
  resumed: number;
}

/**
 * Round trip: pipelines of 1-4 requests encoded by the test encoder, arriving in random chunks;
 * each parses to its own bytes exactly, with its arguments' contents, or is rejected with an
 * error line (a wrong argument count); NEED_MORE on the way never asks past the request's end.
 */
export function fuzzRoundTrip(cases: number, seed: number): RoundTripStats {
  const rng = new Rng(seed);
  const req = new Req();
  const stats: RoundTripStats = { cases: 0, parsed: 0, rejected: 0, resumed: 0 };
  for (let c = 0; c < cases; c++) {
    const requests = Array.from({ length: 1 + rng.int(4) }, () => requestArgs(rng));
    const encoded = requests.map((args) => command(...args));
    const buf = Buffer.concat(encoded);
    let pos = 0;
    let received = 0;
    for (const [i, args] of requests.entries()) {
      const stop = pos + encoded[i]!.length;
      for (;;) {
        if (received === pos || rng.chance(0.3)) received = Math.min(buf.length, received + 1 + rng.int(rng.chance(0.5) ? 8 : 600));
        const r = redisCodec.parseRequest(buf, pos, received, req);
        if (r === NEED_MORE) {
          if (received >= stop) fail("round trip", buf, pos, `NEED_MORE with the whole request there`);
          if (req.need <= received - pos || req.need > stop - pos) fail("round trip", buf, pos, `need ${req.need} of a ${stop - pos}-byte request with ${received - pos} there`);
          stats.resumed++;
          continue;
        }
        if (r !== stop) fail("round trip", buf, pos, `parsed to ${r}, the request ends at ${stop}`);
        break;
      }
      if (req.error !== null) {
        if (!req.error.startsWith("-") || /[\r\n]/.test(req.error)) fail("round trip", buf, pos, `error line ${JSON.stringify(req.error)}`);
        // Explained: not served, the wrong count (as the command's table arity or redis's own
        // rule for it says), or a `numkeys` argument that is no count of keys.
        const spec = COMMANDS.find((s) => s.name === args[0]!.toString("latin1").toLowerCase())!;
        const fits = spec.arity > 0 ? args.length === spec.arity : args.length >= -spec.arity;
        if (spec.route !== null && fits && spec.numkeysAt === 0 && !req.error.startsWith("-ERR wrong number of arguments")) {
          fail("round trip", buf, pos, `rejected ${JSON.stringify(req.error)} with ${args.length} arguments (arity ${spec.arity})`);
        }
        stats.rejected++;
      } else {
        if (req.command?.name !== args[0]!.toString("latin1").toLowerCase()) fail("round trip", buf, pos, `command ${req.command?.name}`);
        if (req.nargs !== args.length) fail("round trip", buf, pos, `${req.nargs} arguments, sent ${args.length}`);
        for (let a = 0; a < args.length; a++) {
          if (!buf.subarray(req.argStart[a]!, req.argEnd[a]!).equals(args[a]!)) fail("round trip", buf, pos, `argument ${a} differs`);
        }
        stats.parsed++;
      }
      pos = stop;
    }
    stats.cases++;
  }
  return stats;
}

/** Large values are slices of this: letters, CR and LF. */
const BIG = (() => {
  const rng = new Rng(0xb16);
  return Uint8Array.from({ length: 1 << 16 }, () => (rng.chance(0.05) ? rng.pick([13, 10]) : 97 + rng.int(26)));
})();

/** A reply, now and then with large bulk values (what a server connection streams). */
function streamedResponse(rng: Rng, w: ByteWriter): void {
  if (!rng.chance(0.4)) return randomResponse(rng, w);
  const big = (): void => {
    const n = 300 + rng.int(12_000);
    const at = rng.int(BIG.length - n);
    w.text(`$${n}\r\n`);
    w.bytes(BIG, at, at + n);
    w.crlf();
  };
  if (rng.chance(0.5)) return big();
  const n = 1 + rng.int(5);
  w.text(`*${n}\r\n`);
  for (let i = 0; i < n; i++) (rng.chance(0.5) ? big() : randomResponse(rng, w, 2));
}

export interface StreamStats {
  cases: number;
  replies: number;
  /** Cases where some bytes were passed on before their reply was complete. */
  streamed: number;
}

/** Reply streams parsed in random chunks as a server connection streams them frame exactly as
 *  the reference framer frames the whole stream. */
export function fuzzStreamed(cases: number, seed: number): StreamStats {
  const rng = new Rng(seed);
  const w = new ByteWriter(1 << 16);
  const stats: StreamStats = { cases: 0, replies: 0, streamed: 0 };
  for (let c = 0; c < cases; c++) {
    w.reset();
    for (let n = 1 + rng.int(4); n > 0; n--) streamedResponse(rng, w);
    const stream = w.buf.slice(0, w.len);
    const expected: [number, number][] = [];
    for (let at = 0; at < stream.length; ) {
      const stop = respFrame(stream, at, stream.length);
      expected.push([at, stop]);
      at = stop;
    }
    const sizes = Array.from({ length: 1 + rng.int(3) }, () => 1 + rng.int(rng.chance(0.3) ? 64 : 8000));
    const got = parseStreamed(redisCodec, stream, sizes, rng.pick([1, 64, 4096]));
    if (got.fatal !== null) fail("streamed", stream, 0, `FATAL ${got.fatal} with chunks ${sizes}`);
    if (JSON.stringify(got.replies) !== JSON.stringify(expected)) {
      fail("streamed", stream, 0, `framed ${JSON.stringify(got.replies)}, the reference ${JSON.stringify(expected)} (chunks ${sizes})`);
    }
    stats.replies += expected.length;
    if (got.passed > 0) stats.streamed++;
    stats.cases++;
  }
  return stats;
}

/** RESP3 reply streams: every type, attributes, pushes, streamed strings and aggregates. */
export function fuzzResponses3(cases: number, seed: number): FuzzStats {
  const rng = new Rng(seed);
  const rsp = new Rsp();
  const stats = newStats();
  const parse: Parse = (buf, pos, end) => redisCodec.parseResponse(buf, pos, end, rsp);
  const last = { need: () => rsp.need, error: () => (rsp.error === null ? null : `-ERR Protocol error: ${rsp.error}`), start: () => rsp.start };
  const message = (r: Rng, w: ByteWriter) => w.bytes(Buffer.from(encodeResp3(randomResp3(r), r.chance(0.3) ? r : null), "latin1"));
  for (let i = 0; i < cases; i++) {
    drive("response", fuzzInput(rng, message), parse, last, stats, rng, i % 4 === 0);
    stats.cases++;
  }
  return stats;
}

if (import.meta.main) {
  const flag = (name: string, fallback: number): number => {
    const at = process.argv.indexOf(name);
    return at < 0 ? fallback : Number(process.argv[at + 1]);
  };
  const cases = flag("--cases", 1_000_000);
  const seed = flag("--seed", 1);
  const t0 = performance.now();
  console.log("requests ", fuzzRequests(cases, seed));
  console.log("responses", fuzzResponses(cases, seed));
  console.log("round trip", fuzzRoundTrip(cases, seed));
  console.log("streamed", fuzzStreamed(cases, seed));
  console.log("RESP3    ", fuzzResponses3(cases, seed));
  console.log(`${cases} cases per parser, seed ${seed}, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
