// A backend server and its connections. A connection carries requests of many clients; the
// backend answers in order, so replies are matched to the queue of messages sent on it.

import type { Socket } from "bun";
import type { ServerConfig } from "../conf/types.ts";
import { FATAL, NEED_MORE, Rsp, type Codec, type LineKeySet, type Req } from "../proto/codec.ts";
import { LOG_INFO, log } from "../log.ts";
import { S } from "../stats/table.ts";
import type { ServerStats } from "../stats/store.ts";
import { ByteWriter } from "./bytes.ts";
import { describeError } from "./errors.ts";
import { HeldViews, markDirty, send, writeOut, type Flushable } from "./flush.ts";
import { MSG_JOINED, MSG_OPEN, MSG_SILENT, type Msg } from "./msg.ts";
import type { Pool } from "./pool.ts";
import { StreamReader } from "./reader.ts";

export class Server {
  conns: (ServerConn | null)[];
  private next = 0;
  /** Consecutive failures (auto_eject_hosts). */
  failures = 0;
  ejected = false;

  constructor(
    readonly pool: Pool,
    public index: number,
    public cfg: ServerConfig,
    readonly stats: ServerStats,
  ) {
    this.conns = new Array<ServerConnOrNull>(pool.cfg.serverConnections).fill(null);
  }

  /** Hot reload: the server stays, at a new index, maybe with a new weight or connection count. */
  reconfigure(index: number, cfg: ServerConfig): void {
    this.index = index;
    this.cfg = cfg;
    const want = this.pool.cfg.serverConnections;
    if (want === this.conns.length) return;
    for (let i = want; i < this.conns.length; i++) this.conns[i]?.retire();
    this.conns.length = want;
    for (let i = 0; i < want; i++) this.conns[i] ??= null;
    this.next = 0;
  }

  /** Left the pool in a reload, or its connections' handshake (AUTH, SELECT) is stale: close
   *  each connection once its requests are answered; the next request opens a new one. */
  retire(): void {
    for (const c of this.conns) c?.retire();
  }

  /** A connection for the next request: round robin over server_connections slots, opening
   *  one when a slot is empty. */
  conn(): ServerConn {
    const i = this.next;
    this.next = i + 1 === this.conns.length ? 0 : i + 1;
    return this.conns[i] ?? this.open(i);
  }

  open(slot: number): ServerConn {
    const c = new ServerConn(this, slot);
    this.conns[slot] = c;
    c.connect();
    return c;
  }

  closeAll(reason: string): void {
    for (const c of this.conns) c?.close(reason);
  }
}

type ServerConnOrNull = ServerConn | null;

/** A reply whose known-size part (Rsp.opaque) is at least this large is passed on to its client
 *  as its bytes arrive, when that client waits for it next, instead of being gathered first. */
const STREAM_MIN = 32768;

/** A joined retrieval line (Codec.join) takes no more requests once it is this long: memcached
 *  reads longer lines on a slower path (it takes them from get and gets only). */
const MAX_JOINED_LINE = 2048;

const NO_KEYS = new Uint8Array(0);

const serverHandlers = {
  binaryType: "uint8array" as const,
  open(s: Socket<ServerConn>) {
    s.data.onOpen(s);
  },
  data(s: Socket<ServerConn>, chunk: Uint8Array) {
    s.data.onData(chunk);
  },
  drain(s: Socket<ServerConn>) {
    s.data.onDrain();
  },
  close(s: Socket<ServerConn>, err?: Error) {
    s.data.onClosed(err);
  },
  connectError(s: Socket<ServerConn>, err: Error) {
    s.data.onClosed(err);
  },
  error(s: Socket<ServerConn>, err: Error) {
    s.data.onClosed(err);
  },
};

export class ServerConn extends StreamReader implements Flushable {
  private socket: Socket<ServerConn> | null = null;
  readonly out = new ByteWriter();
  /** Large requests the socket has not taken yet (written before `out`). */
  private readonly held = new HeldViews();
  /** Requests of many clients are coalesced here every loop turn: keep the buffer warm. */
  private static readonly KEEP_OUT_BYTES = 1 << 20;
  private readonly rsp = new Rsp();
  dirty = false;
  private blocked = false;
  closed = false;
  /** Why it closed: the reply of a request pushed after that (a connect that failed at once). */
  private closeReason = "";
  /** Messages sent (or queued to send) on this connection, oldest first. */
  first: Msg | null = null;
  private last: Msg | null = null;
  /** Close once every request on it is answered (its server left the pool). */
  private retiring = false;
  /** Handshake replies (AUTH/SELECT) still to swallow. */
  private handshake = 0;
  /** Messages on this connection: the first `queued - unsent` are written (out_queue), the
   *  last `unsent` were appended since the last complete write (in_queue). */
  private queued = 0;
  private unsent = 0;
  private unsentBytes = 0;
  /** Streaming the reply of `first` to its client: bytes still to pass on before parsing resumes. */
  private streamLeft = 0;
  /** The parser's state for the rest of that reply (Rsp.resume); 0 when not streaming. */
  private resume = 0;
  /** Bytes of that reply passed on so far. */
  private streamed = 0;
  /** The request last appended to `out` when it is a retrieval line that requests of the same
   *  kind may still join (Codec.join): its kind (0: none) and where its line starts, counted
   *  from out.head (which moves only when the socket takes bytes, and that ends the line). */
  private tailKind = 0;
  private tailStart = 0;
  /** The keys on that line, and whether the keys of its first request are still to be added
   *  (done at the first request that would join it); null with a protocol that never joins. */
  private readonly join: Codec["join"];
  private readonly tailKeys: LineKeySet | null;
  private tailKeysStale = false;

  constructor(
    readonly server: Server,
    private readonly slot: number,
  ) {
    super();
    this.out.keep = ServerConn.KEEP_OUT_BYTES;
    this.join = server.pool.codec.join;
    this.tailKeys = this.join?.lineKeys() ?? null;
  }

  connect(): void {
    const pool = this.server.pool;
    // nutcracker counts a server connection from the attempt on, refused or not.
    pool.proxyStats.totalConnections++;
    pool.proxyStats.currConnections++;
    const hs = pool.codec.handshake(pool.cfg);
    if (hs !== null) {
      this.out.bytes(hs.bytes);
      this.handshake = hs.replies;
    }
    const addr = this.server.cfg.addr;
    const opts = addr.unix
      ? { unix: addr.host, socket: serverHandlers, data: this }
      : { hostname: addr.host, port: addr.port, socket: serverHandlers, data: this };
    Bun.connect<ServerConn>(opts as Parameters<typeof Bun.connect<ServerConn>>[0]).catch(
      (err: Error) => this.onClosed(err),
    );
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
    if (log.level >= LOG_INFO) log.info(`connected to server ${this.server.cfg.pname}`);
    this.flush();
  }

  /** Send request bytes (coalesced, or written through when large). */
  send(buf: Uint8Array, start: number, end: number): void {
    if (send(this.socket, this.blocked, this.out, this.held, buf, start, end)) this.blocked = true;
  }

  /** Can a retrieval of `kind` with the keys order[from, from + n) of req (order null: its
   *  keys from, from + 1, ...) go onto the line at the end of `out`: one of that kind, not too
   *  long, without any of these keys? If so, that line's end is taken off for its keys
   *  (Codec.join); returns the length of the line end taken off, 0 for no. */
  joinTail(kind: number, buf: Uint8Array, req: Req, order: Int32Array | null, from: number, n: number): number {
    const out = this.out;
    if (this.tailKind !== kind || out.size - this.tailStart > MAX_JOINED_LINE) return 0;
    const keys = this.tailKeys!;
    const line = out.buf;
    const lineStart = out.head + this.tailStart;
    const lineEnd = this.join!.openLineEnd(line, lineStart, out.len);
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

  /** Queue a request whose bytes were sent or appended to `out` (a joined one: onto the line
   *  at its end); `joinKind`: its CommandSpec.join when requests may join its line. */
  push(msg: Msg, joinKind = 0): void {
    if (this.closed) {
      this.server.pool.fail(msg, this.closeReason);
      return;
    }
    if ((msg.flags & MSG_JOINED) === 0) {
      const out = this.out;
      const start = out.size - msg.bytes;
      // Its line is the tail of `out` unless it was written through (or held) as a large one.
      const open = joinKind !== 0 && start >= 0 && this.join!.openLineEnd(out.buf, out.head + start, out.len) !== 0;
      this.tailKind = open ? joinKind : 0;
      this.tailStart = start;
      this.tailKeysStale = open;
    }
    if (this.last === null) this.first = msg;
    else this.last.snext = msg;
    this.last = msg;
    const c = this.server.stats.counters;
    c[S.requests]!++;
    c[S.request_bytes]! += msg.bytes;
    c[S.in_queue]!++;
    c[S.in_queue_bytes]! += msg.bytes;
    this.queued++;
    this.unsent++;
    this.unsentBytes += msg.bytes;
    markDirty(this);
  }

  flush(): void {
    const s = this.socket;
    if (s === null || this.blocked || this.closed) return;
    // What the socket takes is final: no more keys on its lines.
    this.tailKind = 0;
    if (!writeOut(s, this.out, this.held)) {
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
    if (!this.closed) this.feed(chunk);
  }

  protected parse(buf: Uint8Array, pos: number, end: number): number {
    const codec = this.server.pool.codec;
    const rsp = this.rsp;
    const pool = this.server.pool;
    const counters = this.server.stats.counters;
    const now = performance.now();
    const joins = this.join !== null;
    while (pos < end) {
      if (this.streamLeft > 0) {
        const n = this.streamLeft < end - pos ? this.streamLeft : end - pos;
        this.first!.client.writePart(buf, pos, pos + n);
        this.streamLeft -= n;
        this.streamed += n;
        pos += n;
        continue;
      }
      const head = this.first;
      const joined =
        joins && this.handshake === 0 && head !== null && head.snext !== null && (head.snext.flags & MSG_JOINED) !== 0;
      rsp.joined = joined;
      if (joined) this.keysOf(head);
      rsp.resume = this.resume;
      const next = codec.parseResponse(buf, pos, end, rsp);
      if (next === NEED_MORE) {
        if (rsp.opaque >= STREAM_MIN && this.streamable()) {
          this.streamLeft = rsp.opaque;
          this.resume = rsp.next;
          continue;
        }
        this.need = rsp.need;
        return pos;
      }
      if (next === FATAL) {
        log.error(`server ${this.server.cfg.pname} sent a malformed reply: ${rsp.error}`);
        counters[S.server_err]!++;
        this.close("Invalid response from server", true);
        return FATAL;
      }
      pos = next;
      if (this.handshake > 0) {
        this.handshake--;
        if (rsp.isError) {
          log.error(
            `server ${this.server.cfg.pname} refused the connection handshake: ` +
              new TextDecoder().decode(buf.subarray(rsp.start, next)).trim(),
          );
        }
        continue;
      }
      if (head === null) {
        log.error(`server ${this.server.cfg.pname} sent a reply nobody asked for`);
        counters[S.server_err]!++;
        this.close("Invalid response from server", true);
        return FATAL;
      }
      this.dequeue(head, next - rsp.start + this.streamed);
      this.resume = 0;
      this.streamed = 0;
      if (rsp.failure) pool.serverFailed(this.server);
      else this.server.failures = 0;
      if (rsp.open) head.flags |= MSG_OPEN;
      pool.reply(head, buf, rsp.start, next, now);
      if (joined) {
        if (rsp.isError) {
          // The server stopped at the error: the rest of the line gets it too (counted once).
          for (let m = this.first; m !== null && (m.flags & MSG_JOINED) !== 0; m = this.first) {
            this.dequeue(m, 0);
            pool.reply(m, buf, rsp.errorStart, next, now);
          }
        }
        // Let go of the client's read buffer.
        rsp.keyBuf = NO_KEYS;
        rsp.keys = null;
      }
    }
    this.need = 0;
    if (this.retiring && this.first === null) {
      this.close("retired by a reload");
      return FATAL;
    }
    return pos;
  }

  /** Take the answered head of the queue off it. */
  private dequeue(msg: Msg, replyBytes: number): void {
    this.first = msg.snext;
    if (this.first === null) this.last = null;
    msg.snext = null;
    const counters = this.server.stats.counters;
    counters[S.responses]!++;
    counters[S.response_bytes]! += replyBytes;
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

  /** The reply parser's view of the keys of msg, whose line later requests joined. */
  private keysOf(msg: Msg): void {
    const rsp = this.rsp;
    const split = msg.parent === null ? null : msg.parent.split;
    if (split !== null) {
      rsp.keyBuf = split.bytes;
      rsp.keys = split.keys;
      rsp.keyGroup = msg.fragIndex;
    } else {
      rsp.keyBuf = msg.keyBuf!;
      rsp.keys = null;
      rsp.keyStart = msg.keyStart;
      rsp.keyEnd = msg.keyEnd;
    }
  }

  /** May the reply now being parsed go to its client before it is complete? Only when it is
   *  the whole reply to the request its client waits for next (not a fragment to merge, not
   *  dropped, not a handshake reply), or when it is already streaming. */
  private streamable(): boolean {
    if (this.resume !== 0) return true;
    const msg = this.first;
    return (
      this.handshake === 0 &&
      msg !== null &&
      msg.parent === null &&
      (msg.flags & MSG_SILENT) === 0 &&
      msg.client.first === msg
    );
  }

  retire(): void {
    if (this.server.conns[this.slot] === this) this.server.conns[this.slot] = null;
    if (this.first === null) {
      this.close("retired by a reload");
      return;
    }
    this.retiring = true;
    // Out of its server's slots, so the pool checks its requests for timeouts here.
    this.server.pool.retiringConns.add(this);
  }

  onClosed(err?: Error): void {
    if (this.closed) return;
    const reason = err === undefined ? "Connection reset by peer" : describeError(err);
    const counters = this.server.stats.counters;
    if (err === undefined) counters[S.server_eof]!++;
    else counters[S.server_err]!++;
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
    if (this.retiring) this.server.pool.retiringConns.delete(this);
    if (this.server.conns[this.slot] === this) this.server.conns[this.slot] = null;
    const s = this.socket;
    this.socket = null;
    this.server.pool.proxyStats.currConnections--;
    if (s !== null) {
      this.server.stats.counters[S.server_connections]!--;
      s.terminate();
    }
    if (log.level >= LOG_INFO) log.info(`closed server ${this.server.cfg.pname}: ${reason}`);
    this.dropPending();
    this.tailKind = 0;
    this.out.clear();
    this.out.release();
    this.held.clear();
    if (this.resume !== 0) {
      // Part of a reply was passed on: its client's stream cannot be completed.
      this.first!.client.abort();
      this.streamLeft = this.resume = this.streamed = 0;
    }
    const counters = this.server.stats.counters;
    counters[S.in_queue]! -= this.unsent;
    counters[S.in_queue_bytes]! -= this.unsentBytes;
    let m = this.first;
    this.first = this.last = null;
    const pool = this.server.pool;
    let allBytes = 0;
    while (m !== null) {
      const next = m.snext;
      m.snext = null;
      allBytes += m.bytes;
      pool.fail(m, reason);
      m = next;
    }
    counters[S.out_queue]! -= this.queued - this.unsent;
    counters[S.out_queue_bytes]! -= allBytes - this.unsentBytes;
    this.queued = this.unsent = this.unsentBytes = 0;
    if (failure) pool.serverFailed(this.server);
  }
}
