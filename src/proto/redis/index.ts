// The redis (RESP2) codec: the parsers, the command table, split fragments, merged replies,
// the proxy's own replies and the client session, behind the protocol-neutral Codec interface.

import type { Codec, Upstream } from "../codec.ts";
import { buildFragment } from "./fragment.ts";
import { admit, local, reconfigure, RedisSession } from "./local.ts";
import { merge } from "./merge.ts";
import { errorReply, preamble } from "./replies.ts";
import { parseRequest } from "./request.ts";
import { planRequest } from "./plan.ts";
import { parseResponse } from "./response.ts";
import { isPubSubMessage } from "./subscriptions.ts";
import { ascii } from "../../lib/bytes.ts";

/** Redis requests go upstream as the client sent them (a split's fragments as buildFragment
 *  writes them), and redis answers a pipeline's commands with one send already, so a server
 *  connection needs no state of its own: one Upstream serves them all. */
const upstream: Upstream = {
  forward(buf, req, msg, sink) {
    sink.send(buf, req.start, req.end);
    msg.bytes = req.end - req.start;
  },
  fragment(req, split, _group, order, from, n, msg, sink) {
    const out = sink.out;
    const before = out.len;
    buildFragment(split.bytes, req, order, from, n, out);
    msg.bytes = out.len - before;
  },
  sent() {},
  parseReply: parseResponse,
};

export const redisCodec: Codec<RedisSession> = {
  name: "redis",
  parseRequest,
  parseResponse,
  upstream: () => upstream,
  merge,
  errorReply,
  replyLine: (line) => ascii(`${line}\r\n`),
  openEnd: null,
  newSession: (pool) => new RedisSession(pool),
  reconfigure,
  admit,
  local,
  group: () => 0,
  preamble,
  planner: {
    plan: (buf, req, session, pool) => planRequest(buf, req, session, pool, false),
    isPush: isPubSubMessage,
    pinLost: (session) => session.multikey?.transaction.connectionLost(),
    subscribed: (session) => session.multikey?.subscriptions.subscribed ?? false,
  },
};
