// The memcached commands the proxy answers itself: `quit` (no reply, the connection closes) and
// `verbosity` (a server's log level is not a client's to change behind a shared proxy: accepted,
// as memcached checks it in request.ts, and changes nothing). `version` is not answered here: it
// goes to a live server, as with twemproxy 0.5.0, so clients keep seeing their servers' version.

import { ascii } from "../../lib/bytes.ts";
import type { LocalReply, Req } from "../codec.ts";
import { isMemcacheCommand, Shape } from "./commands.ts";

const QUIT: LocalReply = { reply: null, close: true };
const OK: LocalReply = { reply: ascii("OK\r\n"), close: false };
const NONE: LocalReply = { reply: null, close: false };

/** The reply to a well-formed command routed Local (noreply: none). */
export function local(_buf: Uint8Array, req: Req): LocalReply {
  const command = req.command;
  if (isMemcacheCommand(command) && command.shape === Shape.Quit) return QUIT;
  return req.noreply ? NONE : OK;
}
