// A client that writes faster than it reads: it pipelines requests until the peer stops taking
// them, can stop and resume reading, and checks the replies as they stream in against the one
// reply every request must get (without keeping them, so hundreds of megabytes can be checked).

import type { Socket } from "bun";
import { connectSocket, describeEndpoint, type Endpoint } from "./client.ts";

export class Flood {
  private socket!: Socket<undefined>;
  /** The unwritten rest of the request being written. */
  private rest: Uint8Array | null = null;
  private drained: (() => void) | null = null;
  /** Offset into `reply` of the next byte expected. */
  private at = 0;
  private isClosed = false;
  private wake: (() => void) | null = null;
  /** Requests written completely (a partly written one counts once finish() wrote it). */
  requests = 0;
  bytesSent = 0;
  /** Complete replies received, and the first byte that differed. */
  replies = 0;
  mismatch: string | null = null;

  private constructor(
    private readonly endpoint: Endpoint,
    /** The reply to every request. */
    private readonly reply: Buffer,
  ) {}

  static async connect(endpoint: Endpoint, reply: Uint8Array): Promise<Flood> {
    const f = new Flood(endpoint, Buffer.from(reply));
    f.socket = await connectSocket(endpoint, {
      data: (_s, chunk) => f.received(chunk),
      drain: () => f.wakeWriter(),
      close: () => f.closedByPeer(),
      end: () => f.closedByPeer(),
      error: () => f.closedByPeer(),
    });
    return f;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Leave replies in the kernel: the peer's writes back up. */
  stopReading(): void {
    this.socket.pause();
  }

  startReading(): void {
    this.socket.resume();
  }

  /**
   * Writes requests from `next()` until the peer has taken no byte for `stallMs` (it stopped
   * reading) or `maxBytes` were sent. Returns true when it stalled.
   */
  async pushUntilStalled(next: () => Uint8Array, stallMs: number, maxBytes: number): Promise<boolean> {
    while (this.bytesSent < maxBytes) {
      if (this.isClosed) throw new Error(`${describeEndpoint(this.endpoint)} closed while we were writing`);
      if (this.rest === null) this.rest = next();
      if (this.writeSome()) continue;
      const progressed = await this.waitForDrain(stallMs);
      if (!progressed) return true;
    }
    return false;
  }

  /** Writes the rest of a partly written request. */
  async finish(timeoutMs = 10000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.rest !== null) {
      if (this.writeSome()) return;
      if (!(await this.waitForDrain(Math.max(1, deadline - Date.now())))) throw new Error("finish: the peer took nothing");
    }
  }

  /** Waits until `count` replies have been checked (throws on a mismatch, a close or timeout). */
  async readReplies(count: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.replies < count) {
      if (this.mismatch !== null) throw new Error(this.mismatch);
      if (this.isClosed) throw new Error(`${describeEndpoint(this.endpoint)} closed after ${this.replies} of ${count} replies`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${this.replies} of ${count} replies`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    if (this.mismatch !== null) throw new Error(this.mismatch);
  }

  close(): void {
    if (!this.isClosed) this.socket.terminate();
    this.isClosed = true;
  }

  /** Writes what the socket takes of the current request; true when all of it went. */
  private writeSome(): boolean {
    const rest = this.rest!;
    const n = this.socket.write(rest);
    const written = Math.max(0, n);
    this.bytesSent += written;
    if (written === rest.length) {
      this.rest = null;
      this.requests++;
      return true;
    }
    this.rest = rest.subarray(written);
    return false;
  }

  /** True when the socket drained within `ms`. */
  private waitForDrain(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.drained = null;
        resolve(false);
      }, ms);
      this.drained = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  private wakeWriter(): void {
    const d = this.drained;
    this.drained = null;
    d?.();
  }

  private received(chunk: Uint8Array): void {
    const reply = this.reply;
    const data = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    let pos = 0;
    while (pos < data.length && this.mismatch === null) {
      const n = Math.min(reply.length - this.at, data.length - pos);
      if (data.compare(reply, this.at, this.at + n, pos, pos + n) !== 0) {
        const got = data.toString("latin1", pos, Math.min(data.length, pos + 60));
        this.mismatch = `reply ${this.replies}, byte ${this.at}: got ${JSON.stringify(got)}, expected ${JSON.stringify(reply.toString("latin1", 0, 60))}`;
        break;
      }
      pos += n;
      this.at += n;
      if (this.at === reply.length) {
        this.at = 0;
        this.replies++;
      }
    }
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private closedByPeer(): void {
    this.isClosed = true;
    this.wakeWriter();
    const w = this.wake;
    this.wake = null;
    w?.();
  }
}
