// One connection to a backend server. It carries requests of many clients; the backend answers
// in order, so replies are matched to the FIFO of messages sent on it. How requests are written
// and replies read is its Upstream's business (Codec.upstream); what it sends first, its
// group's preamble (Codec.preamble), whose replies it swallows. Large replies stream to their
// client as they arrive (reply-stream.ts).

import type { Socket, SocketHandler } from "bun";
import type { Address } from "../conf/types.ts";
import { LOG_INFO, log } from "../log.ts";
import { ByteWriter } from "../lib/bytes.ts";
import { Unasked, type Rsp, type Upstream, type UpstreamSink } from "../proto/codec.ts";
import { S } from "../stats/table.ts";
import { redirected, resubscribed } from "./cluster-dispatch.ts";
import { resendLost } from "./cluster-resend.ts";
import { answeredAll, dedicatedClosed, DedicatedRole, type Dedicated } from "./dedicated.ts";
import { deliver, fail } from "./deliver.ts";
import { describeError } from "./errors.ts";
import type { ClientConn } from "./client.ts";
import { HeldViews, markDirty, markQueued, send, writeOut, type Output, type Queued } from "./flush.ts";
import { serverAnswered, serverDemoted, serverFailed } from "./health.ts";
import { MSG_OPEN, MSG_SILENT, Msg } from "./msg.ts";
import { ReplyStream } from "./reply-stream.ts";
import type { ConnGroup, Server } from "./server.ts";

/** A reply whose known-size part (Rsp.opaque) is at least this large is passed on to its client
 *  as its bytes arrive, when that client waits for it next, instead of being gathered first. */
const STREAM_MIN = 32768;

/** A client streaming a request pauses while its connection holds this many bytes not yet taken
 *  (ClientConn.streamOn), and resumes below half. */
export const STREAM_BACKLOG = 1 << 20;

/** Requests of many clients are coalesced every loop turn: keep the buffer warm. */
const KEEP_OUT_BYTES = 1 << 20;

/** Requests are written at the loop turn's end, or once this many bytes wait: in a long turn
 *  (many pipelining clients) the server starts on the first ones while the proxy reads the
 *  rest. Measured at pipeline 16 against 2 KB, 6 KB, 12 KB and none (bench/README.md). */
const EARLY_WRITE_BYTES = 4096;

const handlers: SocketHandler<ServerConn> = {
  binaryType: "uint8array",
  open(s) {
    s.data.onOpen(s);
  },
  data(s, chunk) {
    s.data.onData(chunk);
  },
  drain(s) {
    s.data.onDrain();
  },
  close(s, err) {
    s.data.onClosed(err);
  },
  connectError(s, err) {
    s.data.onClosed(err);
  },
  error(s, err) {
    s.data.onClosed(err);
  },
};

export class ServerConn extends ReplyStream implements Queued, UpstreamSink, Output {
  private socket: Socket<ServerConn> | null = null;
  readonly out = new ByteWriter();
  /** Large requests the socket has not taken yet (written before `out`; Output). */
  held: HeldViews | null = null;
  /** Writes requests onto `out` and reads the replies (per connection: it may keep state). */
  readonly upstream: Upstream;
  dirty = false;
  private blocked = false;
  closed = false;
  /** Why it closed: the reply of a request pushed after that (a connect that failed at once). */
  private closeReason = "";
  /** Messages sent (or queued to send) on this connection, oldest first. */
  first: Msg | null = null;
  /** A connection of one client alone, or a hub's (dedicated.ts); null for one of the pool's
   *  connection groups. */
  dedicated: Dedicated | null = null;
  private last: Msg | null = null;
  /** The connection was lost (closed or refused by the server, or failed), not closed by the
   *  proxy: a cluster pool may send its requests again (cluster-resend.ts). */
  private lost = false;
  /** Close once every request on it is answered (its server left the pool). */
  private retiring = false;
  /** performance.now() when the chunk being parsed arrived (reply latency). */
  private now = 0;
  /** Preamble replies still to swallow. */
  private preambleReplies = 0;
  /** Messages on this connection: the first `queued - unsent` are written (out_queue), the
   *  last `unsent` were appended since the last complete write (in_queue). */
  private queued = 0;
  private unsent = 0;
  private unsentBytes = 0;
  /** A request streamed onto it as its client sends it (ClientConn.streamOn): it and what was
   *  written before it go through `held`; what is written after it waits in `out` until it ends.
   *  One at a time. */
  private streaming: Msg | null = null;
  /** The last request streamed, and when its last byte went: its wait for a reply starts there. */
  private lastStreamed: Msg | null = null;
  private streamedAt = 0;
  /** performance.now() of the streaming request's last bytes (a client that stalls). */
  private streamProgress = 0;
  /** The streaming client, paused until the connection has taken its bytes. */
  private streamWaiter: ClientConn | null = null;
  /** The stream was cut (its client left mid-request): the connection closes once the requests
   *  before it are answered. */
  private streamCut = false;

  /** Where it connects: its server's address when it was made (a failover moves the server;
   *  connections made before finish on the old address). */
  private readonly addr: Address;

  constructor(
    readonly server: Server,
    /** Its requests' connection group (Codec.group: the protocol they are answered in). */
    readonly group: ConnGroup,
    private readonly slot: number,
  ) {
    super(STREAM_MIN);
    this.addr = server.addr;
    this.out.keep = KEEP_OUT_BYTES;
    this.upstream = server.pool.codec.upstream(server.pool.cfg);
  }

  /** Its connection group's Codec.group id (what it sent first). */
  get groupId(): number {
    return this.group.id;
  }

  /** How logs name it: its server, and the address it went to when a failover moved that. */
  get name(): string {
    return this.server.nameAt(this.addr);
  }

  connect(): void {
    const pool = this.server.pool;
    // nutcracker counts a server connection from the attempt on, refused or not.
    pool.proxyStats.totalConnections++;
    pool.proxyStats.currConnections++;
    const preamble = pool.codec.preamble(pool.cfg, this.group.id);
    if (preamble !== null) {
      this.out.bytes(preamble.bytes);
      this.preambleReplies = preamble.replies;
    }
    pool.sockets.connect(this.addr, handlers, this).catch((err: Error) => this.onClosed(err));
  }

  onOpen(s: Socket<ServerConn>): void {
    if (this.closed) {
      s.end();
      return;
    }
    this.socket = s;
    s.setNoDelay(true);
    if (this.server.pool.cfg.tcpkeepalive) s.setKeepAlive(true);
    this.server.stats.counters[S.server_connections]!++;
    if (log.level >= LOG_INFO) log.info(`connected to server ${this.name}`);
    this.flush();
  }

  /** Send request bytes (coalesced, or written through when large). */
  send(buf: Uint8Array, start: number, end: number): void {
    // Behind a request streaming, everything waits in `out`.
    if (this.streaming !== null) this.out.bytes(buf, start, end);
    else if (send(this.socket, this.blocked, this, buf, start, end)) this.blocked = true;
  }

  private heldViews(): HeldViews {
    return (this.held ??= new HeldViews());
  }

  /** May a request start streaming onto it? */
  get canStream(): boolean {
    return this.streaming === null && !this.closed;
  }

  /** Bytes of requests waiting for its next write (flush.ts holds a small one in a busy turn). */
  get unwritten(): number {
    return this.out.size;
  }

  /** Bytes written to it that the socket has not taken yet, before any stream's end. */
  get backlog(): number {
    return this.held === null ? 0 : this.held.bytes;
  }

  /** msg, just pushed with its first bytes written by its Upstream, streams: those bytes and
   *  everything before them go first (`held`); what is written next waits in `out`. */
  startStream(msg: Msg): void {
    this.streaming = msg;
    this.streamProgress = performance.now();
    // Nothing may join a line across it (memcached retrievals).
    this.upstream.sent();
    if (this.out.len !== this.out.head) this.heldViews().push(this.out.detach());
  }

  /** More bytes of the streaming request: written through when nothing waits before them, else
   *  held as a view (never copied). */
  streamPart(buf: Uint8Array, start: number, end: number): void {
    if (this.closed || this.streamCut) return;
    this.streamProgress = performance.now();
    const s = this.socket;
    if (s !== null && !this.blocked && this.backlog === 0) {
      const n = s.write(buf, start, end - start);
      if (n === end - start) return;
      if (n >= 0) this.blocked = true;
      this.heldViews().push(buf.subarray(n > 0 ? start + n : start, end));
      return;
    }
    this.heldViews().push(buf.subarray(start, end));
  }

  /** The streaming client waits for the connection to take its bytes (STREAM_BACKLOG). */
  waitDrain(client: ClientConn): void {
    this.streamWaiter = client;
  }

  /** The streaming request's last bytes were passed on: what waited behind it goes next. */
  endStream(): void {
    this.lastStreamed = this.streaming;
    this.streamedAt = performance.now();
    this.streaming = null;
    this.streamWaiter = null;
    markDirty(this);
  }

  /** The streaming request cannot be finished (its client left or broke it mid-request): the
   *  server holds part of it, so nothing more may be written here. Requests written after it
   *  (still in `out`) move to another connection of the group, and this one closes once the
   *  requests before it are answered. */
  cutStream(): void {
    const msg = this.streaming;
    if (msg === null || this.closed || this.streamCut) return;
    this.streamCut = true;
    this.streamWaiter = null;
    this.group.release(this, this.slot);
    const behind = msg.snext;
    if (behind !== null) {
      msg.snext = null;
      this.last = msg;
      let count = 0;
      let bytes = 0;
      for (let m: Msg | null = behind; m !== null; m = m.snext) {
        count++;
        bytes += m.bytes;
      }
      this.queued -= count;
      this.unsent -= count;
      this.unsentBytes -= bytes;
      this.group.conn().adopt(behind, this.out, count, bytes);
    }
    this.upstream.sent();
    this.out.clear();
    this.out.release();
    this.retiring = true;
    this.server.pool.retiringConns.add(this);
    if (this.first === msg) this.close("its client left in the middle of a request");
  }

  /** Requests moved here from a connection whose stream was cut, with the bytes written for
   *  them (not sent yet), in order after what this one has. */
  private adopt(first: Msg, from: ByteWriter, count: number, bytes: number): void {
    this.upstream.sent();
    this.out.bytes(from.buf, from.head, from.len);
    if (this.last === null) this.first = first;
    else this.last.snext = first;
    let m = first;
    while (m.snext !== null) m = m.snext;
    this.last = m;
    this.queued += count;
    this.unsent += count;
    this.unsentBytes += bytes;
    markDirty(this);
  }

  /** Since when the oldest request waits for its reply (timeouts): a streamed request from its
   *  last byte, and none while its client still sends it (Infinity). A stream stalled for
   *  longer than `timeout` while requests wait behind it is cut, and its client closed: it
   *  would hold them up for ever. */
  waitingSince(now: number, timeout: number): number {
    const head = this.first;
    const streaming = this.streaming;
    if (streaming !== null && !this.streamCut && streaming.snext !== null && now - this.streamProgress > timeout) {
      streaming.client.drop(new Error("stalled in the middle of a request"));
      return Infinity;
    }
    if (head === null || head === this.streaming) return Infinity;
    return head === this.lastStreamed ? this.streamedAt : head.t0;
  }

  /** msg, queued here behind the head, went elsewhere (a redirected transaction,
   *  cluster-dispatch.ts): a silent stand-in takes its place, so that this connection's reply
   *  to it is dropped. */
  standIn(msg: Msg): void {
    const stand = new Msg(msg.client, msg.t0);
    stand.flags = MSG_SILENT;
    stand.server = this.server;
    stand.bytes = msg.bytes;
    stand.snext = msg.snext;
    msg.snext = null;
    if (this.first === msg) this.first = stand;
    else {
      let m = this.first!;
      while (m.snext !== msg) m = m.snext!;
      m.snext = stand;
    }
    if (this.last === msg) this.last = stand;
  }

  /** Queue a request its Upstream has just written (msg.bytes says how much it added). */
  push(msg: Msg): void {
    if (this.closed) {
      fail(this.server.pool, msg, this.closeReason);
      return;
    }
    if (this.last === null) {
      this.first = msg;
      if (this.dedicated !== null) this.dedicated.headSince = msg.t0;
    } else this.last.snext = msg;
    this.last = msg;
    const c = this.server.stats.counters;
    c[S.requests]!++;
    if (msg.joined) c[S.requests_joined]!++;
    c[S.request_bytes]! += msg.bytes;
    c[S.in_queue]!++;
    c[S.in_queue_bytes]! += msg.bytes;
    this.queued++;
    this.unsent++;
    this.unsentBytes += msg.bytes;
    markQueued(this);
    // Not while a request streams: what comes after it waits in `out` anyway, and its flush
    // may resume the streaming client, whose parsing must not run inside another's.
    if (this.out.size >= EARLY_WRITE_BYTES && this.streaming === null) this.flush();
  }

  flush(): void {
    const s = this.socket;
    if (s === null || this.blocked || this.closed) return;
    if (this.streaming !== null) {
      // Up to the stream's bytes so far; what comes after it waits in `out`.
      if (this.backlog !== 0 && !this.heldViews().writeTo(s)) {
        this.blocked = true;
        return;
      }
      const waiter = this.streamWaiter;
      if (waiter !== null) {
        this.streamWaiter = null;
        waiter.streamDrained();
      }
      return;
    }
    // What the socket takes is final.
    this.upstream.sent();
    if (!writeOut(s, this)) {
      this.blocked = true;
      return;
    }
    if (this.unsent !== 0) {
      const c = this.server.stats.counters;
      c[S.in_queue]! -= this.unsent;
      c[S.in_queue_bytes]! -= this.unsentBytes;
      c[S.out_queue]! += this.unsent;
      c[S.out_queue_bytes]! += this.unsentBytes;
      this.unsent = 0;
      this.unsentBytes = 0;
    }
  }

  onDrain(): void {
    this.blocked = false;
    this.flush();
  }

  onData(chunk: Uint8Array): void {
    if (this.closed) return;
    this.now = performance.now();
    this.feed(chunk);
  }

  protected parseReply(buf: Uint8Array, pos: number, end: number, rsp: Rsp): number {
    return this.upstream.parseReply(buf, pos, end, rsp, this.preambleReplies === 0 ? this.first : null);
  }

  protected passOn(buf: Uint8Array, start: number, end: number): void {
    this.first!.client.writePart(buf, start, end);
  }

  protected replied(buf: Uint8Array, start: number, end: number, streamed: number): boolean {
    const rsp = this.rsp;
    const server = this.server;
    if (this.preambleReplies > 0) {
      this.preambleReplies--;
      if (rsp.isError) {
        log.error(
          `server ${this.name} refused the connection handshake: ` +
            new TextDecoder().decode(buf.subarray(rsp.start, end)).trim(),
        );
      }
      return true;
    }
    const pool = server.pool;
    const dedicated = this.dedicated;
    if (dedicated !== null && dedicated.role !== DedicatedRole.Lent && this.pushed(dedicated, buf, rsp.start, end)) return true;
    const head = this.first;
    if (head === null) {
      this.broken("sent a reply nobody asked for");
      return false;
    }
    const now = this.now;
    this.dequeue(head, end - start + streamed);
    if (rsp.failure) serverFailed(pool, server);
    else serverAnswered(server);
    if (rsp.demoted) serverDemoted(pool, server);
    if (dedicated !== null && dedicated.hub !== null) dedicated.hub.answered(head, rsp.isError);
    if (rsp.open) head.flags |= MSG_OPEN;
    // A cluster node may send the request elsewhere (MOVED, ASK) or ask for it again later; a
    // client's (un)subscribe goes on its own connection to the new owner.
    if (rsp.isError && pool.cluster !== null) {
      const again =
        dedicated !== null && dedicated.role === DedicatedRole.Subscriber
          ? dedicated.owner !== null && resubscribed(pool, pool.cluster, head, buf, rsp.start, end)
          : redirected(pool, pool.cluster, head, buf, rsp.start, end, this);
      // A lent connection whose last request went elsewhere goes back to its server.
      if (again) return dedicated === null || this.first !== null || answeredAll(this, this.group.id);
    }
    // An error to a command that later requests joined (redis MGET): each goes up again alone.
    if (rsp.isError && this.first !== null && this.first.joined && this.resendJoined(head)) return true;
    deliver(pool, head, buf, start, end, now);
    if (rsp.isError) {
      // The server stopped at the error: requests that went up on the same line get it too
      // (counted once).
      for (let m = this.first; m !== null && m.joined; m = this.first) {
        this.dequeue(m, 0);
        deliver(pool, m, buf, rsp.errorStart, end, now);
      }
    }
    if (dedicated !== null && this.first === null) return answeredAll(this, this.group.id);
    return true;
  }

  /** On a subscriber connection (a client's own, or a hub's shared one): if buf[start, end)
   *  is a message the server pushed, it goes to its clients (after the replies already due to
   *  each; none when its client let go of the connection) and true is returned. On a client's
   *  own, the server may also end a subscription unasked (a cluster node whose slot moved away):
   *  never the reply to a request, its client is told as the planner says. */
  private pushed(dedicated: Dedicated, buf: Uint8Array, start: number, end: number): boolean {
    const planner = this.server.pool.codec.planner!;
    if (dedicated.role === DedicatedRole.Subscriber) {
      const what = planner.unasked(buf, start, end, this.first);
      if (what === Unasked.Reply) return false;
      const owner = dedicated.owner;
      if (owner === null || what === Unasked.Dropped) return true;
      if (what === Unasked.Message) {
        owner.deliverPush(buf, start, end);
        return true;
      }
      const told = planner.ended(buf, start, end, owner.session, this.server);
      if (told !== null) owner.deliverPush(told, 0, told.length);
      return true;
    }
    const topic = planner.pushTopic(buf, start, end);
    if (topic === null) return false;
    dedicated.hub!.deliver(topic, buf, start, end);
    return true;
  }

  protected malformed(error: string | null): void {
    this.broken(`sent a malformed reply: ${error}`);
  }

  protected settled(): boolean {
    if (this.streamCut && this.first === this.streaming) {
      this.close("its client left in the middle of a request");
      return false;
    }
    if (this.retiring && this.first === null) {
      this.close("retired by a reload");
      return false;
    }
    return true;
  }

  /** head's command, with the requests joined to it, got an error: each goes up again alone
   *  (Upstream.resend), so that the error reaches only the request it is for. False when the
   *  protocol does not do that (the error then answers them all). */
  private resendJoined(head: Msg): boolean {
    if (!this.upstream.resend(head, this)) return false;
    const joined: Msg[] = [];
    for (let m = this.first; m !== null && m.joined; m = this.first) {
      this.dequeue(m, 0);
      joined.push(m);
    }
    this.push(head);
    for (const m of joined) {
      this.upstream.resend(m, this);
      this.push(m);
    }
    return true;
  }

  /** The server's bytes cannot be trusted: log, count and close. */
  private broken(what: string): void {
    log.error(`server ${this.name} ${what}`);
    this.server.stats.counters[S.server_err]!++;
    this.close("Invalid response from server", true);
  }

  /** Take the answered head of the queue off it. */
  private dequeue(msg: Msg, replyBytes: number): void {
    this.first = msg.snext;
    if (this.dedicated !== null) this.dedicated.headSince = this.now;
    if (this.first === null) this.last = null;
    msg.snext = null;
    const counters = this.server.stats.counters;
    counters[S.responses]!++;
    counters[S.response_bytes]! += replyBytes;
    const pool = this.server.pool;
    pool.replyEstimate += (replyBytes - pool.replyEstimate) / 16;
    if (this.queued-- > this.unsent) {
      counters[S.out_queue]!--;
      counters[S.out_queue_bytes]! -= msg.bytes;
    } else {
      // Answered before the write it went out in completed (a partial write).
      this.unsent--;
      this.unsentBytes -= msg.bytes;
      counters[S.in_queue]!--;
      counters[S.in_queue_bytes]! -= msg.bytes;
    }
  }

  /** May the reply now being parsed go to its client before it is complete? Only when it is
   *  the whole reply to the request its client waits for next (not a fragment to merge, not
   *  dropped, not a preamble reply), or when it is already streaming. */
  protected streamable(): boolean {
    if (this.resume !== 0) return true;
    const msg = this.first;
    return (
      this.preambleReplies === 0 &&
      msg !== null &&
      msg.parent === null &&
      (msg.flags & MSG_SILENT) === 0 &&
      msg.client.first === msg
    );
  }

  /** Out of service (its server left the pool, its preamble is stale, its server moved): close
   *  once every request on it is answered. */
  retire(): void {
    this.group.release(this, this.slot);
    if (this.first === null) {
      this.close("retired by a reload");
      return;
    }
    this.retiring = true;
    // Out of its group's slots, so the pool checks its requests for timeouts here.
    this.server.pool.retiringConns.add(this);
  }

  onClosed(err?: Error): void {
    if (this.closed) return;
    const reason = err === undefined ? "Connection reset by peer" : describeError(err);
    const counters = this.server.stats.counters;
    if (err === undefined) counters[S.server_eof]!++;
    else counters[S.server_err]!++;
    this.lost = true;
    this.close(reason, true);
  }

  /** A request on this connection got no reply in time. */
  timedOut(): void {
    this.server.stats.counters[S.server_timedout]!++;
    this.close("Connection timed out", true);
  }

  /** Close the connection; every message still on it gets `reason`. A failure counts toward
   *  ejection. */
  close(reason: string, failure = false): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    const pool = this.server.pool;
    if (this.retiring) pool.retiringConns.delete(this);
    this.group.release(this, this.slot);
    const s = this.socket;
    this.socket = null;
    pool.proxyStats.currConnections--;
    if (s !== null) {
      this.server.stats.counters[S.server_connections]!--;
      s.terminate();
    }
    if (log.level >= LOG_INFO) log.info(`closed server ${this.name}: ${reason}`);
    this.dropPending();
    this.upstream.sent();
    this.out.clear();
    this.out.release();
    this.held?.clear();
    this.streaming = this.lastStreamed = null;
    const waiter = this.streamWaiter;
    this.streamWaiter = null;
    if (waiter !== null) waiter.streamDrained();
    // Part of a reply was passed on: its client's stream cannot be completed.
    if (this.dropStream()) this.first!.client.abort();
    const counters = this.server.stats.counters;
    counters[S.in_queue]! -= this.unsent;
    counters[S.in_queue_bytes]! -= this.unsentBytes;
    let m = this.first;
    this.first = this.last = null;
    let allBytes = 0;
    // A cluster node lost: what is safe to send again waits for the map (a failover) instead.
    const cluster = this.lost ? pool.cluster : null;
    while (m !== null) {
      const next = m.snext;
      m.snext = null;
      allBytes += m.bytes;
      if (cluster === null || !resendLost(pool, cluster, m, s === null, this.group.id)) fail(pool, m, reason);
      m = next;
    }
    counters[S.out_queue]! -= this.queued - this.unsent;
    counters[S.out_queue_bytes]! -= allBytes - this.unsentBytes;
    this.queued = this.unsent = this.unsentBytes = 0;
    if (this.dedicated !== null) dedicatedClosed(this);
    if (failure) serverFailed(pool, this.server);
  }
}
