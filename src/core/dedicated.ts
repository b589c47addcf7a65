// Server connections of one client alone (issue 17). A client's subscriber connection to a
// server carries its (un)subscribe requests, and the server sends it messages unasked on it
// (Planner.unasked). A lent connection carries a client's blocking requests, or its transaction
// (which holds it from WATCH / MULTI to EXEC / DISCARD): while it has requests of the client on
// it, the client's other requests to that server go there too, so they reach the server in the
// client's order; once it has answered everything and nothing holds it, it goes back to its
// server for the next client (at most IDLE_KEEP idle per server and group). A server has at
// most the pool's redis_dedicated_connections lent connections at once (0: no limit). Every
// dedicated connection closes with its client, and counts in the server's
// dedicated_connections. A server's shared subscription connections (hub.ts) are dedicated ones
// too, with no owner: one per connection group, serving every client of its group.

import { S } from "../stats/table.ts";
import type { ClientConn } from "./client.ts";
import { SubscriptionHub, type Topic } from "./hub.ts";
import type { Msg } from "./msg.ts";
import { ConnGroup, type Server } from "./server.ts";
import type { ServerConn } from "./server-conn.ts";

/** Idle lent connections kept per server and connection group for the next client. */
const IDLE_KEEP = 16;

const RETIRED = "retired by a reload";

export const DedicatedRole = {
  Subscriber: 0,
  Lent: 1,
  /** A hub's shared subscription connection (hub.ts); it has no owner. */
  Hub: 2,
} as const;
export type DedicatedRole = (typeof DedicatedRole)[keyof typeof DedicatedRole];

/** What makes a ServerConn dedicated (ServerConn.dedicated; null for a shared one). */
export class Dedicated {
  /** A transaction holds it (a lent connection is not given back while it does). */
  pinned = false;
  /** performance.now() when the oldest request on it became the oldest: a request queued
   *  behind a blocking one waits for it first, so its timeout counts from then. */
  headSince = 0;
  /** A reload changed how its group's connections open (AUTH, SELECT, TLS): a lent one closes
   *  when given back instead of serving the next client. */
  stale = false;

  constructor(
    readonly role: DedicatedRole,
    /** The client it serves now; null while idle, and for a hub's. */
    public owner: ClientConn | null,
    /** The hub whose connection it is (role Hub), else null. */
    readonly hub: SubscriptionHub | null = null,
  ) {}
}

/** A client's own connections, by server (not by index: a reload may renumber the servers);
 *  made on its first one. */
export class OwnConns {
  readonly subscriber = new Map<Server, ServerConn>();
  readonly lent = new Map<Server, ServerConn>();
  /** Connections lent for one request alone (planned.ts lentApart), until it is answered. */
  readonly apart = new Set<ServerConn>();
  /** The lent connection its transaction holds. */
  pinned: ServerConn | null = null;
  /** The request that took the pin (its transaction's first on that connection): a redirection
   *  of a request queued before it there is of an earlier transaction (cluster-dispatch.ts). */
  pinnedBy: Msg | null = null;
  /** Bytes of its requests the planner holds (Planner.held), for the buffer budget. */
  held = 0;
  /** What it subscribes to through the servers' shared connections (hub.ts). */
  readonly topics = new Set<Topic>();

  constructor(private readonly owner: ClientConn) {}

  /** A connection lent to it carries requests of it (a blocking one still waiting, or one lent
   *  for it alone), or its transaction holds one: such a connection speaks the protocol it was
   *  lent in (its connection group), whatever the client says since. */
  get carrying(): boolean {
    return this.pinned !== null || this.lent.size > 0 || this.apart.size > 0;
  }

  /** Subscribed, or a blocking request waits on one of them: a client that would never be
   *  answered if it went away. */
  get waiting(): boolean {
    if (this.subscriber.size > 0 || this.topics.size > 0) return true;
    for (const conn of this.lent.values()) if (conn.first !== null && conn.first.extraWait !== 0) return true;
    for (const conn of this.apart) if (conn.first !== null && conn.first.extraWait !== 0) return true;
    return false;
  }

  /** Close them all, and leave its shared topics (the client is gone). */
  closeAll(): void {
    const all = [...this.subscriber.values(), ...this.lent.values(), ...this.apart];
    this.subscriber.clear();
    this.lent.clear();
    this.apart.clear();
    this.pinned = null;
    for (const conn of all) conn.close("client closed");
    this.leaveTopics();
  }

  /** Let go of every shared topic (the last client of one unsubscribes it upstream). */
  leaveTopics(): void {
    for (const topic of [...this.topics]) topic.hub.abandon(topic, this.owner);
  }
}

/** The client's own connections, made on first need. */
export function ownConns(c: ClientConn): OwnConns {
  return (c.own ??= new OwnConns(c));
}

/** The client's subscriber connection to `server`, made on first use. */
export function subscriberConn(c: ClientConn, server: Server): ServerConn {
  const own = ownConns(c);
  let conn = own.subscriber.get(server);
  if (conn === undefined) {
    conn = server.lending.open(c.group, DedicatedRole.Subscriber, c);
    own.subscriber.set(server, conn);
  }
  return conn;
}

/** Per server: its dedicated connections, and the lent ones given back. */
export class Lending {
  /** Every dedicated connection of the server, open or connecting (timeouts, closeAll). */
  readonly all = new Set<ServerConn>();
  /** Lent connections given back, by connection group. */
  private readonly idle = new Map<number, ServerConn[]>();
  private lent = 0;
  /** Shared subscriptions, by connection group; made on first use (and anew after a reload
   *  retired one). */
  private readonly hubs: (SubscriptionHub | undefined)[] = [];

  constructor(private readonly server: Server) {}

  /** A new connection in `role`, opened with the preamble of connection group `group`, for
   *  `owner` alone, or for `hub`. */
  open(group: number, role: DedicatedRole, owner: ClientConn | null, hub: SubscriptionHub | null = null): ServerConn {
    const conn = new ConnGroup(this.server, group, 1).open(0);
    conn.dedicated = new Dedicated(role, owner, hub);
    this.all.add(conn);
    if (role === DedicatedRole.Lent) this.lent++;
    this.server.stats.counters[S.dedicated_connections]!++;
    return conn;
  }

  /** A connection lent to `owner`, of connection group `group`: an idle one, or a new one while
   *  the pool's redis_dedicated_connections allows; null when it does not. */
  borrow(owner: ClientConn, group = owner.group): ServerConn | null {
    const idle = this.idle.get(group);
    const conn = idle?.pop();
    if (conn !== undefined) {
      conn.dedicated!.owner = owner;
      return conn;
    }
    const limit = this.server.pool.cfg.redisDedicatedConnections;
    if (limit > 0 && this.lent >= limit) return null;
    return this.open(group, DedicatedRole.Lent, owner);
  }

  /** The shared subscriptions of connection group `group`. */
  hub(group: number): SubscriptionHub {
    return (this.hubs[group] ??= new SubscriptionHub(this.server, (hub) => this.open(group, DedicatedRole.Hub, null, hub)));
  }

  /** A reload changed how the connections of the groups `stale` says are opened: later
   *  subscribes there go to a new hub, and no lent connection opened before serves another
   *  client (it would run that client's transaction or blocking request in the old database,
   *  or as the old user): idle ones close now, those in use when given back. */
  retireGroups(stale: (group: number) => boolean): void {
    this.hubs.forEach((hub, group) => {
      if (hub === undefined || !stale(group)) return;
      this.hubs[group] = undefined;
      hub.retire();
    });
    for (const [group, idle] of this.idle) if (stale(group)) for (const conn of [...idle]) conn.close(RETIRED);
    for (const conn of this.all) if (conn.dedicated!.role === DedicatedRole.Lent && stale(conn.groupId)) conn.dedicated!.stale = true;
  }

  /** Close the lent connections in use that carry a request `strands` says will wait in vain. */
  closeStranded(strands: (msg: Msg) => boolean, reason: string): void {
    for (const conn of [...this.all]) {
      if (conn.dedicated!.role !== DedicatedRole.Lent || conn.dedicated!.owner === null) continue;
      for (let msg = conn.first; msg !== null; msg = msg.snext) {
        if (strands(msg)) {
          conn.close(reason);
          break;
        }
      }
    }
  }

  /** A lent connection answered everything and nothing holds it: idle until the next client
   *  (or closed, past IDLE_KEEP). Returns false when it closed. */
  giveBack(conn: ServerConn, group: number): boolean {
    conn.dedicated!.owner = null;
    if (conn.dedicated!.stale) {
      conn.close(RETIRED);
      return false;
    }
    let idle = this.idle.get(group);
    if (idle === undefined) this.idle.set(group, (idle = []));
    if (idle.length < IDLE_KEEP) {
      idle.push(conn);
      return true;
    }
    conn.close("idle");
    return false;
  }

  /** A dedicated connection closed. */
  forget(conn: ServerConn): void {
    if (!this.all.delete(conn)) return;
    this.server.stats.counters[S.dedicated_connections]!--;
    if (conn.dedicated!.role === DedicatedRole.Lent) this.lent--;
    for (const idle of this.idle.values()) {
      const i = idle.indexOf(conn);
      if (i >= 0) idle.splice(i, 1);
    }
  }

  closeAll(reason: string): void {
    for (const conn of [...this.all]) conn.close(reason);
  }
}

const RELEASED = "released by its client";

/** The client lets go of its own connections (redis RESET): none carries its requests or
 *  brings it messages any more, and each closes once it has answered what it carries (the
 *  server ends the subscriptions and the transaction on it with it). */
export function releaseAll(own: OwnConns): void {
  const all = [...own.subscriber.values(), ...own.lent.values()];
  own.subscriber.clear();
  own.lent.clear();
  own.pinned = null;
  for (const conn of all) {
    conn.dedicated!.owner = null;
    conn.dedicated!.pinned = false;
    if (conn.first === null) conn.close(RELEASED);
  }
  own.leaveTopics();
}

/** conn (dedicated) has answered everything on it: a lent one its transaction does not hold
 *  goes back to its server. Returns false when it closed. */
export function answeredAll(conn: ServerConn, group: number): boolean {
  const d = conn.dedicated!;
  if (d.hub !== null) return d.hub.idle();
  const owner = d.owner;
  if (owner === null) {
    // Its client let go of it (releaseAll): its subscriptions or transaction end with it.
    conn.close(RELEASED);
    return false;
  }
  if (d.role !== DedicatedRole.Lent || d.pinned) return true;
  const own = owner.own!;
  if (own.lent.get(conn.server) === conn) own.lent.delete(conn.server);
  own.apart.delete(conn);
  return conn.server.lending.giveBack(conn, group);
}

/** conn (dedicated) closed: its server and its client let go of it. A client whose subscriber
 *  connection closed under it (its server failed) is disconnected: it would wait for messages
 *  that can no longer come, and reconnecting makes it subscribe again; for a hub's, every
 *  client subscribed through it (SubscriptionHub.lost). */
export function dedicatedClosed(conn: ServerConn): void {
  conn.server.lending.forget(conn);
  const hub = conn.dedicated!.hub;
  if (hub !== null) {
    hub.lost();
    return;
  }
  const owner = conn.dedicated!.owner;
  const own = owner?.own;
  if (own === null || own === undefined || owner!.closed) return;
  if (conn.dedicated!.role === DedicatedRole.Subscriber) {
    owner!.drop(new Error(`subscriber connection to ${conn.name} lost`));
    return;
  }
  const server = conn.server;
  if (own.lent.get(server) === conn) own.lent.delete(server);
  own.apart.delete(conn);
  if (own.subscriber.get(server) === conn) own.subscriber.delete(server);
  if (own.pinned === conn) {
    own.pinned = null;
    owner!.pool.codec.planner?.pinLost(owner!.session);
    noteHeld(owner!);
  }
}

/** What the planner holds of c's requests now (Planner.held), for the buffer budget: kept on
 *  its own connections' state, which a client that never needs one does not have. */
export function noteHeld(c: ClientConn): void {
  const held = c.pool.codec.planner?.held(c.session) ?? 0;
  if (held !== 0 || c.own !== null) ownConns(c).held = held;
}
