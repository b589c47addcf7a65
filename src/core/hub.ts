// Shared subscriptions (redis_shared_subscriptions): one connection per server and connection
// group carries the subscriptions of every client of the group, and each message it brings goes
// to the clients subscribed to its topic (Planner.pushTopic), instead of each client holding a
// subscriber connection of its own (dedicated.ts). The server then writes a message once rather
// than once per client.
//
// A topic is subscribed upstream while a client holds it. Each client's subscribe goes up, and
// the client hears the topic's messages from its confirmation on: what came before it on the
// connection was published before the server had the client's subscription, and redis would
// not send it either. When the last client lets go (it unsubscribes, closes or RESETs), the
// topic's unsubscribe goes up, and the topic is kept until the server confirms it. A refused
// subscribe that leaves nobody holding the topic is followed by an unsubscribe, in case an
// earlier one had it subscribed; a refused unsubscribe is tried again a second later.
//
// A reload that changes how the group's connections are opened (AUTH, SELECT, TLS) retires the
// hub: later subscribes go to a new one; the old one serves the clients it has and closes once
// none holds any of its topics. When a hub's connection closes (its server failed, moved, or
// left the pool in a reload), every client subscribed through it is disconnected, as a client
// whose own subscriber connection closes is.

import type { SharedTopic } from "../proto/codec.ts";
import { equalBytes } from "../lib/bytes.ts";
import type { ClientConn } from "./client.ts";
import type { OwnConns } from "./dedicated.ts";
import { MSG_SILENT, Msg } from "./msg.ts";
import type { Server } from "./server.ts";
import type { ServerConn } from "./server-conn.ts";

/** How long a refused unsubscribe waits before it is sent again (the server was busy). */
const LEAVE_RETRY_MS = 1000;

/** What a client subscribes to through a hub: the messages that name `bytes`. */
export class Topic {
  /** Clients the server confirmed the subscription of: its messages go to them. */
  readonly clients = new Set<ClientConn>();
  /** Clients whose subscribe is on its way, by its request (the latest: a client may leave and
   *  subscribe again before the first is confirmed). */
  readonly joining = new Map<ClientConn, Msg>();
  /** The unsubscribe on its way, sent when the last client let go. */
  leaving: Msg | null = null;

  constructor(
    readonly hub: SubscriptionHub,
    readonly bytes: Uint8Array,
    readonly hash: number,
    /** The request that unsubscribes it alone. */
    readonly leave: Uint8Array,
  ) {}

  /** Some client holds it, or is joining. */
  get held(): boolean {
    return this.clients.size > 0 || this.joining.size > 0;
  }
}

export class SubscriptionHub {
  /** Open or connecting; null until first needed, and after it closed. */
  private conn: ServerConn | null = null;
  /** By the hash of their bytes. */
  private readonly topics = new Map<number, Topic[]>();
  /** The (un)subscribes on their way, by request: the topic each is about. */
  private readonly requests = new Map<Msg, Topic>();
  /** A reload retired it: no new clients; it closes once no topic is left. */
  private retired = false;

  constructor(
    readonly server: Server,
    /** Opens its connection (a dedicated one of the server, with no owner). */
    private readonly open: (hub: SubscriptionHub) => ServerConn,
  ) {}

  /** Its connection, opened on first use. */
  connection(): ServerConn {
    return (this.conn ??= this.open(this));
  }

  /** c (its own connections: `own`) subscribes to `topic` by `request`, which goes up on
   *  connection() whether or not others hold it: joining until the server confirms it. */
  join(topic: SharedTopic, c: ClientConn, own: OwnConns, request: Msg): void {
    const hash = hashOf(topic.bytes);
    let held = this.find(topic.bytes, hash);
    if (held === null) {
      held = new Topic(this, topic.bytes, hash, topic.leave);
      const bucket = this.topics.get(hash);
      if (bucket === undefined) this.topics.set(hash, [held]);
      else bucket.push(held);
    }
    held.joining.set(c, request);
    this.requests.set(request, held);
    own.topics.add(held);
  }

  /** c no longer holds `topic`, nor joins it; true when nobody does now (the caller sends its
   *  unsubscribe: unsubscribe()). */
  release(topic: Topic, c: ClientConn): boolean {
    c.own?.topics.delete(topic);
    const had = topic.clients.delete(c) || topic.joining.delete(c);
    return had && !topic.held;
  }

  /** Send topic's unsubscribe up as `request` (whose reply is the caller's). */
  unsubscribe(topic: Topic, request: Msg): void {
    const conn = this.connection();
    request.server = this.server;
    conn.send(topic.leave, 0, topic.leave.length);
    request.bytes = topic.leave.length;
    topic.leaving = request;
    this.requests.set(request, topic);
    conn.push(request);
  }

  /** c lets go of `topic` without asking (it closed, or RESET): the last one's unsubscribe goes
   *  up with its reply dropped. */
  abandon(topic: Topic, c: ClientConn): void {
    if (this.release(topic, c)) this.unsubscribeQuietly(topic, c);
  }

  /** The server answered `request` on the connection (`refused`: with an error). */
  answered(request: Msg, refused: boolean): void {
    const topic = this.requests.get(request);
    if (topic === undefined) return;
    this.requests.delete(request);
    const c = request.client;
    if (topic.joining.get(c) === request) {
      // A subscribe: its client hears the topic from now on.
      topic.joining.delete(c);
      if (!refused) {
        topic.clients.add(c);
        return;
      }
      c.own?.topics.delete(topic);
      if (!topic.held) this.unsubscribeQuietly(topic, c);
    } else if (topic.leaving === request) {
      topic.leaving = null;
      if (topic.held) return;
      if (!refused) this.forget(topic);
      else setTimeout(() => this.retryLeave(topic, c), LEAVE_RETRY_MS).unref();
    }
  }

  /** The server pushed the message buf[start, end) about `bytes`: to every client of it (none
   *  once its last client left, while the unsubscribe is on its way). */
  deliver(bytes: Uint8Array, buf: Uint8Array, start: number, end: number): void {
    const topic = this.find(bytes, hashOf(bytes));
    if (topic !== null) for (const c of topic.clients) c.deliverPush(buf, start, end);
  }

  /** A reload changed how its connection is opened. */
  retire(): void {
    this.retired = true;
    this.idle();
  }

  /** Its connection has answered everything on it: a retired hub with no topic left closes it.
   *  Returns false when it closed. */
  idle(): boolean {
    const conn = this.conn;
    if (!this.retired || this.topics.size > 0 || conn === null || conn.first !== null) return true;
    conn.close("retired by a reload");
    return false;
  }

  /** Its connection closed: every client subscribed through it is disconnected (it would
   *  wait for messages that can no longer come; reconnecting makes it subscribe again). */
  lost(): void {
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
    this.requests.clear();
    const why = new Error(`subscriber connection to ${this.server.logName} lost`);
    for (const c of clients) if (!c.closed) c.drop(why);
  }

  /** topic's unsubscribe, its reply dropped; `c` (maybe closed) carries the request. */
  private unsubscribeQuietly(topic: Topic, c: ClientConn): void {
    const request = new Msg(c, performance.now());
    request.flags |= MSG_SILENT;
    this.unsubscribe(topic, request);
  }

  private retryLeave(topic: Topic, c: ClientConn): void {
    if (this.conn === null || topic.held || topic.leaving !== null || this.find(topic.bytes, topic.hash) !== topic) return;
    this.unsubscribeQuietly(topic, c);
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

/** c unsubscribes from the shared topic `bytes` wherever it holds it, whichever servers the
 *  pool has now (a pattern: on every server it subscribed on). Returns the topics it was the
 *  last of: their unsubscribe goes up. */
export function leaveShared(c: ClientConn, bytes: Uint8Array): Topic[] {
  const last: Topic[] = [];
  if (c.own === null) return last;
  for (const topic of [...c.own.topics]) {
    if (equalBytes(topic.bytes, 0, topic.bytes.length, bytes, 0, bytes.length) && topic.hub.release(topic, c)) last.push(topic);
  }
  return last;
}

/** FNV-1a of the bytes (a topic's bucket). */
function hashOf(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i]!, 0x01000193);
  return h >>> 0;
}
