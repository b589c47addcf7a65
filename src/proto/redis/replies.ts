// The bytes of the replies the proxy makes itself, and of the commands it sends first on every
// server connection (the preamble).

import type { PoolConfig } from "../../conf/types.ts";
import type { Preamble } from "../codec.ts";
import { ascii, ByteWriter } from "../../lib/bytes.ts";
import { DOLLAR, STAR } from "./resp.ts";

// Texts as nutcracker 0.5.0 sends them (checked against it in test/unit/redis-replies.test.ts).
export const PONG = ascii("+PONG\r\n");
export const OK = ascii("+OK\r\n");
export const AUTH_INVALID = ascii("-ERR invalid password\r\n");
export const AUTH_NOT_SET = ascii("-ERR Client sent AUTH, but no password is set\r\n");
export const NO_AUTH = ascii("-NOAUTH Authentication required\r\n");

/** "-ERR <reason>\r\n"; CR and LF in the reason become spaces (a reply is one line). */
export function errorReply(reason: string): Uint8Array {
  return ascii(`-ERR ${reason.replace(/[\r\n]/g, " ")}\r\n`);
}

/** AUTH <redis_auth> when set, SELECT <redis_db> when not 0, and how many replies they get
 *  (one connection group today: every client speaks RESP2). */
export function preamble(pool: PoolConfig, _group: number): Preamble | null {
  const w = new ByteWriter(64);
  let replies = 0;
  if (pool.redisAuth !== null) {
    command(w, "AUTH", pool.redisAuth);
    replies++;
  }
  if (pool.redisDb !== 0) {
    command(w, "SELECT", String(pool.redisDb));
    replies++;
  }
  return replies === 0 ? null : { bytes: w.take(), replies };
}

function command(w: ByteWriter, ...args: string[]): void {
  w.byte(STAR);
  w.int(args.length);
  w.crlf();
  for (const arg of args) {
    const bytes = ascii(arg);
    w.byte(DOLLAR);
    w.int(bytes.length);
    w.crlf();
    w.bytes(bytes);
    w.crlf();
  }
}
