// A redis_cluster pool's requests whose connection to a node was lost (the node died, closed
// the connection or refused it: how a master failover starts). Such a request is sent again
// when that is safe: it never left the proxy (its connection never opened), or it only reads
// (MSG_READ). It waits a moment (routing.ts lostDelay: the map reloads meanwhile, as a failed
// connection asks it to) and goes to the slot's node as the map then says, again and again
// while the request's time allows; so during a failover a client sees errors only for writes
// the dead master may have run, or when the cluster takes longer than the request's timeout.
// A client's waiting requests (these, and those a TRYAGAIN or CLUSTERDOWN sends again later,
// cluster-dispatch.ts, its blocking requests and transactions too) go again together, in its
// order, and what it sends meanwhile waits behind them (ResendQueues: by slot, planned
// requests but local replies, with their plans, and those the proxy answers, which may change
// the session): each waiting on a timer of its own (half its own age), a later write to a key
// overtook an earlier one and the key kept the older value.

import { Req, type Plan } from "../proto/codec.ts";
import type { ClusterRouting } from "../redis-cluster/routing.ts";
import { send, sendOwn } from "./cluster-dispatch.ts";
import { fail } from "./deliver.ts";
import { destination, noReplica, serve } from "./dispatch.ts";
import type { ClientConn } from "./client.ts";
import { MSG_OWN, MSG_READ, type Msg } from "./msg.ts";
import { carryOut } from "./planned.ts";
import type { Pool } from "./pool.ts";

/** msg's connection (of connection group `group`) was lost; `unwritten`: none of its bytes
 *  reached the socket. True when msg will be sent again; false when it must fail. */
export function resendLost(pool: Pool, cluster: ClusterRouting, msg: Msg, unwritten: boolean, group: number): boolean {
  // Not sent by slot (a keyless command), on a connection of its client's own (a blocking
  // request: never on a shared one), or a write the node may have run.
  if (msg.sentBuf === null || (msg.flags & MSG_OWN) !== 0 || (!unwritten && (msg.flags & MSG_READ) === 0)) return false;
  const delayMs = cluster.lostDelay(msg);
  if (delayMs < 0) return false;
  pool.resends!.park(pool, cluster, msg, delayMs, group);
  return true;
}

/** One client's requests waiting to be sent again, oldest first, chained by Msg.snext. */
interface Waiting {
  first: Msg;
  last: Msg;
}

/** A planned request parked behind its client's waiting ones: its bytes (the client's read
 *  buffer, never reused) and its plan, carried out when they go; plan null: a request the
 *  proxy answers itself (dispatch.ts serve), which may change the session they were sent under
 *  (HELLO 3 must not make an earlier HGETALL's reply RESP3). */
interface PlannedPark {
  readonly buf: Uint8Array;
  readonly start: number;
  readonly end: number;
  readonly plan: Plan | null;
}

/** A redis_cluster pool's requests waiting to be sent again, per client (kept here rather than
 *  on every ClientConn: only a cluster pool during a node's loss has any). */
export class ResendQueues {
  private readonly waiting = new Map<ClientConn, Waiting>();
  /** Which parked requests are planned ones (parkPlanned), with their plans. */
  private readonly planned = new Map<Msg, PlannedPark>();
  /** The connection group of a parked request sent in another than its client's now (a HELLO
   *  answered after it was sent): it goes again in that one. Its client's cannot change while
   *  it waits (what the proxy answers waits too). */
  private readonly groups = new Map<Msg, number>();

  /** Has c requests waiting? Its later requests by slot then wait behind them. */
  holds(c: ClientConn): boolean {
    return this.waiting.size !== 0 && this.waiting.has(c);
  }

  /** msg (its bytes kept, msg.sentBuf; sent in connection group `group`, or not yet) waits at
   *  the end of its client's queue; the first one starts the wait (delayMs) after which they all
   *  go. */
  park(pool: Pool, cluster: ClusterRouting, msg: Msg, delayMs: number, group = msg.client.group): void {
    const c = msg.client;
    if (group !== c.group) this.groups.set(msg, group);
    msg.snext = null;
    const queue = this.waiting.get(c);
    if (queue === undefined) {
      this.waiting.set(c, { first: msg, last: msg });
      setTimeout(() => this.release(pool, cluster, c), delayMs);
    } else {
      queue.last.snext = msg;
      queue.last = msg;
    }
  }

  /** msg, planned as `plan` from buf[start, end) (not a local reply), waits behind its client's
   *  requests that wait (holds() said so): a transaction or a blocking request sent now would
   *  reach its node before them. Plan null: a request the proxy answers (Route.Local). */
  parkPlanned(pool: Pool, cluster: ClusterRouting, msg: Msg, buf: Uint8Array, start: number, end: number, plan: Plan | null): void {
    this.planned.set(msg, { buf, start, end, plan });
    this.park(pool, cluster, msg, 0);
  }

  /** c's requests go, in order (one that fails again waits anew, in order too). */
  private release(pool: Pool, cluster: ClusterRouting, c: ClientConn): void {
    let msg: Msg | null = this.waiting.get(c)!.first;
    this.waiting.delete(c);
    while (msg !== null) {
      const next: Msg | null = msg.snext;
      msg.snext = null;
      const planned = this.planned.get(msg);
      if (planned === undefined) again(pool, cluster, msg, this.sentIn(msg));
      else {
        this.planned.delete(msg);
        carryOutParked(pool, msg, planned);
      }
      msg = next;
    }
  }

  /** The connection group msg goes again in (park). */
  private sentIn(msg: Msg): number {
    const group = this.groups.get(msg);
    if (group === undefined) return msg.client.group;
    this.groups.delete(msg);
    return group;
  }
}

/** A parked planned request, its client's earlier ones sent: its plan carried out (RESET's
 *  Release, or none: then served as usual), as dispatch would have. */
function carryOutParked(pool: Pool, msg: Msg, parked: PlannedPark): void {
  const c = msg.client;
  if (c.closed) {
    fail(pool, msg, "Connection closed by client");
    return;
  }
  const req = new Req();
  pool.codec.parseRequest(parked.buf, parked.start, parked.end, req);
  if (parked.plan === null || !carryOut(pool, c, msg, parked.buf, req, parked.plan)) serve(pool, c, msg, parked.buf, req);
}

function again(pool: Pool, cluster: ClusterRouting, msg: Msg, group: number): void {
  if (msg.client.closed) {
    fail(pool, msg, "Connection closed by client");
    return;
  }
  const master = pool.slotMaster(msg.slot);
  if (master === null) {
    fail(pool, msg, cluster.unserved(msg.slot));
    return;
  }
  // A blocking request or a transaction: again on a connection of its client's own.
  if ((msg.flags & MSG_OWN) !== 0) {
    sendOwn(pool, cluster, msg, master, false, group);
    return;
  }
  const server = destination(pool, master, (msg.flags & MSG_READ) !== 0);
  if (server === null) fail(pool, msg, noReplica(master));
  else send(msg, server, false, cluster, group);
}
