// RESP2 for tests: request encoding, reply framing (where does one complete reply end?),
// reply encoding for expected values, and a decoder for structural assertions.

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
  switch (buf[start]) {
    case 0x2b /* + */:
    case 0x2d /* - */:
    case 0x3a /* : */:
      return after;
    case 0x24 /* $ */: {
      const len = lineNumber(buf, start + 1, after - 2);
      if (len < 0) return after;
      return after + len + 2 <= end ? after + len + 2 : -1;
    }
    case 0x2a /* * */: {
      const count = lineNumber(buf, start + 1, after - 2);
      let at = after;
      for (let i = 0; i < count; i++) {
        at = respFrame(buf, at, end);
        if (at < 0) return -1;
      }
      return at;
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
