// Replies the proxy makes itself, the same in RESP2 and RESP3.

import { ascii } from "../../lib/bytes.ts";

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
