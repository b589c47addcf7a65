// RESP2 for talking to sentinels, off the hot path: commands encoded from strings, and replies
// decoded into plain values. Framing (is the reply complete, is it well formed) is the proxy's
// own redis reply parser, handed in as the pool's Codec (the protocol stays behind its
// interface); only complete, checked replies are decoded here, so the decoder need not handle
// partial or broken input.

import { FATAL, NEED_MORE, Rsp, type Codec } from "../proto/codec.ts";

/** What frames replies: the redis Codec's reply parser. */
export type ReplyFramer = Pick<Codec, "parseResponse">;

/** An error reply (`-ERR ...`), its text without the dash. */
export class ReplyError {
  constructor(readonly message: string) {}
}

/** A decoded reply: simple and bulk strings as strings, integers as numbers, nil as null. */
export type Reply = string | number | null | ReplyError | Reply[];

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One command as a RESP array of bulk strings. */
export function encodeCommand(...args: string[]): Uint8Array {
  let text = `*${args.length}\r\n`;
  for (const a of args) text += `$${encoder.encode(a).length}\r\n${a}\r\n`;
  return encoder.encode(text);
}

/** A reply stream cut into decoded replies. Throws on bytes that are not RESP2. */
export class ReplyReader {
  private buf = new Uint8Array(0);
  private readonly rsp = new Rsp();

  constructor(private readonly framer: ReplyFramer) {}

  /** The replies completed by `chunk`, in order. */
  feed(chunk: Uint8Array): Reply[] {
    const buf = this.buf.length === 0 ? chunk : concat(this.buf, chunk);
    const replies: Reply[] = [];
    let pos = 0;
    while (pos < buf.length) {
      this.rsp.resume = 0;
      const end = this.framer.parseResponse(buf, pos, buf.length, this.rsp);
      if (end === NEED_MORE) break;
      if (end === FATAL) throw new Error(`not a RESP reply: ${this.rsp.error}`);
      replies.push(decodeAt(buf, pos).value);
      pos = end;
    }
    this.buf = buf.slice(pos);
    return replies;
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Decodes the complete, well-formed reply at `at`. */
function decodeAt(buf: Uint8Array, at: number): { value: Reply; next: number } {
  const lineEnd = buf.indexOf(13, at);
  const line = decoder.decode(buf.subarray(at + 1, lineEnd));
  const next = lineEnd + 2;
  switch (buf[at]) {
    case 0x2b: // +
      return { value: line, next };
    case 0x2d: // -
      return { value: new ReplyError(line), next };
    case 0x3a: // :
      return { value: Number(line), next };
    case 0x24: {
      // $
      const length = Number(line);
      if (length < 0) return { value: null, next };
      return { value: decoder.decode(buf.subarray(next, next + length)), next: next + length + 2 };
    }
    default: {
      // *
      const count = Number(line);
      if (count < 0) return { value: null, next };
      const items: Reply[] = [];
      let p = next;
      for (let i = 0; i < count; i++) {
        const item = decodeAt(buf, p);
        items.push(item.value);
        p = item.next;
      }
      return { value: items, next: p };
    }
  }
}

/** A flat [field, value, field, value, ...] reply (SENTINEL MASTER, SENTINEL REPLICAS items)
 *  as a map of strings. */
export function fieldsOf(reply: Reply): Map<string, string> {
  const out = new Map<string, string>();
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out.set(String(reply[i]), String(reply[i + 1]));
  return out;
}
