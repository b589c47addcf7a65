// The memcached commands the proxy answers itself: `version` (whatever the state of the
// servers, so a health check asks the proxy) and `verbosity` (a server's log level is not a
// client's to change behind a shared proxy: accepted, and changes nothing).
//
// The version line is `VERSION 1.6.0-buncracker-<version>`: the memcached protocol the proxy
// speaks (1.6's text protocol, gat included), then the proxy's own version. Clients read the
// number before the first non-digit of each part (libmemcached refuses a version whose major
// number is not a positive integer), so it reads as 1.6.0.

import pkg from "../../../package.json" with { type: "json" };
import { ascii } from "../../core/bytes.ts";
import type { Req } from "../codec.ts";
import { isMemcacheCommand, Shape } from "./commands.ts";

export const VERSION_LINE = ascii(`VERSION 1.6.0-buncracker-${pkg.version}\r\n`);
const OK = ascii("OK\r\n");

/** The reply to a well-formed command the proxy answers (req.command's route is Local), or null
 *  when the client asked for none (noreply). */
export function answerLocal(_buf: Uint8Array, req: Req): Uint8Array | null {
  const command = req.command;
  if (isMemcacheCommand(command) && command.shape === Shape.Version) return VERSION_LINE;
  return req.noreply ? null : OK;
}
