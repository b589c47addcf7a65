// One TCP connection to a sentinel: connect (bounded by a timeout), write commands, receive
// decoded replies in order, and one close notice with the reason, whatever ends it. Sockets
// come from the pool's socket factory, handed in (the transport is chosen in one place).

import type { Socket, SocketHandler } from "bun";
import type { Address } from "../conf/types.ts";
import { ReplyReader, type Reply, type ReplyFramer } from "./reply.ts";

export interface ConnHandlers {
  /** The connection is open (the commands written before it are on their way). */
  open?(): void;
  reply(reply: Reply): void;
  /** Called once, after which nothing more is called. */
  closed(reason: string): void;
}

const describeError = (err: Error): string => (err as Error & { code?: string }).code ?? err.message;

/** Where sockets come from: the shape of the core's SocketFactory.connect. */
export interface SentinelSockets {
  connect<T>(addr: Address, handlers: SocketHandler<T>, data: T): Promise<Socket<T>>;
}

const socketHandlers: SocketHandler<SentinelConn> = {
  binaryType: "uint8array",
  open(s: Socket<SentinelConn>) {
    s.data.onOpen(s);
  },
  data(s: Socket<SentinelConn>, chunk: Uint8Array) {
    s.data.onData(chunk);
  },
  close(s: Socket<SentinelConn>, err?: Error) {
    s.data.end(err === undefined ? "closed by the sentinel" : describeError(err));
  },
  connectError(s: Socket<SentinelConn>, err: Error) {
    s.data.end(describeError(err));
  },
  error(s: Socket<SentinelConn>, err: Error) {
    s.data.end(describeError(err));
  },
};

export class SentinelConn {
  private socket: Socket<SentinelConn> | null = null;
  private readonly reader: ReplyReader;
  /** Written before the socket opened. */
  private pending: Uint8Array[] = [];
  private done = false;
  private readonly connectTimer: ReturnType<typeof setTimeout>;

  constructor(
    readonly addr: Address,
    private readonly handlers: ConnHandlers,
    connectTimeoutMs: number,
    framer: ReplyFramer,
    sockets: SentinelSockets,
  ) {
    this.reader = new ReplyReader(framer);
    this.connectTimer = setTimeout(() => this.end(`no connection after ${connectTimeoutMs} ms`), connectTimeoutMs);
    sockets.connect(addr, socketHandlers, this).catch((err: Error) => this.end(describeError(err)));
  }

  get closed(): boolean {
    return this.done;
  }

  write(bytes: Uint8Array): void {
    if (this.done) return;
    if (this.socket === null) this.pending.push(bytes);
    else this.socket.write(bytes);
  }

  onOpen(s: Socket<SentinelConn>): void {
    if (this.done) {
      s.terminate();
      return;
    }
    clearTimeout(this.connectTimer);
    this.socket = s;
    for (const bytes of this.pending) s.write(bytes);
    this.pending = [];
    this.handlers.open?.();
  }

  onData(chunk: Uint8Array): void {
    if (this.done) return;
    let replies: Reply[];
    try {
      replies = this.reader.feed(chunk);
    } catch (error) {
      this.end((error as Error).message);
      return;
    }
    for (const reply of replies) {
      if (this.done) return;
      this.handlers.reply(reply);
    }
  }

  /** Close (if still open) and tell the handlers why, once. */
  end(reason: string): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.connectTimer);
    const s = this.socket;
    this.socket = null;
    s?.terminate();
    this.handlers.closed(reason);
  }
}
