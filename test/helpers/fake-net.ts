// Sockets without a network, for unit tests of the core (src/core): a SocketFactory whose server
// connections are FakeSockets the test answers by hand, and clients attached to a pool through
// the listener's own accept(). Everything above the socket is the proxy's real code: Proxy,
// Pool, dispatch, the codecs, ServerConn, ClientConn, write coalescing. A FakeSocket records
// what the proxy wrote and can refuse to take bytes (backpressure).

import type { Socket, SocketHandler, SocketListener } from "bun";
import type { ClientConn } from "../../src/core/client.ts";
import { accept } from "../../src/core/listener.ts";
import type { Pool } from "../../src/core/pool.ts";
import { Proxy } from "../../src/core/proxy.ts";
import type { ServerConn } from "../../src/core/server-conn.ts";
import type { SocketFactory } from "../../src/core/sockets.ts";
import { parseConfig } from "../../src/conf/load.ts";
import type { Address } from "../../src/conf/types.ts";

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

export class FakeSocket<T> {
  /** Every write, as the bytes the socket took. */
  private readonly chunks: Uint8Array[] = [];
  /** Bytes the socket takes from now on (Infinity: all); a write beyond takes what is left. */
  room = Infinity;
  paused = false;
  ended = false;
  terminated = false;

  constructor(
    public data: T,
    readonly addr: Address | null,
    private readonly handlers: SocketHandler<T> | null,
  ) {}

  write(buf: Uint8Array | string, offset = 0, length?: number): number {
    const bytes = typeof buf === "string" ? encoder.encode(buf) : buf;
    const view = bytes.subarray(offset, length === undefined ? bytes.length : offset + length);
    const n = Math.min(view.length, this.room);
    this.room -= n;
    if (n > 0) this.chunks.push(view.slice(0, n));
    return n;
  }

  /** What the proxy wrote since the last take(), as latin1 text. */
  take(): string {
    const text = this.chunks.map((c) => latin1.decode(c)).join("");
    this.chunks.length = 0;
    return text;
  }

  /** How many writes (syscalls, in the proxy) there were since the last take(). */
  get writes(): number {
    return this.chunks.length;
  }

  /** The peer sends bytes. */
  receive(text: string | Uint8Array): void {
    const bytes = typeof text === "string" ? encoder.encode(text) : text;
    this.handlers!.data!(this as unknown as Socket<T>, bytes as Buffer);
  }

  /** The peer closes (err: with an error). */
  close(err?: Error): void {
    this.handlers!.close!(this as unknown as Socket<T>, err);
  }

  /** The socket takes bytes again. */
  drain(): void {
    this.room = Infinity;
    this.handlers!.drain!(this as unknown as Socket<T>);
  }

  end(): void {
    this.ended = true;
  }
  terminate(): void {
    this.terminated = true;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  setNoDelay(): boolean {
    return true;
  }
  setKeepAlive(): boolean {
    return true;
  }
}

/** Server connections the proxy opened, in order, with their fake sockets. */
export class FakeNet implements SocketFactory {
  readonly servers: FakeSocket<ServerConn>[] = [];

  connect<T>(addr: Address, handlers: SocketHandler<T>, data: T): Promise<Socket<T>> {
    const s = new FakeSocket<T>(data, addr, handlers);
    this.servers.push(s as unknown as FakeSocket<ServerConn>);
    // As Bun does: the socket opens after connect() returned.
    queueMicrotask(() => handlers.open!(s as unknown as Socket<T>));
    return Promise.resolve(s as unknown as Socket<T>);
  }

  listen<T>(): SocketListener<T> {
    throw new Error("FakeNet does not listen: attach clients with client()");
  }

  unlisten(): void {}

  /** The server connections to `port`. */
  to(port: number): FakeSocket<ServerConn>[] {
    return this.servers.filter((s) => s.addr!.port === port);
  }
}

/** A Proxy on `yaml` whose server connections are fake (nothing listens). */
export function fakeProxy(yaml: string): { proxy: Proxy; net: FakeNet } {
  const net = new FakeNet();
  const proxy = new Proxy(parseConfig(yaml, "fake.yml", () => {}), { reusePort: false, listenUnix: false }, net);
  return { proxy, net };
}

/** A client of pool, connected through the listener's accept(). */
export function client(pool: Pool): FakeSocket<ClientConn> {
  const handlers: SocketHandler<ClientConn> = {
    data: (s, chunk) => s.data.onData(chunk),
    drain: (s) => s.data.onDrain(),
    close: (s, err) => s.data.teardown(err),
  };
  const s = new FakeSocket<ClientConn>(undefined as unknown as ClientConn, null, handlers);
  accept(pool, s as unknown as Socket<ClientConn>);
  return s;
}

/** Let the proxy's writes of this loop turn happen (write coalescing runs on setImmediate). */
export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Turns until `check` holds (at most `turns`; replies may be held back for a millisecond). */
export async function until(check: () => boolean, turns = 200): Promise<void> {
  for (let i = 0; i < turns && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 1));
  if (!check()) throw new Error(`not reached after ${turns} turns: ${check.toString()}`);
}
