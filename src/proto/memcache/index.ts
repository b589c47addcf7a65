// The memcached ASCII protocol as a Codec: the request and reply parsers, the split of
// retrieval commands and the merge of their replies, the writer of joined retrieval lines. See
// commands.ts for what is supported. memcached has no per-client state, no handshake and two
// local commands (quit, verbosity).

import { ascii } from "../../lib/bytes.ts";
import { Reconfigured, type Codec, type Session } from "../codec.ts";
import { parseRequest } from "./request.ts";
import { parseResponse } from "./response.ts";
import { merge } from "./split.ts";
import { upstreamFor } from "./upstream.ts";
import { local } from "./local.ts";

/** Every client's session: there is nothing to keep per client. */
const NO_STATE: Session = Object.freeze({});

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
  // Storage commands without noreply (the parser marks no other request, Req.stream).
  streams: () => true,
  // memcached itself answers a block not followed by CRLF so, then reads on after it.
  dataEnd: { bytes: ascii("\r\n"), error: "CLIENT_ERROR bad data chunk" },
  newSession: () => NO_STATE,
  reconfigure: () => Reconfigured.Kept,
  silent: () => false,
  admit: () => null,
  // quit and verbosity are routed Local.
  local,
  group: () => 0,
  preamble: () => null,
  planner: null,
};
