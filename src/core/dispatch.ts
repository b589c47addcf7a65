// The dispatcher: a parsed request becomes a reply slot and then a local reply, a message
// forwarded whole to the server of its key, a split request whose fragments go to several
// servers (planned by split.ts, written by each connection's Upstream), a request sent to every
// live server (Route.All, also the fan-out of the planner's whole-pool commands), or, when the
// codec's planner has a plan for it (beyond one key), that plan (planned.ts). In a pool that follows
// sentinels, a request (routed or planned) may wait for a failover first (failover.ts), and
// read-only commands may go to a replica of their server (read_from). A redis_cluster pool
// routes by slot instead (cluster-dispatch.ts) and answers CLUSTER itself.

import { log } from "../log.ts";
import { PlanKind, Route, type LocalReply, type Plan, type Req } from "../proto/codec.ts";
import { P } from "../stats/table.ts";
import type { ClientConn } from "./client.ts";
import { dispatchBySlot } from "./cluster-dispatch.ts";
import { answerLocally, fail } from "./deliver.ts";
import { peerOf } from "./errors.ts";
import { MSG_CLOSE, MSG_SILENT, Msg } from "./msg.ts";
import type { Pool } from "./pool.ts";
import type { Server } from "./server.ts";
import { noteHeld } from "./dedicated.ts";
import { carryOut } from "./planned.ts";
import { SplitState } from "./split.ts";

/** A request of client c parsed from buf at `now` (performance.now()). */
export function dispatch(pool: Pool, c: ClientConn, buf: Uint8Array, req: Req, now: number): void {
  const msg = new Msg(c, now);
  c.enqueue(msg, req.end - req.start);
  const codec = pool.codec;
  const silent = codec.silent(c.session);
  const refused = req.error === null ? codec.admit(req, c.session) : null;
  const planner = codec.planner;
  if (planner !== null && refused === null) {
    // Beyond one key (a request the parser refused too: in a transaction it aborts it).
    const plan = planner.plan(buf, req, c.session, pool.view);
    if (plan !== null) {
      noteHeld(c);
      if (req.error !== null) pool.stats.counters[P.request_errors]!++;
      if (silent) msg.flags |= MSG_SILENT;
      // Release: served as usual once the client's own connections are let go.
      if (runPlan(pool, msg, buf, req, plan)) return;
    }
  }
  if (req.error === null && refused !== null) {
    local(pool, msg, silent ? { reply: null, close: refused.close } : refused);
    return;
  }
  if (silent) msg.flags |= MSG_SILENT;
  serve(pool, c, msg, buf, req);
}

/** A request admitted and not planned (or let go by its plan: PlanKind.Release): its parser's
 *  error, a local reply or its server(s). */
export function serve(pool: Pool, c: ClientConn, msg: Msg, buf: Uint8Array, req: Req): void {
  const silent = (msg.flags & MSG_SILENT) !== 0;
  if (req.error !== null) {
    pool.stats.counters[P.request_errors]!++;
    // A rejected noreply request stays silent, as memcached keeps it.
    answerLocally(pool, msg, req.noreply || silent ? null : pool.codec.replyLine(req.error));
    return;
  }
  if (req.command!.route === Route.Local) {
    // Behind its client's requests parked for a failover, since it may change the session they
    // are sent under (HELLO 3 after a parked HGETALL must not make that reply RESP3).
    const failover = pool.failover;
    if (failover !== null && failover.active && failover.parks(msg, buf, req, null)) return;
    // Likewise behind its client's requests waiting to go again (redis_cluster, cluster-resend.ts).
    const resends = pool.resends;
    if (resends !== null && resends.holds(c)) {
      resends.parkPlanned(pool, pool.cluster!, msg, buf, req.start, req.end, null);
      return;
    }
    // A redis_cluster pool answers CLUSTER itself, as the one node its clients see.
    const own = pool.cluster === null ? null : pool.cluster.local(buf, req, c.session, c.socket.localAddress, c.socket.localPort);
    if (own !== null) answerLocally(pool, msg, silent ? null : own);
    // Asked here, past the waits above: a connection of its own keeps the protocol it was lent in.
    else local(pool, msg, pool.codec.local(buf, req, c.session, pool.cfg, c.own !== null && c.own.carrying));
    // The session may have changed, and with it the connections its requests go to.
    c.group = pool.codec.group(c.session);
    return;
  }
  routeRequest(pool, msg, buf, req);
}

/** Send a request (its slot is msg) to its server(s), unless it has to wait for a failover. */
export function routeRequest(pool: Pool, msg: Msg, buf: Uint8Array, req: Req): void {
  const failover = pool.failover;
  if (failover !== null && failover.active && failover.parks(msg, buf, req, null)) return;
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
      else forwardTo(pool, msg, server, buf, req);
      return;
    }
    case Route.All:
      toAll(pool, msg, buf, req, pool.servers.filter((s) => !s.ejected));
      return;
  }
}

/** Carry out a request's plan (planned.ts), unless it has to wait for a failover first, or
 *  (redis_cluster) behind its client's requests waiting to go again (cluster-resend.ts); false
 *  when the request is then to be served as usual (carryOut). */
export function runPlan(pool: Pool, msg: Msg, buf: Uint8Array, req: Req, plan: Plan): boolean {
  const failover = pool.failover;
  if (failover !== null && failover.active && failover.parks(msg, buf, req, plan)) return true;
  const resends = pool.resends;
  if (resends !== null && plan.kind !== PlanKind.Local && resends.holds(msg.client)) {
    resends.parkPlanned(pool, pool.cluster!, msg, buf, req.start, req.end, plan);
    return true;
  }
  return carryOut(pool, msg.client, msg, buf, req, plan);
}

/** A request the stream cannot recover from: reply `error` (a line, Req.error; null: none),
 *  then close after the replies before it. */
export function rejectFatal(pool: Pool, c: ClientConn, error: string | null): void {
  const msg = closingSlot(c);
  msg.flags |= MSG_CLOSE;
  c.closing = true;
  pool.stats.counters[P.request_errors]!++;
  answerLocally(pool, msg, error === null ? null : pool.codec.replyLine(error));
}

/** A request refused for its size (client_max_request, the buffer budget): its bytes are
 *  dropped, the client gets an error after its earlier replies and is closed. Logged, counted. */
export function refuseRequest(pool: Pool, c: ClientConn, reason: string): void {
  if (c.closing) return;
  pool.stats.counters[P.requests_refused]!++;
  log.warn(`client ${peerOf(c.socket)} of pool '${pool.cfg.name}': ${reason}; closing it`);
  const msg = closingSlot(c);
  msg.flags |= MSG_CLOSE;
  c.closing = true;
  c.dropPending();
  answerLocally(pool, msg, pool.errorReply(reason));
}

/** The slot of the reply a client gets before it is closed: the request it was gathering to
 *  route (ClientConn.deferred), whose bytes are now dropped, else a new one. */
function closingSlot(c: ClientConn): Msg {
  const deferred = c.deferred;
  if (deferred !== null) {
    c.deferred = null;
    return deferred;
  }
  const msg = new Msg(c, performance.now());
  c.enqueue(msg, 0);
  return msg;
}

function local(pool: Pool, msg: Msg, reply: LocalReply): void {
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
  else forwardTo(pool, msg, server, buf, req);
}

/** Where a request for `master` goes: a replica for a read-only command with read_from, else
 *  the master; null when read_from: replica finds no replica in service. */
export function destination(pool: Pool, master: Server, readOnly: boolean): Server | null {
  return readOnly && pool.cfg.readFrom !== "master" ? master.readTarget() : master;
}

/** Why a read for `master` found no server (destination() gave null). */
export const noReplica = (master: Server): string => `no replica of ${master.cfg.effectiveName} is in service`;

/** Forward the whole request to `master` (or its replica, destination()): on the client's own
 *  connection there while it has one lent (so its requests reach the server in order), else on
 *  a shared one. */
export function forwardTo(pool: Pool, msg: Msg, master: Server, buf: Uint8Array, req: Req): void {
  const server = destination(pool, master, req.command!.readOnly === true);
  if (server === null) {
    fail(pool, msg, noReplica(master));
    return;
  }
  const c = msg.client;
  if (req.command!.writes === true && c.lastWrote !== master) c.noteWrite(master);
  const own = c.own;
  const conn = (own === null ? undefined : own.lent.get(server)) ?? server.conn(c.group);
  if (req.stream !== 0 && !conn.canStream) {
    // Part of a request that would stream (ClientConn.streamOn) to a connection that streams
    // another: its client gathers it and routes it again once it is whole (routeWhole).
    c.deferred = msg;
    return;
  }
  // memcached noreply: the server answers (the request goes without noreply), the client not.
  if (req.noreply) msg.flags |= MSG_SILENT;
  msg.server = server;
  conn.upstream.forward(buf, req, msg, conn);
  if (req.stream === 0) {
    conn.push(msg);
    return;
  }
  // Its first bytes went; the rest follows as its client sends it.
  msg.bytes = req.need;
  conn.push(msg);
  conn.startStream(msg);
  msg.client.streamsTo(conn, msg);
}

/** A request deferred while it was incomplete (forwardTo), now whole: routed as if just parsed. */
export function routeWhole(pool: Pool, msg: Msg, buf: Uint8Array, req: Req): void {
  if (req.error === null) {
    routeRequest(pool, msg, buf, req);
    return;
  }
  pool.stats.counters[P.request_errors]!++;
  answerLocally(pool, msg, pool.codec.replyLine(req.error));
}

/** Send the whole request to each of `live` (the servers in service; a redis_cluster pool's
 *  masters); the replies are merged (Route.All) by Codec.merge, or by `merge` (a planned
 *  whole-pool command, Plan.All). */
export function toAll(pool: Pool, msg: Msg, buf: Uint8Array, req: Req, live: readonly Server[], merge: SplitState["mergeWith"] = null): void {
  if (live.length === 0) {
    fail(pool, msg, "Connection refused");
    return;
  }
  // The Split's "keys" are the arguments after the command name (redis INFO: its sections).
  const n = req.nargs - 1;
  const args = new Int32Array(3 * n);
  for (let i = 0; i < n; i++) {
    args[3 * i] = req.argStart[i + 1]!;
    args[3 * i + 1] = req.argEnd[i + 1]!;
    args[3 * i + 2] = -1;
  }
  msg.split = new SplitState(Route.All, buf, n, args, live.length);
  msg.split.mergeWith = merge;
  for (let f = 0; f < live.length; f++) {
    const child = new Msg(msg.client, msg.t0);
    child.parent = msg;
    child.fragIndex = f;
    forwardTo(pool, child, live[f]!, buf, req);
  }
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
    forwardTo(pool, msg, servers[keyServer[0]!]!, buf, req);
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
  const c = msg.client;
  const group = c.group;
  const writes = req.command!.writes === true;
  for (let f = 0; f < nfrags; f++) {
    const master = servers[plan.fragServer[f]!]!;
    if (writes && c.lastWrote !== master) c.noteWrite(master);
    const child = new Msg(msg.client, msg.t0);
    child.parent = msg;
    child.fragIndex = f;
    const server = destination(pool, master, req.command!.readOnly === true);
    if (server === null) {
      fail(pool, child, noReplica(master));
      continue;
    }
    child.server = server;
    const conn = server.conn(group);
    const from = plan.fragStart[f]!;
    conn.upstream.fragment(req, state, f, plan.order, from, plan.fragEnd(f) - from, child, conn);
    conn.push(child);
  }
}
