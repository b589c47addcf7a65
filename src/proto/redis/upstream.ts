// How redis requests are written onto a server connection (Codec.upstream). A request goes as
// the client sent it (an inline command as a RESP array of its arguments), a split's fragment as
// buildFragment writes it. With coalesce_gets (the default) the MGET fragments a connection gets
// in one loop turn are joined into one MGET: a fragment whose connection's unsent output ends
// with an MGET fragment adds its keys to that command (its argument count rewritten), up to
// MAX_JOINED_BYTES a command; anything else appended, or a write, ends the command. redis then
// runs one command instead of several small ones. On the way back the reply parser divides the
// joined reply's array by each fragment's key count (Outbound.values): the first fragment's part
// starts after the array header, so every part is a run of values (merge.ts takes them so). A
// joined MGET that gets an error (redis -NOPERM for a key the connection's ACL user may not read
// is the one error that depends on the keys) is sent again fragment by fragment (resend), so
// only the request that asked for that key gets it. Not in redis_cluster pools: there a
// fragment's keys are one slot's, and a joined command would span slots.

import type { PoolConfig } from "../../conf/types.ts";
import { decimalDigits } from "../../lib/bytes.ts";
import { FATAL, NEED_MORE, Route, type Outbound, type Req, type Rsp, type Split, type Upstream, type UpstreamSink } from "../codec.ts";
import { factsOf, type ServerFacts } from "./facts.ts";
import { appendKeys, buildFragment, writeArgs, writeMget } from "./fragment.ts";
import { CR, DOLLAR, LF, MAX_BULK, MINUS, NUMBER_INCOMPLETE, NUMBER_INVALID, numberValue, readNumber, STAR } from "./resp.ts";
import { parseResponse } from "./response.ts";

/** A joined MGET takes no more fragments once it is this long (a few hundred keys). */
export const MAX_JOINED_BYTES = 8192;

/** The whole request, as the client sent it (an inline one as a RESP array). */
function writeWhole(buf: Uint8Array, req: Req, msg: Outbound, sink: UpstreamSink): void {
  if (req.inline) {
    const out = sink.out;
    const before = out.len;
    writeArgs(buf, req, out);
    msg.bytes = out.len - before;
    return;
  }
  sink.send(buf, req.start, req.end);
  msg.bytes = req.end - req.start;
}

/** A reply to the preamble (head null) tells the pool's ServerFacts the server's version. */
function parseAlone(facts: ServerFacts, buf: Uint8Array, pos: number, end: number, rsp: Rsp, head: Outbound | null): number {
  const next = parseResponse(buf, pos, end, rsp);
  if (head === null && next > 0) facts.learn(buf, rsp.start, next);
  return next;
}

/** coalesce_gets: false, or a redis_cluster pool: stateless. */
function separateCommands(facts: ServerFacts): Upstream {
  return {
    forward: writeWhole,
    fragment(req, split, _group, order, from, n, msg, sink) {
      const out = sink.out;
      const before = out.len;
      buildFragment(split.bytes, req, order, from, n, out);
      msg.bytes = out.len - before;
    },
    sent() {},
    parseReply: (buf, pos, end, rsp, head) => parseAlone(facts, buf, pos, end, rsp, head),
    resend: () => false,
  };
}

/** coalesce_gets: true. One per server connection: the MGET at the end of its output. */
class JoinedMgets implements Upstream {
  /** The MGET fragment last appended is still open to more keys: where it starts, counted from
   *  out.head (which moves only when the socket takes bytes, and that ends the command), and
   *  its argument count (the command name and its keys). */
  private tailOpen = false;
  private tailStart = 0;
  private tailArgs = 0;
  /** Values of the joined reply being read that belong to the fragments after the head (0:
   *  not inside one). */
  private left = 0;

  constructor(private readonly facts: ServerFacts) {}

  forward(buf: Uint8Array, req: Req, msg: Outbound, sink: UpstreamSink): void {
    this.tailOpen = false;
    writeWhole(buf, req, msg, sink);
  }

  fragment(req: Req, split: Split, group: number, order: Int32Array, from: number, n: number, msg: Outbound, sink: UpstreamSink): void {
    const out = sink.out;
    const before = out.len;
    if (req.command!.route !== Route.Get) {
      this.tailOpen = false;
      buildFragment(split.bytes, req, order, from, n, out);
      msg.bytes = out.len - before;
      return;
    }
    // Kept to send it alone again (resend) and to divide a joined reply (parseReply).
    msg.keyBuf = split.bytes;
    msg.keys = split.keys;
    msg.keyGroup = group;
    msg.values = n;
    if (this.tailOpen && out.size - this.tailStart < MAX_JOINED_BYTES) {
      const grew = this.countMore(out, n);
      const keysAt = out.len;
      appendKeys(split.bytes, req, order, from, n, out);
      msg.bytes = out.len - keysAt + grew;
      msg.joined = true;
      return;
    }
    buildFragment(split.bytes, req, order, from, n, out);
    msg.bytes = out.len - before;
    this.tailOpen = true;
    this.tailStart = out.size - msg.bytes;
    this.tailArgs = 1 + n;
  }

  /** Rewrite the open MGET's argument count for n more keys; returns the bytes the header grew. */
  private countMore(out: UpstreamSink["out"], n: number): number {
    const digits = decimalDigits(this.tailArgs);
    const args = this.tailArgs + n;
    const grew = decimalDigits(args) - digits;
    if (grew > 0) {
      out.reserve(grew);
      const rest = out.head + this.tailStart + 1 + digits;
      out.buf.copyWithin(rest + grew, rest, out.len);
      out.len += grew;
    }
    const first = out.head + this.tailStart + 1;
    for (let p = first + digits + grew, v = args; p > first; v = Math.floor(v / 10)) out.buf[--p] = 48 + (v % 10);
    this.tailArgs = args;
    return grew;
  }

  sent(): void {
    this.tailOpen = false;
  }

  parseReply(buf: Uint8Array, pos: number, end: number, rsp: Rsp, head: Outbound | null): number {
    if (head === null) return parseAlone(this.facts, buf, pos, end, rsp, head);
    let left = this.left;
    if (left === 0) {
      const next = head.snext;
      // Not a joined MGET, or its error (which answers every fragment on it).
      if (next === null || !next.joined || buf[pos] !== STAR) return parseResponse(buf, pos, end, rsp);
      const values = readNumber(buf, pos + 1, end);
      if (values === NUMBER_INCOMPLETE) return needMore(rsp, pos);
      if (values === NUMBER_INVALID || buf[pos + 1] === MINUS) return malformed(rsp, pos, "invalid array length");
      left = numberValue(buf, pos + 1);
      pos = values;
    }
    if (left < head.values) return malformed(rsp, pos, "a joined MGET's reply has fewer values than its keys");
    const valuesStart = pos;
    let p = pos;
    for (let i = 0; i < head.values; i++) {
      const next = mgetValueEnd(buf, p, end, rsp);
      if (next === NEED_MORE) return needMore(rsp, valuesStart);
      if (next < 0) return next;
      p = next;
    }
    rsp.reset(valuesStart);
    rsp.end = p;
    // Committed only now: a part that needed more bytes is parsed again from its start.
    this.left = left - head.values;
    return p;
  }

  resend(msg: Outbound, sink: UpstreamSink): boolean {
    if (msg.keys === null) return false;
    const out = sink.out;
    const before = out.len;
    writeMget(msg.keyBuf!, msg.keys, msg.keyGroup, out);
    msg.bytes = out.len - before;
    msg.joined = false;
    // Nothing joins it: it must get its own reply.
    this.tailOpen = false;
    return true;
  }
}

/** The end of the MGET value at buf[p], NEED_MORE or FATAL: a bulk string is read here (most
 *  are), anything else (a null, or what a redis that is not one sends) by the general parser. */
function mgetValueEnd(buf: Uint8Array, p: number, end: number, rsp: Rsp): number {
  if (buf[p] === DOLLAR && buf[p + 1] !== MINUS) {
    const data = readNumber(buf, p + 1, end);
    const length = data < 0 ? -1 : numberValue(buf, p + 1);
    if (length >= 0 && length <= MAX_BULK) {
      const stop = data + length + 2;
      if (stop > end) return NEED_MORE;
      if (buf[stop - 2] === CR && buf[stop - 1] === LF) return stop;
    }
  }
  rsp.resume = 0;
  return parseResponse(buf, p, end, rsp);
}

/** A part of a joined reply is not all there: parsed again from `pos` when more bytes came (no
 *  streaming: its bytes are not final until its last value is). */
function needMore(rsp: Rsp, pos: number): number {
  rsp.reset(pos);
  rsp.need = 1;
  return NEED_MORE;
}

function malformed(rsp: Rsp, pos: number, error: string): number {
  rsp.reset(pos);
  rsp.error = error;
  return FATAL;
}

/** The writer of a new server connection of `pool`. */
export function upstreamFor(pool: PoolConfig): Upstream {
  const facts = factsOf(pool.name);
  return pool.coalesceGets && pool.distribution !== "redis_cluster" ? new JoinedMgets(facts) : separateCommands(facts);
}
