// Shared subscriptions (redis_shared_subscriptions): one connection per server and connection
// group carries the subscriptions of every client of the group, and each message it brings goes
// to the clients subscribed to its topic (Planner.pushTopic), instead of each client holding a
// subscriber connection of its own (dedicated.ts). The server then writes a message once rather
// than once per client. A topic stays subscribed upstream while a client holds it: each
// client's subscribe goes up, and the client hears the topic's messages from its confirmation
// on (what came before it on the connection was published before the server had the client's
// subscription, as redis would not send it either); the unsubscribe of its last client goes up
// too, or of the last one's leaving (its connection closed, RESET) with no reply wanted. When
// the connection closes, every client subscribed through it is disconnected, as a client whose
// own subscriber connection closes is.

import type { FanoutTarget } from "../proto/codec.ts";
import type { ClientConn } from "./client.ts";
import { DedicatedRole, type OwnConns } from "./dedicated.ts";
import { equalBytes } from "../lib/bytes.ts";
import { MSG_SILENT, Msg } from "./msg.ts";
import type { Server } from "./server.ts";
import type { ServerConn } from "./server-conn.ts";

/** What a client subscribes to through a hub: the messages that name `bytes`. */
export class Topic {
  /** Clients the server confirmed the subscription of: its messages go to them. */
  readonly clients = new Set<ClientConn>();
  /** Clients whose subscribe is on its way, by its request (the latest: a client may leave and
   *  subscribe again before the first is confirmed). */
  readonly joining = new Map<ClientConn, Msg>();

  constructor(
    readonly hub: SubscriptionHub,
    readonly bytes: Uint8Array,
    readonly hash: number,
    /** The request that unsubscribes it alone (sent when its last client goes). */
    readonly leave: Uint8Array,
  ) {}

  /** Some client holds it, or is joining. */
  get held(): boolean {
    return this.clients.size > 0 || this.joining.size > 0;
  }
}

export type HubTopic = NonNullable<FanoutTarget["topic"]>;

export class SubscriptionHub {
  /** Open or connecting; null until first needed, and after it closed. */
  private conn: ServerConn | null = null;
  /** By the hash of their bytes. */
  private readonly topics = new Map<number, Topic[]>();
  /** The subscribes on their way, by request: the topic each joins. */
  private readonly joins = new Map<Msg, Topic>();

  constructor(
    private readonly server: Server,
    private readonly group: number,
  ) {}

  /** Its connection, opened on first use. */
  connection(): ServerConn {
    return (this.conn ??= this.server.lending.open(this.group, DedicatedRole.Hub, null));
  }

  /** c (its own connections: `own`) subscribes to `topic` by `request` (which goes up whether
   *  or not others hold it): joining until it is confirmed (answered). */
  join(topic: HubTopic, c: ClientConn, own: OwnConns, request: Msg): void {
    const hash = hashOf(topic.bytes);
    let held = this.find(topic.bytes, hash);
    if (held === null) {
      held = new Topic(this, topic.bytes, hash, topic.leave);
      const bucket = this.topics.get(hash);
      if (bucket === undefined) this.topics.set(hash, [held]);
      else bucket.push(held);
    }
    held.joining.set(c, request);
    this.joins.set(request, held);
    own.topics.add(held);
  }

  /** The server answered `request` on the connection (`refused`: with an error): a subscribe's
   *  client hears its topic's messages from now on. */
  answered(request: Msg, refused: boolean): void {
    const topic = this.joins.get(request);
    if (topic === undefined) return;
    this.joins.delete(request);
    const c = request.client;
    if (topic.joining.get(c) !== request) return; // it left, or subscribed again since
    topic.joining.delete(c);
    if (!refused) {
      topic.clients.add(c);
      return;
    }
    c.own?.topics.delete(topic);
    if (!topic.held) this.forget(topic);
  }

  /** c unsubscribes from `topic`; true when it was the last client holding it (the caller
   *  sends its unsubscribe up). */
  leave(topic: HubTopic, c: ClientConn): boolean {
    const held = this.find(topic.bytes, hashOf(topic.bytes));
    return held !== null && this.release(held, c);
  }

  /** c lets go of `topic` without asking (it closed, or RESET): the last one's unsubscribe goes
   *  up with its reply dropped. */
  abandon(topic: Topic, c: ClientConn): void {
    if (!this.release(topic, c)) return;
    const conn = this.connection();
    const msg = new Msg(c, performance.now());
    msg.flags |= MSG_SILENT;
    msg.server = this.server;
    conn.send(topic.leave, 0, topic.leave.length);
    msg.bytes = topic.leave.length;
    conn.push(msg);
  }

  /** The server pushed the message buf[start, end) about `bytes`: to every client of it (none
   *  once its last client left, while the unsubscribe is on its way). */
  deliver(bytes: Uint8Array, buf: Uint8Array, start: number, end: number): void {
    const topic = this.find(bytes, hashOf(bytes));
    if (topic !== null) for (const c of topic.clients) c.deliverPush(buf, start, end);
  }

  /** Its connection closed: every client subscribed through it is disconnected (it would
   *  wait for messages that can no longer come; reconnecting makes it subscribe again). */
  lost(conn: ServerConn): void {
    if (conn !== this.conn) return;
    this.conn = null;
    const clients = new Set<ClientConn>();
    for (const bucket of this.topics.values()) {
      for (const topic of bucket) {
        for (const c of topic.clients) clients.add(c);
        for (const c of topic.joining.keys()) clients.add(c);
        topic.clients.clear();
        topic.joining.clear();
      }
    }
    this.topics.clear();
    this.joins.clear();
    const why = new Error(`subscriber connection to ${this.server.cfg.pname} lost`);
    for (const c of clients) if (!c.closed) c.drop(why);
  }

  /** c no longer holds topic, nor joins it; true when nobody does (it is forgotten). */
  private release(topic: Topic, c: ClientConn): boolean {
    c.own?.topics.delete(topic);
    const had = topic.clients.delete(c) || topic.joining.delete(c);
    if (!had || topic.held) return false;
    this.forget(topic);
    return true;
  }

  private forget(topic: Topic): void {
    const bucket = this.topics.get(topic.hash)!;
    if (bucket.length === 1) this.topics.delete(topic.hash);
    else bucket.splice(bucket.indexOf(topic), 1);
  }

  private find(bytes: Uint8Array, hash: number): Topic | null {
    const bucket = this.topics.get(hash);
    if (bucket !== undefined) {
      for (const topic of bucket) if (equalBytes(topic.bytes, 0, topic.bytes.length, bytes, 0, bytes.length)) return topic;
    }
    return null;
  }
}

/** FNV-1a of the bytes (a topic's bucket). */
function hashOf(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}
