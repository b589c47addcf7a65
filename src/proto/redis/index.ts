// The redis (RESP2) codec: the parsers, the command table, split fragments, merged replies and
// the proxy's own replies, behind the protocol-neutral Codec interface.

import type { Codec } from "../codec.ts";
import { buildFragment } from "./fragment.ts";
import { merge } from "./merge.ts";
import { AUTH_INVALID, AUTH_NOT_SET, errorReply, handshake, NO_AUTH, OK, PONG } from "./replies.ts";
import { parseRequest } from "./request.ts";
import { parseResponse } from "./response.ts";

export const redisCodec: Codec = {
  name: "redis",
  parseRequest,
  parseResponse,
  buildFragment,
  // Redis requests always go upstream as the client sent them.
  buildForward(buf, req, w) {
    w.bytes(buf, req.start, req.end);
  },
  // Redis answers a pipeline's commands with one send already.
  join: null,
  merge,
  errorReply,
  handshake,
  pong: PONG,
  authOk: OK,
  authInvalid: AUTH_INVALID,
  authNotSet: AUTH_NOT_SET,
  noAuth: NO_AUTH,
};
