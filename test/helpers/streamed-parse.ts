// Parsing a reply stream the way a server connection streams large replies: the proxy's own
// loop (core/reply-stream.ts, on the carry-over of core/reader.ts) fed in chunks, with every
// reply streamable. After NEED_MORE with an opaque prefix, those bytes are passed on unparsed
// and the reply is parsed further from where they end (Rsp.resume = next).

import { ReplyStream } from "../../src/core/reply-stream.ts";
import type { Codec, Rsp } from "../../src/proto/codec.ts";

export interface StreamedFraming {
  /** [start, end) of every complete reply. */
  replies: [number, number][];
  /** Bytes passed on as opaque. */
  passed: number;
  fatal: string | null;
}

/** Sets the parser's inputs for reply `reply` (counted from 0) in rsp. */
export type Prepare = (rsp: Rsp, reply: number) => void;

class Framer extends ReplyStream {
  readonly framing: StreamedFraming = { replies: [], passed: 0, fatal: null };
  private at = 0;

  constructor(
    private readonly codec: Codec,
    minOpaque: number,
    private readonly prepare: Prepare | undefined,
  ) {
    super(minOpaque);
  }

  push(chunk: Uint8Array): void {
    if (this.framing.fatal === null) this.feed(chunk);
  }

  protected parseReply(buf: Uint8Array, pos: number, end: number, rsp: Rsp): number {
    // A reply's first parse (again after NEED_MORE), not one resumed after a part passed on.
    if (rsp.resume === 0) this.prepare?.(rsp, this.framing.replies.length);
    return this.codec.parseResponse(buf, pos, end, rsp);
  }

  protected streamable(): boolean {
    return true;
  }

  protected passOn(_buf: Uint8Array, start: number, end: number): void {
    this.framing.passed += end - start;
  }

  protected replied(_buf: Uint8Array, start: number, end: number, streamed: number): boolean {
    // Replies follow each other in the stream: each starts where the one before ended.
    const length = end - start + streamed;
    this.framing.replies.push([this.at, this.at + length]);
    this.at += length;
    return true;
  }

  protected malformed(error: string | null): void {
    this.framing.fatal = error;
  }

  protected settled(): boolean {
    return true;
  }
}

/** Parses `stream` arriving in chunks of `sizes` (cycled); opaque prefixes of at least
 *  `minOpaque` bytes are passed on. `prepare(rsp, i)` sets the inputs for reply i (Rsp.joined
 *  and its keys) before its first parse; they are kept across its resumed parses. */
export function parseStreamed(
  codec: Codec,
  stream: Uint8Array,
  sizes: number[],
  minOpaque = 1,
  prepare?: Prepare,
): StreamedFraming {
  const framer = new Framer(codec, minOpaque, prepare);
  for (let at = 0, i = 0; at < stream.length; i++) {
    const next = Math.min(stream.length, at + sizes[i % sizes.length]!);
    // A fresh buffer per chunk, as a socket hands them.
    framer.push(stream.slice(at, next));
    at = next;
  }
  return framer.framing;
}
