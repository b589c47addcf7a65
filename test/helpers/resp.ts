// RESP for tests: request encoding, reply framing (where does one complete reply end?, RESP2
// and RESP3), reply encoding for expected values, and decoders for structural assertions
// (decode: RESP2 values; decode3: every RESP3 type, as tagged values). Written independently of
// src/proto/redis (recursive, string-based), so it can check the proxy's parsers.

export type Bytes = string | Uint8Array;

const CR = 13;
const LF = 10;

const toBuffer = (b: Bytes): Buffer => (typeof b === "string" ? Buffer.from(b, "latin1") : Buffer.from(b));

/** A request as a RESP array of bulk strings (what redis-cli sends). Strings are latin1. */
export function command(...args: Bytes[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const arg of args) {
    const bytes = toBuffer(arg);
    parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from("\r\n"));
  }
  return Buffer.concat(parts);
}

/** Several requests back to back (a pipeline). */
export function pipeline(commands: Bytes[][]): Buffer {
  return Buffer.concat(commands.map((args) => command(...args)));
}

// Expected replies, encoded.
export const simple = (text: string): Buffer => Buffer.from(`+${text}\r\n`);
export const error = (text: string): Buffer => Buffer.from(`-${text}\r\n`);
export const integer = (n: number): Buffer => Buffer.from(`:${n}\r\n`);
export const bulk = (value: Bytes | null): Buffer =>
  value === null ? Buffer.from("$-1\r\n") : Buffer.concat([Buffer.from(`$${toBuffer(value).length}\r\n`), toBuffer(value), Buffer.from("\r\n")]);
export const array = (items: Buffer[] | null): Buffer =>
  items === null ? Buffer.from("*-1\r\n") : Buffer.concat([Buffer.from(`*${items.length}\r\n`), ...items]);
export const OK = simple("OK");

/** Index just past the CRLF of the line starting at `start`, or -1 when not all there yet. */
function lineEnd(buf: Uint8Array, start: number, end: number): number {
  for (let i = start; i + 1 < end; i++) if (buf[i] === CR && buf[i + 1] === LF) return i + 2;
  return -1;
}

function lineNumber(buf: Uint8Array, start: number, stop: number): number {
  const text = Buffer.from(buf.buffer, buf.byteOffset + start, stop - start).toString("latin1");
  if (!/^-?\d+$/.test(text)) throw new Error(`RESP: bad length ${JSON.stringify(text)}`);
  return Number(text);
}

/**
 * Framer: the end offset of the complete RESP reply starting at `start`, or -1 if it is not
 * complete in buf[start, end). Throws on bytes that cannot be RESP (so a test fails, not hangs).
 */
export function respFrame(buf: Uint8Array, start: number, end: number): number {
  if (start >= end) return -1;
  const after = lineEnd(buf, start, end);
  if (after < 0) return -1;
  const type = buf[start];
  const header = Buffer.from(buf.buffer, buf.byteOffset + start + 1, after - 3 - start).toString("latin1");
  switch (type) {
    case 0x2b /* + */:
    case 0x2d /* - */:
    case 0x3a /* : */:
    case 0x2c /* , */:
    case 0x28 /* ( */:
      return after;
    case 0x5f /* _ */:
      if (header !== "") throw new Error(`RESP: null with ${JSON.stringify(header)}`);
      return after;
    case 0x23 /* # */:
      if (header !== "t" && header !== "f") throw new Error(`RESP: boolean ${JSON.stringify(header)}`);
      return after;
    case 0x24 /* $ */:
    case 0x3d /* = */:
    case 0x21 /* ! */: {
      if (header === "?") {
        // Streamed string: ;<n> parts up to ;0.
        let at = after;
        for (;;) {
          const partEnd = lineEnd(buf, at, end);
          if (partEnd < 0) return -1;
          if (buf[at] !== 0x3b) throw new Error("RESP: streamed string part without ';'");
          const n = lineNumber(buf, at + 1, partEnd - 2);
          if (n === 0) return partEnd;
          at = partEnd + n + 2;
          if (at > end) return -1;
        }
      }
      const len = lineNumber(buf, start + 1, after - 2);
      if (len < 0) return after;
      return after + len + 2 <= end ? after + len + 2 : -1;
    }
    case 0x2a /* * */:
    case 0x7e /* ~ */:
    case 0x3e /* > */:
    case 0x25 /* % */:
    case 0x7c /* | */: {
      let at = after;
      if (header === "?") {
        while (at < end && buf[at] !== 0x2e /* . */) {
          at = respFrame(buf, at, end);
          if (at < 0) return -1;
        }
        return at + 3 <= end ? at + 3 : -1;
      }
      const n = lineNumber(buf, start + 1, after - 2);
      const count = type === 0x25 || type === 0x7c ? 2 * n : n;
      for (let i = 0; i < count; i++) {
        at = respFrame(buf, at, end);
        if (at < 0) return -1;
      }
      // An attribute annotates the value after it: one reply together.
      return type === 0x7c ? respFrame(buf, at, end) : at;
    }
    default: {
      const preview = Buffer.from(buf.subarray(start, Math.min(end, start + 60))).toString("latin1");
      throw new Error(`RESP: unexpected reply type in ${JSON.stringify(preview)}`);
    }
  }
}

export class RespError {
  constructor(readonly message: string) {}
}
export type RespValue = string | RespError | number | Buffer | null | RespValue[];

/** Decodes one complete reply: +x -> "x", -x -> RespError, :n -> number, $ -> Buffer | null, * -> array | null. */
export function decode(reply: Uint8Array): RespValue {
  const buf = Buffer.from(reply);
  const [value, at] = decodeAt(buf, 0);
  if (at !== buf.length) throw new Error(`RESP: ${buf.length - at} bytes after the reply`);
  return value;
}

/** A decoded reply as plain values: bulk strings as text, errors as "-message". */
export function plain(v: RespValue): unknown {
  if (Buffer.isBuffer(v)) return v.toString();
  if (v instanceof RespError) return `-${v.message}`;
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

function decodeAt(buf: Buffer, start: number): [RespValue, number] {
  const after = lineEnd(buf, start, buf.length);
  if (after < 0) throw new Error("RESP: incomplete reply");
  const line = buf.toString("latin1", start + 1, after - 2);
  switch (buf[start]) {
    case 0x2b:
      return [line, after];
    case 0x2d:
      return [new RespError(line), after];
    case 0x3a:
      return [Number(line), after];
    case 0x24: {
      const len = Number(line);
      return len < 0 ? [null, after] : [buf.subarray(after, after + len), after + len + 2];
    }
    case 0x2a: {
      const count = Number(line);
      if (count < 0) return [null, after];
      const items: RespValue[] = [];
      let at = after;
      for (let i = 0; i < count; i++) {
        const [item, next] = decodeAt(buf, at);
        items.push(item);
        at = next;
      }
      return [items, at];
    }
    default:
      throw new Error(`RESP: unexpected reply type ${JSON.stringify(line)}`);
  }
}

/** A RESP3 value, tagged with its type so that every type round-trips. */
export type Resp3 =
  | { t: "simple"; v: string }
  | { t: "error"; v: string }
  | { t: "blobError"; v: string }
  | { t: "int"; v: bigint }
  | { t: "double"; v: string }
  | { t: "big"; v: string }
  | { t: "bool"; v: boolean }
  | { t: "null" }
  | { t: "bulk"; v: string | null }
  | { t: "verbatim"; format: string; v: string }
  | { t: "array"; v: Resp3[] | null }
  | { t: "set"; v: Resp3[] }
  | { t: "push"; v: Resp3[] }
  | { t: "map"; v: [Resp3, Resp3][] }
  | { t: "attr"; attrs: [Resp3, Resp3][]; v: Resp3 };

/** Decodes one complete RESP3 (or RESP2) reply; streamed values decode as their whole form. */
export function decode3(reply: Uint8Array): Resp3 {
  const buf = Buffer.from(reply);
  const [value, at] = decode3At(buf, 0);
  if (at !== buf.length) throw new Error(`RESP: ${buf.length - at} bytes after the reply`);
  return value;
}

function decode3At(buf: Buffer, start: number): [Resp3, number] {
  const after = lineEnd(buf, start, buf.length);
  if (after < 0) throw new Error("RESP: incomplete reply");
  const line = buf.toString("latin1", start + 1, after - 2);
  const streamed = line === "?";
  const items = (count: number, from: number): [Resp3[], number] => {
    const out: Resp3[] = [];
    let at = from;
    if (streamed) {
      while (buf[at] !== 0x2e) {
        const [item, next] = decode3At(buf, at);
        out.push(item);
        at = next;
      }
      return [out, at + 3];
    }
    for (let i = 0; i < count; i++) {
      const [item, next] = decode3At(buf, at);
      out.push(item);
      at = next;
    }
    return [out, at];
  };
  const pairs = (list: Resp3[]): [Resp3, Resp3][] => Array.from({ length: list.length / 2 }, (_, i) => [list[2 * i]!, list[2 * i + 1]!]);
  const count = streamed ? 0 : Number(line);
  switch (buf[start]) {
    case 0x2b:
      return [{ t: "simple", v: line }, after];
    case 0x2d:
      return [{ t: "error", v: line }, after];
    case 0x3a:
      return [{ t: "int", v: BigInt(line) }, after];
    case 0x2c:
      return [{ t: "double", v: line }, after];
    case 0x28:
      return [{ t: "big", v: line }, after];
    case 0x23:
      return [{ t: "bool", v: line === "t" }, after];
    case 0x5f:
      return [{ t: "null" }, after];
    case 0x24:
    case 0x3d:
    case 0x21: {
      let text: string;
      let at: number;
      if (streamed) {
        text = "";
        at = after;
        for (;;) {
          const partEnd = lineEnd(buf, at, buf.length);
          const n = Number(buf.toString("latin1", at + 1, partEnd - 2));
          if (n === 0) {
            at = partEnd;
            break;
          }
          text += buf.toString("latin1", partEnd, partEnd + n);
          at = partEnd + n + 2;
        }
      } else {
        if (count < 0) return [{ t: "bulk", v: null }, after];
        text = buf.toString("latin1", after, after + count);
        at = after + count + 2;
      }
      if (buf[start] === 0x21) return [{ t: "blobError", v: text }, at];
      if (buf[start] === 0x3d) return [{ t: "verbatim", format: text.slice(0, 3), v: text.slice(4) }, at];
      return [{ t: "bulk", v: text }, at];
    }
    case 0x2a: {
      if (line === "-1") return [{ t: "array", v: null }, after];
      const [list, at] = items(count, after);
      return [{ t: "array", v: list }, at];
    }
    case 0x7e: {
      const [list, at] = items(count, after);
      return [{ t: "set", v: list }, at];
    }
    case 0x3e: {
      const [list, at] = items(count, after);
      return [{ t: "push", v: list }, at];
    }
    case 0x25: {
      const [list, at] = items(2 * count, after);
      return [{ t: "map", v: pairs(list) }, at];
    }
    case 0x7c: {
      const [list, at] = items(2 * count, after);
      const [value, next] = decode3At(buf, at);
      return [{ t: "attr", attrs: pairs(list), v: value }, next];
    }
    default:
      throw new Error(`RESP: unexpected reply type ${JSON.stringify(line)}`);
  }
}
