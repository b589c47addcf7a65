// A request in flight. Every request owns a reply slot in its client's queue from the moment it
// is parsed; replies fill slots in any order and the client writes out the filled prefix. A
// split request is a parent slot whose fragments travel to servers as child messages.

import type { Outbound } from "../proto/codec.ts";
import type { ClientConn } from "./client.ts";
import type { Server } from "./server.ts";
import type { SplitState } from "./split.ts";

export const MSG_SILENT = 1; // memcached noreply: the reply is dropped
export const MSG_CLOSE = 2; // QUIT or a fatal protocol error: close the client after this reply
export const MSG_OPEN = 4; // its reply lacks the terminator (Rsp.open): the client adds Codec.openEnd
export const MSG_READ = 8; // redis_cluster: a read-only command, safe to send again (cluster-resend.ts)
export const MSG_PUSH = 16; // a message its server pushed to a subscriber: no request, no latency
export const MSG_OWN = 32; // redis_cluster: on its client's own connection, redirected only to another (cluster-dispatch.ts)
export const MSG_WATCHED = 64; // redis_cluster: of a transaction that watches keys (WATCH ... EXEC): a redirection fails it

export class Msg implements Outbound {
  /** Next in the client's reply queue. */
  cnext: Msg | null = null;
  /** Next in a server connection's queue. */
  snext: Msg | null = null;
  done = false;
  /** The reply, once ready and not yet written: reply[replyStart, replyEnd) (a view would cost
   *  an allocation per reply that waits for an earlier one). */
  reply: Uint8Array | null = null;
  replyStart = 0;
  replyEnd = 0;
  flags = 0;
  /** The split parent of a fragment. */
  parent: Msg | null = null;
  fragIndex = 0;
  split: SplitState | null = null;
  /** The server the request (or fragment) went to. */
  server: Server | null = null;
  // Outbound: set by the server connection's Upstream when it writes the request.
  bytes = 0;
  joined = false;
  keyBuf: Uint8Array | null = null;
  keys: Int32Array | null = null;
  keyGroup = 0;
  keyStart = 0;
  keyEnd = 0;
  values = 0;
  /** redis_cluster pools (cluster-dispatch.ts): the bytes sent for this request or fragment,
   *  kept to send them again when a node redirects it (with MSG_OWN: a blocking request's, or a
   *  transaction's, whole with its EXEC); its slot; how often it was sent again. Other pools
   *  keep a blocking request's bytes here, for an ejection or a reload to see where its keys
   *  went (health.ts). */
  sentBuf: Uint8Array | null = null;
  sentStart = 0;
  sentEnd = 0;
  slot = -1;
  resends = 0;
  /** Request bytes read from the client (client backpressure). */
  inBytes = 0;
  /** How much longer than the pool's timeout it may wait for its reply, in ms (a blocking
   *  command's own timeout; Infinity: no limit). */
  extraWait = 0;
  /** Sent only once every earlier request of its client is answered (redis WAIT): called when
   *  it becomes the head of its client's queue (ClientConn.advance). */
  onHead: (() => void) | null = null;
  /** performance.now() when parsed: latency and timeouts. */
  readonly t0: number;

  constructor(
    readonly client: ClientConn,
    t0: number,
  ) {
    this.t0 = t0;
  }

  /** Fill the slot with buf[start, end), or with nothing (a dropped or closing reply). */
  setReply(buf: Uint8Array | null, start = 0, end = buf === null ? 0 : buf.length): void {
    this.reply = buf;
    this.replyStart = start;
    this.replyEnd = end;
  }
}
