// Incremental reading shared by client and server connections.
//
// Bun hands every `data` callback a freshly allocated buffer, and this reader never writes into
// bytes it has already handed to the parser: a partial message is carried over into a new
// buffer, and appends only go past the parsed region. So a subarray of a parsed message stays
// valid for as long as anyone holds it, and replies can be kept as views instead of copies.

import { FATAL } from "../proto/codec.ts";
import { collectSoon } from "./budget.ts";

/** A peer may announce a huge message; reserve at most this much before its bytes arrive. */
const MAX_PREALLOCATION = 32 << 20;

/** Carry-over buffers from this size on are collected as soon as they are outgrown. */
const LARGE_CARRY = 8 << 20;

function preallocation(need: number): number {
  return need < MAX_PREALLOCATION ? need : MAX_PREALLOCATION;
}

/** A carry-over buffer for `have` bytes of a message of `need` bytes (0: unknown): room to
 *  double, but never past the message's known size, and that size at once from half of it (a
 *  300 MB value grows 128 MB -> 300 MB, not through 256 MB: the buffer budget counts buffers). */
function capacity(have: number, need: number): number {
  const room = Math.max(have * 2, preallocation(need), 16384);
  return need > have && room * 2 > need ? need : room;
}

export abstract class StreamReader {
  /** Carried-over bytes of an incomplete message: pending[pendStart, pendEnd). */
  private pending: Uint8Array | null = null;
  private pendStart = 0;
  private pendEnd = 0;
  /** Bytes, counted from the start of the incomplete message, below which parsing cannot progress. */
  protected need = 0;

  /** Parse complete messages in buf[pos, end); return the position reached. On an incomplete
   *  message set `this.need` (bytes from the returned position) and return its start. Return
   *  FATAL when the stream is broken (the connection is then closed by the implementation). */
  protected abstract parse(buf: Uint8Array, pos: number, end: number): number;

  /** Bytes waiting in the carry-over buffer. */
  get buffered(): number {
    return this.pendEnd - this.pendStart;
  }

  /** The carry-over buffer's size when it holds an incomplete message (what it was allocated
   *  for: the message's known size at most), 0 when it holds only whole messages not parsed yet
   *  (parsing was stopped) or nothing. */
  get partial(): number {
    return this.need > 0 && this.pending !== null ? this.pending.length : 0;
  }

  protected feed(chunk: Uint8Array): void {
    let buf: Uint8Array;
    let pos: number;
    let end: number;
    const pending = this.pending;
    if (pending === null) {
      buf = chunk;
      pos = 0;
      end = chunk.length;
    } else {
      const have = this.pendEnd - this.pendStart;
      const total = have + chunk.length;
      if (this.pendStart + total <= pending.length) {
        pending.set(chunk, this.pendEnd);
        buf = pending;
        pos = this.pendStart;
      } else {
        // Never move bytes inside a buffer that views may point into: take a new one.
        const next = new Uint8Array(capacity(total, this.need));
        // The one outgrown is garbage now: a large one is collected at once.
        if (pending.length >= LARGE_CARRY) collectSoon();
        next.set(pending.subarray(this.pendStart, this.pendEnd));
        next.set(chunk, have);
        buf = next;
        pos = 0;
      }
      end = pos + total;
      if (total < this.need) {
        this.pending = buf;
        this.pendStart = pos;
        this.pendEnd = end;
        return;
      }
    }
    const reached = this.parse(buf, pos, end);
    if (reached === FATAL) {
      this.pending = null;
      return;
    }
    if (reached === end) {
      this.pending = null;
      this.need = 0;
      return;
    }
    const left = end - reached;
    if (buf === chunk) {
      const carry = new Uint8Array(capacity(left, this.need));
      carry.set(chunk.subarray(reached, end));
      this.pending = carry;
      this.pendStart = 0;
      this.pendEnd = left;
    } else {
      this.pending = buf;
      this.pendStart = reached;
      this.pendEnd = end;
    }
  }

  dropPending(): void {
    this.pending = null;
    this.need = 0;
  }
}
