// The memcached ASCII protocol for tests: reply framing and request/reply builders.

import type { Bytes } from "./resp.ts";

const CR = 13;
const LF = 10;

function lineEnd(buf: Uint8Array, start: number, end: number): number {
  for (let i = start; i + 1 < end; i++) if (buf[i] === CR && buf[i + 1] === LF) return i + 2;
  return -1;
}

const text = (buf: Uint8Array, start: number, stop: number): string =>
  Buffer.from(buf.buffer, buf.byteOffset + start, stop - start).toString("latin1");

/**
 * Framer: the end offset of the complete memcached reply starting at `start`, or -1 if it is not
 * complete yet. A retrieval reply is `VALUE <key> <flags> <bytes> [<cas>]` + data blocks up to
 * `END` (or an error line); a `stats` reply is `STAT ...` lines up to `END`; anything else is
 * one line.
 */
export function memcacheFrame(buf: Uint8Array, start: number, end: number): number {
  let at = start;
  for (;;) {
    const after = lineEnd(buf, at, end);
    if (after < 0) return -1;
    const line = text(buf, at, after - 2);
    if (line.startsWith("VALUE ")) {
      const bytes = Number(line.split(/ +/)[3]);
      if (!Number.isInteger(bytes) || bytes < 0) throw new Error(`memcached: bad VALUE line ${JSON.stringify(line)}`);
      if (after + bytes + 2 > end) return -1;
      at = after + bytes + 2;
      continue;
    }
    if (line.startsWith("STAT ")) {
      at = after;
      continue;
    }
    // END closes a retrieval/stats reply (or is the whole reply of a miss), and so does an error
    // line; any other line is a reply of its own.
    if (at !== start && line !== "END" && !/^(SERVER_ERROR|CLIENT_ERROR|ERROR)( |$)/.test(line)) {
      throw new Error(`memcached: ${JSON.stringify(line)} inside a multi-line reply`);
    }
    return after;
  }
}

const toBuffer = (b: Bytes): Buffer => (typeof b === "string" ? Buffer.from(b, "latin1") : Buffer.from(b));

/** A storage command: `<verb> <key> <flags> <exptime> <bytes> [cas] [noreply]\r\n<data>\r\n`. */
export function storage(
  verb: "set" | "add" | "replace" | "append" | "prepend" | "cas",
  key: Bytes,
  data: Bytes,
  opts: { flags?: number; exptime?: number; cas?: string | number; noreply?: boolean } = {},
): Buffer {
  const value = toBuffer(data);
  const head = [verb, toBuffer(key).toString("latin1"), opts.flags ?? 0, opts.exptime ?? 0, value.length];
  if (verb === "cas") head.push(String(opts.cas));
  if (opts.noreply) head.push("noreply");
  return Buffer.concat([Buffer.from(head.join(" ") + "\r\n", "latin1"), value, Buffer.from("\r\n")]);
}

/** A one-line command, e.g. line("get", "a", "b") -> "get a b\r\n". */
export function line(...words: Bytes[]): Buffer {
  return Buffer.concat([Buffer.from(words.map((w) => toBuffer(w).toString("latin1")).join(" "), "latin1"), Buffer.from("\r\n")]);
}

/** One `VALUE` block of a retrieval reply (without the final END). */
export function valueBlock(key: Bytes, data: Bytes, flags = 0, cas?: string | number): Buffer {
  const value = toBuffer(data);
  const head = `VALUE ${toBuffer(key).toString("latin1")} ${flags} ${value.length}${cas === undefined ? "" : ` ${cas}`}\r\n`;
  return Buffer.concat([Buffer.from(head, "latin1"), value, Buffer.from("\r\n")]);
}

/** A complete retrieval reply: the VALUE blocks followed by END. */
export function retrieval(blocks: Buffer[]): Buffer {
  return Buffer.concat([...blocks, Buffer.from("END\r\n")]);
}

export interface ParsedValue {
  key: string;
  flags: number;
  data: Buffer;
  cas: string | null;
}

/** Parses a complete retrieval reply into its values (throws if it is not one). */
export function parseRetrieval(reply: Uint8Array): ParsedValue[] {
  const buf = Buffer.from(reply);
  const values: ParsedValue[] = [];
  let at = 0;
  for (;;) {
    const after = lineEnd(buf, at, buf.length);
    if (after < 0) throw new Error("memcached: incomplete retrieval reply");
    const head = buf.toString("latin1", at, after - 2);
    if (head === "END") {
      if (after !== buf.length) throw new Error("memcached: bytes after END");
      return values;
    }
    const [word, key, flags, bytes, cas] = head.split(" ");
    if (word !== "VALUE") throw new Error(`memcached: not a retrieval reply: ${JSON.stringify(head)}`);
    const len = Number(bytes);
    values.push({ key: key!, flags: Number(flags), data: buf.subarray(after, after + len), cas: cas ?? null });
    at = after + len + 2;
  }
}
