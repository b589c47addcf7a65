// One client's pub/sub subscriptions across the servers of a pool, and the replies a single
// redis would give it. A channel (and a shard channel) is routed like a key, so PUBLISH and
// SUBSCRIBE of one channel meet on one server; a pattern is subscribed on every live server, as
// a message may be published on any of them. The client's upstream subscriptions are on its own
// connections (one per server it needs), each of which reports only its own counts: so the
// proxy keeps the client's whole state here, sends upstream only what changes (a channel
// subscribed twice goes up once; an unknown one is never sent up to be unsubscribed) and writes
// the confirmations itself, in argument order, with the client's counts, once the servers have
// confirmed theirs. Messages (message, pmessage, smessage) pass through as the servers send
// them; to a RESP3 client as push messages (`>` for `*`: the rest is the same in RESP3).
// A redis cluster node that gives a slot away (a reshard, a failover) ends every subscription
// to that slot's shard channels with an unasked `sunsubscribe`: the client's state drops the
// channel and the client gets that confirmation with its own count, as redis tells a client of
// its own (cluster-aware clients subscribe again); it is never taken for the reply to a request.
// Only the subscription held on that node's connection ends: one the client made again since on
// the slot's new owner (its SUNSUBSCRIBE went there too, by the map) stays, and the old node's
// late message is not the client's.
//
// Counts are redis 7's: (un)subscribe and p(un)subscribe count channels plus patterns,
// s(un)subscribe count shard channels; a client is in subscribed mode while any count is > 0
// (RESP2: then only (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PING, QUIT and RESET are allowed).

import { ascii, ByteWriter } from "../../lib/bytes.ts";
import { equalBytes } from "../../lib/bytes.ts";
import { Unasked, type Outbound, type PoolView, type ServerRef, type SharedTopic } from "../codec.ts";
import { PubSubOp } from "./commands.ts";

/** A subscription kind: its confirmation words and its set. */
const enum Kind {
  Channel,
  Pattern,
  Shard,
}

const KIND_OF: Partial<Record<PubSubOp, { kind: Kind; subscribe: boolean }>> = {
  [PubSubOp.Subscribe]: { kind: Kind.Channel, subscribe: true },
  [PubSubOp.Unsubscribe]: { kind: Kind.Channel, subscribe: false },
  [PubSubOp.PSubscribe]: { kind: Kind.Pattern, subscribe: true },
  [PubSubOp.PUnsubscribe]: { kind: Kind.Pattern, subscribe: false },
  [PubSubOp.SSubscribe]: { kind: Kind.Shard, subscribe: true },
  [PubSubOp.SUnsubscribe]: { kind: Kind.Shard, subscribe: false },
};

/** The commands allowed in RESP2 subscribed mode besides the six (un)subscribes. */
const ALSO_ALLOWED = new Set(["ping", "quit", "reset"]);

/** A subscription the client holds: its name's bytes and the servers it is subscribed on. */
export interface Held {
  readonly name: Uint8Array;
  /** Less a server that refused it (Subscriptions.refused). */
  servers: number[];
  /** A shard channel on a client's subscriber connection: the SSUBSCRIBE that made it (as
   *  FanoutTarget.request), and the server it last went to (Subscriptions.sentTo), the one
   *  whose own `sunsubscribe` ends it. */
  request: Uint8Array | null;
  node: ServerRef | null;
}

/** What a (un)subscribe request changes. */
export interface SubscriptionChange {
  /** The client's reply: one confirmation per name (or one with a nil name when an
   *  unsubscribe-all finds nothing). */
  readonly reply: Uint8Array;
  /** Per server, the subscriptions to send up with the same command (each name gets one
   *  confirmation back). A subscribe's are the client's own entries (Subscriptions.refused). */
  readonly upstream: ReadonlyMap<number, Held[]>;
}

const latin1 = new TextDecoder("latin1");

export class Subscriptions {
  /** Its subscriptions go through the servers' shared connections (redis_shared_subscriptions):
   *  the pool's setting when it subscribed first, kept while it holds any (a reload may change
   *  the setting meanwhile). */
  shared = false;
  private readonly held: [Map<string, Held>, Map<string, Held>, Map<string, Held>] = [new Map(), new Map(), new Map()];

  /** Channels plus patterns (the count of (p)(un)subscribe confirmations). */
  get count(): number {
    return this.held[Kind.Channel].size + this.held[Kind.Pattern].size;
  }

  get shardCount(): number {
    return this.held[Kind.Shard].size;
  }

  /** In subscribed mode: any subscription at all. */
  get subscribed(): boolean {
    return this.count + this.shardCount > 0;
  }

  /** A reload renumbered the pool's servers (`moved`: a position's new one, -1 for a server
   *  that left): its subscriptions are on the same servers, now at their new positions. False
   *  when one is no longer where `pool` publishes its messages: a channel that routes to
   *  another server now (a server joined the ring, the hash changed), a pattern without a
   *  server in service now (one joined). */
  renumber(moved: (position: number) => number, pool: PoolView): boolean {
    // A cluster's positions are its slots, which a reload does not move; a pattern is on one node.
    const every = pool.cluster ? null : pool.everyServer();
    let kept = true;
    this.held.forEach((map, kind) => {
      for (const h of map.values()) {
        h.servers = h.servers.map(moved).filter((s) => s >= 0);
        if (kind !== Kind.Pattern) kept &&= h.servers.length === 1 && h.servers[0] === pool.route(h.name, 0, h.name.length);
        else if (every !== null) kept &&= every.every((s) => h.servers.includes(s));
      }
    });
    return kept;
  }

  /** Server `server` refused the subscribe that made `held` (an ACL without the channel, a busy
   *  script): it is not subscribed there, and once nowhere, not held at all, as redis does not
   *  count it. Nothing when the client has let go of it since. */
  refused(op: PubSubOp, held: Held, server: number): void {
    const map = this.held[KIND_OF[op]!.kind];
    const key = latin1.decode(held.name);
    if (map.get(key) !== held) return;
    held.servers = held.servers.filter((s) => s !== server);
    if (held.servers.length === 0) map.delete(key);
  }

  /**
   * Apply a (P|S)(UN)SUBSCRIBE with the names `names` (none: unsubscribe from all of its kind).
   * `route` gives a channel's server (a live one: the caller refuses a request with a channel
   * that has none before this); `everyServer`, the live servers a pattern goes to. `resp3`
   * writes the confirmations as push messages.
   */
  change(op: PubSubOp, names: readonly Uint8Array[], route: (name: Uint8Array) => number, everyServer: readonly number[], resp3: boolean): SubscriptionChange {
    const what = KIND_OF[op];
    if (what === undefined) throw new Error(`${op} is not a (un)subscribe`);
    const map = this.held[what.kind];
    const upstream = new Map<number, Held[]>();
    const up = (server: number, h: Held) => {
      const list = upstream.get(server);
      if (list === undefined) upstream.set(server, [h]);
      else list.push(h);
    };
    const w = new ByteWriter(64);
    const word = ascii(op);
    const counted = () => (what.kind === Kind.Shard ? this.shardCount : this.count);
    if (!what.subscribe && names.length === 0) {
      if (map.size === 0) confirmation(w, resp3, word, null, counted());
      for (const [key, h] of [...map]) {
        map.delete(key);
        for (const s of h.servers) up(s, h);
        confirmation(w, resp3, word, h.name, counted());
      }
      return { reply: w.take(), upstream };
    }
    for (const name of names) {
      const key = latin1.decode(name);
      const h = map.get(key);
      if (what.subscribe && h === undefined) {
        const made: Held = { name: name.slice(), servers: what.kind === Kind.Pattern ? [...everyServer] : [route(name)], request: null, node: null };
        map.set(key, made);
        for (const s of made.servers) up(s, made);
      } else if (!what.subscribe && h !== undefined) {
        map.delete(key);
        for (const s of h.servers) up(s, h);
      }
      confirmation(w, resp3, word, name, counted());
    }
    return { reply: w.take(), upstream };
  }

  /** The (un)subscribe `request` went to `server` (Planner.sentTo): an SSUBSCRIBE's shard
   *  channel, if that request still makes it, is held there. */
  sentTo(request: Uint8Array, server: ServerRef): void {
    const name = subscribedShard(request);
    if (name === null) return;
    const h = this.held[Kind.Shard].get(name);
    if (h !== undefined && h.request === request) h.node = server;
  }

  /** `server` ended the shard channel `name` on its own (Unasked.Ended): held there, it is not
   *  held any more. The confirmation redis would write, with the client's count; null when the
   *  client had let go of it already (its own SUNSUBSCRIBE crossed the server's), maybe to
   *  subscribe to it again on another server (the slot's new owner), which holds it now. */
  ended(name: Uint8Array, server: ServerRef, resp3: boolean): Uint8Array | null {
    const map = this.held[Kind.Shard];
    const key = latin1.decode(name);
    if (map.get(key)?.node !== server) return null;
    map.delete(key);
    const w = new ByteWriter(name.length + 32);
    confirmation(w, resp3, SUNSUBSCRIBE, name, this.shardCount);
    return w.take();
  }
}

const SUNSUBSCRIBE = ascii(PubSubOp.SUnsubscribe);
/** How a `sunsubscribe` confirmation starts (RESP2, RESP3), up to its name's length. */
const SUNSUBSCRIBE_HEADS = ["*", ">"].map((type) => ascii(`${type}3\r\n$12\r\nsunsubscribe\r\n$`));

/** The name of the `sunsubscribe` confirmation buf[start, end) (a whole reply the parser
 *  checked) as [start, end), or null for any other reply. */
function sunsubscribed(buf: Uint8Array, start: number, end: number): [number, number] | null {
  for (const head of SUNSUBSCRIBE_HEADS) {
    if (end - start <= head.length || !equalBytes(buf, start, start + head.length, head, 0, head.length)) continue;
    let p = start + head.length;
    let length = 0;
    while (buf[p] !== 13) length = length * 10 + buf[p++]! - 48;
    return [p + 2, p + 2 + length];
  }
  return null;
}

/** How writeSubscription writes an SSUBSCRIBE, up to its name's length. */
const SSUBSCRIBE_HEAD = ascii(`*2\r\n$${PubSubOp.SSubscribe.length}\r\n${PubSubOp.SSubscribe}\r\n$`);

/** The shard channel (as a held key) the one-name request (writeSubscription) subscribes to;
 *  null for another (un)subscribe. */
function subscribedShard(request: Uint8Array): string | null {
  const head = SSUBSCRIBE_HEAD;
  if (request.length <= head.length || !equalBytes(request, 0, head.length, head, 0, head.length)) return null;
  let p = head.length;
  while (request[p] !== 13) p++;
  return latin1.decode(request.subarray(p + 2, request.length - 2));
}

/** Sent after a SUNSUBSCRIBE on a cluster node's subscriber connection (FanoutTarget.after). */
export const SUBSCRIBER_PING = ascii("*1\r\n$4\r\nPING\r\n");
/** Its replies: subscribed (RESP2), and not subscribed or RESP3. */
const PONGS = [ascii("*2\r\n$4\r\npong\r\n$0\r\n\r\n"), ascii("+PONG\r\n")];

/** What the reply buf[start, end) on a client's subscriber connection is (Planner.unasked). A
 *  `sunsubscribe` the oldest request there did not ask for is the server's own: a one-name
 *  request (writeSubscription) and its confirmation have the same bytes from after the element
 *  count to the name's end, so a SUNSUBSCRIBE of that very name asked for it. When the node
 *  sent its own first, that took the request's place, and its reply (a MOVED) comes before the
 *  PING sent after the request: dropped. */
export function unasked(buf: Uint8Array, start: number, end: number, head: Outbound | null): Unasked {
  if (messageHead(buf, start, end) >= 0) return Unasked.Message;
  const name = sunsubscribed(buf, start, end);
  if (name !== null) {
    const request = head?.keyBuf ?? null;
    if (request === null) return Unasked.Ended;
    const length = head!.keyEnd - head!.keyStart - 2;
    const asked = name[1] - start === length && equalBytes(buf, start + 2, start + 2 + length, request, head!.keyStart + 2, head!.keyEnd);
    return asked ? Unasked.Reply : Unasked.Ended;
  }
  if (head !== null && head.keyBuf === SUBSCRIBER_PING) {
    return PONGS.some((pong) => equalBytes(buf, start, end, pong, 0, pong.length)) ? Unasked.Reply : Unasked.Dropped;
  }
  return Unasked.Reply;
}

/** The shard channel an unasked `sunsubscribe` (Unasked.Ended) names, a view of buf. */
export function endedChannel(buf: Uint8Array, start: number, end: number): Uint8Array {
  const [from, to] = sunsubscribed(buf, start, end)!;
  return buf.subarray(from, to);
}

/** `*3 <word> <name or nil> :<count>` (RESP3: `>3`). */
function confirmation(w: ByteWriter, resp3: boolean, word: Uint8Array, name: Uint8Array | null, count: number): void {
  w.text(resp3 ? ">3\r\n$" : "*3\r\n$");
  w.int(word.length);
  w.crlf();
  w.bytes(word);
  w.crlf();
  if (name === null) {
    w.text("$-1\r\n");
  } else {
    w.byte(36);
    w.int(name.length);
    w.crlf();
    w.bytes(name);
    w.crlf();
  }
  w.byte(58);
  w.int(count);
  w.crlf();
}

/** May a RESP2 client in subscribed mode run the command named `name` (lowercase)? */
export function allowedWhileSubscribed(name: string, op: PubSubOp | null): boolean {
  return (op !== null && KIND_OF[op] !== undefined) || ALSO_ALLOWED.has(name);
}

/** Redis's reply to a command a RESP2 client in subscribed mode may not run. */
export function notAllowedWhileSubscribed(name: string): Uint8Array {
  return ascii(`-ERR Can't execute '${name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n`);
}

/** PING in RESP2 subscribed mode: `*2 pong <message or "">`. */
export function subscribedPong(message: Uint8Array | null, w: ByteWriter): void {
  w.text("*2\r\n$4\r\npong\r\n$");
  w.int(message === null ? 0 : message.length);
  w.crlf();
  if (message !== null) w.bytes(message);
  w.crlf();
}

/** Per subscription kind: the word its messages start with, how many elements they have (a
 *  pattern's also name the channel), and the command that ends one. */
const KINDS: Record<Kind, { readonly message: string; readonly elements: number; readonly unsubscribe: PubSubOp }> = {
  [Kind.Channel]: { message: "message", elements: 3, unsubscribe: PubSubOp.Unsubscribe },
  [Kind.Pattern]: { message: "pmessage", elements: 4, unsubscribe: PubSubOp.PUnsubscribe },
  [Kind.Shard]: { message: "smessage", elements: 3, unsubscribe: PubSubOp.SUnsubscribe },
};

/** How a pushed message starts (RESP2 arrays, or RESP3 pushes on a RESP3 client's
 *  connections), and where its topic starts in it: at the word. */
const MESSAGE_HEADS: { readonly head: Uint8Array; readonly wordAt: number }[] = Object.values(KINDS).flatMap(({ message: word, elements }) =>
  ["*", ">"].map((type) => {
    const head = ascii(`${type}${elements}\r\n$${word.length}\r\n${word}\r\n`);
    return { head, wordAt: head.length - word.length - 2 };
  }),
);

/** The head of the message at buf[start, end) (from a subscriber connection), or -1 for the
 *  confirmation of a request. */
function messageHead(buf: Uint8Array, start: number, end: number): number {
  for (let h = 0; h < MESSAGE_HEADS.length; h++) {
    const head = MESSAGE_HEADS[h]!.head;
    if (end - start <= head.length) continue;
    let i = 0;
    while (i < head.length && buf[start + i] === head[i]) i++;
    if (i === head.length) return h;
  }
  return -1;
}

/** A message's topic (Planner.pushTopic): its word and the channel, pattern or shard channel it
 *  names, `<word>\r\n$<length>\r\n<name>`; null for a confirmation. The message is a whole
 *  reply the parser checked. */
export function pushTopic(buf: Uint8Array, start: number, end: number): Uint8Array | null {
  const h = messageHead(buf, start, end);
  if (h < 0) return null;
  const { head, wordAt } = MESSAGE_HEADS[h]!;
  let p = start + head.length + 1; // past "$"
  let length = 0;
  while (buf[p] !== 13) length = length * 10 + buf[p++]! - 48;
  return buf.subarray(start + wordAt, p + 2 + length);
}

/** A one-name (P|S)(UN)SUBSCRIBE, answered by one confirmation, written to w. */
export function writeSubscription(w: ByteWriter, op: PubSubOp, name: Uint8Array): void {
  w.text("*2\r\n$");
  w.int(op.length);
  w.crlf();
  w.text(op);
  w.crlf();
  w.byte(36);
  w.int(name.length);
  w.crlf();
  w.bytes(name);
  w.crlf();
}

/** What a (P|S)(UN)SUBSCRIBE of `name` through a shared connection joins or leaves
 *  (FanoutTarget.topic): the topic of its messages, as pushTopic gives it,
 *  `<word>\r\n$<length>\r\n<name>`, and the request that ends it. */
export function sharedTopic(op: PubSubOp, name: Uint8Array): SharedTopic {
  const what = KIND_OF[op]!;
  const kind = KINDS[what.kind];
  const w = new ByteWriter(name.length + 24);
  w.text(kind.message);
  w.text("\r\n$");
  w.int(name.length);
  w.crlf();
  w.bytes(name);
  const bytes = w.take();
  writeSubscription(w, kind.unsubscribe, name);
  return { bytes, subscribe: what.subscribe, leave: w.take() };
}
