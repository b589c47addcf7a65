// The twemproxy stats port (-a/-s): on accept, write the stats document and close. Counters are
// snapshotted every -i ms (ProxyStats.aggregate) and served from the snapshot, as nutcracker does;
// gauges and the header (uptime, connections) are current.

import type { Socket } from "bun";
import { renderStatsJson } from "./json.ts";
import type { ProxyStats } from "./store.ts";

export interface StatsServerOptions {
  /** -a */
  readonly hostname: string;
  /** -s; 0 picks a free port (tests). */
  readonly port: number;
  /** -i, ms between aggregations. */
  readonly intervalMs: number;
  readonly stats: ProxyStats;
}

export interface RunningServer {
  /** The bound port. */
  readonly port: number;
  stop(): void;
}

/** What is left to send on one stats connection. */
interface Pending {
  readonly bytes: Uint8Array;
  offset: number;
}

const encoder = new TextEncoder();

/** Writes as much as the socket takes; ends it once everything is out. */
function pump(socket: Socket<Pending>): void {
  const p = socket.data;
  while (p.offset < p.bytes.length) {
    const n = socket.write(p.bytes, p.offset, p.bytes.length - p.offset);
    if (n <= 0) return; // socket buffer full: continue on drain
    p.offset += n;
  }
  socket.end();
}

/** Starts serving; throws when the address cannot be bound (nutcracker refuses to start too). */
export function startStatsServer(opts: StatsServerOptions): RunningServer {
  const { stats } = opts;
  stats.aggregate();
  let listener;
  try {
    listener = Bun.listen<Pending>({
      hostname: opts.hostname,
      port: opts.port,
      socket: {
        open(socket) {
          socket.data = { bytes: encoder.encode(renderStatsJson(stats)), offset: 0 };
          pump(socket);
        },
        drain: pump,
        // Nothing is read: whatever a client sends is ignored, and one that goes away early
        // simply gets nothing more.
        data() {},
        error() {},
      },
    });
  } catch (err) {
    throw new Error(
      `stats: cannot listen on ${opts.hostname}:${opts.port}: ${(err as Error).message}`,
    );
  }
  const timer = setInterval(() => stats.aggregate(), opts.intervalMs);
  timer.unref();
  return {
    port: listener.port,
    stop() {
      clearInterval(timer);
      listener.stop(true);
    },
  };
}
