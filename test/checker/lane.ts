// One checker client: a connection that keeps up to `window` requests in flight (pipelining) and
// checks each reply against the request it answers, in order. A connection the proxy closes
// loses its outstanding requests and is reopened; a reply stream that cannot be framed abandons
// them. Both are counted, and both must never happen. A reply that arrives with nothing in
// flight (during the run, or in the quiet time after the last reply before close) is duplicated,
// and so are bytes of a reply still unfinished at close.

import type { Socket } from "bun";
import { connectSocket, type Endpoint } from "../helpers/client.ts";
import type { Report } from "./report.ts";
import type { Awaited, Traffic } from "./traffic.ts";

export class Lane {
  private socket: Socket<undefined> | null = null;
  /** The requests sent and not answered yet, oldest first, from `head`. */
  private waiting: Awaited[] = [];
  private head = 0;
  /** Bytes written to the socket only in part, waiting for drain. */
  private unsent: Buffer | null = null;
  private buf = new Uint8Array(1 << 16);
  private readAt = 0;
  private readEnd = 0;
  private running = true;
  /** Resolved whenever a reply arrives or the connection closes (drain waits on it). */
  private wake: (() => void) | null = null;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly traffic: Traffic,
    private readonly window: number,
    private readonly report: Report,
  ) {}

  get inFlight(): number {
    return this.waiting.length - this.head;
  }

  async start(): Promise<void> {
    await this.connect();
  }

  /** Stop sending new requests. */
  stop(): void {
    this.running = false;
  }

  /** Waits until every request sent was answered, or `deadline` (ms since epoch) passes. */
  async drain(deadline: number): Promise<void> {
    while (this.inFlight > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Close; whatever is still unanswered is lost, and bytes of an unfinished reply are extra. */
  close(): void {
    this.running = false;
    this.forget("lost");
    if (this.socket !== null && this.readEnd > this.readAt) {
      this.report.problem("duplicated", `${this.readEnd - this.readAt} bytes of an unfinished reply at close`);
    }
    const s = this.socket;
    this.socket = null;
    s?.terminate();
  }

  private async connect(): Promise<void> {
    let socket: Socket<undefined>;
    try {
      socket = await connectSocket(this.endpoint, {
        data: (_s, chunk) => this.received(chunk),
        drain: () => this.flush(),
        close: () => this.closedByPeer(socket),
        end: () => this.closedByPeer(socket),
        error: () => this.closedByPeer(socket),
      });
    } catch (err) {
      // The proxy must keep accepting checker connections: a refusal counts as a disconnect.
      this.report.disconnects++;
      this.report.sample(`connect: ${(err as Error).message}`);
      if (this.running) setTimeout(() => void this.connect(), 200);
      return;
    }
    this.socket = socket;
    this.buf = new Uint8Array(1 << 16);
    this.readAt = this.readEnd = 0;
    this.pump();
  }

  /** Send requests until `window` are in flight. */
  private pump(): void {
    if (!this.running || this.socket === null || this.unsent !== null) return;
    const parts: Buffer[] = [];
    while (this.inFlight < this.window) {
      const req = this.traffic.next();
      parts.push(req.bytes);
      this.report.requests++;
      if (req.awaited !== null) this.waiting.push(req.awaited);
      else this.report.noreply++;
    }
    if (parts.length === 0) return;
    this.unsent = Buffer.concat(parts);
    this.flush();
  }

  private flush(): void {
    const s = this.socket;
    const data = this.unsent;
    if (s === null || data === null) return;
    const n = Math.max(0, s.write(data));
    this.unsent = n === data.length ? null : data.subarray(n);
    if (this.unsent === null) this.pump();
  }

  private received(chunk: Uint8Array): void {
    if (this.readEnd + chunk.length > this.buf.length) {
      const live = this.readEnd - this.readAt;
      const next = new Uint8Array(Math.max(this.buf.length, (live + chunk.length) * 2));
      next.set(this.buf.subarray(this.readAt, this.readEnd));
      this.buf = next;
      this.readAt = 0;
      this.readEnd = live;
    }
    this.buf.set(chunk, this.readEnd);
    this.readEnd += chunk.length;
    const report = this.report;
    for (;;) {
      let stop: number;
      try {
        stop = this.traffic.framer(this.buf, this.readAt, this.readEnd);
      } catch (err) {
        report.problem("desyncs", (err as Error).message);
        this.abandon();
        return;
      }
      if (stop < 0) break;
      const reply = Buffer.from(this.buf.subarray(this.readAt, stop));
      this.readAt = stop;
      report.replies++;
      if (this.head === this.waiting.length) {
        report.problem("duplicated", `a reply with nothing in flight: ${JSON.stringify(reply.toString("latin1", 0, 80))}`);
        continue;
      }
      const awaited = this.waiting[this.head++]!;
      if (this.head > 4096) {
        this.waiting = this.waiting.slice(this.head);
        this.head = 0;
      }
      let verdict;
      try {
        verdict = awaited.check(reply);
      } catch (err) {
        verdict = { problem: "unexpected" as const, what: `${(err as Error).message} in ${JSON.stringify(reply.toString("latin1", 0, 80))}` };
      }
      if (verdict === "ok") report.ok++;
      else if ("error" in verdict) report.error(verdict.error, verdict.explained);
      else report.problem(verdict.problem, verdict.what);
    }
    if (this.readAt === this.readEnd) this.readAt = this.readEnd = 0;
    const wake = this.wake;
    this.wake = null;
    wake?.();
    this.pump();
  }

  /** Every request in flight will never be answered: count it under `as`, settle its changes unknown. */
  private forget(as: "lost" | "abandoned"): void {
    this.report[as] += this.inFlight;
    for (let i = this.head; i < this.waiting.length; i++) this.waiting[i]!.lost();
    this.waiting = [];
    this.head = 0;
  }

  /** The stream cannot be followed any more: give up on what is in flight, start over. */
  private abandon(): void {
    this.forget("abandoned");
    this.unsent = null;
    const s = this.socket;
    this.socket = null;
    s?.terminate();
    if (this.running) void this.connect();
  }

  private closedByPeer(socket: Socket<undefined>): void {
    if (this.socket !== socket) return;
    this.socket = null;
    this.unsent = null;
    this.report.disconnects++;
    this.report.sample(`disconnect with ${this.inFlight} requests in flight`);
    this.forget("lost");
    const wake = this.wake;
    this.wake = null;
    wake?.();
    if (this.running) setTimeout(() => void this.connect(), 100);
  }
}
