// Pipelined writers for the failover tests: each client keeps `window` requests in flight,
// alternating `SET <prefix>:<client>:<i> <i>` and `INCR <prefix>:<client>:n` on keys of its own,
// and records what was acknowledged. Afterwards `lostWrites()` reads every acknowledged key back
// (straight from the backends that hold them) and counts the acknowledged writes that are gone:
// a SET whose key is missing or has another value, an INCR whose counter is below the highest
// value it acknowledged. SentinelClientWriters does the same through ioredis's own Sentinel
// support, straight to redis, for comparison.

import type { Socket } from "bun";
import Redis from "ioredis";
import { connectSocket, exchange, type Endpoint } from "./client.ts";
import { command, decode, RespError, respFrame } from "./resp.ts";

export interface WriterStats {
  /** Acknowledged writes (SET +OK, INCR :n). */
  acked: number;
  /** Error replies, by text. */
  errors: Map<string, number>;
  /** Connections that closed with requests unanswered. */
  dropped: number;
  /** Replies that cannot answer their request: not +OK to a SET, or an INCR value not above the
   *  client's previous one (another request's reply, a reply out of order, a write applied twice). */
  misordered: number;
  /** performance.now() of every acknowledgement, in order. */
  ackTimes: number[];
}

interface ClientState {
  readonly id: number;
  socket: Socket<undefined> | null;
  /** What each request in flight was: a SET of index i, or an INCR (-1). */
  inFlight: number[];
  next: number;
  buf: Uint8Array;
  end: number;
  /** Acknowledged SET indexes, highest acknowledged INCR value. */
  readonly setAcked: number[];
  maxIncr: number;
}

export class Writers {
  readonly stats: WriterStats = { acked: 0, errors: new Map(), dropped: 0, misordered: 0, ackTimes: [] };
  private readonly clients: ClientState[] = [];
  private running = true;

  private constructor(
    private readonly endpoint: Endpoint,
    readonly prefix: string,
    private readonly window: number,
    private readonly pauseMs: number,
  ) {}

  /** `clients` connections with `window` requests in flight each; a client refills its window
   *  `pauseMs` after replies arrive (bounding the load on a shared machine). */
  static async start(endpoint: Endpoint, prefix: string, clients = 20, window = 16, pauseMs = 5): Promise<Writers> {
    const w = new Writers(endpoint, prefix, window, pauseMs);
    for (let id = 0; id < clients; id++) {
      const c: ClientState = { id, socket: null, inFlight: [], next: 0, buf: new Uint8Array(0), end: 0, setAcked: [], maxIncr: 0 };
      w.clients.push(c);
      await w.connect(c);
    }
    return w;
  }

  private async connect(c: ClientState): Promise<void> {
    c.socket = await connectSocket(this.endpoint, {
      data: (_s, chunk) => this.received(c, chunk),
      close: () => this.closed(c),
      error: () => this.closed(c),
    });
    this.fill(c);
  }

  private fill(c: ClientState): void {
    if (!this.running || c.socket === null) return;
    const parts: Buffer[] = [];
    while (c.inFlight.length < this.window) {
      const i = c.next++;
      if (i % 2 === 0) {
        parts.push(command("SET", `${this.prefix}:${c.id}:${i}`, String(i)));
        c.inFlight.push(i);
      } else {
        parts.push(command("INCR", `${this.prefix}:${c.id}:n`));
        c.inFlight.push(-1);
      }
    }
    if (parts.length > 0) c.socket.write(Buffer.concat(parts));
  }

  private received(c: ClientState, chunk: Uint8Array): void {
    const buf = new Uint8Array(c.end + chunk.length);
    buf.set(c.buf.subarray(0, c.end));
    buf.set(chunk, c.end);
    let at = 0;
    for (;;) {
      const next = respFrame(buf, at, buf.length);
      if (next < 0) break;
      const reply = decode(buf.subarray(at, next));
      at = next;
      const what = c.inFlight.shift();
      if (what === undefined) throw new Error(`client ${c.id}: a reply nobody asked for`);
      if (reply instanceof RespError) {
        this.stats.errors.set(reply.message, (this.stats.errors.get(reply.message) ?? 0) + 1);
        continue;
      }
      this.stats.acked++;
      this.stats.ackTimes.push(performance.now());
      if (what >= 0) {
        if (reply !== "OK") this.stats.misordered++;
        c.setAcked.push(what);
      } else if (typeof reply !== "number" || reply <= c.maxIncr) {
        this.stats.misordered++;
      } else c.maxIncr = reply;
    }
    c.buf = buf.slice(at);
    c.end = c.buf.length;
    if (c.inFlight.length === 0) setTimeout(() => this.fill(c), this.pauseMs);
  }

  private closed(c: ClientState): void {
    if (c.socket === null) return;
    c.socket = null;
    if (c.inFlight.length > 0) this.stats.dropped++;
    c.inFlight = [];
    c.end = 0;
    if (this.running) void this.connect(c).catch(() => setTimeout(() => this.closed(c), 100));
  }

  /** Stop sending; resolves once every request in flight is answered (or its client closed). */
  async stop(timeoutMs = 15000): Promise<void> {
    this.running = false;
    const deadline = Date.now() + timeoutMs;
    while (this.clients.some((c) => c.socket !== null && c.inFlight.length > 0)) {
      if (Date.now() > deadline) throw new Error("writers: replies still missing after stop");
      await Bun.sleep(20);
    }
    for (const c of this.clients) c.socket?.end();
  }

  /** Acknowledged writes that are not there: `get(key)` reads a key from wherever it lives now. */
  async lostWrites(get: (keys: string[]) => Promise<(string | null)[]>): Promise<{ lost: number; checked: number; examples: string[] }> {
    let lost = 0;
    let checked = 0;
    const examples: string[] = [];
    for (const c of this.clients) {
      const keys = c.setAcked.map((i) => `${this.prefix}:${c.id}:${i}`);
      const counter = `${this.prefix}:${c.id}:n`;
      const values = await get([...keys, counter]);
      keys.forEach((key, k) => {
        checked++;
        if (values[k] !== String(c.setAcked[k])) {
          lost++;
          if (examples.length < 5) examples.push(`${key}=${values[k]}`);
        }
      });
      checked++;
      const n = Number(values[keys.length] ?? 0);
      if (n < c.maxIncr) {
        lost += c.maxIncr - n;
        if (examples.length < 5) examples.push(`${counter}=${n} < ${c.maxIncr} acknowledged`);
      }
    }
    return { lost, checked, examples };
  }
}

/** The values of `keys` in one MGET straight to a redis at `endpoint`. */
export async function mgetDirect(endpoint: Endpoint, keys: string[]): Promise<(string | null)[]> {
  const out: (string | null)[] = [];
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    const [reply] = await exchange(endpoint, command("MGET", ...batch), 1, respFrame);
    for (const v of decode(reply!) as (Buffer | null)[]) out.push(v === null ? null : v.toString());
  }
  return out;
}

/** For comparison: writers through a sentinel-aware client talking to redis directly (ioredis's
 *  Sentinel support, with its +switch-master failover detector), `clients` connections each
 *  keeping `window` SETs of its own keys in flight on one master. */
export class SentinelClientWriters {
  readonly acked: number[][] = [];
  errors = 0;
  private readonly clients: Redis[] = [];
  private running = true;
  private inFlight = 0;

  constructor(
    sentinels: readonly { host: string; port: number }[],
    name: string,
    readonly prefix: string,
    clients = 4,
    window = 16,
  ) {
    for (let id = 0; id < clients; id++) {
      const redis = new Redis({ sentinels: [...sentinels], name, failoverDetector: true, lazyConnect: false });
      redis.on("error", () => {});
      this.clients.push(redis);
      this.acked.push([]);
      let next = 0;
      const send = (): void => {
        if (!this.running) return;
        const i = next++;
        this.inFlight++;
        redis
          .set(`${prefix}:${id}:${i}`, String(i))
          .then(
            () => this.acked[id]!.push(i),
            () => this.errors++,
          )
          .finally(() => {
            this.inFlight--;
            setTimeout(send, 5);
          });
      };
      for (let w = 0; w < window; w++) send();
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    const deadline = Date.now() + 15000;
    while (this.inFlight > 0 && Date.now() < deadline) await Bun.sleep(20);
    for (const r of this.clients) r.disconnect();
  }

  /** Acknowledged SETs whose key is missing or has another value, read from `master`. */
  async lostWrites(master: Endpoint): Promise<{ lost: number; checked: number }> {
    let lost = 0;
    let checked = 0;
    for (let id = 0; id < this.acked.length; id++) {
      const keys = this.acked[id]!.map((i) => `${this.prefix}:${id}:${i}`);
      const values = await mgetDirect(master, keys);
      keys.forEach((_, k) => {
        checked++;
        if (values[k] !== String(this.acked[id]![k])) lost++;
      });
    }
    return { lost, checked };
  }
}
