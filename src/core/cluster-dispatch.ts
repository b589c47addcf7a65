// A redis_cluster pool's requests: routed by slot to the slot's master (Pool.slotMaster: the
// slot map's shard, then that shard's server), multi-key requests split by slot (redis refuses
// keys of two slots in one command) or refused with CROSSSLOT when they cannot be split, the
// pool's own CLUSTER answers; and a node's reply that redirects a request (MOVED, ASK, TRYAGAIN,
// CLUSTERDOWN) turned into sending the same bytes again (a blocking request or a transaction:
// on a connection of its client's own), so the client only ever sees the final reply, in its
// place in the client's queue.

import { ByteWriter } from "../lib/bytes.ts";
import { Req, Route, type UpstreamSink } from "../proto/codec.ts";
import type { ClusterRouting } from "../redis-cluster/routing.ts";
import { Resend, TOO_MANY_REDIRECTIONS } from "../redis-cluster/routing.ts";
import { P } from "../stats/table.ts";
import { subscriberConn } from "./dedicated.ts";
import { answerLocally, deliver, fail } from "./deliver.ts";
import { destination, forwardTo, noReplica, toAll } from "./dispatch.ts";
import { MSG_OWN, MSG_READ, MSG_SILENT, MSG_WATCHED, Msg } from "./msg.ts";
import { lentApart, lentAt, pushSilent } from "./planned.ts";
import type { Pool } from "./pool.ts";
import type { Server } from "./server.ts";
import type { ServerConn } from "./server-conn.ts";
import { SplitState } from "./split.ts";

/** Fragments are written here by their connection's Upstream, then copied out to be kept
 *  (Msg.sentBuf) and sent. */
const fragmentOut = new ByteWriter(256);
const fragmentSink: UpstreamSink = {
  out: fragmentOut,
  send(buf, start, end) {
    fragmentOut.bytes(buf, start, end);
  },
};

/** Dispatch of a parsed request of a redis_cluster pool (after Codec.admit let it through). */
export function dispatchBySlot(pool: Pool, cluster: ClusterRouting, msg: Msg, buf: Uint8Array, req: Req, route: Route): void {
  if (req.command!.planned === true) {
    // Beyond one key is the planner's (dispatch.ts, positions.ts): one it let through is refused.
    const reason = `unsupported command '${req.command!.name}' with distribution redis_cluster`;
    answerLocally(pool, msg, (msg.flags & MSG_SILENT) !== 0 ? null : pool.errorReply(reason));
    return;
  }
  // A keyed route has at least one key here: the codec refuses a numkeys of 0 (twemproxy's
  // "without keys" error).
  switch (route) {
    case Route.Key:
    case Route.Get:
    case Route.Sum:
    case Route.Set: {
      const slot = cluster.slotOf(buf, req.keyStart(0), req.keyEnd(0));
      let same = true;
      for (let i = 1; i < req.nkeys && same; i++) same = cluster.slotOf(buf, req.keyStart(i), req.keyEnd(i)) === slot;
      if (same) {
        if (req.command!.readOnly === true) msg.flags |= MSG_READ;
        msg.slot = slot;
        msg.sentBuf = buf;
        msg.sentStart = req.start;
        msg.sentEnd = req.end;
        const master = pool.slotMaster(slot);
        if (master === null) fail(pool, msg, cluster.unserved(slot));
        // Behind its client's requests waiting to go again, so they reach the nodes in its order.
        else if (pool.resends!.holds(msg.client)) pool.resends!.park(pool, cluster, msg, 0);
        else forwardTo(pool, msg, master, buf, req);
      } else if (route === Route.Key) {
        answerLocally(pool, msg, cluster.crossSlot);
      } else {
        splitBySlot(pool, cluster, msg, buf, req, route);
      }
      return;
    }
    case Route.Any: {
      // Keyless and touching no data (COMMAND, LOLWUT): any master.
      const node = cluster.anyMaster();
      if (node === null) fail(pool, msg, cluster.unserved(0));
      else forwardTo(pool, msg, pool.serverAt(node.host, node.port), buf, req);
      return;
    }
    case Route.All: {
      const masters = cluster.masters();
      if (masters.length === 0) fail(pool, msg, cluster.unserved(0));
      else toAll(pool, msg, buf, req, masters.map((node) => pool.serverAt(node.host, node.port)));
      return;
    }
  }
}

/** One fragment per slot, all built once into one buffer that is kept (a redirection sends a
 *  fragment again from it), then sent. */
function splitBySlot(pool: Pool, cluster: ClusterRouting, msg: Msg, buf: Uint8Array, req: Req, route: Route): void {
  const n = req.nkeys;
  const plan = pool.splitPlan;
  plan.reserve(n);
  const keys = new Int32Array(3 * n);
  for (let i = 0; i < n; i++) {
    const start = req.keyStart(i);
    const end = req.keyEnd(i);
    keys[3 * i] = start;
    keys[3 * i + 1] = end;
    plan.keyServer[i] = cluster.slotOf(buf, start, end);
  }
  const nfrags = plan.plan(n, keys);
  const state = new SplitState(route, buf, n, keys, nfrags);
  msg.split = state;
  pool.stats.counters[P.fragments]! += nfrags;
  const readOnly = req.command!.readOnly === true;
  // Fragment f is children[f], to servers[f] (null: failed here), its bytes at
  // [child.sentStart, child.sentEnd) of the one buffer.
  const children = new Array<Msg>(nfrags);
  const servers = new Array<Server | null>(nfrags);
  fragmentOut.reset();
  for (let f = 0; f < nfrags; f++) {
    const slot = plan.fragServer[f]!;
    const child = new Msg(msg.client, msg.t0);
    child.parent = msg;
    child.fragIndex = f;
    child.slot = slot;
    if (readOnly) child.flags |= MSG_READ;
    children[f] = child;
    servers[f] = null;
    const master = pool.slotMaster(slot);
    if (master === null) continue;
    // A read goes to a replica with read_from, as a whole request does (forwardTo).
    const server = destination(pool, master, readOnly);
    if (server === null) continue;
    servers[f] = server;
    const from = plan.fragStart[f]!;
    child.sentStart = fragmentOut.len;
    server.conn(msg.client.group).upstream.fragment(req, state, f, plan.order, from, plan.fragEnd(f) - from, child, fragmentSink);
    child.sentEnd = fragmentOut.len;
  }
  const bytes = fragmentOut.take();
  for (let f = 0; f < nfrags; f++) {
    const child = children[f]!;
    const server = servers[f]!;
    if (server !== null) {
      child.sentBuf = bytes;
      if (pool.resends!.holds(msg.client)) pool.resends!.park(pool, cluster, child, 0);
      else send(child, server, false, cluster);
      continue;
    }
    const master = pool.slotMaster(child.slot);
    fail(pool, child, master === null ? cluster.unserved(child.slot) : noReplica(master));
  }
}

/** msg's kept bytes to `server`, after ASKING when `asking`, in connection group `group` (sent
 *  again: the one it was sent in, whose protocol its reply is awaited in): on the connection
 *  lent to its client there while it has one of that group (its blocking request or
 *  transaction is on it, and msg must reach the node after them), else on a shared one
 *  (forwardTo's choice). One lent after a HELLO that changed the client's group speaks the
 *  other protocol; it carries only requests sent after msg, so msg need not follow them. */
export function send(msg: Msg, server: Server, asking: boolean, cluster: ClusterRouting, group = msg.client.group): void {
  const c = msg.client;
  const lent = c.own === null ? undefined : c.own.lent.get(server);
  sendOn(msg, lent !== undefined && lent.groupId === group ? lent : server.conn(group), asking, cluster);
}

/** msg, a request of its client's own connections (MSG_OWN), sent again to `server` on a
 *  connection lent to the client there (never a shared one, which a blocking request would
 *  block) of connection group `group` (the one it was sent in), after ASKING when `asking`; a
 *  transaction whole, its requests but the EXEC silent. */
export function sendOwn(pool: Pool, cluster: ClusterRouting, msg: Msg, server: Server, asking: boolean, group = msg.client.group): void {
  const silent = requestsIn(pool, msg) - 1;
  const c = msg.client;
  const mine = c.own === null ? undefined : c.own.lent.get(server);
  // A RESET answered since it was sent moved its client to another group (a HELLO that would is
  // refused meanwhile): one lent for it alone (its client's lent connections there are the
  // other group's).
  const otherGroup = mine !== undefined ? mine.groupId !== group : group !== c.group;
  const lent = otherGroup ? lentApart(pool, c, msg, server, group) : silent > 0 ? transactionConn(pool, msg, server) : lentAt(pool, c, msg, server);
  if (lent !== null) sendOn(msg, lent, asking, cluster, silent);
}

/** The connection for msg, a transaction sent whole again, at `server`: the one lent to its
 *  client there, unless a later transaction of the client is pinned to it (a WATCH sent since:
 *  this EXEC would end its watches), then one lent for msg alone. */
function transactionConn(pool: Pool, msg: Msg, server: Server): ServerConn | null {
  const lent = lentAt(pool, msg.client, msg, server);
  return lent === null || !lent.dedicated!.pinned ? lent : lentApart(pool, msg.client, msg, server);
}

/** msg's kept bytes on conn, after ASKING when `asking`; `silent`: how many requests of them
 *  come before msg's own and have their replies dropped (a transaction's MULTI and queued
 *  commands before its EXEC). */
function sendOn(msg: Msg, conn: ServerConn, asking: boolean, cluster: ClusterRouting, silent = 0): void {
  const server = conn.server;
  if (asking) {
    // Its own silent message: the node's +OK is swallowed.
    conn.send(cluster.asking, 0, cluster.asking.length);
    pushSilent(conn, msg, 1, MSG_SILENT, cluster.asking.length);
  }
  conn.send(msg.sentBuf!, msg.sentStart, msg.sentEnd);
  // Their bytes are msg's (it holds the whole transaction).
  pushSilent(conn, msg, silent, MSG_SILENT | MSG_OWN, 0);
  msg.bytes = msg.sentEnd - msg.sentStart;
  msg.joined = false;
  msg.server = server;
  conn.push(msg);
}

/** The error reply buf[start, end) came for msg, a one-name (un)subscribe on its client's
 *  subscriber connection (its bytes in msg.keyBuf): a MOVED (the shard channel's slot has a new
 *  owner, which the map may not know yet) sends it to that node, on the client's subscriber
 *  connection there, and true is returned; false when the reply is the client's. */
export function resubscribed(pool: Pool, cluster: ClusterRouting, msg: Msg, buf: Uint8Array, start: number, end: number): boolean {
  const to = cluster.redirection(buf, start, end, msg.server!.addr.host, msg, true);
  if (to === null) return false;
  if (to.how === Resend.Refuse) {
    fail(pool, msg, TOO_MANY_REDIRECTIONS);
    return true;
  }
  msg.resends++;
  const server = pool.serverAt(to.host, to.port);
  const conn = subscriberConn(msg.client, server);
  conn.out.bytes(msg.keyBuf!, msg.keyStart, msg.keyEnd);
  pool.codec.planner!.sentTo(msg.client.session, msg.keyBuf!, server);
  msg.server = server;
  conn.push(msg);
  return true;
}

/** The error reply buf[start, end) came on `conn` for msg: when it redirects msg, send msg again
 *  (now, or after a pause) and return true; false when the reply is the client's. */
export function redirected(pool: Pool, cluster: ClusterRouting, msg: Msg, buf: Uint8Array, start: number, end: number, conn: ServerConn): boolean {
  if ((msg.flags & MSG_OWN) !== 0) return ownRedirected(pool, cluster, msg, buf, start, end, conn);
  if (msg.sentBuf === null) return false; // not sent by slot (a keyless command)
  const to = cluster.redirection(buf, start, end, msg.server!.addr.host, msg);
  if (to === null) return false;
  if (to.how === Resend.Refuse) {
    fail(pool, msg, TOO_MANY_REDIRECTIONS);
    return true;
  }
  msg.resends++;
  // In the connection group it went in: a HELLO 3 answered since must not make its reply RESP3.
  if (to.how !== Resend.Later) {
    send(msg, pool.serverAt(to.host, to.port), to.how === Resend.Asking, cluster, conn.group.id);
    return true;
  }
  // TRYAGAIN, CLUSTERDOWN: it waits with its client's other requests to go again, so that the
  // ones the client sends meanwhile do not overtake it.
  pool.resends!.park(pool, cluster, msg, to.delayMs, conn.group.id);
  return true;
}

/** redirected() of a request on a connection of its client's own (MSG_OWN, on `conn`): a
 *  blocking request, a transaction's EXEC, one of the commands sent before that EXEC (silent),
 *  which redirects the whole transaction, or a WATCH or a command between it and MULTI. MOVED
 *  and ASK send it again on a connection lent to the client at the node named (on a shared one
 *  a blocking request would block every client's requests behind it), a transaction whole
 *  (nothing of it ran: this node's EXEC finds it flagged and aborts it); TRYAGAIN and
 *  CLUSTERDOWN the same way to the slot's master after a pause, waiting meanwhile with its
 *  client's other requests to go again (ResendQueues), as on the shared connections. A
 *  transaction that watches keys (MSG_WATCHED) cannot follow (its watches stay on the node it
 *  left, or the node dropped them with the transaction): the planner fails it and says what
 *  the request gets (Planner.watchRedirected). */
function ownRedirected(pool: Pool, cluster: ClusterRouting, msg: Msg, buf: Uint8Array, start: number, end: number, conn: ServerConn): boolean {
  const silent = (msg.flags & MSG_SILENT) !== 0;
  const exec = silent ? execBehind(conn) : msg;
  if (exec === null) return false;
  const to = cluster.redirection(buf, start, end, msg.server!.addr.host, exec);
  if (to === null) {
    // A queued command's TRYAGAIN or CLUSTERDOWN past the bound is its EXEC's reply: the node's
    // EXEC would say EXECABORT, of an error the client never saw.
    if (!silent || !cluster.retryable(buf, start, end)) return false;
    conn.standIn(exec);
    deliver(pool, exec, buf, start, end, performance.now());
    return true;
  }
  // This node's replies to the rest of the transaction are dropped.
  if (silent) conn.standIn(exec);
  const reply = (exec.flags & MSG_WATCHED) === 0 ? null : watchRedirected(pool, exec, conn);
  if (reply !== null) answerLocally(pool, exec, reply);
  else if (to.how === Resend.Refuse) fail(pool, exec, TOO_MANY_REDIRECTIONS);
  else {
    exec.resends++;
    // In the connection group it went in, as on the shared connections (redirected).
    if (to.how === Resend.Later) pool.resends!.park(pool, cluster, exec, to.delayMs, conn.group.id);
    else sendOwn(pool, cluster, exec, pool.serverAt(to.host, to.port), to.how === Resend.Asking, conn.group.id);
  }
  return true;
}

/** Planner.watchRedirected for exec, a request of a transaction that watches keys, redirected
 *  on conn: of the client's transaction now while conn is the one it is pinned to (a WATCH pins
 *  it until EXEC) and the request that took the pin is not queued behind exec there (the client's
 *  next transaction, pinned to the same connection), else of one that has ended, whose EXEC
 *  meets the redirection itself. */
function watchRedirected(pool: Pool, exec: Msg, conn: ServerConn): Uint8Array | null {
  const own = exec.client.own;
  const current = own !== null && own.pinned === conn && !queuedOn(conn, own.pinnedBy);
  return pool.codec.planner!.watchRedirected(exec.sentBuf!, exec.sentStart, exec.sentEnd, exec.client.session, current);
}

/** Is msg waiting for its reply on conn (behind the head just answered)? */
function queuedOn(conn: ServerConn, msg: Msg | null): boolean {
  for (let m = conn.first; m !== null; m = m.snext) if (m === msg) return true;
  return false;
}

/** The EXEC that the silent requests at the head of conn (a transaction's MULTI and queued
 *  commands) come before; null when it went elsewhere already (a stand-in is in its place). */
function execBehind(conn: ServerConn): Msg | null {
  let m = conn.first;
  while (m !== null && (m.flags & (MSG_SILENT | MSG_OWN)) === (MSG_SILENT | MSG_OWN)) m = m.snext;
  return m !== null && (m.flags & (MSG_SILENT | MSG_OWN)) === MSG_OWN && m.sentBuf !== null ? m : null;
}

/** How many requests msg's kept bytes hold (a transaction's: MULTI, its commands, EXEC); runs
 *  per redirection. */
function requestsIn(pool: Pool, msg: Msg): number {
  const req = new Req();
  let n = 0;
  for (let pos = msg.sentStart; pos < msg.sentEnd; n++) {
    const next = pool.codec.parseRequest(msg.sentBuf!, pos, msg.sentEnd, req);
    if (next <= pos) break; // cannot be: they were parsed before
    pos = next;
  }
  return n;
}
