// Parsing a reply stream the way a server connection streams large replies (core/server.ts):
// after NEED_MORE with an opaque prefix, those bytes are passed on unparsed and the reply is
// parsed further from where they end (Rsp.resume = next).

import { FATAL, NEED_MORE, Rsp, type Codec } from "../../src/proto/codec.ts";

export interface StreamedFraming {
  /** [start, end) of every complete reply. */
  replies: [number, number][];
  /** Bytes passed on as opaque. */
  passed: number;
  fatal: string | null;
}

/** Parses `stream` arriving in chunks of `sizes` (cycled); opaque prefixes of at least
 *  `minOpaque` bytes are passed on. `prepare(rsp, i)` sets the inputs for reply i (Rsp.joined
 *  and its keys) before its first parse; they are kept across its resumed parses. */
export function parseStreamed(
  codec: Codec,
  stream: Uint8Array,
  sizes: number[],
  minOpaque = 1,
  prepare?: (rsp: Rsp, reply: number) => void,
): StreamedFraming {
  const rsp = new Rsp();
  const replies: [number, number][] = [];
  let received = 0;
  let pos = 0;
  let need = 0;
  let left = 0;
  let resume = 0;
  let start = 0;
  let passed = 0;
  for (let i = 0; received < stream.length; i++) {
    received = Math.min(stream.length, received + sizes[i % sizes.length]!);
    while (pos < received) {
      if (left > 0) {
        const n = Math.min(left, received - pos);
        left -= n;
        passed += n;
        pos += n;
        continue;
      }
      if (received - pos < need) break;
      if (resume === 0) {
        start = pos;
        prepare?.(rsp, replies.length);
      }
      rsp.resume = resume;
      const r = codec.parseResponse(stream, pos, received, rsp);
      if (r === NEED_MORE) {
        if (rsp.opaque > 0 && rsp.opaque >= minOpaque) {
          if (rsp.next === 0) throw new Error("opaque without a state to resume with");
          left = rsp.opaque;
          resume = rsp.next;
          need = 0;
          continue;
        }
        need = rsp.need;
        break;
      }
      if (r === FATAL) return { replies, passed, fatal: rsp.error };
      replies.push([start, r]);
      pos = r;
      resume = 0;
      need = 0;
    }
  }
  return { replies, passed, fatal: null };
}
