// A recording relay in front of a real backend: every connection to the tap is relayed to the
// backend both ways, and what the proxy sent is kept, so a test can see the commands on the
// wire (joined retrieval lines) while a real server answers them. With `replyChunk`, the
// backend's bytes reach the proxy in pieces of that size, one per `gapMs`, so the proxy reads
// a reply in parts cut where the test chooses.

import type { Socket } from "bun";
import { freePort } from "./ports.ts";

export interface Tap {
  readonly address: string;
  /** Everything received from the proxy so far, over all connections, in arrival order. */
  sent(): string;
  /** Bytes received from the proxy since the tap started (forget() does not reset it). */
  received(): number;
  /** The lines of sent() whose first word is one of `commands`. */
  lines(...commands: string[]): string[];
  forget(): void;
  stop(): void;
}

/** One relayed connection; both of its sockets carry it as their data. */
interface Pair {
  client: Socket<Pair>;
  upstream: Socket<Pair> | null;
  /** Bytes a side has not taken yet (the upstream still connecting, or a full socket). */
  toUpstream: Uint8Array[];
  toClient: Uint8Array[];
  /** With replyChunk: the backend's bytes not passed on yet. */
  held: Buffer;
  dribbling: boolean;
}

export interface TapOptions {
  /** Pass the backend's bytes to the proxy in pieces of this size. */
  replyChunk?: number;
  /** Pause between those pieces (ms); default 5. */
  gapMs?: number;
}

/** Write queued bytes, then `chunk`, keeping what the socket does not take. */
function pass(to: Socket<Pair> | null, queue: Uint8Array[], chunk: Uint8Array | null): void {
  if (chunk !== null) queue.push(chunk.slice());
  while (to !== null && queue.length > 0) {
    const head = queue[0]!;
    const n = to.write(head);
    if (n < head.length) {
      queue[0] = head.slice(Math.max(n, 0));
      return;
    }
    queue.shift();
  }
}

export function startTap(backendHost: string, backendPort: number, opts: TapOptions = {}): Tap {
  let sent = "";
  const dribble = (pair: Pair): void => {
    if (pair.held.length === 0) {
      pair.dribbling = false;
      return;
    }
    pair.dribbling = true;
    pass(pair.client, pair.toClient, pair.held.subarray(0, opts.replyChunk));
    pair.held = pair.held.subarray(opts.replyChunk);
    setTimeout(() => dribble(pair), opts.gapMs ?? 5);
  };
  let received = 0;
  const sockets = new Set<Socket<Pair>>();
  const upstreamHandlers = {
    open(s: Socket<Pair>) {
      sockets.add(s);
      s.data.upstream = s;
      pass(s, s.data.toUpstream, null);
    },
    data(s: Socket<Pair>, chunk: Uint8Array) {
      if (opts.replyChunk === undefined) return pass(s.data.client, s.data.toClient, chunk);
      s.data.held = Buffer.concat([s.data.held, chunk]);
      if (!s.data.dribbling) dribble(s.data);
    },
    drain(s: Socket<Pair>) {
      pass(s, s.data.toUpstream, null);
    },
    close(s: Socket<Pair>) {
      sockets.delete(s);
      s.data.client.end();
    },
    error() {},
  };
  const listener = Bun.listen<Pair>({
    hostname: "127.0.0.1",
    port: freePort(),
    socket: {
      open(client) {
        sockets.add(client);
        const pair: Pair = { client, upstream: null, toUpstream: [], toClient: [], held: Buffer.alloc(0), dribbling: false };
        client.data = pair;
        Bun.connect<Pair>({ hostname: backendHost, port: backendPort, socket: upstreamHandlers, data: pair }).catch(() =>
          client.end(),
        );
      },
      data(client, chunk) {
        sent += Buffer.from(chunk).toString("latin1");
        received += chunk.length;
        pass(client.data.upstream, client.data.toUpstream, chunk);
      },
      drain(client) {
        pass(client, client.data.toClient, null);
      },
      close(client) {
        sockets.delete(client);
        client.data.upstream?.end();
      },
      error() {},
    },
  });
  return {
    address: `127.0.0.1:${listener.port}`,
    sent: () => sent,
    received: () => received,
    lines: (...commands) => sent.split(/\r?\n/).filter((l) => commands.includes(l.split(" ")[0]!)),
    forget() {
      sent = "";
    },
    stop() {
      listener.stop(true);
      for (const s of sockets) s.terminate();
    },
  };
}
