// How memcached requests are written onto a server connection (Codec.upstream). Without
// coalesce_gets: as the client sent them (a noreply request without its noreply, a split's
// fragments as split.ts builds them). With it (the default), a get or gets whose connection's
// unsent output ends with a line of the same command takes that line's line end off and adds
// its keys (join.ts), up to MAX_JOINED_LINE bytes a line, and never with a key already on the
// line (LineKeys); anything else appended, or a write, ends the line. Such a request is
// `joined`; the reply parser is then told the keys of a request whose successor joined its
// line (parseReply), so the line's reply is divided by key.

import type { PoolConfig } from "../../conf/types.ts";
import type { ByteWriter } from "../../lib/bytes.ts";
import type { Outbound, Req, Rsp, Split, Upstream, UpstreamSink } from "../codec.ts";
import { appendAllKeys, appendKeys, LineKeys, openLineEnd } from "./join.ts";
import { buildForward } from "./request.ts";
import { parseResponse } from "./response.ts";
import { buildFragment } from "./split.ts";

/** A joined retrieval line takes no more requests once it is this long: memcached reads longer
 *  lines on a slower path (it takes them from get and gets only). */
export const MAX_JOINED_LINE = 2048;

const NO_KEYS = new Uint8Array(0);

/** The whole request: byte for byte, or rebuilt without its noreply (its reply is dropped). */
function writeWhole(buf: Uint8Array, req: Req, msg: Outbound, sink: UpstreamSink): void {
  if (req.noreply) {
    const out = sink.out;
    const before = out.len;
    buildForward(buf, req, out);
    msg.bytes = out.len - before;
  } else {
    sink.send(buf, req.start, req.end);
    msg.bytes = req.end - req.start;
  }
}

function writeFragment(req: Req, split: Split, order: Int32Array, from: number, n: number, msg: Outbound, out: ByteWriter): void {
  const before = out.len;
  buildFragment(split.bytes, req, order, from, n, out);
  msg.bytes = out.len - before;
}

/** coalesce_gets: false. Stateless: one serves every connection. */
const separateLines: Upstream = {
  forward: writeWhole,
  fragment(req, split, _group, order, from, n, msg, sink) {
    writeFragment(req, split, order, from, n, msg, sink.out);
  },
  sent() {},
  parseReply: parseResponse,
  resend: () => false,
};

/** coalesce_gets: true. One per server connection: the line at the end of its output. */
class JoinedLines implements Upstream {
  /** The request last appended to the output when it is a retrieval line that requests of the
   *  same kind (CommandSpec.join) may still join: its kind (0: none) and where its line starts,
   *  counted from out.head (which moves only when the socket takes bytes, and that ends the
   *  line). */
  private tailKind = 0;
  private tailStart = 0;
  /** The keys on that line, and whether the keys of its first request are still to be added
   *  (done at the first request that would join it). */
  private readonly tailKeys = new LineKeys();
  private tailKeysStale = false;

  forward(buf: Uint8Array, req: Req, msg: Outbound, sink: UpstreamSink): void {
    const kind = req.command!.join ?? 0;
    if (kind !== 0) {
      // Kept for the reply's boundaries, should later retrievals join this one's line.
      msg.keyBuf = buf;
      msg.keys = null;
      msg.keyStart = req.keyStart(0);
      msg.keyEnd = req.keyEnd(req.nkeys - 1);
      const out = sink.out;
      const lineEnd = this.joinTail(kind, buf, req, null, 0, req.nkeys, out);
      if (lineEnd !== 0) {
        const before = out.len;
        appendAllKeys(buf, req, out);
        this.joined(msg, out.len - before - lineEnd);
        return;
      }
    }
    writeWhole(buf, req, msg, sink);
    this.appended(kind, msg.bytes, sink.out);
  }

  fragment(req: Req, split: Split, group: number, order: Int32Array, from: number, n: number, msg: Outbound, sink: UpstreamSink): void {
    const kind = req.command!.join ?? 0;
    const out = sink.out;
    if (kind !== 0) {
      msg.keyBuf = split.bytes;
      msg.keys = split.keys;
      msg.keyGroup = group;
      const lineEnd = this.joinTail(kind, split.bytes, req, order, from, n, out);
      if (lineEnd !== 0) {
        const before = out.len;
        appendKeys(split.bytes, req, order, from, n, out);
        this.joined(msg, out.len - before - lineEnd);
        return;
      }
    }
    writeFragment(req, split, order, from, n, msg, out);
    this.appended(kind, msg.bytes, out);
  }

  sent(): void {
    this.tailKind = 0;
  }

  /** A joined line's error answers every request on it: memcached's line errors (a server out
   *  of memory) do not depend on the keys (the parser already refused bad ones). */
  resend(): boolean {
    return false;
  }

  parseReply(buf: Uint8Array, pos: number, end: number, rsp: Rsp, head: Outbound | null): number {
    const next = head?.snext ?? null;
    const joined = next !== null && next.joined;
    rsp.joined = joined;
    if (!joined) return parseResponse(buf, pos, end, rsp);
    rsp.keyBuf = head!.keyBuf!;
    rsp.keys = head!.keys;
    rsp.keyGroup = head!.keyGroup;
    rsp.keyStart = head!.keyStart;
    rsp.keyEnd = head!.keyEnd;
    const reached = parseResponse(buf, pos, end, rsp);
    if (reached >= 0) {
      // Let go of the client's read buffer.
      rsp.keyBuf = NO_KEYS;
      rsp.keys = null;
    }
    return reached;
  }

  /** The request added `bytes` (what its keys and the line end taken off by joinTail add up to,
   *  so the queue stats of a line's requests add up to its length) onto the line at the end. */
  private joined(msg: Outbound, bytes: number): void {
    msg.bytes = bytes;
    msg.joined = true;
  }

  /** A request of join kind `kind` (0: none) was appended whole, `bytes` long: its line is the
   *  tail of `out` unless it was written through (or held) as a large one. */
  private appended(kind: number, bytes: number, out: ByteWriter): void {
    const start = out.size - bytes;
    const open = kind !== 0 && start >= 0 && openLineEnd(out.buf, out.head + start, out.len) !== 0;
    this.tailKind = open ? kind : 0;
    this.tailStart = start;
    this.tailKeysStale = open;
  }

  /** Can a retrieval of `kind` with the keys order[from, from + n) of req (order null: its
   *  keys from, from + 1, ...) go onto the line at the end of `out`: one of that kind, not too
   *  long, without any of these keys? If so, that line's end is taken off for its keys; returns
   *  the length of the line end taken off, 0 for no. */
  private joinTail(kind: number, buf: Uint8Array, req: Req, order: Int32Array | null, from: number, n: number, out: ByteWriter): number {
    if (this.tailKind !== kind || out.size - this.tailStart > MAX_JOINED_LINE) return 0;
    const keys = this.tailKeys;
    const line = out.buf;
    const lineStart = out.head + this.tailStart;
    const lineEnd = openLineEnd(line, lineStart, out.len);
    const contentEnd = out.len - lineEnd;
    if (this.tailKeysStale) {
      keys.reset(line, lineStart, contentEnd);
      this.tailKeysStale = false;
    }
    for (let j = from; j < from + n; j++) {
      const k = order === null ? j : order[j]!;
      // Keys added before a refusal only make later refusals likelier: this request starts
      // a new line, which starts a new set.
      if (!keys.add(buf, req.keyStart(k), req.keyEnd(k), line, lineStart, contentEnd)) return 0;
    }
    out.truncate(out.size - lineEnd);
    return lineEnd;
  }
}

/** The writer of a new server connection of `pool`. */
export function upstreamFor(pool: PoolConfig): Upstream {
  return pool.coalesceGets ? new JoinedLines() : separateLines;
}
