// The replies the proxy decides itself for a redis client, and the client's session: PING,
// QUIT, NOAUTH before AUTH (for every command but those redis lets through, the no_auth flag of
// commands.ts), CLIENT REPLY's silence, and the connection handshake (AUTH, HELLO, CLIENT,
// SELECT, ECHO, RESET, READONLY, READWRITE) answered from the session by handshake.ts.

import type { PoolConfig } from "../../conf/types.ts";
import { Reconfigured, type LocalReply, type PoolView, type Req } from "../codec.ts";
import { Flag, PING, QUIT, type SupportedCommand } from "./commands.ts";
import { factsOf } from "./facts.ts";
import { answerLocal } from "./handshake.ts";
import { NO_AUTH, PONG } from "./replies.ts";
import { RedisSession } from "./session.ts";

const reply = (bytes: Uint8Array | null, close = false): LocalReply => ({ reply: bytes, close });
const PONG_REPLY = reply(PONG);
const QUIT_REPLY = reply(null, true);
const NO_AUTH_REPLY = reply(NO_AUTH);
const NO_REPLY = reply(null);

/** CLIENT ID of the last client (unique within a proxy process, as within a redis-server). */
let lastId = 0;

export function newSession(pool: PoolConfig): RedisSession {
  return new RedisSession(++lastId, pool, Date.now());
}

/** Before AUTH only the commands redis lets through (AUTH, HELLO, QUIT, RESET) are served. */
export function admit(req: Req, session: RedisSession): LocalReply | null {
  if (session.authed) return null;
  return ((req.command as SupportedCommand).flags & Flag.NoAuth) !== 0 ? null : NO_AUTH_REPLY;
}

export function silent(session: RedisSession): boolean {
  return session.silence();
}

export function local(buf: Uint8Array, req: Req, session: RedisSession, pool: PoolConfig, ownConnection: boolean): LocalReply {
  const command = req.command;
  if (command === QUIT) return QUIT_REPLY;
  if (command === PING) return session.silenced ? NO_REPLY : PONG_REPLY;
  const facts = factsOf(pool.name);
  const ctx = { pool, serverVersion: facts.version, resp3Refusal: facts.resp3Refusal, ownConnection, now: Date.now() };
  return reply(answerLocal(buf, req, session, ctx));
}

/** A reload: without redis_auth nobody has to authenticate, clients that never did included; a
 *  new password applies to later AUTH commands, and connected clients keep working (issue 10).
 *  Subscriptions and a transaction must still be where their keys and channels are. */
export function reconfigure(session: RedisSession, pool: PoolConfig, moved: (position: number) => number, view: PoolView): Reconfigured {
  session.pool = pool;
  if (pool.redisAuth === null) session.authed = true;
  const state = session.multikey;
  if (state === null) return Reconfigured.Kept;
  const pinKept = state.transaction.renumber(moved, (key) => view.route(key, 0, key.length));
  if (!state.subscriptions.renumber(moved, view)) return Reconfigured.Stranded;
  return pinKept ? Reconfigured.Kept : Reconfigured.PinMoved;
}
