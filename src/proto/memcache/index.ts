// The memcached ASCII protocol as a Codec: the request and reply parsers, the split of
// retrieval commands and the merge of their replies, the writer of joined retrieval lines. See
// commands.ts for what is supported. memcached has no per-client state, no handshake and one
// local command (quit).

import { ascii } from "../../lib/bytes.ts";
import type { Codec, LocalReply, Session } from "../codec.ts";
import { parseRequest } from "./request.ts";
import { parseResponse } from "./response.ts";
import { merge } from "./split.ts";
import { upstreamFor } from "./upstream.ts";

/** Every client's session: there is nothing to keep per client. */
const NO_STATE: Session = Object.freeze({});
/** quit: no reply, the connection closes. */
const QUIT: LocalReply = { reply: null, close: true };

export const memcacheCodec: Codec = {
  name: "memcache",
  parseRequest,
  parseResponse,
  upstream: upstreamFor,
  merge,
  errorReply: (reason: string): Uint8Array => ascii(`SERVER_ERROR ${reason}\r\n`),
  replyLine: (line) => ascii(`${line}\r\n`),
  // What a joined request's reply part lacks (Rsp.open).
  openEnd: ascii("END\r\n"),
  newSession: () => NO_STATE,
  reconfigure() {},
  admit: () => null,
  // quit is the only command routed Local.
  local: () => QUIT,
  group: () => 0,
  preamble: () => null,
  planner: null,
};
