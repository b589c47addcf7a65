// Write coalescing. Each Bun socket.write() is one syscall, so connections only append to their
// output buffer and mark themselves dirty; one flush per event-loop turn writes every dirty
// connection's buffer with a single write.

import type { Socket } from "bun";
import type { ByteWriter } from "./bytes.ts";

export interface Flushable {
  dirty: boolean;
  flush(): void;
}

const dirty: Flushable[] = [];
let scheduled = false;

function flushAll(): void {
  scheduled = false;
  // flush() may mark more connections dirty (error replies): the loop sees them too.
  for (let i = 0; i < dirty.length; i++) {
    const c = dirty[i]!;
    c.dirty = false;
    c.flush();
  }
  dirty.length = 0;
}

export function markDirty(c: Flushable): void {
  if (c.dirty) return;
  c.dirty = true;
  dirty.push(c);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushAll);
  }
}

/** From this size on, a payload with nothing queued before it skips the output buffer. */
const WRITE_THROUGH_MIN = 16384;

/** Append buf[start, end) to a connection's output, or, when it is large and nothing waits
 *  before it, write it straight from where it was read (only what the socket does not take is
 *  copied). Returns true when the socket pushed back (wait for `drain`). */
export function send(
  socket: Socket<any> | null,
  blocked: boolean,
  out: ByteWriter,
  buf: Uint8Array,
  start: number,
  end: number,
): boolean {
  if (socket === null || blocked || end - start < WRITE_THROUGH_MIN || out.len !== out.head) {
    out.bytes(buf, start, end);
    return false;
  }
  const n = socket.write(buf, start, end - start);
  if (n === end - start) return false;
  out.bytes(buf, n > 0 ? start + n : start, end);
  return n >= 0;
}

/** Write out as much of `out` as the socket takes. Returns false when the socket pushed back
 *  (the rest stays in `out`; the caller waits for `drain`) or is closed. */
export function writeOut(socket: Socket<any>, out: ByteWriter): boolean {
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
