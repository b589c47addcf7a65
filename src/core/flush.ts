// Write coalescing. Each Bun socket.write() is one syscall, so connections only append to their
// output buffer and mark themselves dirty; one flush per event-loop turn writes every dirty
// connection's buffer with a single write (a server connection may write sooner: ServerConn.push).
//
// A turn that read two or more clients holds a small write of requests to a server one turn
// longer: the pending flush makes the runtime's next poll non-blocking, so the requests that
// arrived meanwhile go out in the same write. Under concurrent load that cuts the writes to
// servers, and the reads they cost the servers, by a third (pipeline 1, 50 clients: GET +6-16%
// and SET a median +8% in alternating runs; bench/README.md "Holding server writes one turn").
// A turn that read one client is never held, so a lone client's round trip does not grow.

import type { Socket } from "bun";
import type { ByteWriter } from "../lib/bytes.ts";

export interface Flushable {
  dirty: boolean;
  flush(): void;
}

/** A server connection's queued requests: what its write would send now. */
export interface Queued extends Flushable {
  readonly unwritten: number;
}

/** From this many client reads in a turn on, its server writes wait for the next turn... */
const BUSY_READS = 2;
/** ...when they are this small: a larger write (pipelined requests) is worth its system call. */
const HOLD_MAX_BYTES = 1024;

/** Connections to write at this turn's end: clients, and servers with bytes other than new
 *  requests (a stream's end, adopted requests). */
const dirty: Flushable[] = [];
/** Server connections with requests queued this turn. */
const queuedNow: Queued[] = [];
/** Server connections held from the turn before: written at this turn's end. */
const queuedBefore: Queued[] = [];
/** Client reads since the last flush (a read that made nothing to write counts in the next). */
let reads = 0;
let scheduled = false;

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(flushAll);
}

function write(c: Flushable): void {
  c.dirty = false;
  c.flush();
}

/** flush() may mark more connections dirty (error replies): the loop sees them too. */
function flushEach(list: Flushable[]): void {
  for (let i = 0; i < list.length; i++) write(list[i]!);
  list.length = 0;
}

function flushAll(): void {
  scheduled = false;
  const busy = reads >= BUSY_READS;
  reads = 0;
  flushEach(queuedBefore);
  if (busy) holdSmall();
  else flushEach(queuedNow);
  flushEach(dirty);
}

/** A busy turn's server writes: the small ones wait for the next turn, the rest go now. */
function holdSmall(): void {
  for (let i = 0; i < queuedNow.length; i++) {
    const c = queuedNow[i]!;
    if (c.unwritten < HOLD_MAX_BYTES) queuedBefore.push(c);
    else write(c);
  }
  queuedNow.length = 0;
  if (queuedBefore.length !== 0) schedule();
}

/** A connection has bytes to write: written at this turn's end. */
export function markDirty(c: Flushable): void {
  if (c.dirty) return;
  c.dirty = true;
  dirty.push(c);
  schedule();
}

/** A server connection has requests to write: at this turn's end, or the next's in a busy turn. */
export function markQueued(c: Queued): void {
  if (c.dirty) return;
  c.dirty = true;
  queuedNow.push(c);
  schedule();
}

/** A client connection read requests. */
export function noteClientRead(): void {
  reads++;
}

/** From this size on, a payload is never copied into an output buffer: written straight from
 *  where it was read when nothing waits before it, else held as a view (HeldViews). */
const WRITE_THROUGH_MIN = 16384;

const NOTHING = new Uint8Array(0);

/** Large payloads a socket has not taken yet, in order, as views of the buffers they were read
 *  into (read buffers are never reused, so the views stay valid): twemproxy's mbuf chains
 *  without the copying. Written before the connection's `out`. */
export class HeldViews {
  private views: Uint8Array[] = [];
  private head = 0;
  /** Bytes held. */
  bytes = 0;

  push(v: Uint8Array): void {
    this.views.push(v);
    this.bytes += v.length;
  }

  /** Write as much as the socket takes; false when it pushed back (or is closed). */
  writeTo(socket: Socket<any>): boolean {
    const views = this.views;
    while (this.head < views.length) {
      const v = views[this.head]!;
      const n = socket.write(v);
      if (n === v.length) {
        views[this.head++] = NOTHING;
        this.bytes -= n;
        continue;
      }
      if (n > 0) {
        views[this.head] = v.subarray(n);
        this.bytes -= n;
      }
      return false;
    }
    this.clear();
    return true;
  }

  clear(): void {
    this.views.length = 0;
    this.head = 0;
    this.bytes = 0;
  }
}

/** A connection's output: coalesced bytes, and the large payloads the socket has not taken
 *  yet, written before them (null until the first waits: most clients never have one). */
export interface Output {
  readonly out: ByteWriter;
  held: HeldViews | null;
}

/** Bytes of o's output not taken by its socket yet. */
export const pendingBytes = (o: Output): number => o.out.size + (o.held === null ? 0 : o.held.bytes);

/** Append buf[start, end) to a connection's output. A large payload is written straight from
 *  where it was read when nothing waits before it, and what the socket does not take is held as
 *  a view, never copied. Returns true when the socket pushed back (wait for `drain`). */
export function send(socket: Socket<any> | null, blocked: boolean, o: Output, buf: Uint8Array, start: number, end: number): boolean {
  const size = end - start;
  const out = o.out;
  if (size < WRITE_THROUGH_MIN) {
    out.bytes(buf, start, end);
    return false;
  }
  if (socket !== null && !blocked && out.len === out.head && (o.held === null || o.held.bytes === 0)) {
    const n = socket.write(buf, start, size);
    if (n === size) return false;
    (o.held ??= new HeldViews()).push(buf.subarray(n > 0 ? start + n : start, end));
    return n >= 0;
  }
  const held = (o.held ??= new HeldViews());
  // Behind what waits: the bytes coalesced so far go first.
  if (out.len !== out.head) held.push(out.detach());
  held.push(buf.subarray(start, end));
  return false;
}

/** Write out as much of a connection's output (held views, then `out`) as the socket takes.
 *  Returns false when the socket pushed back (the rest stays; the caller waits for `drain`) or
 *  is closed. */
export function writeOut(socket: Socket<any>, o: Output): boolean {
  const held = o.held;
  if (held !== null && held.bytes !== 0 && !held.writeTo(socket)) return false;
  const out = o.out;
  const size = out.len - out.head;
  if (size === 0) return true;
  const n = socket.write(out.buf, out.head, size);
  if (n === size) {
    out.clear();
    out.release();
    return true;
  }
  if (n > 0) out.consume(n);
  return false;
}
