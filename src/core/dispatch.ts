// The dispatcher: a parsed request becomes a reply slot and then a local reply, a message
// forwarded whole to the server of its key, or a split request whose fragments go to several
// servers (planned by split.ts, written by each connection's Upstream).

import { Route, type LocalReply, type Req } from "../proto/codec.ts";
import { P } from "../stats/table.ts";
import type { ClientConn } from "./client.ts";
import { dispatchBySlot } from "./cluster-dispatch.ts";
import { answerLocally, fail } from "./deliver.ts";
import { MSG_CLOSE, MSG_SILENT, Msg } from "./msg.ts";
import type { Pool } from "./pool.ts";
import type { Server } from "./server.ts";
import { SplitState } from "./split.ts";

/** A request of client c parsed from buf at `now` (performance.now()). */
export function dispatch(pool: Pool, c: ClientConn, buf: Uint8Array, req: Req, now: number): void {
  const msg = new Msg(c, now);
  c.enqueue(msg, req.end - req.start);
  const codec = pool.codec;
  if (req.error !== null) {
    pool.stats.counters[P.request_errors]!++;
    // A rejected noreply request stays silent, as memcached keeps it.
    answerLocally(pool, msg, req.noreply ? null : codec.replyLine(req.error));
    return;
  }
  const refused = codec.admit(req, c.session);
  if (refused !== null) {
    local(pool, msg, refused);
    return;
  }
  const route = req.command!.route;
  const router = pool.router;
  if (router === null) {
    dispatchBySlot(pool, pool.cluster!, msg, buf, req, route);
    return;
  }
  switch (route) {
    case Route.Key:
      forward(pool, msg, router.route(buf, req.keyStart(0), req.keyEnd(0)), buf, req);
      return;
    case Route.Get:
    case Route.Sum:
    case Route.Set:
      if (req.nkeys === 1) forward(pool, msg, router.route(buf, req.keyStart(0), req.keyEnd(0)), buf, req);
      else split(pool, msg, buf, req, route);
      return;
    case Route.Any: {
      const server = anyLiveServer(pool);
      if (server === null) fail(pool, msg, "Connection refused");
      else forwardTo(msg, server, buf, req);
      return;
    }
    case Route.Local:
      local(pool, msg, codec.local(buf, req, c.session, pool.cfg));
      // The session may have changed, and with it the connections its requests go to.
      c.group = codec.group(c.session);
      return;
  }
}

/** A request the stream cannot recover from: reply `error` (a line, Req.error; null: none),
 *  then close after the replies before it. */
export function rejectFatal(pool: Pool, c: ClientConn, error: string | null): void {
  const msg = new Msg(c, performance.now());
  c.enqueue(msg, 0);
  msg.flags |= MSG_CLOSE;
  c.closing = true;
  pool.stats.counters[P.request_errors]!++;
  answerLocally(pool, msg, error === null ? null : pool.codec.replyLine(error));
}

export function local(pool: Pool, msg: Msg, reply: LocalReply): void {
  if (reply.close) {
    msg.flags |= MSG_CLOSE;
    msg.client.closing = true;
  }
  answerLocally(pool, msg, reply.reply);
}

/** The server at `index` when it is in service, else null. */
function liveServer(pool: Pool, index: number): Server | null {
  if (index < 0) return null;
  const server = pool.servers[index]!;
  return server.ejected ? null : server;
}

function anyLiveServer(pool: Pool): Server | null {
  for (const server of pool.servers) if (!server.ejected) return server;
  return null;
}

/** Why key i of req has no server (index: what the router said). */
function unroutable(pool: Pool, index: number, buf: Uint8Array, req: Req, key: number): string {
  if (index < 0 && pool.cfg.distribution === "server_name") {
    const part = pool.router!.routingPart(buf, req.keyStart(key), req.keyEnd(key));
    return `no server named '${new TextDecoder().decode(part)}' in pool '${pool.cfg.name}'`;
  }
  return "Connection refused";
}

/** Forward the whole request to server `index` (the router's answer for its key 0). */
function forward(pool: Pool, msg: Msg, index: number, buf: Uint8Array, req: Req): void {
  const server = liveServer(pool, index);
  if (server === null) fail(pool, msg, unroutable(pool, index, buf, req, 0));
  else forwardTo(msg, server, buf, req);
}

export function forwardTo(msg: Msg, server: Server, buf: Uint8Array, req: Req): void {
  const conn = server.conn(msg.client.group);
  // memcached noreply: the server answers (the request goes without noreply), the client not.
  if (req.noreply) msg.flags |= MSG_SILENT;
  msg.server = server;
  conn.upstream.forward(buf, req, msg, conn);
  conn.push(msg);
}

/** Route every key; forward whole when they share a server, else one fragment per server. */
function split(pool: Pool, msg: Msg, buf: Uint8Array, req: Req, route: Route): void {
  const n = req.nkeys;
  const plan = pool.splitPlan;
  plan.reserve(n);
  const keyServer = plan.keyServer;
  const router = pool.router!;
  const servers = pool.servers;
  let same = true;
  for (let i = 0; i < n; i++) {
    const index = router.route(buf, req.keyStart(i), req.keyEnd(i));
    if (index < 0 || servers[index]!.ejected) {
      fail(pool, msg, unroutable(pool, index, buf, req, i));
      return;
    }
    keyServer[i] = index;
    if (index !== keyServer[0]) same = false;
  }
  if (same) {
    forwardTo(msg, servers[keyServer[0]!]!, buf, req);
    return;
  }
  // Key i: its bytes' start and end, and its fragment (Split.keys).
  const keys = new Int32Array(3 * n);
  for (let i = 0; i < n; i++) {
    keys[3 * i] = req.keyStart(i);
    keys[3 * i + 1] = req.keyEnd(i);
  }
  const nfrags = plan.plan(n, keys);
  const state = new SplitState(route, buf, n, keys, nfrags);
  msg.split = state;
  pool.stats.counters[P.fragments]! += nfrags;
  const group = msg.client.group;
  for (let f = 0; f < nfrags; f++) {
    const server = servers[plan.fragServer[f]!]!;
    const child = new Msg(msg.client, msg.t0);
    child.parent = msg;
    child.fragIndex = f;
    child.server = server;
    const conn = server.conn(group);
    const from = plan.fragStart[f]!;
    conn.upstream.fragment(req, state, f, plan.order, from, plan.fragEnd(f) - from, child, conn);
    conn.push(child);
  }
}
