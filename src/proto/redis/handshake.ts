// The handshake commands, answered by the proxy itself with what a redis server would answer,
// from the client's RedisSession and the pool's config: HELLO, AUTH, CLIENT SETNAME / GETNAME /
// SETINFO / ID / INFO / NO-EVICT / NO-TOUCH / REPLY, SELECT, ECHO, RESET, READONLY and READWRITE.
// None of them reaches a server: a server connection is shared by many clients, so what a
// client sets for its own connection is kept in its RedisSession. Error texts are redis 7's (checked
// against a real redis-server in test/unit/redis-handshake.test.ts), except where the proxy differs
// on purpose (SELECT of another db, twemproxy's AUTH texts).
//
// Pure: (request, session, context) -> reply bytes in the client's protocol, with the session
// changed as redis changes its connection. Not on the hot path (a client sends these once).

import type { PoolConfig } from "../../conf/types.ts";
import { ascii, ByteWriter } from "../../lib/bytes.ts";
import type { Req } from "../codec.ts";
import { AUTH_INVALID, AUTH_NOT_SET, OK } from "./replies.ts";
import {
  type Proto,
  writeArrayHeader,
  writeBulk,
  writeBulkText,
  writeError,
  writeInteger,
  writeMapHeader,
  writeNull,
  writeSimple,
  writeVerbatim,
} from "./reply.ts";
import { ReplyMode, type RedisSession } from "./session.ts";

export interface LocalContext {
  readonly pool: PoolConfig;
  /** The redis_version HELLO reports (the pool's servers'). */
  readonly serverVersion: string;
  /** Why the pool cannot serve RESP3 (a server without HELLO), or null: HELLO 3 then gets
   *  -NOPROTO, which clients take as "use RESP2". */
  readonly resp3Refusal: string | null;
  /** A server connection of the client's own carries its requests (a blocking one still
   *  waiting, its transaction's): its requests there are answered in the protocol that
   *  connection was opened in, so HELLO may not change the client's. */
  readonly ownConnection: boolean;
  /** Now, in ms since the epoch (CLIENT INFO age). */
  readonly now: number;
}

const WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled.";
const HELLO_NOAUTH =
  "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> " +
  "option can be used to authenticate the client and select the RESP protocol version at the same time";
const BAD_NAME = "ERR Client names cannot contain spaces, newlines or special characters.";
const SYNTAX = "ERR syntax error";
const NOT_INTEGER = "ERR value is not an integer or out of range";
const HELLO_HELD =
  "ERR HELLO changing the protocol is not served through the proxy while a blocking command or transaction " +
  "of this client holds a connection (retry after it)";

const latin1 = new TextDecoder("latin1");
const scratch = new ByteWriter(256);

/** Argument i as text (names, options; never a payload that goes anywhere). */
function argText(buf: Uint8Array, req: Req, i: number): string {
  return latin1.decode(buf.subarray(req.argStart[i]!, req.argEnd[i]!));
}

function argEquals(buf: Uint8Array, req: Req, i: number, want: Uint8Array): boolean {
  const start = req.argStart[i]!;
  if (req.argEnd[i]! - start !== want.length) return false;
  for (let k = 0; k < want.length; k++) if (buf[start + k] !== want[k]) return false;
  return true;
}

function reply(build: (w: ByteWriter) => void): Uint8Array {
  scratch.reset();
  build(scratch);
  return scratch.take();
}

const error = (text: string): Uint8Array => reply((w) => writeError(w, text));
const arityError = (name: string): Uint8Array => error(`ERR wrong number of arguments for '${name}' command`);

/**
 * The reply to the handshake command `req` (well formed, with its command table arity), or null
 * when the client gets none (CLIENT REPLY OFF and SKIP, and any request while replies are off:
 * session.silenced; its effect applies all the same).
 */
export function answerLocal(buf: Uint8Array, req: Req, session: RedisSession, ctx: LocalContext): Uint8Array | null {
  const reply = answer(buf, req, session, ctx);
  // While replies are off, CLIENT REPLY ON is answered all the same, as redis does.
  if (session.silenced && !(reply === OK && session.reply === ReplyMode.On && isClientReply(buf, req))) return null;
  return reply;
}

function isClientReply(buf: Uint8Array, req: Req): boolean {
  return req.nargs === 3 && argText(buf, req, 0).toLowerCase() === "client" && argText(buf, req, 1).toLowerCase() === "reply";
}

function answer(buf: Uint8Array, req: Req, session: RedisSession, ctx: LocalContext): Uint8Array | null {
  const name = argText(buf, req, 0).toLowerCase();
  switch (name) {
    case "hello":
      return hello(buf, req, session, ctx);
    case "auth":
      return auth(buf, req, session, ctx.pool);
    case "client":
      return client(buf, req, session, ctx);
    case "select":
      return select(buf, req, ctx.pool);
    case "echo":
      return reply((w) => writeBulk(w, buf, req.argStart[1]!, req.argEnd[1]!));
    case "reset":
      session.reset();
      return reply((w) => writeSimple(w, "RESET"));
    case "readonly":
      session.readonly = true;
      return OK;
    case "readwrite":
      session.readonly = false;
      return OK;
    default:
      return error(`ERR unsupported command '${name}'`);
  }
}

// ---- AUTH and HELLO ----

/** The outcome of checking a user name and password: null when accepted, else the error reply. */
function checkUser(buf: Uint8Array, req: Req, userArg: number, pool: PoolConfig): Uint8Array | null {
  if (argText(buf, req, userArg) !== "default") return error(WRONGPASS);
  // Without redis_auth the default user has no password: any password is accepted, as redis.
  if (pool.redisAuth === null || argEquals(buf, req, userArg + 1, ascii(pool.redisAuth))) return null;
  return error(WRONGPASS);
}

function auth(buf: Uint8Array, req: Req, session: RedisSession, pool: PoolConfig): Uint8Array {
  if (req.nargs > 3) return error(SYNTAX);
  if (req.nargs === 3) {
    const refused = checkUser(buf, req, 1, pool);
    if (refused !== null) return refused;
    session.authed = true;
    return OK;
  }
  // AUTH <password>: twemproxy's texts.
  if (pool.redisAuth === null) return AUTH_NOT_SET;
  if (!argEquals(buf, req, 1, ascii(pool.redisAuth))) return AUTH_INVALID;
  session.authed = true;
  return OK;
}

function hello(buf: Uint8Array, req: Req, session: RedisSession, ctx: LocalContext): Uint8Array {
  let proto: Proto = session.proto;
  if (req.nargs >= 2) {
    const version = parseInteger(argText(buf, req, 1));
    if (version === null) return error("ERR Protocol version is not an integer or out of range");
    if (version !== 2 && version !== 3) return error("NOPROTO unsupported protocol version");
    if (version === 3 && ctx.resp3Refusal !== null) return error(`NOPROTO unsupported protocol version: ${ctx.resp3Refusal}`);
    proto = version;
  }
  let userArg = 0;
  let name: string | null = null;
  for (let j = 2; j < req.nargs; j++) {
    const more = req.nargs - 1 - j;
    const option = argText(buf, req, j).toLowerCase();
    if (option === "auth" && more >= 2) {
      userArg = j + 1;
      j += 2;
    } else if (option === "setname" && more >= 1) {
      name = argText(buf, req, j + 1);
      if (!validName(name)) return error(BAD_NAME);
      j++;
    } else {
      return error(`ERR Syntax error in HELLO option '${argText(buf, req, j)}'`);
    }
  }
  if (userArg !== 0) {
    const refused = checkUser(buf, req, userArg, ctx.pool);
    if (refused !== null) return refused;
  } else if (!session.authed) {
    return error(HELLO_NOAUTH);
  }
  // Refused whole: its AUTH and SETNAME do not apply either.
  if (proto !== session.proto && ctx.ownConnection) return error(HELLO_HELD);
  if (userArg !== 0) session.authed = true;
  if (name !== null) session.tell().name = name;
  session.proto = proto;
  return reply((w) => {
    writeMapHeader(w, proto, 7);
    writeBulkText(w, "server");
    writeBulkText(w, "redis");
    writeBulkText(w, "version");
    writeBulkText(w, ctx.serverVersion);
    writeBulkText(w, "proto");
    writeInteger(w, proto);
    writeBulkText(w, "id");
    writeInteger(w, session.id);
    writeBulkText(w, "mode");
    // A redis_cluster pool is a cluster node to its clients (as its INFO's redis_mode).
    writeBulkText(w, ctx.pool.distribution === "redis_cluster" ? "cluster" : "standalone");
    writeBulkText(w, "role");
    writeBulkText(w, "master");
    writeBulkText(w, "modules");
    writeArrayHeader(w, 0);
  });
}

// ---- CLIENT ----

/** CLIENT subcommands the proxy answers, with redis's arity for each. */
const CLIENT_ARITY: Readonly<Record<string, number>> = {
  setname: 3,
  getname: 2,
  setinfo: 4,
  id: 2,
  info: 2,
  "no-evict": 3,
  "no-touch": 3,
  reply: 3,
};

/** CLIENT subcommands redis has that concern other clients or the server: not served. */
const CLIENT_UNSUPPORTED = new Set(["caching", "getredir", "help", "kill", "list", "pause", "tracking", "trackinginfo", "unblock", "unpause"]);

function client(buf: Uint8Array, req: Req, session: RedisSession, ctx: LocalContext): Uint8Array | null {
  const sub = argText(buf, req, 1).toLowerCase();
  const arity = CLIENT_ARITY[sub];
  if (arity === undefined) {
    if (CLIENT_UNSUPPORTED.has(sub)) return error(`ERR unsupported command 'client ${sub}'`);
    return error(`ERR unknown subcommand '${argText(buf, req, 1)}'. Try CLIENT HELP.`);
  }
  if (req.nargs !== arity) return arityError(`client|${sub}`);
  const proto = session.proto;
  switch (sub) {
    case "setname": {
      const name = argText(buf, req, 2);
      if (!validName(name)) return error(BAD_NAME);
      session.tell().name = name;
      return OK;
    }
    case "getname":
      return reply((w) => (session.told.name === "" ? writeNull(w, proto) : writeBulkText(w, session.told.name)));
    case "setinfo": {
      const attribute = argText(buf, req, 2);
      const value = argText(buf, req, 3);
      const which = attribute.toLowerCase();
      if (which !== "lib-name" && which !== "lib-ver") return error(`ERR Unrecognized option '${attribute}'`);
      if (!validName(value)) return error(`ERR ${attribute} cannot contain spaces, newlines or special characters.`);
      if (which === "lib-name") session.tell().libName = value;
      else session.tell().libVer = value;
      return OK;
    }
    case "id":
      return reply((w) => writeInteger(w, session.id));
    case "info":
      return reply((w) => writeVerbatim(w, proto, clientInfo(session, ctx.now)));
    case "no-evict":
    case "no-touch": {
      const on = onOff(argText(buf, req, 2));
      if (on === null) return error(SYNTAX);
      if (sub === "no-evict") session.tell().noEvict = on;
      else session.tell().noTouch = on;
      return OK;
    }
    default: {
      // reply
      const mode = argText(buf, req, 2).toLowerCase();
      if (mode === "on") {
        session.reply = ReplyMode.On;
        return OK;
      }
      if (mode === "off") session.reply = ReplyMode.Off;
      else if (mode === "skip") session.reply = ReplyMode.Skip;
      else return error(SYNTAX);
      return null;
    }
  }
}

/** CLIENT INFO's line, with redis 7's fields; what the proxy does not track shows as redis's
 *  idle values. */
function clientInfo(session: RedisSession, now: number): string {
  const told = session.told;
  let flags = "";
  if (session.readonly) flags += "r";
  if (told.noEvict) flags += "e";
  if (told.noTouch) flags += "T";
  const age = Math.max(0, Math.floor((now - session.since) / 1000));
  return (
    `id=${session.id} addr= laddr= fd=-1 name=${told.name} age=${age} idle=0 ` +
    `flags=${flags === "" ? "N" : flags} db=0 sub=0 psub=0 ssub=0 multi=-1 qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 ` +
    `rbs=0 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd=client|info user=default redir=-1 resp=${session.proto} ` +
    `lib-name=${told.libName} lib-ver=${told.libVer}\n`
  );
}

// ---- SELECT ----

function select(buf: Uint8Array, req: Req, pool: PoolConfig): Uint8Array {
  const db = parseInteger(argText(buf, req, 1));
  if (db === null) return error(NOT_INTEGER);
  if (db === 0) return OK;
  return error(
    `ERR SELECT ${db} is not served: clients of the proxy see one database, db 0 ` +
      `(db ${pool.redisDb} of the servers, the pool's redis_db)`,
  );
}

// ---- values ----

/** A decimal integer as redis's string2ll reads it, or null. */
function parseInteger(text: string): number | null {
  if (!/^(0|-?[1-9][0-9]{0,18})$/.test(text)) return null;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : null;
}

/** Client names and library attributes: printable ASCII without spaces ('!' to '~'). */
function validName(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 33 || c > 126) return false;
  }
  return true;
}

function onOff(text: string): boolean | null {
  const t = text.toLowerCase();
  return t === "on" ? true : t === "off" ? false : null;
}
