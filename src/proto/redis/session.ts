// What the proxy keeps per client connection of a redis pool, because a redis server keeps it per
// connection and the proxy's server connections are shared: the protocol the client chose
// (HELLO), whether it has authenticated, its name and library (CLIENT SETNAME / SETINFO), its
// CLIENT REPLY mode and the flags it set, read and changed only by the handshake commands
// (handshake.ts), which the proxy answers itself; and its subscriptions and transaction, once
// it has any (plan.ts).

import type { PoolConfig } from "../../conf/types.ts";
import type { MultiKeyState } from "./plan.ts";
import type { Proto } from "./reply.ts";

/** CLIENT REPLY: ON answers every request; OFF none; SKIP none for the next request only. */
export const ReplyMode = { On: 0, Off: 1, Skip: 2 } as const;
export type ReplyMode = (typeof ReplyMode)[keyof typeof ReplyMode];

/** What a client told the proxy about itself: shown by CLIENT INFO and GETNAME. */
export class ClientInfo {
  /** CLIENT SETNAME / HELLO SETNAME; "" for none. */
  name = "";
  /** CLIENT SETINFO LIB-NAME / LIB-VER; "" for none. */
  libName = "";
  libVer = "";
  /** CLIENT NO-EVICT / NO-TOUCH (kept and shown in CLIENT INFO; the proxy evicts no client). */
  noEvict = false;
  noTouch = false;
}

/** A client's information as it stands (a shared empty one when it told nothing). */
const NO_INFO: Readonly<ClientInfo> = new ClientInfo();

export class RedisSession {
  proto: Proto = 2;
  /** False while the pool has a `redis_auth` the client has not sent yet. */
  authed: boolean;
  reply: ReplyMode = ReplyMode.On;
  /** The request being dispatched gets no reply (CLIENT REPLY; set by silence()). */
  silenced = false;
  /** READONLY was sent (READWRITE clears it). */
  readonly = false;
  /** Subscriptions and transaction (plan.ts); null until it first needs them. */
  multikey: MultiKeyState | null = null;
  /** What it told about itself; null until it first does (most clients never do, and a
   *  session is kept per client). */
  info: ClientInfo | null = null;

  /**
   * @param id    CLIENT ID: unique among the proxy's clients
   * @param pool  the client's pool (replaced on a reload)
   * @param since when it connected (ms, Date.now())
   */
  constructor(
    readonly id: number,
    public pool: PoolConfig,
    readonly since: number,
  ) {
    this.authed = pool.redisAuth === null;
  }

  /** Whether the request about to be dispatched gets a reply (CLIENT REPLY OFF, or SKIP for the
   *  one request after it): called once per request, before it runs. */
  silence(): boolean {
    this.silenced = this.reply !== ReplyMode.On;
    if (this.reply === ReplyMode.Skip) this.reply = ReplyMode.On;
    return this.silenced;
  }

  /** Its information, to read. */
  get told(): Readonly<ClientInfo> {
    return this.info ?? NO_INFO;
  }

  /** Its information, to change. */
  tell(): ClientInfo {
    return (this.info ??= new ClientInfo());
  }

  /** RESET: back to a new connection's state (authentication included, as redis). */
  reset(): void {
    this.proto = 2;
    this.authed = this.pool.redisAuth === null;
    this.info = null;
    this.reply = ReplyMode.On;
    this.readonly = false;
  }
}
