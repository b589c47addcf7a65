// Hostile clients for the memory-limit suites: large requests sent at once, pipelines never
// read, and the proxy's resident memory sampled while they run.

import { readFileSync } from "node:fs";
import type { Socket } from "bun";
import { command } from "./resp.ts";

/** Resident memory of `pid` in bytes (VmRSS). */
export function residentBytes(pid: number): number {
  const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
  if (kb === null) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kb[1]) * 1024;
}

/** Samples the RSS of `pid` every `everyMs` until stop(); `peak` is the largest seen. */
export class RssWatch {
  peak = 0;
  private running = true;
  private readonly loop: Promise<void>;

  constructor(
    private readonly pid: number,
    everyMs = 25,
  ) {
    this.loop = (async () => {
      while (this.running) {
        this.peak = Math.max(this.peak, residentBytes(pid));
        await Bun.sleep(everyMs);
      }
    })();
  }

  async stop(): Promise<number> {
    this.running = false;
    await this.loop;
    this.peak = Math.max(this.peak, residentBytes(this.pid));
    return this.peak;
  }
}

/** Sends one redis SET of a `size`-byte value as fast as the proxy takes it, reading all the
 *  while; resolves with the first reply line (e.g. "+OK", "-ERR ...") or "closed". */
export function sendHugeSet(port: number, key: string, size: number): Promise<string> {
  const header = Buffer.from(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${size}\r\n`);
  const piece = new Uint8Array(256 * 1024).fill(0x61);
  const total = header.length + size + 2;
  return new Promise((resolve) => {
    let sent = 0;
    let got = "";
    let settled = false;
    const settle = (outcome: string) => {
      if (settled) return;
      settled = true;
      resolve(outcome);
    };
    /** The bytes from `sent` on, at most one piece. */
    const next = (): Uint8Array => {
      if (sent < header.length) return header.subarray(sent);
      const at = sent - header.length;
      if (at >= size) return Buffer.from("\r\n").subarray(at - size);
      return piece.subarray(0, Math.min(piece.length, size - at));
    };
    const pump = (s: Socket<undefined>) => {
      while (sent < total) {
        const bytes = next();
        const n = s.write(bytes);
        if (n > 0) sent += n;
        if (n < bytes.length) return; // the rest on drain
      }
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: pump,
        drain: pump,
        data(s, chunk) {
          got += chunk.toString("latin1");
          const end = got.indexOf("\r\n");
          if (end < 0) return;
          settle(got.slice(0, end));
          s.end();
        },
        close: () => settle("closed"),
        error: () => settle("closed"),
      },
    }).catch(() => settle("closed"));
  });
}

/** A client that pipelines `count` GETs of `key` and never reads a reply (its socket is paused,
 *  so the replies fill its receive buffer and then wait in the proxy). */
export async function silentReader(port: number, key: string, count: number): Promise<{ close(): void }> {
  const requests = Buffer.concat(Array.from({ length: count }, () => command("GET", key)));
  let sent = 0;
  const pump = (s: Socket<undefined>) => {
    while (sent < requests.length) {
      const n = s.write(requests.subarray(sent));
      if (n <= 0) return;
      sent += n;
    }
  };
  const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {}, drain: pump } });
  socket.pause();
  pump(socket);
  return { close: () => socket.terminate() };
}

/** `count` clients that each send `request` one byte per `everyMs`, all in step; resolves when
 *  every one has its complete reply (`framer`), with the replies in client order. */
export async function tricklers(
  port: number,
  count: number,
  request: Uint8Array,
  everyMs: number,
  framer: (buf: Uint8Array, start: number, end: number) => number,
): Promise<Buffer[]> {
  const replies: Buffer[] = new Array(count);
  const received: Buffer[] = Array.from({ length: count }, () => Buffer.alloc(0));
  let left = count;
  const done = Promise.withResolvers<void>();
  const sockets = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: {
          data(_s, chunk) {
            received[i] = Buffer.concat([received[i]!, chunk]);
            const end = framer(received[i]!, 0, received[i]!.length);
            if (end >= 0 && replies[i] === undefined) {
              replies[i] = received[i]!.subarray(0, end);
              if (--left === 0) done.resolve();
            }
          },
          close() {
            if (replies[i] === undefined) done.reject(new Error(`trickling client ${i} was closed before its reply`));
          },
        },
      }),
    ),
  );
  let at = 0;
  const timer = setInterval(() => {
    if (at < request.length) for (const s of sockets) s.write(request.subarray(at, at + 1));
    at++;
  }, everyMs);
  try {
    await done.promise;
  } finally {
    clearInterval(timer);
    for (const s of sockets) s.end();
  }
  return replies;
}
