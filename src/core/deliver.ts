// Filling reply slots: a server's reply (deliver), a proxy-made error (fail), a reply the proxy
// decided itself (answerLocally), and the merged reply of a split request once its last
// fragment is in. The client then writes out the filled prefix of its queue (ClientConn.advance);
// a reply to the slot its client waits for next goes straight to its output (writeHead).

import type { ByteWriter } from "../lib/bytes.ts";
import { P } from "../stats/table.ts";
import { MSG_SILENT, type Msg } from "./msg.ts";
import type { Pool } from "./pool.ts";

const NOTHING = new Uint8Array(0);

/** buf[start, end) is the server's complete reply to msg (a request or a fragment). */
export function deliver(pool: Pool, msg: Msg, buf: Uint8Array, start: number, end: number, now: number): void {
  msg.server!.stats.observe((now - msg.t0) * 1000);
  const parent = msg.parent;
  if (parent !== null) {
    if (parent.split!.fill(msg.fragIndex, buf, start, end)) finishSplit(pool, parent, now);
    return;
  }
  const c = msg.client;
  if ((msg.flags & MSG_SILENT) !== 0) {
    msg.done = true;
    c.advance();
  } else if (c.first === msg) {
    c.writeHead(msg, buf, start, end, now);
  } else {
    msg.setReply(buf, start, end);
    msg.done = true;
  }
}

/** msg (a request or a fragment) gets a proxy-made error instead of a server reply. */
export function fail(pool: Pool, msg: Msg, reason: string): void {
  pool.stats.counters[P.forward_error]!++;
  const parent = msg.parent;
  if (parent !== null) {
    if (parent.split!.failed(reason, msg.fragIndex)) finishSplit(pool, parent, performance.now());
    return;
  }
  msg.setReply((msg.flags & MSG_SILENT) !== 0 ? null : pool.errorReply(reason));
  msg.done = true;
  msg.client.advance();
}

/** msg is answered by the proxy itself with `reply` (null: nothing is written). */
export function answerLocally(pool: Pool, msg: Msg, reply: Uint8Array | null): void {
  pool.stats.counters[P.requests_local]!++;
  msg.setReply(reply);
  msg.done = true;
  msg.client.advance();
}

/** Every fragment of a split request has its reply: the merged reply goes straight into the
 *  client's output when the client waits for it next; else the slot is done with its split kept,
 *  and merged into the output when its turn comes (ClientConn.advance: writeMerged), not built
 *  aside and copied. */
export function finishSplit(pool: Pool, parent: Msg, now: number): void {
  const split = parent.split!;
  const c = parent.client;
  if (split.error !== null) {
    parent.split = null;
    parent.setReply((parent.flags & MSG_SILENT) !== 0 ? null : pool.errorReply(split.error));
  } else if (c.closed || (parent.flags & MSG_SILENT) !== 0) {
    parent.split = null;
    parent.setReply(null);
  } else if (c.first === parent) {
    const own = writeMerged(pool, parent, c.out);
    c.writeHead(parent, own, 0, own.length, now);
    return;
  }
  parent.done = true;
  c.advance();
}

/** Merge the replies of parent's split (all in) into `out`; returns what is to be written after
 *  them (a reply of its own the merge chose, e.g. an error, else nothing). */
export function writeMerged(pool: Pool, parent: Msg, out: ByteWriter): Uint8Array {
  const split = parent.split!;
  parent.split = null;
  return (split.mergeWith === null ? pool.codec.merge(split, out, parent.client.session) : split.mergeWith(split, out)) ?? NOTHING;
}
