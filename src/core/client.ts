// One client connection: parses its requests, owns its reply queue (one slot per request, in
// request order) and writes the filled prefix of that queue, coalesced per loop turn; its
// protocol session (Codec.newSession), backpressure, and its teardown.

import type { Socket } from "bun";
import { ByteWriter } from "../lib/bytes.ts";
import { log } from "../log.ts";
import { FATAL, NEED_MORE, Req, Route, type Session } from "../proto/codec.ts";
import { P } from "../stats/table.ts";
import { bufferBudget, type BudgetHolder } from "./budget.ts";
import { answerLocally, writeMerged } from "./deliver.ts";
import { dispatch, refuseRequest, rejectFatal, routeWhole } from "./dispatch.ts";
import { peerOf } from "./errors.ts";
import { fdBudget } from "./fdlimit.ts";
import { markDirty, noteClientRead, pendingBytes, send, writeOut, type Flushable, type HeldViews, type Output } from "./flush.ts";
import type { OwnConns } from "./dedicated.ts";
import { MSG_CLOSE, MSG_OPEN, MSG_PUSH, MSG_SILENT, Msg } from "./msg.ts";
import type { Pool } from "./pool.ts";
import { StreamReader } from "./reader.ts";
import { STREAM_BACKLOG, type ServerConn } from "./server-conn.ts";
import type { Server } from "./server.ts";

/** Backpressure: stop taking requests from a client with this many requests waiting for
 *  replies, this many bytes of such requests (a backend that stops reading), or this many reply
 *  bytes owed to it (not read yet, or estimated for its requests in flight: Pool.replyEstimate);
 *  resume once its replies are written and it is below half. The buffer budget (budget.ts)
 *  bounds all clients together. */
export const CLIENT_MAX_QUEUED = 4096;
export const CLIENT_MAX_IN_BYTES = 8 << 20;
export const CLIENT_MAX_OUT_BYTES = 4 << 20;
/** A subscriber not reading its messages is closed past this many bytes unwritten (redis's
 *  own limit for its pub/sub clients: client-output-buffer-limit pubsub 32mb). Its messages
 *  come unasked, so pausing its reads cannot bound them. */
export const SUBSCRIBER_MAX_OUT_BYTES = 32 << 20;
/** A request of this many bytes or more that is not all here yet, and is parsed but for the
 *  rest of its last data block (Req.stream), goes to its server as its bytes arrive instead of
 *  being gathered whole (streamOn). Smaller ones are gathered: measured on 100 KB SETs, the
 *  writes of a streamed request's parts cost more than the copy they save (bench/README.md). */
const STREAM_REQUEST_MIN = 1 << 20;
/** Past the buffer budget, a client holding (or owed) less than this still takes requests. */
const BUDGET_SMALL_HOLDER = 64 << 10;

/** A client still owed replies holds its ready ones back until the last arrives, for at most
 *  about twice HOLD_MAX_MS (one timer tick after it has held HOLD_MAX_MS), and not once
 *  HOLD_MAX_BYTES are ready. */
const HOLD_MAX_MS = 1;
const HOLD_MAX_BYTES = 65536;
/** ClientConn.hold when not holding, and once the hold timer let it write; else the
 *  performance.now() it started holding at (always above 0). */
const HOLD_NONE = 0;
const HOLD_EXPIRED = -1;
/** Clients holding replies back, released together by one timer. */
const holding: ClientConn[] = [];
let holdTimer: ReturnType<typeof setTimeout> | null = null;

/** Every HOLD_MAX_MS while any client holds: release those that held since the last tick. */
function releaseHeld(): void {
  const now = performance.now();
  let kept = 0;
  for (const c of holding) {
    if (c.hold <= HOLD_NONE) continue;
    if (now - c.hold < HOLD_MAX_MS) {
      holding[kept++] = c;
      continue;
    }
    c.hold = HOLD_EXPIRED;
    markDirty(c);
  }
  holding.length = kept;
  holdTimer = kept === 0 ? null : setTimeout(releaseHeld, HOLD_MAX_MS);
}

/** msg waited for every earlier request of its client to be answered (Msg.onHead): send it. */
function startHead(msg: Msg): void {
  const start = msg.onHead!;
  msg.onHead = null;
  start();
}

/** Parsing is synchronous and a request is dispatched before the next is parsed, so every
 *  client shares one scratch Req (per-client memory matters with 10,000s of clients). */
const scratch = new Req();

/** Fed to a client that may take requests again: parses what was read before it stopped. */
const RESUMED = new Uint8Array(0);

/** A request streaming to its server: terminator bytes (Codec.dataEnd) still to check, data
 *  bytes still to pass on before them, its connection and its slot (null: the request was
 *  answered without its data, which is dropped). */
class RequestStream {
  tail = 0;
  left = 0;
  constructor(
    readonly conn: ServerConn | null,
    readonly msg: Msg | null,
  ) {}
}

export class ClientConn extends StreamReader implements Flushable, BudgetHolder, Output {
  readonly out = new ByteWriter();
  /** Large replies the socket has not taken yet (written before `out`; Output). */
  held: HeldViews | null = null;
  dirty = false;
  /** The socket pushed back: wait for drain before writing again. */
  blocked = false;
  paused = false;
  /** QUIT, a fatal error or the client's FIN was read: ignore further input, close after the
   *  last reply. */
  closing = false;
  closed = false;
  /** The protocol's per-client state; the core only hands it back to the codec. */
  readonly session: Session;
  /** The connection group its requests go to (Codec.group of the session). */
  group: number;
  /** Ready replies held back for the rest of the queue (flush()): since when, HOLD_NONE or
   *  HOLD_EXPIRED. */
  hold = HOLD_NONE;
  /** Reply queue. */
  first: Msg | null = null;
  last: Msg | null = null;
  queued = 0;
  /** Request bytes of the queued requests. */
  inBytes = 0;
  budgeted = 0;
  budgetedPartial = 0;
  budgetPaused = false;
  /** What this client adds to its pool's client_buffered_bytes (`budgeted` as of its last
   *  account(), rounded; a report nested in another client's can change `budgeted` under it). */
  private pooled = 0;
  /** performance.now() of the last bytes read (client_idle_timeout). */
  lastRead = performance.now();
  /** Server connections of its own (subscriptions, transaction, blocking requests:
   *  dedicated.ts); null until its first. */
  own: OwnConns | null = null;
  /** The request streaming to its server (streamOn), null when none streams. */
  private stream: RequestStream | null = null;
  /** A request that could not stream (its connection streams another one): gathered, then
   *  routed once whole (routeWhole). */
  deferred: Msg | null = null;
  /** The server it last sent a write to (CommandSpec.writes) since its last WAIT, checked
   *  first, and all it wrote to since then once that is more than one (null until then: most
   *  clients write to one server, or to another rarely). */
  lastWrote: Server | null = null;
  private wrote: Server[] | null = null;

  constructor(
    readonly pool: Pool,
    readonly socket: Socket<ClientConn>,
  ) {
    super();
    this.session = pool.codec.newSession(pool.cfg);
    this.group = pool.codec.group(this.session);
  }

  onData(chunk: Uint8Array): void {
    if (this.closing) return;
    this.lastRead = performance.now();
    noteClientRead();
    this.feed(chunk);
    this.account();
    if (!this.paused && this.full()) {
      this.paused = true;
      this.socket.pause();
    }
  }

  /** Take no more requests now (see CLIENT_MAX_QUEUED). */
  private full(): boolean {
    const owed = this.pendingOut + this.queued * this.pool.replyEstimate;
    return (
      this.queued > CLIENT_MAX_QUEUED ||
      this.inBytes > CLIENT_MAX_IN_BYTES ||
      owed > CLIENT_MAX_OUT_BYTES ||
      this.budgetPaused ||
      // Past the budget only clients that hold little take more: they are still served.
      (bufferBudget.over && this.inBytes + owed > BUDGET_SMALL_HOLDER)
    );
  }

  /** Tell the buffer budget what this client holds now. A reply byte owed counts twice: the
   *  copy in this client's output and the server's read buffer it came from, which is garbage
   *  but resident until the collector runs. */
  account(): void {
    if (this.closed) return;
    const owed = this.pendingOut + this.queued * this.pool.replyEstimate;
    // What its transaction holds cannot leave before it sends more: as an incomplete request's.
    const kept = this.own === null ? 0 : this.own.held;
    bufferBudget.report(this, Math.max(this.buffered, this.partial) + kept + this.inBytes + 2 * owed, this.partial + kept);
    // Whole bytes (the estimates are averages): the pool's sum stays exact, back to 0 when empty.
    const held = Math.round(this.budgeted);
    this.pool.stats.counters[P.client_buffered_bytes]! += held - this.pooled;
    this.pooled = held;
  }

  pauseForBudget(): void {
    const counters = this.pool.stats.counters;
    counters[P.client_budget_paused]!++;
    counters[P.client_budget_held]!++;
    if (this.paused) return;
    this.paused = true;
    this.socket.pause();
  }

  resumeFromBudget(): void {
    this.pool.stats.counters[P.client_budget_held]!--;
    markDirty(this);
  }

  refuseForBudget(): void {
    this.dropPending();
    // A transaction it holds is given up with the connection.
    if (this.own !== null) this.own.held = 0;
    refuseRequest(this.pool, this, "request larger than the proxy's buffer budget allows");
    // Its bytes are gone: the budget must know before it looks for the next largest.
    this.account();
  }

  protected parse(buf: Uint8Array, pos: number, end: number): number {
    const codec = this.pool.codec;
    const req = scratch;
    // Parsing runs only from onData, which has just read the clock.
    const now = this.lastRead;
    while (pos < end) {
      if (this.stream !== null) {
        pos = this.streamOn(this.stream, buf, pos, end);
        if (pos === FATAL) return FATAL;
        if (this.paused) break;
        continue;
      }
      const next = codec.parseRequest(buf, pos, end, req);
      const cap = this.pool.cfg.clientMaxRequest;
      if (next === NEED_MORE) {
        if (cap > 0 && req.need > cap) {
          refuseRequest(this.pool, this, `request of ${req.need} bytes or more is over client_max_request (${cap})`);
          return FATAL;
        }
        if (req.stream > end - req.start && req.need >= STREAM_REQUEST_MIN && this.deferred === null && this.mayStream(req)) {
          // What is here goes now (req.end), the rest as it arrives.
          req.end = end;
          dispatch(this.pool, this, buf, req, now);
          if (this.deferred === null) {
            // Forwarded, it streams to its connection (streamsTo); answered at once (an error),
            // it has none, and the rest of its data is read and dropped.
            const stream = (this.stream ??= new RequestStream(null, null));
            stream.left = req.start + req.stream - end;
            stream.tail = codec.dataEnd.bytes.length;
            this.need = 0;
            return end;
          }
        }
        this.need = req.need;
        return pos;
      }
      if (next === FATAL) {
        rejectFatal(this.pool, this, req.error);
        return FATAL;
      }
      if (cap > 0 && next - pos > cap) {
        refuseRequest(this.pool, this, `request of ${next - pos} bytes is over client_max_request (${cap})`);
        return FATAL;
      }
      const deferred = this.deferred;
      if (deferred === null) dispatch(this.pool, this, buf, req, now);
      else {
        this.deferred = null;
        routeWhole(this.pool, deferred, buf, req);
      }
      if (this.closing) return FATAL;
      pos = next;
      if (pos < end && this.full()) {
        // The rest waits in the carry-over until the client may send again (flush).
        this.need = 0;
        return pos;
      }
    }
    this.need = 0;
    return pos;
  }

  /** May this request, parsed but for the rest of its last data block, go to its server as
   *  its bytes arrive? Only to the one server of its key, on a shared connection, in a pool that
   *  neither redirects (redis_cluster) nor holds requests back (a failover). */
  private mayStream(req: Req): boolean {
    const pool = this.pool;
    const route = req.command!.route;
    return (
      (route === Route.Key || (req.nkeys === 1 && (route === Route.Get || route === Route.Sum || route === Route.Set))) &&
      pool.cluster === null &&
      this.own === null &&
      (pool.failover === null || !pool.failover.active) &&
      pool.codec.streams(req, this.session)
    );
  }

  /** Pass on buf[pos, end) of the request streaming: its data, then its terminator, checked
   *  (Codec.dataEnd) since the server must never get broken framing. Returns where it stopped,
   *  or FATAL. */
  private streamOn(stream: RequestStream, buf: Uint8Array, pos: number, end: number): number {
    const conn = stream.conn;
    let at = end - pos > stream.left ? pos + stream.left : end;
    stream.left -= at - pos;
    if (stream.left === 0) {
      const dataEnd = this.pool.codec.dataEnd;
      const bytes = dataEnd.bytes;
      while (stream.tail > 0 && at < end) {
        if (buf[at] !== bytes[bytes.length - stream.tail]) {
          // One reply for the request, the terminator's error (memcached answers a bad data
          // chunk so; redis closes after its protocol error): the slot its cut connection fails
          // stays empty. A request already answered (no connection) gets nothing more.
          if (stream.msg !== null) stream.msg.flags |= MSG_SILENT;
          this.cutStream();
          rejectFatal(this.pool, this, conn === null ? null : dataEnd.error);
          return FATAL;
        }
        stream.tail--;
        at++;
      }
    }
    if (conn !== null) {
      conn.streamPart(buf, pos, at);
      if (stream.tail === 0) conn.endStream();
      else if (conn.backlog > STREAM_BACKLOG && !this.paused) {
        // The server takes the bytes slower than the client sends them.
        this.paused = true;
        this.socket.pause();
        conn.waitDrain(this);
      }
    }
    if (stream.tail === 0) this.stream = null;
    return at;
  }

  /** Its streaming request's server connection has half of STREAM_BACKLOG or more unsent. */
  private streamBacklogged(): boolean {
    const conn = this.stream === null ? null : this.stream.conn;
    return conn !== null && conn.backlog >= STREAM_BACKLOG / 2;
  }

  /** The request being dispatched streams to conn (ClientConn.parse sets how much follows). */
  streamsTo(conn: ServerConn, msg: Msg): void {
    this.stream = new RequestStream(conn, msg);
  }

  /** Its server connection took the streamed bytes it held (or closed): read again, unless the
   *  client is paused for its own reasons (flush resumes it then). */
  streamDrained(): void {
    if (this.closed || !this.paused || this.full()) return;
    this.paused = false;
    this.socket.resume();
    if (this.buffered > 0 && !this.closing) this.onData(RESUMED);
  }

  /** The request streaming can never be finished (the client left or broke it). */
  private cutStream(): void {
    const stream = this.stream;
    if (stream === null) return;
    this.stream = null;
    stream.conn?.cutStream();
  }

  /** Reply bytes not yet taken by the socket. */
  get pendingOut(): number {
    return pendingBytes(this);
  }

  /** A write of this client went to `server` (WAIT asks the servers written to). */
  noteWrite(server: Server): void {
    const last = this.lastWrote;
    this.lastWrote = server;
    if (last === null) return;
    const wrote = (this.wrote ??= [last]);
    if (!wrote.includes(server)) wrote.push(server);
  }

  /** The servers written to since the last WAIT, forgotten (a WAIT takes them). */
  takeWrites(): Server[] {
    const last = this.lastWrote;
    const wrote = this.wrote ?? (last === null ? [] : [last]);
    this.wrote = null;
    this.lastWrote = null;
    return wrote;
  }

  /** msg holds `n` more bytes of this client's requests until its reply (a cluster transaction's
   *  commands, kept to send again). */
  keepsBytes(msg: Msg, n: number): void {
    msg.inBytes += n;
    this.inBytes += n;
  }

  /** Append the reply slot of a request of `inBytes` bytes. */
  enqueue(msg: Msg, inBytes: number): void {
    if (this.last === null) this.first = msg;
    else this.last.cnext = msg;
    this.last = msg;
    this.queued++;
    msg.inBytes = inBytes;
    this.inBytes += inBytes;
  }

  /** A slot was filled: write out every filled slot at the head of the queue. */
  advance(): void {
    if (this.closed) return;
    let m = this.first;
    if (m === null || !m.done) return;
    const now = performance.now();
    do {
      if (m.reply !== null) this.put(m.reply, m.replyStart, m.replyEnd);
      else if (m.split !== null) {
        // A split request's replies, merged now that its turn has come (finishSplit).
        const own = writeMerged(this.pool, m, this.out);
        if (own.length > 0) this.put(own, 0, own.length);
      }
      this.completed(m, now);
      if ((m.flags & MSG_CLOSE) !== 0) {
        // Nothing after a close slot is answered (parsing stopped there).
        this.closing = true;
        m = null;
        break;
      }
      m = m.cnext;
    } while (m !== null && m.done);
    this.first = m;
    if (m === null) this.last = null;
    else if (m.onHead !== null) startHead(m);
    markDirty(this);
  }

  /** Fast path: the head slot's reply is buf[start, end): copy it straight to the output. */
  writeHead(msg: Msg, buf: Uint8Array, start: number, end: number, now: number): void {
    msg.done = true;
    if (this.closed) return;
    this.put(buf, start, end);
    this.completed(msg, now);
    const next = msg.cnext;
    this.first = next;
    if (next === null) {
      this.last = null;
      markDirty(this);
    } else if (next.done) this.advance();
    else {
      if (next.onHead !== null) startHead(next);
      markDirty(this);
    }
  }

  /** msg's reply was put out (but for the terminator a joined reply lacks, added here): it
   *  leaves the queue; client-visible latency. */
  private completed(msg: Msg, now: number): void {
    if ((msg.flags & MSG_OPEN) !== 0) this.putEnd();
    if ((msg.flags & MSG_PUSH) === 0) this.pool.stats.observe((now - msg.t0) * 1000);
    this.queued--;
    this.inBytes -= msg.inBytes;
  }

  /** Reply bytes, to the output in order (flush.ts send). */
  private put(buf: Uint8Array, start: number, end: number): void {
    if (send(this.socket, this.blocked, this, buf, start, end)) this.blocked = true;
  }

  /** The terminator a joined retrieval's reply lacks (Rsp.open). */
  private putEnd(): void {
    const end = this.pool.codec.openEnd!;
    this.put(end, 0, end.length);
  }

  /** Part of the reply to the head slot, passed on as it arrives (a large reply, streamed by
   *  its server connection; the last part comes through writeHead). */
  writePart(buf: Uint8Array, start: number, end: number): void {
    if (this.closed) return;
    this.put(buf, start, end);
    markDirty(this);
  }

  /** The server failed after part of a reply was written: the stream cannot be repaired, so the
   *  connection is cut (as a backend's own failure mid-reply would cut a direct client). */
  abort(): void {
    this.drop(new Error("server failed mid-reply"));
  }

  /** Cut the connection now (`why`: for the client_err count). */
  drop(why: Error): void {
    if (this.closed) return;
    this.socket.terminate();
    this.teardown(why);
  }

  /** A message its server pushed on one of its subscriber connections: after every reply
   *  already due (as an answered slot of its own at the end of the queue, when any is due). It
   *  answers no request, so no latency is recorded for it. */
  deliverPush(buf: Uint8Array, start: number, end: number): void {
    if (this.closed) return;
    if (this.first === null) {
      // Nothing is due before it (the usual case): straight to the output.
      this.put(buf, start, end);
      markDirty(this);
    } else {
      const msg = new Msg(this, 0);
      msg.flags = MSG_PUSH;
      this.enqueue(msg, 0);
      msg.setReply(buf, start, end);
      msg.done = true;
      this.advance();
    }
    if (this.pendingOut > SUBSCRIBER_MAX_OUT_BYTES && !this.closing) {
      const unread = `${this.pendingOut} bytes of messages unread, over ${SUBSCRIBER_MAX_OUT_BYTES}`;
      log.warn(`subscriber ${peerOf(this.socket)} of pool '${this.pool.cfg.name}': ${unread}; closing it`);
      this.pool.stats.counters[P.client_slow_closed]!++;
      this.closing = true;
      // Once the subscriber connection delivering this has returned (closing it is part of the drop).
      queueMicrotask(() => this.drop(new Error("subscriber not reading its messages")));
      return;
    }
    this.account();
  }

  /** Its pool closes: write what is due now (the errors of the requests failed just now) and
   *  end the connection, whatever is left unwritten or unanswered. */
  finish(): void {
    if (this.closed) return;
    this.closing = true;
    this.hold = HOLD_EXPIRED;
    // Ends it once nothing is due and all is written.
    this.flush();
    if (this.blocked || this.first !== null) this.socket.end();
  }

  /** The connection is gone (closed by either side, or failed): forget its pending replies and
   *  give back what it held. `err` undefined: an orderly close (client_eof). */
  teardown(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    const pool = this.pool;
    pool.clients.delete(this);
    const counters = pool.stats.counters;
    if (this.budgetPaused) counters[P.client_budget_held]!--;
    counters[P.client_buffered_bytes]! -= this.pooled;
    this.pooled = 0;
    bufferBudget.remove(this);
    this.own?.closeAll();
    this.cutStream();
    this.dropPending();
    fdBudget.clients--;
    this.out.clear();
    this.out.release();
    this.held?.clear();
    counters[P.client_connections]!--;
    if (err === undefined) counters[P.client_eof]!++;
    else counters[P.client_err]!++;
    pool.proxyStats.currConnections--;
  }

  flush(): void {
    // Once per loop turn with anything new (replies added or written, requests read).
    this.account();
    if (this.closed || this.blocked) return;
    if (this.hold !== HOLD_EXPIRED && this.first !== null && this.pendingOut < HOLD_MAX_BYTES) {
      // More replies are due (a pipeline spread over several servers, typically): write when
      // the last arrives (it marks this client dirty again), so the pipeline goes out in one
      // write rather than one per server; the hold timer bounds the wait.
      if (this.hold === HOLD_NONE) {
        this.hold = performance.now();
        holding.push(this);
        holdTimer ??= setTimeout(releaseHeld, HOLD_MAX_MS);
      }
      return;
    }
    this.hold = HOLD_NONE;
    if (!writeOut(this.socket, this)) {
      this.blocked = true;
      return;
    }
    if (this.closing && this.first === null) {
      this.socket.end();
      return;
    }
    if (
      this.paused &&
      !this.budgetPaused &&
      !this.streamBacklogged() &&
      this.queued < CLIENT_MAX_QUEUED / 2 &&
      this.inBytes < CLIENT_MAX_IN_BYTES / 2 &&
      this.pendingOut + this.queued * this.pool.replyEstimate < CLIENT_MAX_OUT_BYTES / 2
    ) {
      this.paused = false;
      this.socket.resume();
      // Requests read before it stopped and not parsed yet: they may fill it again.
      if (this.buffered > 0 && !this.closing) this.onData(RESUMED);
    }
  }

  /** The client sent FIN: read nothing more, close once every reply is written. */
  onEnd(): void {
    if (this.own !== null && this.own.waiting) {
      // Subscribed or blocked: redis drops such a client at once (a blocking request could wait
      // for ever for a client that is gone), and so does the proxy. A transaction finishes.
      this.socket.end();
      this.teardown();
      return;
    }
    this.closing = true;
    this.cutStream();
    this.dropPending();
    const deferred = this.deferred;
    if (deferred !== null) {
      // Its bytes will never all come: nothing is sent, and nothing answered.
      this.deferred = null;
      answerLocally(this.pool, deferred, null);
    }
    markDirty(this);
  }

  onDrain(): void {
    this.blocked = false;
    this.flush();
  }
}
