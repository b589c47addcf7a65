// What the proxy keeps per client connection of a redis pool, because a redis server keeps it per
// connection and the proxy's server connections are shared: the protocol the client chose
// (HELLO), whether it has authenticated, its name and library (CLIENT SETNAME / SETINFO), its
// CLIENT REPLY mode and the flags it set. Read and changed only by the handshake commands
// (handshake.ts), which the proxy answers itself; never sent to a server.

import type { Proto } from "./reply.ts";

/** CLIENT REPLY: ON answers every request; OFF none; SKIP none for the next request only. */
export const ReplyMode = { On: 0, Off: 1, Skip: 2 } as const;
export type ReplyMode = (typeof ReplyMode)[keyof typeof ReplyMode];

export class Session {
  proto: Proto = 2;
  /** False while the pool has a `redis_auth` the client has not sent yet. */
  authed: boolean;
  /** CLIENT SETNAME / HELLO SETNAME; "" for none. */
  name = "";
  /** CLIENT SETINFO LIB-NAME / LIB-VER; "" for none. */
  libName = "";
  libVer = "";
  reply: ReplyMode = ReplyMode.On;
  /** CLIENT NO-EVICT / NO-TOUCH (kept and shown in CLIENT INFO; the proxy evicts no client). */
  noEvict = false;
  noTouch = false;
  /** READONLY was sent (READWRITE clears it). */
  readonly = false;

  /** The client's address and the listener's, `ip:port` (CLIENT INFO addr, laddr), when known. */
  addr = "";
  laddr = "";

  /**
   * @param id        CLIENT ID: unique among the proxy's clients
   * @param authRequired the pool has a `redis_auth`
   * @param since     when it connected (ms, Date.now())
   */
  constructor(
    readonly id: number,
    public authRequired: boolean,
    readonly since: number,
  ) {
    this.authed = !authRequired;
  }

  /** RESET: back to a new connection's state (authentication included, as redis). */
  reset(): void {
    this.proto = 2;
    this.authed = !this.authRequired;
    this.name = "";
    this.libName = "";
    this.libVer = "";
    this.reply = ReplyMode.On;
    this.noEvict = false;
    this.noTouch = false;
    this.readonly = false;
  }
}
