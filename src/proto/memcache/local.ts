// The memcached commands the proxy answers itself: `quit` (no reply, the connection closes),
// `verbosity` (a server's log level is not a client's to change behind a shared proxy: accepted,
// as memcached checks it in request.ts, and changes nothing), and a gat/gats without a key
// (memcached's empty result, END: no server has anything to say). `version` is not answered
// here: it goes to a live server, as with twemproxy 0.5.0, so clients keep seeing their
// servers' version.

import { ascii } from "../../lib/bytes.ts";
import type { LocalReply, Req } from "../codec.ts";
import { isMemcacheCommand, Shape } from "./commands.ts";

const QUIT: LocalReply = { reply: null, close: true };
const OK: LocalReply = { reply: ascii("OK\r\n"), close: false };
const NONE: LocalReply = { reply: null, close: false };
const NO_ITEMS: LocalReply = { reply: ascii("END\r\n"), close: false };

/** The reply to a well-formed command routed Local (noreply: none). */
export function local(_buf: Uint8Array, req: Req): LocalReply {
  const command = req.command;
  if (isMemcacheCommand(command) && command.shape === Shape.Quit) return QUIT;
  // Only a keyless one routes Local (KEYLESS_GAT); gat takes no noreply.
  if (isMemcacheCommand(command) && command.shape === Shape.Gat) return NO_ITEMS;
  return req.noreply ? NONE : OK;
}
