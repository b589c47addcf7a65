// What a redis client's session holds and the replies the proxy decides itself: PING, QUIT,
// AUTH (checked against the pool's redis_auth), and NOAUTH for anything else before AUTH. The
// handshake commands of RESP3 (HELLO, CLIENT, SELECT, ECHO) land here as more local commands
// and more session fields.

import type { PoolConfig } from "../../conf/types.ts";
import { ascii, equalBytes } from "../../lib/bytes.ts";
import type { LocalReply, Req } from "../codec.ts";
import { AUTH, CLUSTER_ONLY, PING, QUIT } from "./commands.ts";
import { AUTH_INVALID, AUTH_NOT_SET, NO_AUTH, OK, PONG } from "./replies.ts";

/** One per client (Codec.newSession). */
export class RedisSession {
  /** Sent the pool's password with AUTH, or the pool needs none. */
  authed: boolean;

  constructor(pool: PoolConfig) {
    this.authed = pool.redisAuth === null;
  }
}

const reply = (bytes: Uint8Array | null, close = false): LocalReply => ({ reply: bytes, close });
const PONG_REPLY = reply(PONG);
const QUIT_REPLY = reply(null, true);
const AUTH_OK_REPLY = reply(OK);
const AUTH_INVALID_REPLY = reply(AUTH_INVALID);
const AUTH_NOT_SET_REPLY = reply(AUTH_NOT_SET);
const NO_AUTH_REPLY = reply(NO_AUTH);

/** "-ERR unsupported command 'x'", as the parser refuses a command the table does not serve. */
const unsupportedReplies = new Map<string, LocalReply>();
function unsupported(name: string): LocalReply {
  let r = unsupportedReplies.get(name);
  if (r === undefined) {
    r = reply(ascii(`-ERR unsupported command '${name}'\r\n`));
    unsupportedReplies.set(name, r);
  }
  return r;
}

/** The password bytes of each pool config (configs are frozen; a reload makes new ones). */
const passwords = new WeakMap<PoolConfig, Uint8Array>();

function password(pool: PoolConfig): Uint8Array | null {
  if (pool.redisAuth === null) return null;
  let bytes = passwords.get(pool);
  if (bytes === undefined) {
    bytes = ascii(pool.redisAuth);
    passwords.set(pool, bytes);
  }
  return bytes;
}

/** Before AUTH only AUTH and QUIT are served. */
export function admit(req: Req, session: RedisSession): LocalReply | null {
  if (session.authed) return null;
  const command = req.command;
  return command === AUTH || command === QUIT ? null : NO_AUTH_REPLY;
}

export function local(buf: Uint8Array, req: Req, session: RedisSession, pool: PoolConfig): LocalReply {
  const command = req.command;
  if (command === PING) return PONG_REPLY;
  if (command === QUIT) return QUIT_REPLY;
  if (command === AUTH) {
    // AUTH takes exactly the password (the table's arity): argument 1.
    const want = password(pool);
    if (want === null) return AUTH_NOT_SET_REPLY;
    if (!equalBytes(buf, req.argStart[1]!, req.argEnd[1]!, want, 0, want.length)) return AUTH_INVALID_REPLY;
    session.authed = true;
    return AUTH_OK_REPLY;
  }
  // A redis_cluster pool answers these before asking here; other pools do not serve them.
  if (command !== null && CLUSTER_ONLY.has(command)) return unsupported(command.name);
  throw new Error(`redis: no local reply for '${command?.name}'`);
}

/** A reload: without redis_auth nobody has to authenticate, clients that never did included; a
 *  new password applies to later AUTH commands, and connected clients keep working (issue 10). */
export function reconfigure(session: RedisSession, pool: PoolConfig): void {
  if (pool.redisAuth === null) session.authed = true;
}
