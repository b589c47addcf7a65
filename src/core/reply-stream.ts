// Reading a server's reply stream: complete replies one after the other, and a large reply
// passed on in parts as its bytes arrive. When the parser runs out of bytes inside a data block
// whose length it knows, it reports the bytes before that point as final (Rsp.opaque) and how to
// resume after them (Rsp.next); if the reply may be streamed, those bytes are passed on as they
// arrive and only the rest is parsed. ServerConn is the one implementation in the proxy; the
// tests drive this same loop on chunked streams (test/helpers/streamed-parse.ts).

import { FATAL, NEED_MORE, Rsp } from "../proto/codec.ts";
import { StreamReader } from "./reader.ts";

export abstract class ReplyStream extends StreamReader {
  protected readonly rsp = new Rsp();
  /** Streaming a reply: bytes still to pass on before parsing resumes. */
  private streamLeft = 0;
  /** The parser's state for the rest of that reply (Rsp.resume); 0 when not streaming. */
  protected resume = 0;
  /** Bytes of that reply passed on so far. */
  private streamed = 0;

  /** Replies whose final part (Rsp.opaque) is at least `streamMin` bytes may be streamed. */
  constructor(private readonly streamMin: number) {
    super();
  }

  /** Parse one reply at buf[pos, end) into rsp (rsp.resume is set). */
  protected abstract parseReply(buf: Uint8Array, pos: number, end: number, rsp: Rsp): number;
  /** May the reply now being parsed be passed on before it is complete? */
  protected abstract streamable(): boolean;
  /** Part of the reply being streamed. */
  protected abstract passOn(buf: Uint8Array, start: number, end: number): void;
  /** A complete reply: buf[start, end) (from rsp.start, or from earlier in a streamed reply's
   *  data: its last part and its end together), after `streamed` bytes passed on before.
   *  Returns false when the stream must stop (the connection closed). */
  protected abstract replied(buf: Uint8Array, start: number, end: number, streamed: number): boolean;
  /** The bytes are not a reply (FATAL, with the parser's reason). */
  protected abstract malformed(error: string | null): void;
  /** Every complete reply of a chunk was handled; false when the stream must stop. */
  protected abstract settled(): boolean;

  protected parse(buf: Uint8Array, pos: number, end: number): number {
    const rsp = this.rsp;
    while (pos < end) {
      if (this.streamLeft > 0) {
        if (this.streamLeft < end - pos) {
          // The streamed data ends in this chunk: when the reply does too, its last part and
          // its end go on together (one write, not a second one for a few bytes).
          rsp.resume = this.resume;
          const next = this.parseReply(buf, pos + this.streamLeft, end, rsp);
          if (next >= 0) {
            const streamed = this.streamed;
            this.streamLeft = this.resume = this.streamed = 0;
            if (!this.replied(buf, pos, next, streamed)) return FATAL;
            pos = next;
            continue;
          }
        }
        const n = this.streamLeft < end - pos ? this.streamLeft : end - pos;
        this.passOn(buf, pos, pos + n);
        this.streamLeft -= n;
        this.streamed += n;
        pos += n;
        continue;
      }
      rsp.resume = this.resume;
      const next = this.parseReply(buf, pos, end, rsp);
      if (next === NEED_MORE) {
        if (rsp.opaque >= this.streamMin && rsp.opaque > 0 && this.streamable()) {
          this.streamLeft = rsp.opaque;
          this.resume = rsp.next;
          continue;
        }
        this.need = rsp.need;
        return pos;
      }
      if (next === FATAL) {
        this.malformed(rsp.error);
        return FATAL;
      }
      pos = next;
      const streamed = this.streamed;
      this.resume = 0;
      this.streamed = 0;
      if (!this.replied(buf, rsp.start, next, streamed)) return FATAL;
    }
    this.need = 0;
    return this.settled() ? pos : FATAL;
  }

  /** Forget a reply being streamed (the connection closed); true if there was one. */
  protected dropStream(): boolean {
    const was = this.resume !== 0;
    this.streamLeft = this.resume = this.streamed = 0;
    return was;
  }
}
