// A complete RESP2 reply decoded into a tree, for the few replies the proxy reads itself (the
// cluster's topology, CLUSTER INFO): off the hot path, where a tree is clearer than offsets.
// Forwarded replies are never decoded (response.ts frames them in place).

import { COLON, CR, DOLLAR, LF, MINUS, numberValue, PLUS, readNumber, STAR } from "./resp.ts";

/** An error reply (`-...`), as a value. */
export class ReplyError {
  constructor(readonly message: string) {}
}

/** +simple -> string, -error -> ReplyError, :n -> number, $bulk -> Uint8Array | null,
 *  *array -> RespValue[] | null. */
export type RespValue = string | ReplyError | number | Uint8Array | null | RespValue[];

const latin1 = new TextDecoder("latin1");

/** Decodes the one complete reply buf[start, end); throws on anything else. */
export function decodeReply(buf: Uint8Array, start: number, end: number): RespValue {
  const [value, next] = decodeAt(buf, start, end, 0);
  if (next !== end) throw new Error(`reply has ${end - next} bytes after its end`);
  return value;
}

const MAX_DEPTH = 16;

function decodeAt(buf: Uint8Array, p: number, end: number, depth: number): [RespValue, number] {
  if (p >= end) throw new Error("reply ends early");
  const type = buf[p]!;
  if (type === PLUS || type === MINUS) {
    let q = p + 1;
    while (q < end && buf[q] !== CR) q++;
    if (q + 1 >= end || buf[q + 1] !== LF) throw new Error("line without CRLF");
    const text = latin1.decode(buf.subarray(p + 1, q));
    return [type === PLUS ? text : new ReplyError(text), q + 2];
  }
  const next = readNumber(buf, p + 1, end);
  if (next < 0) throw new Error("bad number in reply");
  const n = numberValue(buf, p + 1);
  if (type === COLON) return [n, next];
  if (type === DOLLAR) {
    if (n < 0) return [null, next];
    if (next + n + 2 > end || buf[next + n] !== CR || buf[next + n + 1] !== LF) throw new Error("bad bulk string");
    return [buf.subarray(next, next + n), next + n + 2];
  }
  if (type === STAR) {
    if (n < 0) return [null, next];
    if (depth >= MAX_DEPTH) throw new Error("reply nested too deep");
    const items: RespValue[] = [];
    let at = next;
    for (let i = 0; i < n; i++) {
      const [item, after] = decodeAt(buf, at, end, depth + 1);
      items.push(item);
      at = after;
    }
    return [items, at];
  }
  throw new Error(`unknown reply type byte ${type}`);
}

/** A bulk or simple string as text (latin1: one character per byte); null for anything else. */
export function textOf(value: RespValue): string | null {
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return latin1.decode(value);
  return null;
}
