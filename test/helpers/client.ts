// A raw byte client for proxies and backends: send exact bytes (whole, in chunks, or one byte at a
// time), read N complete replies using a protocol framer, or read until the peer closes. Every
// wait has a timeout that throws (so a broken proxy fails the test instead of hanging it).

import type { Socket, SocketHandler, TLSOptions } from "bun";
import type { Bytes } from "./resp.ts";

/** End offset of the complete reply that starts at `start` in buf[start, end), or -1. */
export type Framer = (buf: Uint8Array, start: number, end: number) => number;

/** Where to connect: TCP host:port or a unix socket path. */
export type Endpoint = { host: string; port: number } | { path: string };

export interface SendOptions {
  /** Split the bytes into chunks of this size (1 = one byte at a time), or of these sizes in turn. */
  chunks?: number | number[];
  /** Pause between chunks, so the peer reads them separately; default 1 ms when chunking. */
  gapMs?: number;
}

export interface ReadOptions {
  /** Default 10 s. */
  timeoutMs?: number;
  /**
   * More replies are expected after these (a pipeline read in parts). Otherwise any byte already
   * received beyond the expected replies fails the read: a proxy must answer each request once.
   */
  more?: boolean;
}

export interface ReadResult {
  replies: Buffer[];
  /** True when the peer closed before all requested replies arrived. */
  closed: boolean;
}

const DEFAULT_TIMEOUT_MS = 10000;

/** Bun.connect to a TCP or unix endpoint. */
export function connectSocket(endpoint: Endpoint, socket: SocketHandler<undefined>): Promise<Socket<undefined>> {
  return "path" in endpoint
    ? Bun.connect({ unix: endpoint.path, socket })
    : Bun.connect({ hostname: endpoint.host, port: endpoint.port, socket });
}

export const describeEndpoint = (e: Endpoint): string => ("path" in e ? e.path : `${e.host}:${e.port}`);

export class RawClient {
  private buf = new Uint8Array(64 * 1024);
  private start = 0; // first unread byte
  private end = 0; // one past the last received byte
  private isClosed = false;
  private wake: (() => void) | null = null;
  private pending: Uint8Array[] = []; // bytes not yet accepted by the socket
  private flushWaiters: (() => void)[] = [];
  private socket: Socket<undefined> | null = null;

  private constructor(readonly endpoint: Endpoint) {}

  /** Opens a connection; throws if it is refused or not established within `timeoutMs`. */
  static async connect(endpoint: Endpoint, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RawClient> {
    const client = new RawClient(endpoint);
    const connecting = connectSocket(endpoint, {
      data: (_socket, chunk) => client.received(chunk),
      drain: () => client.writePending(),
      close: () => client.closedByPeer(),
      end: () => client.closedByPeer(),
      error: () => client.closedByPeer(),
    });
    const socket = await withTimeout(connecting, timeoutMs, `connect to ${describeEndpoint(endpoint)}`);
    client.socket = socket;
    if (!("path" in endpoint)) socket.setNoDelay(true);
    return client;
  }

  /** Opens a TLS connection to a TCP endpoint and resolves once the handshake succeeded. Rejects
   *  with the reason when it fails on our side (the peer's certificate did not verify), when the
   *  peer ends the connection during the handshake, or after `timeoutMs`. */
  static async connectTls(
    endpoint: { host: string; port: number },
    tls: TLSOptions,
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<RawClient> {
    const client = new RawClient(endpoint);
    const handshake = Promise.withResolvers<Socket<undefined>>();
    const refused = (why: string) => handshake.reject(new Error(`TLS handshake with ${describeEndpoint(endpoint)}: ${why}`));
    Bun.connect({
      hostname: endpoint.host,
      port: endpoint.port,
      tls,
      socket: {
        handshake(socket, ok, error) {
          if (ok) handshake.resolve(socket);
          else refused(error?.message ?? "refused");
        },
        data: (_socket, chunk) => client.received(chunk),
        drain: () => client.writePending(),
        close: (_socket, error) => {
          refused(error?.message ?? "closed by the peer");
          client.closedByPeer();
        },
        end: () => client.closedByPeer(),
        error: (_socket, error) => {
          refused(error.message);
          client.closedByPeer();
        },
        connectError: (_socket, error) => refused(error.message),
      },
    }).catch((error: Error) => refused(error.message));
    const socket = await withTimeout(handshake.promise, timeoutMs, `TLS connect to ${describeEndpoint(endpoint)}`);
    client.socket = socket;
    socket.setNoDelay(true);
    return client;
  }

  /** The certificate the peer presented (TLS connections), e.g. its `serialNumber`. */
  peerCertificate(): ReturnType<Socket<undefined>["getPeerCertificate"]> | null {
    return this.socket?.getPeerCertificate() ?? null;
  }

  /** Our side's TCP port (which proxy process accepted us: procfs.ts connectionOwner). */
  get localPort(): number {
    return this.socket?.localPort ?? 0;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Bytes received and not yet consumed by a read. */
  get buffered(): Buffer {
    return Buffer.from(this.buf.subarray(this.start, this.end));
  }

  /** Sends `data`; resolves when every byte has been handed to the kernel. */
  async send(data: Bytes, opts: SendOptions = {}): Promise<void> {
    const bytes = typeof data === "string" ? Buffer.from(data, "latin1") : data;
    if (opts.chunks === undefined) return this.write(bytes);
    const sizes = typeof opts.chunks === "number" ? [opts.chunks] : opts.chunks;
    const gap = opts.gapMs ?? 1;
    for (let at = 0, i = 0; at < bytes.length; i++) {
      const size = Math.max(1, sizes[i % sizes.length]!);
      await this.write(bytes.subarray(at, at + size));
      at += size;
      if (at < bytes.length && gap > 0) await Bun.sleep(gap);
    }
  }

  /**
   * Reads exactly `count` complete replies; throws if the peer closes first, on timeout, or when
   * bytes beyond them have arrived (unless `more`). A number is the timeout (ms).
   */
  async readReplies(count: number, framer: Framer, opts: number | ReadOptions = {}): Promise<Buffer[]> {
    const { replies, closed } = await this.readRepliesOrClose(count, framer, opts);
    if (closed) {
      throw new Error(
        `${describeEndpoint(this.endpoint)} closed the connection after ${replies.length} of ${count} replies` +
          ` (unparsed: ${preview(this.buffered)})`,
      );
    }
    return replies;
  }

  /** Reads one complete reply (and nothing beyond it, unless `more`). */
  async readReply(framer: Framer, opts: number | ReadOptions = {}): Promise<Buffer> {
    return (await this.readReplies(1, framer, opts))[0]!;
  }

  /**
   * Reads up to `count` replies, stopping early (closed: true) if the peer closes; throws on
   * timeout, or when bytes beyond the `count` replies have arrived (unless `more`).
   */
  async readRepliesOrClose(count: number, framer: Framer, opts: number | ReadOptions = {}): Promise<ReadResult> {
    const { timeoutMs = DEFAULT_TIMEOUT_MS, more = false } = typeof opts === "number" ? { timeoutMs: opts } : opts;
    const replies: Buffer[] = [];
    const deadline = Date.now() + timeoutMs;
    while (replies.length < count) {
      const stop = framer(this.buf, this.start, this.end);
      if (stop >= 0) {
        replies.push(Buffer.from(this.buf.subarray(this.start, stop)));
        this.start = stop;
        continue;
      }
      if (this.isClosed) return { replies, closed: true };
      await this.waitForData(deadline, () =>
        `${describeEndpoint(this.endpoint)}: timed out after ${timeoutMs} ms waiting for reply ${replies.length + 1} of ${count}` +
          ` (buffered ${this.end - this.start} bytes: ${preview(this.buffered)})`,
      );
    }
    if (!more && this.end > this.start) {
      throw new Error(
        `${describeEndpoint(this.endpoint)}: ${this.end - this.start} bytes after the ${count} expected replies: ${preview(this.buffered)}`,
      );
    }
    return { replies, closed: false };
  }

  /** Everything received until the peer closes; throws if it stays open past `timeoutMs`. */
  async readUntilClose(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (!this.isClosed) {
      await this.waitForData(deadline, () =>
        `${describeEndpoint(this.endpoint)}: still open after ${timeoutMs} ms (received ${preview(this.buffered)})`,
      );
    }
    const rest = this.buffered;
    this.start = this.end;
    return rest;
  }

  /** True if the peer closes within `ms`, false if the connection is still open then (no throw). */
  async closesWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.isClosed && Date.now() < deadline) {
      await this.waitForData(deadline, () => "").catch(() => {});
    }
    return this.isClosed;
  }

  /** Closes our side. */
  close(): void {
    if (!this.isClosed) this.socket?.end();
    this.isClosed = true;
  }

  private received(chunk: Uint8Array): void {
    if (this.end + chunk.length > this.buf.length) {
      const live = this.end - this.start;
      if (live + chunk.length > this.buf.length / 2) {
        const bigger = new Uint8Array(Math.max(this.buf.length * 2, (live + chunk.length) * 2));
        bigger.set(this.buf.subarray(this.start, this.end));
        this.buf = bigger;
      } else {
        this.buf.copyWithin(0, this.start, this.end);
      }
      this.start = 0;
      this.end = live;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.length;
    this.notify();
  }

  private closedByPeer(): void {
    this.isClosed = true;
    this.notify();
    this.wakeWriters(); // pending writes will never complete
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private waitForData(deadline: number, message: () => string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.wake = null;
        reject(new Error(message()));
      }, Math.max(0, deadline - Date.now()));
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private write(bytes: Uint8Array): Promise<void> {
    if (this.isClosed) return Promise.reject(new Error(`${describeEndpoint(this.endpoint)}: write after close`));
    this.pending.push(bytes);
    return new Promise((resolve) => {
      this.flushWaiters.push(resolve);
      this.writePending();
    });
  }

  private writePending(): void {
    const socket = this.socket;
    if (socket === null) return;
    while (this.pending.length > 0) {
      const head = this.pending[0]!;
      const written = socket.write(head);
      if (written < head.length) {
        this.pending[0] = head.subarray(Math.max(0, written));
        return; // the rest goes on `drain`
      }
      this.pending.shift();
    }
    socket.flush();
    this.wakeWriters();
  }

  private wakeWriters(): void {
    const waiters = this.flushWaiters;
    this.flushWaiters = [];
    for (const resolve of waiters) resolve();
  }
}

function preview(bytes: Uint8Array): string {
  const shown = Buffer.from(bytes.subarray(0, 120)).toString("latin1");
  return JSON.stringify(shown) + (bytes.length > 120 ? `... (${bytes.length} bytes)` : "");
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Connects, sends `data`, reads `count` replies, closes. */
export async function exchange(endpoint: Endpoint, data: Bytes, count: number, framer: Framer, timeoutMs?: number): Promise<Buffer[]> {
  const client = await RawClient.connect(endpoint);
  try {
    await client.send(data);
    return await client.readReplies(count, framer, timeoutMs);
  } finally {
    client.close();
  }
}
