// A TCP relay in front of a real server whose open connections can be muted: after mute(), what
// the server sends on connections already open is dropped (they stay open, silent, as over a
// network that lost them), while new connections are relayed normally. Lets a test make the
// proxy miss a sentinel's events but still reach it with new queries, or (muteAfter) see a
// server stop in the middle of a reply, at a byte the test chose rather than one a race did.

import type { Socket } from "bun";
import { freePort } from "./ports.ts";

export interface Relay {
  readonly host: string;
  readonly port: number;
  readonly address: string;
  /** Drop everything the server sends on the connections open now. */
  mute(): void;
  /** Relay `bytes` more of what the server sends on the connections open now, then drop the rest. */
  muteAfter(bytes: number): void;
  stop(): void;
}

interface Pair {
  client: Socket<Pair>;
  upstream: Socket<Pair> | null;
  /** Bytes for the upstream that arrived before it connected. */
  early: Uint8Array[];
  /** How many more bytes from the server are relayed (Infinity: all, 0: muted). */
  allowance: number;
}

export function startRelay(targetHost: string, targetPort: number): Relay {
  const pairs = new Set<Pair>();
  const port = freePort();
  const upstreamHandlers = {
    data(s: Socket<Pair>, chunk: Uint8Array) {
      const pair = s.data;
      if (pair.allowance <= 0) return;
      const n = Math.min(chunk.length, pair.allowance);
      pair.allowance -= n;
      pair.client.write(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
    close(s: Socket<Pair>) {
      s.data.client.end();
    },
    error(s: Socket<Pair>) {
      s.data.client.end();
    },
  };
  const listener = Bun.listen<Pair>({
    hostname: "127.0.0.1",
    port,
    socket: {
      open(client) {
        const pair: Pair = { client, upstream: null, early: [], allowance: Infinity };
        client.data = pair;
        pairs.add(pair);
        Bun.connect<Pair>({ hostname: targetHost, port: targetPort, socket: upstreamHandlers, data: pair })
          .then((upstream) => {
            pair.upstream = upstream;
            for (const chunk of pair.early) upstream.write(chunk);
            pair.early = [];
          })
          .catch(() => client.end());
      },
      data(client, chunk) {
        const pair = client.data;
        if (pair.upstream === null) pair.early.push(chunk.slice());
        else pair.upstream.write(chunk);
      },
      close(client) {
        client.data.upstream?.end();
        pairs.delete(client.data);
      },
      error(client) {
        client.data.upstream?.end();
        pairs.delete(client.data);
      },
    },
  });
  return {
    host: "127.0.0.1",
    port,
    address: `127.0.0.1:${port}`,
    mute() {
      for (const pair of pairs) pair.allowance = 0;
    },
    muteAfter(bytes) {
      for (const pair of pairs) pair.allowance = bytes;
    },
    stop() {
      listener.stop(true);
      for (const pair of pairs) {
        pair.client.terminate();
        pair.upstream?.terminate();
      }
    },
  };
}
