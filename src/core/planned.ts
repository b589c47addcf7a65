// Carrying out a protocol's plan for a request beyond one key (Codec.planner, issue 17): a
// local reply, the request to one server, a fan-out whose replies the plan merges (whole-pool
// commands, SCAN, subscriptions on the client's subscriber connections or the servers' shared
// ones, hub.ts), a request on the connection the client's transaction is pinned to, a blocking
// request on a connection lent to it (dedicated.ts), a WAIT on the servers it wrote to, or
// RESET's letting go of its own connections. The core decides nothing here: the plan says
// where, the connections how.

import { PlanKind, Route, Via, type FanoutTarget, type Plan, type PoolView, type Req, type SharedTopic } from "../proto/codec.ts";
import { SLOT_COUNT } from "../route/key-slot.ts";
import type { ClientConn } from "./client.ts";
import { answeredAll, ownConns, releaseAll, subscriberConn } from "./dedicated.ts";
import { answerLocally, fail, finishSplit } from "./deliver.ts";
import { leaveShared, type Topic } from "./hub.ts";
import { forwardTo, toAll } from "./dispatch.ts";
import { MSG_OWN, MSG_SILENT, MSG_WATCHED, Msg } from "./msg.ts";
import type { Pool } from "./pool.ts";
import { everyPosition, liveServers, serverAt, unservedReason, withReadReplicas } from "./positions.ts";
import type { Server } from "./server.ts";
import type { ServerConn } from "./server-conn.ts";
import { SplitState } from "./split.ts";

const NO_BYTES = new Uint8Array(0);
const NO_KEYS = new Int32Array(0);
const REFUSED = "Connection refused";

/** The pool as its codec's planner sees it: positions are the servers, or a redis_cluster
 *  pool's slots (positions.ts). */
export function poolView(pool: Pool): PoolView {
  return {
    get cfg() {
      return pool.cfg;
    },
    get positions() {
      return pool.cluster === null ? pool.cfg.servers.length : SLOT_COUNT;
    },
    get cluster() {
      return pool.cluster !== null;
    },
    route: (buf, start, end) => (pool.cluster === null ? pool.router!.route(buf, start, end) : pool.cluster.slotOf(buf, start, end)),
    live: (position) => {
      const server = serverAt(pool, position);
      return server !== null && !server.ejected;
    },
    everyServer: () => everyPosition(pool),
    subscribers() {
      const planner = pool.codec.planner!;
      let n = 0;
      for (const c of pool.clients) if (planner.subscribed(c.session)) n++;
      return n;
    },
  };
}

/** Carry out `plan` for msg (the slot of req, parsed from buf); false when the request is
 *  then routed as usual (Release). */
export function carryOut(pool: Pool, c: ClientConn, msg: Msg, buf: Uint8Array, req: Req, plan: Plan): boolean {
  switch (plan.kind) {
    case PlanKind.Local:
      answerLocally(pool, msg, (msg.flags & MSG_SILENT) !== 0 ? null : plan.reply);
      return true;
    case PlanKind.Server: {
      const server = serverAt(pool, plan.server);
      if (server === null || server.ejected) {
        fail(pool, msg, unservedReason(pool, plan.server));
        return true;
      }
      if (pool.cluster !== null) {
        // On a shared connection: sent again where a node redirects it, as any request by slot.
        msg.slot = plan.server;
        msg.sentBuf = buf;
        msg.sentStart = req.start;
        msg.sentEnd = req.end;
      }
      forwardTo(pool, msg, server, buf, req);
      return true;
    }
    case PlanKind.All:
      toAll(pool, msg, buf, req, plan.replicas ? withReadReplicas(pool, liveServers(pool)) : liveServers(pool), plan.merge);
      return true;
    case PlanKind.Fanout:
      fanout(pool, c, msg, plan.targets, plan.merge);
      return true;
    case PlanKind.Pinned:
      msg.extraWait = plan.waitMs;
      pinned(pool, c, msg, buf, req, plan);
      return true;
    case PlanKind.Blocking: {
      const conn = lentConn(pool, c, msg, plan.server);
      if (conn === null) return true;
      msg.extraWait = plan.waitMs;
      // Kept for an ejection or a reload to see where its keys went (health.ts); in a cluster
      // pool, to send it again where a node redirects it, on a connection of the client's own
      // (MSG_OWN; cluster-dispatch.ts redirected).
      msg.sentBuf = buf;
      msg.sentStart = req.start;
      msg.sentEnd = req.end;
      if (pool.cluster !== null) {
        msg.slot = plan.server;
        msg.flags |= MSG_OWN;
      }
      send(msg, conn, buf, req);
      return true;
    }
    case PlanKind.Wait: {
      // The servers written to before this WAIT, and only those: later writes are the next one's.
      const wrote = c.takeWrites().filter((s) => pool.servers[s.index] === s);
      const start = (): void => waitOn(pool, c, msg, plan, wrote);
      if (c.first === msg) start();
      else msg.onHead = start;
      return true;
    }
    case PlanKind.Release:
      if (c.own !== null) releaseAll(c.own);
      return false;
  }
}

/** One request per target, but for a shared topic's unsubscribe, which goes wherever the client
 *  holds the topic and up only where it was the last (hub.ts); the client's reply is merged
 *  from theirs. */
function fanout(pool: Pool, c: ClientConn, msg: Msg, targets: readonly FanoutTarget[], merge: SplitState["mergeWith"]): void {
  const sent: FanoutTarget[] = [];
  const servers: Server[] = [];
  for (const t of targets) {
    if (leavesShared(t)) continue;
    const server = serverAt(pool, t.server);
    // The client's own subscriber connection to an ejected server still holds what it
    // subscribed there (only an unsubscribe goes there: subscribes go to live servers only).
    if (server === null || (server.ejected && !(t.via === Via.Subscriber && c.own?.subscriber.has(server) === true))) {
      fail(pool, msg, unservedReason(pool, t.server));
      return;
    }
    sent.push(t);
    servers.push(server);
  }
  const left: Topic[] = [];
  for (const t of targets) if (leavesShared(t)) left.push(...leaveShared(c, t.topic!.bytes));
  const split = new SplitState(Route.Any, NO_BYTES, 0, NO_KEYS, sent.length + left.length);
  split.mergeWith = merge;
  msg.split = split;
  if (sent.length + left.length === 0) {
    finishSplit(pool, msg, performance.now());
    return;
  }
  sent.forEach((t, f) => {
    const server = servers[f]!;
    const child = fragment(c, msg, f, server);
    const conn = t.via === Via.Subscriber ? subscriberConn(c, server) : t.via === Via.Hub ? hubConn(c, server, t.topic!, child) : server.conn(c.group);
    const before = conn.out.len;
    t.write(conn.out);
    child.bytes = conn.out.len - before;
    if (t.request !== undefined) {
      child.keyBuf = t.request;
      child.keyEnd = t.request.length;
      pool.codec.planner!.sentTo(c.session, t.request, server);
    }
    conn.push(child);
    if (t.after !== undefined) {
      const mark = new Msg(c, msg.t0);
      mark.flags |= MSG_SILENT;
      mark.server = server;
      mark.keyBuf = t.after;
      mark.keyEnd = t.after.length;
      conn.out.bytes(t.after);
      mark.bytes = t.after.length;
      conn.push(mark);
    }
  });
  left.forEach((topic, i) => topic.hub.unsubscribe(topic, fragment(c, msg, sent.length + i, topic.hub.server)));
}

/** A shared topic's unsubscribe: it goes wherever the client holds the topic, not to t.server. */
function leavesShared(t: FanoutTarget): boolean {
  return t.topic?.subscribe === false;
}

/** Fragment f of parent's fan-out, to `server`. */
function fragment(c: ClientConn, parent: Msg, f: number, server: Server): Msg {
  const child = new Msg(c, parent.t0);
  child.parent = parent;
  child.fragIndex = f;
  child.server = server;
  return child;
}

/** `server`'s shared subscription connection for c's subscribe to `topic`, sent as `request`. */
function hubConn(c: ClientConn, server: Server, topic: SharedTopic, request: Msg): ServerConn {
  const hub = server.lending.hub(c.group);
  hub.join(topic, c, ownConns(c), request);
  return hub.connection();
}

/** The connection lent to the client at `server` (its own already, or a new loan); null after
 *  answering msg with the reason when the pool's redis_dedicated_connections allows no more,
 *  or the server is out. */
function lentConn(pool: Pool, c: ClientConn, msg: Msg, position: number): ServerConn | null {
  const server = serverAt(pool, position);
  if (server === null) {
    fail(pool, msg, unservedReason(pool, position));
    return null;
  }
  return lentAt(pool, c, msg, server);
}

/** lentConn of a server. */
export function lentAt(pool: Pool, c: ClientConn, msg: Msg, server: Server): ServerConn | null {
  const own = ownConns(c);
  const mine = own.lent.get(server);
  if (mine !== undefined) return mine;
  const conn = borrow(pool, c, msg, server);
  if (conn !== null) own.lent.set(server, conn);
  return conn;
}

/** A connection lent to c at `server` for msg alone, not the one its later requests there go
 *  on (OwnConns.lent), of connection group `group`: it goes back once it has answered
 *  (answeredAll). Null after answering msg with the reason. */
export function lentApart(pool: Pool, c: ClientConn, msg: Msg, server: Server, group = c.group): ServerConn | null {
  const own = ownConns(c);
  const conn = borrow(pool, c, msg, server, group);
  if (conn !== null) own.apart.add(conn);
  return conn;
}

/** A new loan to c at `server`, of connection group `group`; null after answering msg with the
 *  reason when the server is out or the pool's redis_dedicated_connections allows no more. */
function borrow(pool: Pool, c: ClientConn, msg: Msg, server: Server, group = c.group): ServerConn | null {
  if (server.ejected) {
    fail(pool, msg, REFUSED);
    return null;
  }
  const conn = server.lending.borrow(c, group);
  if (conn === null) {
    const limit = pool.cfg.redisDedicatedConnections;
    answerLocally(pool, msg, pool.errorReply(`too many dedicated connections to server ${server.logName} (redis_dedicated_connections: ${limit})`));
  }
  return conn;
}

/** WAIT, every earlier request of the client answered: on a connection lent to it at each
 *  server it wrote to, the probe (its reply dropped), then WAIT; with none written to, WAIT
 *  alone at every server in service. Every connection is had before anything is sent. */
function waitOn(pool: Pool, c: ClientConn, msg: Msg, plan: Extract<Plan, { kind: typeof PlanKind.Wait }>, wrote: Server[]): void {
  if (c.closed) return;
  const probe = wrote.length > 0;
  const servers = probe ? wrote : liveServers(pool);
  if (servers.length === 0) {
    fail(pool, msg, REFUSED);
    return;
  }
  const conns: ServerConn[] = [];
  for (const server of servers) {
    const conn = lentAt(pool, c, msg, server);
    if (conn === null) {
      // Answered with why: the loans made for it go back unused.
      for (const taken of conns) if (taken.first === null) answeredAll(taken, c.group);
      return;
    }
    conns.push(conn);
  }
  const split = new SplitState(Route.Any, NO_BYTES, 0, NO_KEYS, conns.length);
  split.mergeWith = plan.merge;
  msg.split = split;
  conns.forEach((conn, f) => {
    if (probe) {
      conn.send(plan.probe, 0, plan.probe.length);
      pushSilent(conn, msg, 1, MSG_SILENT, plan.probe.length);
    }
    const child = fragment(c, msg, f, conn.server);
    child.extraWait = plan.waitMs;
    conn.send(plan.request, 0, plan.request.length);
    child.bytes = plan.request.length;
    conn.push(child);
  });
}

/** On the connection the client's transaction is pinned to: `before` (its replies dropped),
 *  then the request or the local reply; `release` lets go of the pin (the connection goes back
 *  once it has answered). */
function pinned(pool: Pool, c: ClientConn, msg: Msg, buf: Uint8Array, req: Req, plan: Extract<Plan, { kind: typeof PlanKind.Pinned }>): void {
  const { before, reply, release } = plan;
  const own = ownConns(c);
  const conn = own.pinned ?? lentConn(pool, c, msg, plan.server);
  if (conn === null) return;
  conn.dedicated!.pinned = !release;
  own.pinnedBy = release ? null : own.pinned === null ? msg : own.pinnedBy;
  own.pinned = release ? null : conn;
  // A cluster pool's EXEC after its MULTI and queued commands: the whole transaction is kept, to
  // go again where a node redirects it (cluster-dispatch.ts).
  const whole = pool.cluster !== null && before !== null && reply === null;
  if (before !== null) {
    conn.send(before, 0, before.length);
    pushSilent(conn, msg, plan.silent, whole ? MSG_SILENT | MSG_OWN : MSG_SILENT, before.length);
  }
  if (reply !== null) {
    answerLocally(pool, msg, reply);
    return;
  }
  // Its slot's master is where a TRYAGAIN or CLUSTERDOWN sends it again (cluster-resend.ts).
  if (pool.cluster !== null) msg.slot = plan.server;
  if (whole) keepTransaction(c, msg, before, buf, req, plan.watched);
  else if (pool.cluster !== null) {
    // WATCH, or a command between it and MULTI (the rest goes up at EXEC, transaction.ts): a
    // node's redirection fails the transaction (Planner.watchRedirected).
    msg.sentBuf = buf;
    msg.sentStart = req.start;
    msg.sentEnd = req.end;
    msg.flags |= MSG_OWN | MSG_WATCHED;
  }
  send(msg, conn, buf, req);
}

/** `n` requests of msg's client written on conn ahead of msg (a transaction's MULTI and queued
 *  commands, ASKING, WAIT's probe), each queued with `flags` (MSG_SILENT: their replies are
 *  dropped); the first counts their `bytes`. */
export function pushSilent(conn: ServerConn, msg: Msg, n: number, flags: number, bytes: number): void {
  for (let i = 0; i < n; i++) {
    const m = new Msg(msg.client, msg.t0);
    m.flags = flags;
    m.server = conn.server;
    m.bytes = i === 0 ? bytes : 0;
    conn.push(m);
  }
}

/** msg, an EXEC, keeps its transaction's bytes: `before` (MULTI and the queued commands), then
 *  its own. Until its reply they count as its request's bytes (backpressure, the buffer budget),
 *  as they did while the transaction held them. */
function keepTransaction(c: ClientConn, msg: Msg, before: Uint8Array, buf: Uint8Array, req: Req, watched: boolean): void {
  c.keepsBytes(msg, before.length);
  const bytes = new Uint8Array(before.length + req.end - req.start);
  bytes.set(before);
  bytes.set(buf.subarray(req.start, req.end), before.length);
  msg.sentBuf = bytes;
  msg.sentStart = 0;
  msg.sentEnd = bytes.length;
  msg.flags |= watched ? MSG_OWN | MSG_WATCHED : MSG_OWN;
}

/** The request as the client sent it, on conn. */
function send(msg: Msg, conn: ServerConn, buf: Uint8Array, req: Req): void {
  const c = msg.client;
  if (req.command!.writes === true && c.lastWrote !== conn.server) c.noteWrite(conn.server);
  msg.server = conn.server;
  conn.upstream.forward(buf, req, msg, conn);
  conn.push(msg);
}
