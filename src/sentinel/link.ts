// A standing subscription to one sentinel's events (the channels of events.ts), reconnected with
// a backoff whenever it drops. Each (re)subscription is reported, so the client can ask again
// what it may have missed while it was away.

import type { Address } from "../conf/types.ts";
import { SentinelConn, type SentinelSockets } from "./conn.ts";
import { CHANNELS, parseEvent, type SentinelEvent } from "./events.ts";
import { encodeCommand, ReplyError, type Reply, type ReplyFramer } from "./reply.ts";

export interface LinkHandlers {
  /** Subscribed to every channel: events flow from now on. */
  subscribed(link: SentinelLink): void;
  event(link: SentinelLink, event: SentinelEvent): void;
  /** The subscription was lost (or never made); it is retried after a backoff. `first`: the
   *  first failure since it was last subscribed (later retries fail quietly). */
  lost(link: SentinelLink, reason: string, first: boolean): void;
}

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 2000;

export class SentinelLink {
  private conn: SentinelConn | null = null;
  private retryMs = FIRST_RETRY_MS;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;
  /** Subscribed to every channel (the confirmations counted). */
  subscribed = false;
  private confirmed = 0;
  /** AUTH's reply is the first one, when a password is sent. */
  private authPending = false;

  constructor(
    readonly addr: Address,
    private readonly auth: string | null,
    private readonly handlers: LinkHandlers,
    private readonly connectTimeoutMs: number,
    private readonly framer: ReplyFramer,
    private readonly sockets: SentinelSockets,
  ) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.conn?.end("stopped");
    this.conn = null;
  }

  private connect(): void {
    this.retryTimer = null;
    this.confirmed = 0;
    this.authPending = this.auth !== null;
    const conn = new SentinelConn(
      this.addr,
      {
        reply: (reply) => this.onReply(conn, reply),
        closed: (reason) => this.onClosed(conn, reason),
      },
      this.connectTimeoutMs,
      this.framer,
      this.sockets,
    );
    this.conn = conn;
    if (this.auth !== null) conn.write(encodeCommand("AUTH", this.auth));
    conn.write(encodeCommand("SUBSCRIBE", ...CHANNELS));
  }

  private onReply(conn: SentinelConn, reply: Reply): void {
    if (this.authPending) {
      this.authPending = false;
      if (reply instanceof ReplyError) conn.end(`AUTH refused: ${reply.message}`);
      return;
    }
    if (reply instanceof ReplyError) {
      conn.end(`SUBSCRIBE refused: ${reply.message}`);
      return;
    }
    if (!Array.isArray(reply) || reply.length < 3) return;
    const [kind, channel, body] = reply;
    if (kind === "subscribe") {
      if (++this.confirmed === CHANNELS.length) {
        this.subscribed = true;
        this.retryMs = FIRST_RETRY_MS;
        this.handlers.subscribed(this);
      }
      return;
    }
    if (kind !== "message" || typeof channel !== "string" || typeof body !== "string") return;
    const event = parseEvent(channel, body);
    if (event !== null) this.handlers.event(this, event);
  }

  private onClosed(conn: SentinelConn, reason: string): void {
    if (this.conn !== conn) return;
    this.conn = null;
    this.subscribed = false;
    if (this.stopped) return;
    this.handlers.lost(this, reason, this.retryMs === FIRST_RETRY_MS);
    this.retryTimer = setTimeout(() => this.connect(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
  }
}
