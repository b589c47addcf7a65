// The redis codec (RESP2 and RESP3): the parsers, the command table, split fragments, merged
// replies, the proxy's own replies and the client session, behind the protocol-neutral Codec
// interface. A client that said HELLO 3 is in connection group 1, whose server connections open
// with HELLO 3 (preamble.ts), so its replies come back in RESP3 and pass through unconverted.

import { ascii } from "../../lib/bytes.ts";
import { VERSION } from "../../lib/version.ts";
import { Route, type Codec } from "../codec.ts";
import { factsOf } from "./facts.ts";
import { buildInfo, infoBody, infoField, lowestVersion } from "./info.ts";
import { admit, local, newSession, reconfigure, silent } from "./local.ts";
import { merge } from "./merge.ts";
import { preamble } from "./preamble.ts";
import { errorReply } from "./replies.ts";
import { writeVerbatim } from "./reply.ts";
import { parseRequest } from "./request.ts";
import { keysPosition, planRequest, watchRedirected } from "./plan.ts";
import { parseResponse } from "./response.ts";
import { upstreamFor } from "./upstream.ts";
import { endedChannel, pushTopic, unasked } from "./subscriptions.ts";
import type { RedisSession } from "./session.ts";
import type { SupportedCommand } from "./commands.ts";

/** Connection groups: RESP2 clients' connections, and RESP3 clients' (opened with HELLO 3). */
const RESP2_GROUP = 0;
const RESP3_GROUP = 1;

const latin1 = new TextDecoder("latin1");

/** INFO (Route.All): one text from every server's INFO, in the client's protocol. */
function mergeInfo(split: Parameters<Codec["merge"]>[0], out: Parameters<Codec["merge"]>[1], session: RedisSession): null {
  const sections: string[] = [];
  for (let i = 0; i < split.nkeys; i++) sections.push(latin1.decode(split.bytes.subarray(split.keys[3 * i]!, split.keys[3 * i + 1]!)));
  const texts: (string | null)[] = [];
  for (let f = 0; f < split.nfrags; f++) texts.push(infoBody(split.fragBuf[f]!, split.fragPos[2 * f]!, split.fragPos[2 * f + 1]!));
  const pool = session.pool;
  const version = lowestVersion(texts.map((t) => (t === null ? null : infoField(t, "server", "redis_version"))));
  if (version !== null) factsOf(pool.name).noteVersion(version);
  const facts = { version: VERSION, processId: process.pid, port: pool.listen.port, uptimeSeconds: Math.floor(process.uptime()), redisDb: pool.redisDb, cluster: pool.distribution === "redis_cluster" };
  writeVerbatim(out, session.proto, buildInfo(sections, texts, facts));
  return null;
}

export const redisCodec: Codec<RedisSession> = {
  name: "redis",
  parseRequest,
  parseResponse,
  upstream: upstreamFor,
  merge: (split, out, session) => (split.route === Route.All ? mergeInfo(split, out, session) : merge(split, out, session.proto)),
  errorReply,
  replyLine: (line) => ascii(`${line}\r\n`),
  openEnd: null,
  // Plain commands of a client in no special state (planRequest's hot path returns null for them).
  streams: (req, session) =>
    !req.inline && (req.command as SupportedCommand).role === null && (session.multikey === null || !session.multikey.busy),
  dataEnd: { bytes: ascii("\r\n"), error: "-ERR Protocol error: expected CRLF after bulk data" },
  newSession,
  reconfigure,
  silent,
  admit,
  local,
  group: (session) => (session.proto === 3 ? RESP3_GROUP : RESP2_GROUP),
  preamble: (pool, group) => preamble(pool, group === RESP3_GROUP ? 3 : 2),
  planner: {
    plan: (buf, req, session, pool) => planRequest(buf, req, session, pool, session.proto === 3),
    unasked,
    sentTo: (session, request, server) => session.multikey?.subscriptions.sentTo(request, server),
    ended: (buf, start, end, session, server) => session.multikey?.subscriptions.ended(endedChannel(buf, start, end), server, session.proto === 3) ?? null,
    pushTopic,
    pinLost: (session) => session.multikey?.transaction.connectionLost(),
    held: (session) => session.multikey?.transaction.heldBytes ?? 0,
    watchRedirected: (buf, start, end, session, current) => watchRedirected(buf, start, end, current ? session : null, session.proto === 3),
    keysPosition,
    subscribed: (session) => session.multikey?.subscriptions.subscribed ?? false,
  },
};
