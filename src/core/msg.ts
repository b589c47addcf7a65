// A request in flight. Every request owns a reply slot in its client's queue from the moment it
// is parsed; replies fill slots in any order and the client writes out the filled prefix. A
// split request is a parent slot whose fragments travel to servers as child messages.

import type { Route, Split } from "../proto/codec.ts";
import type { ClientConn } from "./client.ts";
import type { Server } from "./server.ts";

/** What a parent remembers to merge its fragments' replies (see Codec.merge). */
export class SplitState implements Split {
  /** Fragments still waiting for a reply. */
  pending: number;
  /** First proxy-made error of any fragment: the whole request gets it. */
  error: string | null = null;
  readonly fragBuf: Uint8Array[];
  readonly fragPos: Int32Array;

  constructor(
    readonly route: Route,
    readonly bytes: Uint8Array,
    readonly nkeys: number,
    readonly keys: Int32Array,
    readonly nfrags: number,
  ) {
    this.pending = nfrags;
    this.fragBuf = new Array<Uint8Array>(nfrags);
    this.fragPos = new Int32Array(2 * nfrags);
  }
}

export const MSG_SILENT = 1; // memcached noreply: the reply is dropped
export const MSG_CLOSE = 2; // QUIT or a fatal protocol error: close the client after this reply
export const MSG_JOINED = 4; // went upstream on the command line of the message before it (Codec.join)
export const MSG_OPEN = 8; // its reply lacks the terminator (Rsp.open): the client adds Codec.join.end

export class Msg {
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
  /** A retrieval that is not a fragment, when retrievals are joined: its keys, separated by
   *  spaces, are keyBuf[keyStart, keyEnd) (for its reply's boundaries, Rsp.joined). */
  keyBuf: Uint8Array | null = null;
  keyStart = 0;
  keyEnd = 0;
  /** Request bytes sent upstream (queue stats). */
  bytes = 0;
  /** Request bytes read from the client (client backpressure). */
  inBytes = 0;
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
