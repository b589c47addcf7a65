// Byte utilities below every layer: a growable byte buffer, the one way the proxy builds or
// accumulates bytes (coalesced socket output, split fragments, merged replies), and the byte
// comparisons and decimal helpers the protocols and the core share.
//
// Connection buffers come from a pool of fixed-size chunks (twemproxy's mbufs; `-m` sets the
// size) and go back to it when emptied, so idle connections hold no buffer; chunks the pool did
// not hand out for a second go back to the collector, so memory falls back after a burst of
// large values or of clients.

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
/** Copies shorter than this are done byte by byte; longer ones by Buffer#copy (a native memcpy),
 *  which costs about 15 ns whatever the size, as a loop does at 18-20 bytes (measured). */
const SMALL_COPY = 20;
/** Buffer#copy, called on plain Uint8Arrays: a copy between two buffers without the subarray
 *  view that set() needs (an allocation costing as much as a byte loop over 120-190 bytes). */
const copyBytes = Buffer.prototype.copy;

/** How often the pool gives back the chunks it did not hand out since the last time. */
const TRIM_MS = 1000;
/** A trim that gave back this much asks for a collection (not blocking), so that the memory
 *  leaves the process rather than waiting for the collector's next turn (an idle proxy
 *  allocates nothing). */
const TRIM_COLLECT_BYTES = 1 << 20;

export const bufferPool = {
  /** Size of a pooled chunk (`-m`, nutcracker's mbuf size). */
  size: 16384,
  /** Chunks kept for reuse at most. */
  max: 4096,
  free: [] as Uint8Array[],
  /** The fewest chunks free since the last trim: that many were not needed all along. */
  low: 0,
  /** Runs trim() while any chunk is free. */
  trimmer: null as ReturnType<typeof setInterval> | null,

  get(): Uint8Array {
    const b = this.free.pop();
    if (b === undefined) return new Uint8Array(this.size);
    if (this.free.length < this.low) this.low = this.free.length;
    return b;
  },

  put(b: Uint8Array): void {
    if (b.length !== this.size || this.free.length >= this.max) return;
    this.free.push(b);
    if (this.trimmer === null) {
      this.low = this.free.length;
      this.trimmer = setInterval(() => this.trim(), TRIM_MS);
      this.trimmer.unref();
    }
  },

  /** Give back the chunks that stayed free since the last trim, the least recently used (a
   *  burst's chunks do not stay, as twemproxy's mbufs do); stop when none is left. */
  trim(): void {
    const unused = this.low;
    if (unused > 0) this.free.splice(0, unused);
    this.low = this.free.length;
    if (this.free.length === 0) this.stopTrimming();
    if (unused * this.size >= TRIM_COLLECT_BYTES) Bun.gc(false);
  },

  stopTrimming(): void {
    if (this.trimmer !== null) clearInterval(this.trimmer);
    this.trimmer = null;
  },

  setSize(size: number): void {
    this.size = size;
    this.free.length = 0;
    this.low = 0;
    this.stopTrimming();
  },
};

export class ByteWriter {
  /** release() keeps a buffer up to this size instead of giving it back (server connections,
   *  few and busy, keep theirs; clients, many and mostly idle, give theirs back). */
  keep = 0;
  buf: Uint8Array;
  /** The content is buf[head, len); head moves forward as a socket takes part of it. */
  head = 0;
  len = 0;

  /** capacity 0: start empty and take chunks from the pool on first use. */
  constructor(capacity = 0) {
    this.buf = capacity === 0 ? EMPTY : new Uint8Array(capacity);
  }

  /** Make room for n more bytes. */
  reserve(n: number): void {
    const need = this.len + n;
    if (need <= this.buf.length) return;
    if (this.buf.length === 0 && need <= bufferPool.size) {
      this.buf = bufferPool.get();
      return;
    }
    const size = this.len - this.head;
    if (this.head > 0 && size + n <= this.buf.length) {
      // Room at the front, left by partial writes: move the content there once.
      this.buf.copyWithin(0, this.head, this.len);
      this.head = 0;
      this.len = size;
      return;
    }
    let cap = Math.max(this.buf.length * 2, bufferPool.size);
    while (cap < size + n) cap *= 2;
    // A plain Uint8Array, never a Buffer: Buffer#slice returns a view, and take() relies on
    // slice() copying (a merged reply must not change when the writer is reused).
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(this.head, this.len));
    bufferPool.put(this.buf);
    this.buf = next;
    this.head = 0;
    this.len = size;
  }

  /** Bytes held. */
  get size(): number {
    return this.len - this.head;
  }

  /** Drop the first n bytes (a socket took them): O(1), no copying. */
  consume(n: number): void {
    this.head += n;
    if (this.head >= this.len) this.head = this.len = 0;
  }

  /** The content as a view, handed over: the writer starts afresh without a buffer (the view
   *  keeps the old one, which therefore never goes back to the pool). */
  detach(): Uint8Array {
    const v = this.buf.subarray(this.head, this.len);
    this.buf = EMPTY;
    this.head = this.len = 0;
    return v;
  }

  /** Keep only the first `size` bytes of the content (undo appends after a `size` mark). */
  truncate(size: number): void {
    this.len = this.head + size;
  }

  /** Drop everything. */
  clear(): void {
    this.head = this.len = 0;
  }

  /** When empty, give the buffer back to the pool (or to the GC when oversized). */
  release(): void {
    if (this.len !== this.head || this.buf.length <= this.keep) return;
    this.head = this.len = 0;
    bufferPool.put(this.buf);
    this.buf = EMPTY;
  }

  bytes(src: Uint8Array, start = 0, end = src.length): void {
    const n = end - start;
    this.reserve(n);
    const buf = this.buf;
    const at = this.len;
    if (n < SMALL_COPY) {
      // One induction variable: the `buf[at++] = src[i]` form ran ~10x slower in the proxy
      // (JSC; measured with --cpu-prof on 10-key multi-gets, 48% of samples -> 12%).
      for (let k = 0; k < n; k++) buf[at + k] = src[start + k]!;
    } else {
      // An MGET's keys and values (20-40 bytes with their framing) are copied here: 5% less
      // JavaScript CPU per split 10-key MGET than a byte loop up to 128 bytes (bench/README.md).
      copyBytes.call(src, buf, at, start, end);
    }
    this.len += n;
  }

  byte(b: number): void {
    this.reserve(1);
    this.buf[this.len++] = b;
  }

  /** ASCII/UTF-8 text: for headers and proxy-made replies, never for payloads. */
  text(s: string): void {
    this.reserve(s.length * 3);
    this.len += encoder.encodeInto(s, this.buf.subarray(this.len)).written;
  }

  /** A non-negative or negative integer in decimal, without allocating a string. */
  int(n: number): void {
    if (n < 0) {
      this.byte(45);
      n = -n;
    }
    if (n < 10) {
      this.byte(48 + n);
      return;
    }
    let digits = decimalDigits(n);
    this.reserve(digits);
    let p = this.len + digits;
    this.len = p;
    while (digits-- > 0) {
      this.buf[--p] = 48 + (n % 10);
      n = Math.floor(n / 10);
    }
  }

  crlf(): void {
    this.reserve(2);
    this.buf[this.len++] = 13;
    this.buf[this.len++] = 10;
  }

  /** A copy of the content (the writer may then be reset and reused). */
  take(): Uint8Array {
    const out = this.buf.slice(this.head, this.len);
    this.head = this.len = 0;
    return out;
  }

  view(): Uint8Array {
    return this.buf.subarray(this.head, this.len);
  }

  reset(): void {
    this.head = this.len = 0;
  }
}

/** How many digits a non-negative integer has in decimal. */
export function decimalDigits(n: number): number {
  let digits = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    digits++;
  }
  return digits;
}

export function ascii(s: string): Uint8Array {
  return encoder.encode(s);
}

/** a[aStart, aEnd) and b[bStart, bEnd) hold the same bytes. */
export function equalBytes(a: Uint8Array, aStart: number, aEnd: number, b: Uint8Array, bStart: number, bEnd: number): boolean {
  const n = aEnd - aStart;
  if (n !== bEnd - bStart) return false;
  for (let k = 0; k < n; k++) if (a[aStart + k] !== b[bStart + k]) return false;
  return true;
}
