// The memcached ASCII protocol as a Codec: the request and reply parsers, the split of
// retrieval commands and the merge of their replies. See commands.ts for what is supported.

import { ascii } from "../../core/bytes.ts";
import type { Codec } from "../codec.ts";
import { buildForward, parseRequest } from "./request.ts";
import { parseResponse } from "./response.ts";
import { buildFragment, merge } from "./split.ts";
import { appendAllKeys, appendKeys, LineKeys, openLineEnd } from "./join.ts";

/** memcached has no local PING/AUTH replies; the core never routes a memcached request there. */
const NO_LOCAL_REPLY = new Uint8Array(0);

export const memcacheCodec: Codec = {
  name: "memcache",
  parseRequest,
  parseResponse,
  buildFragment,
  buildForward,
  join: { openLineEnd, appendKeys, appendAllKeys, lineKeys: () => new LineKeys(), end: ascii("END\r\n") },
  merge,
  errorReply: (reason: string): Uint8Array => ascii(`SERVER_ERROR ${reason}\r\n`),
  handshake: () => null,
  pong: NO_LOCAL_REPLY,
  authOk: NO_LOCAL_REPLY,
  authInvalid: NO_LOCAL_REPLY,
  authNotSet: NO_LOCAL_REPLY,
  noAuth: NO_LOCAL_REPLY,
};
