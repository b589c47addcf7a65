// A deliberately broken redis proxy, to prove the checker (test/checker) sees each kind of loss.
// It forwards every request of a client, in order, to real redis servers over that client's own
// connections, and answers in order, except for its one flaw:
//   none          a correct proxy (the control: the checker must pass it)
//   drop-write    every 50th SET is acknowledged (+OK) and never sent
//   swap          every 200th reply changes place with the next one, when they differ
//   twice         the 500th reply of the proxy's life is sent twice
//   twice-idle    when told the traffic stopped (repeatLast), each client's last reply is sent again
//   wrong-server  writes (SET, MSET, DEL) go to the first server, reads to the second
//   error-some    every 100th request is answered -ERR Connection refused (no server failed)
//   error-all     every request is
// Requests are framed with the test framer and nothing else is parsed; it is a test fake, not a
// proxy, and it stops everything it starts.

import type { Socket, TCPSocketListener } from "bun";
import type { Backend } from "./backends.ts";
import { freePort } from "./ports.ts";
import { decode, respFrame } from "./resp.ts";

export type Flaw = "none" | "drop-write" | "swap" | "twice" | "twice-idle" | "wrong-server" | "error-some" | "error-all";

export interface BrokenProxy {
  readonly endpoint: { host: string; port: number };
  /** How many times the flaw acted. */
  readonly flawed: number;
  /** twice-idle: once every request was answered, send each client's last reply again (a reply
   *  that answers nothing, after the last request); the others do nothing. */
  repeatLast(): void;
  stop(): void;
}

const WRITES = new Set(["SET", "MSET", "DEL"]);
const OK = Buffer.from("+OK\r\n");
const REFUSED = Buffer.from("-ERR Connection refused\r\n");

/** Writes that survive backpressure: what the socket did not take waits for its drain. */
class Out {
  private pending: Buffer[] = [];
  constructor(private readonly socket: Socket<any>) {}

  write(bytes: Buffer): void {
    this.pending.push(bytes);
    if (this.pending.length === 1) this.drain();
  }

  drain(): void {
    while (this.pending.length > 0) {
      const head = this.pending[0]!;
      const n = Math.max(0, this.socket.write(head));
      if (n < head.length) {
        this.pending[0] = head.subarray(n);
        return;
      }
      this.pending.shift();
    }
  }
}

/** A request's place in its client's reply order. */
interface Slot {
  /** The server that answers it, or null when the fake answers itself. */
  readonly server: number | null;
  reply: Buffer | null;
}

interface Client {
  readonly socket: Socket<Client>;
  readonly out: Out;
  upstream: (Socket<undefined> | null)[];
  upstreamOut: (Out | null)[];
  /** Request bytes not framed yet, and requests waiting for their server connections. */
  input: Buffer;
  early: Buffer[];
  slots: Slot[];
  /** Replies framed from each server, not yet matched (bytes not framed yet). */
  serverInput: Buffer[];
  last: Buffer | null;
  closed: boolean;
}

export async function startBrokenProxy(servers: Backend[], flaw: Flaw): Promise<BrokenProxy> {
  if (flaw === "wrong-server" && servers.length < 2) throw new Error("wrong-server needs two servers");
  const port = freePort();
  let flawed = 0;
  let sets = 0;
  let replies = 0;
  let requests = 0;
  const clients = new Set<Client>();

  const send = (c: Client, reply: Buffer): void => {
    c.out.write(reply);
    c.last = reply;
    replies++;
    if (flaw === "twice" && replies === 500) {
      flawed++;
      c.out.write(reply);
    }
  };

  const flush = (c: Client): void => {
    while (c.slots.length > 0 && c.slots[0]!.reply !== null) {
      const first = c.slots[0]!;
      if (flaw === "swap" && (replies + 1) % 200 === 0) {
        const second = c.slots[1];
        if (second === undefined || second.reply === null) return; // wait for the one to swap with
        c.slots.splice(0, 2);
        if (!second.reply.equals(first.reply!)) flawed++;
        send(c, second.reply);
        send(c, first.reply!);
        continue;
      }
      c.slots.shift();
      send(c, first.reply!);
    }
  };

  const request = (c: Client, bytes: Buffer): void => {
    const args = decode(bytes) as Buffer[];
    const name = args[0]!.toString("latin1").toUpperCase();
    if (flaw === "drop-write" && name === "SET" && ++sets % 50 === 0) {
      flawed++;
      c.slots.push({ server: null, reply: OK });
      flush(c);
      return;
    }
    requests++;
    if (flaw === "error-all" || (flaw === "error-some" && requests % 100 === 0)) {
      flawed++;
      c.slots.push({ server: null, reply: REFUSED });
      flush(c);
      return;
    }
    const server = flaw === "wrong-server" && !WRITES.has(name) ? 1 : 0;
    c.slots.push({ server, reply: null });
    c.upstreamOut[server]!.write(bytes);
  };

  const fromClient = (c: Client, chunk: Buffer): void => {
    c.input = Buffer.concat([c.input, chunk]);
    let at = 0;
    for (;;) {
      const stop = respFrame(c.input, at, c.input.length);
      if (stop < 0) break;
      const bytes = c.input.subarray(at, stop);
      if (c.upstream.every((u) => u !== null)) request(c, Buffer.from(bytes));
      else c.early.push(Buffer.from(bytes));
      at = stop;
    }
    c.input = c.input.subarray(at);
  };

  const fromServer = (c: Client, server: number, chunk: Buffer): void => {
    let input = Buffer.concat([c.serverInput[server]!, chunk]);
    let at = 0;
    for (;;) {
      const stop = respFrame(input, at, input.length);
      if (stop < 0) break;
      const slot = c.slots.find((s) => s.server === server && s.reply === null);
      if (slot === undefined) throw new Error(`broken proxy: server ${server} answered nothing asked`);
      slot.reply = Buffer.from(input.subarray(at, stop));
      at = stop;
    }
    c.serverInput[server] = input.subarray(at);
    flush(c);
  };

  const close = (c: Client): void => {
    if (c.closed) return;
    c.closed = true;
    for (const u of c.upstream) u?.end();
    c.socket.end();
    clients.delete(c);
  };

  const listener: TCPSocketListener<Client> = Bun.listen<Client>({
    hostname: "127.0.0.1",
    port,
    socket: {
      open(socket) {
        const c: Client = {
          socket,
          out: new Out(socket),
          upstream: servers.map(() => null),
          upstreamOut: servers.map(() => null),
          input: Buffer.alloc(0),
          early: [],
          slots: [],
          serverInput: servers.map(() => Buffer.alloc(0)),
          last: null,
          closed: false,
        };
        socket.data = c;
        clients.add(c);
        servers.forEach((b, i) => {
          void Bun.connect({
            hostname: b.host,
            port: b.port,
            socket: {
              data: (_s, chunk) => fromServer(c, i, Buffer.from(chunk)),
              drain: () => c.upstreamOut[i]?.drain(),
              close: () => close(c),
              error: () => close(c),
            },
          }).then(
            (u) => {
              if (c.closed) return void u.end();
              c.upstream[i] = u;
              c.upstreamOut[i] = new Out(u);
              if (c.upstream.every((x) => x !== null)) for (const bytes of c.early.splice(0)) request(c, bytes);
            },
            () => close(c),
          );
        });
      },
      data: (socket, chunk) => fromClient(socket.data, Buffer.from(chunk)),
      drain: (socket) => socket.data.out.drain(),
      close: (socket) => close(socket.data),
      error: (socket) => close(socket.data),
    },
  });

  return {
    endpoint: { host: "127.0.0.1", port },
    get flawed() {
      return flawed;
    },
    repeatLast() {
      if (flaw !== "twice-idle") return;
      for (const c of clients) {
        if (c.slots.length > 0 || c.last === null) throw new Error("broken proxy: repeatLast with requests unanswered");
        flawed++;
        c.out.write(c.last);
      }
    },
    stop() {
      for (const c of [...clients]) close(c);
      listener.stop(true);
    },
  };
}
