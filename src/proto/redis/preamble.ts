// What the proxy sends first on every new server connection, before any client's request, and
// what it makes of the replies (the core swallows them). A RESP2 connection: AUTH <redis_auth>
// when set, SELECT <redis_db> when not 0, as twemproxy. A RESP3 connection (serving clients
// that said HELLO 3, so their replies pass through unconverted): HELLO 3, with AUTH default
// <redis_auth> when set, then the SELECT. A server that does not know HELLO (redis before 6)
// cannot serve RESP3 clients; its reply says so and the log names the server. A redis_cluster
// pool that reads from replicas (read_from) ends with READONLY, so a replica serves its master's
// slots (a master ignores it).

import type { PoolConfig } from "../../conf/types.ts";
import { ascii, ByteWriter } from "../../lib/bytes.ts";
import { MINUS, PERCENT } from "./resp.ts";
import type { Proto } from "./reply.ts";
import { writeArrayHeader, writeBulkText } from "./reply.ts";

export interface Preamble {
  readonly bytes: Uint8Array;
  /** How many replies the bytes get. */
  readonly replies: number;
}

function command(w: ByteWriter, args: readonly string[]): void {
  writeArrayHeader(w, args.length);
  for (const arg of args) writeBulkText(w, arg);
}

/** The commands a new server connection speaking `proto` sends first; null when none. */
export function preamble(pool: PoolConfig, proto: Proto): Preamble | null {
  const w = new ByteWriter(64);
  let replies = 0;
  if (proto === 3) {
    command(w, pool.redisAuth === null ? ["HELLO", "3"] : ["HELLO", "3", "AUTH", "default", pool.redisAuth]);
    replies++;
  } else if (pool.redisAuth !== null) {
    command(w, ["AUTH", pool.redisAuth]);
    replies++;
  }
  if (pool.redisDb !== 0) {
    command(w, ["SELECT", String(pool.redisDb)]);
    replies++;
  }
  if (pool.distribution === "redis_cluster" && pool.readFrom !== "master") {
    command(w, ["READONLY"]);
    replies++;
  }
  return replies === 0 ? null : { bytes: w.take(), replies };
}

const latin1 = new TextDecoder("latin1");
const UNKNOWN_COMMAND = ascii("-ERR unknown command");

/** What the reply buf[start, end) to a preamble command says is wrong, as a sentence for the log;
 *  null when it is not an error. */
export function preambleRefusal(buf: Uint8Array, start: number, end: number, proto: Proto): string | null {
  if (buf[start] !== MINUS) return null;
  const text = latin1.decode(buf.subarray(start + 1, end)).trim();
  let unknown = proto === 3 && end - start >= UNKNOWN_COMMAND.length;
  for (let i = 0; unknown && i < UNKNOWN_COMMAND.length; i++) unknown = buf[start + i] === UNKNOWN_COMMAND[i];
  if (unknown) return `does not know HELLO (redis before 6), so it cannot serve RESP3 clients: ${text}`;
  return `refused the connection handshake: ${text}`;
}

const VERSION_FIELD = "\r\n$7\r\nversion\r\n$";

/** The server's version from its reply to HELLO 3 (a map with a `version` field), or null. */
export function helloVersion(buf: Uint8Array, start: number, end: number): string | null {
  if (buf[start] !== PERCENT) return null;
  const text = latin1.decode(buf.subarray(start, end));
  const at = text.indexOf(VERSION_FIELD);
  if (at < 0) return null;
  const lengthEnd = text.indexOf("\r\n", at + VERSION_FIELD.length);
  const length = Number(text.slice(at + VERSION_FIELD.length, lengthEnd));
  if (!Number.isInteger(length) || length < 0) return null;
  const version = text.slice(lengthEnd + 2, lengthEnd + 2 + length);
  return version.length === length ? version : null;
}
