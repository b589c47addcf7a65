// The one interface every wire protocol implements (twemproxy's proto/ split): the core
// (src/core) moves bytes and messages and never looks inside them; a Codec parses requests
// and responses in place, says how each request is routed, builds split fragments and merges
// their replies. Parsers are pure functions of bytes: no sockets, no allocation per message
// beyond the reused Req/Rsp scratch objects.

import type { PoolConfig } from "../conf/types.ts";
import type { ByteWriter } from "../lib/bytes.ts";

/** parseRequest / parseResponse: the message is incomplete; retry when more bytes arrive
 *  (`need` says how many bytes from the message start are needed at least). */
export const NEED_MORE = -1;
/** The stream cannot be trusted any more (broken framing): reply `error` and close. */
export const FATAL = -2;

/** Return NEED_MORE for a message that started at `pos` and needs bytes up to `upTo`. */
export function needMore(m: Req | Rsp, pos: number, upTo: number): number {
  m.need = upTo - pos;
  return NEED_MORE;
}

/** Return FATAL with the reason. */
export function fatal(m: Req | Rsp, error: string): number {
  m.error = error;
  return FATAL;
}

/** How the core dispatches a request. One value per command in each protocol's command table. */
export const Route = {
  /** Forward the original bytes to the server of key 0 (single-key commands, and multi-key
   *  commands that twemproxy sends to the first key's server). */
  Key: 0,
  /** Split by server; the reply is the values in key order (redis MGET, memcached get/gets/gat/gats). */
  Get: 1,
  /** Split by server; the reply sums the integer replies (DEL, UNLINK, TOUCH, EXISTS). */
  Sum: 2,
  /** Split key/value pairs by server; the reply is +OK (MSET). */
  Set: 3,
  /** No key: forward to any live server (memcached `version`). */
  Any: 4,
  /** Answered by the proxy: Codec.local decides the reply (PING, QUIT, AUTH, the redis
   *  handshake commands, memcached verbosity). */
  Local: 5,
  /** Sent whole to every live server (over the client's connection group); the replies are
   *  merged (Codec.merge; redis INFO). Its Split's "keys" are the request's arguments after the
   *  command name, in no fragment (-1). */
  All: 6,
} as const;
export type Route = (typeof Route)[keyof typeof Route];

export interface CommandSpec {
  /** Lowercase command name. */
  readonly name: string;
  readonly route: Route;
  /** Retrievals of one non-zero kind may share a command line upstream (memcached joined
   *  lines, proto/memcache/upstream.ts). */
  readonly join?: number;
  /** The command changes nothing on the server, so a replica may answer it (redis read_from). */
  readonly readOnly?: boolean;
  /** Carried out by Codec.planner (beyond one server); a pool that asks no planner refuses it. */
  readonly planned?: boolean;
  /** The command may change data on its server (redis: WAIT waits for the servers a client
   *  sent such commands to). */
  readonly writes?: boolean;
}

function grow(a: Int32Array<ArrayBuffer>, n: number): Int32Array<ArrayBuffer> {
  if (n < a.length) return a;
  const b = new Int32Array(Math.max(n + 1, a.length * 2));
  b.set(a);
  return b;
}

/** Scratch result of parseRequest, reused for every request of a connection. All offsets are
 *  absolute positions in the buffer that was parsed. */
export class Req {
  /** The whole request is buf[start, end). */
  start = 0;
  end = 0;
  command: CommandSpec | null = null;
  /** Arguments: redis: every bulk string, the command name is arg 0. memcached: every token of
   *  the command line, the command name is arg 0; a storage command's data block is `data`. */
  nargs = 0;
  argStart = new Int32Array(16);
  argEnd = new Int32Array(16);
  /** Keys, as indexes into the arguments. */
  nkeys = 0;
  keyArg = new Int32Array(16);
  /** memcached storage commands: the data block, without its trailing CRLF. */
  dataStart = 0;
  dataEnd = 0;
  /** memcached: the request carried `noreply` (its Upstream forwards it without, and the core
   *  drops the reply, so the server's reply stream stays in step). */
  noreply = false;
  /** redis: an inline command (a text line, not a RESP array); its arguments may have been
   *  unescaped in place, so it goes upstream as Codec.buildForward writes it. */
  inline = false;
  /** With NEED_MORE: bytes from `start` needed before the parse can progress. */
  need = 0;
  /** With NEED_MORE, non-zero when the request is parsed but for the rest of its last data
   *  block (command, keys and error are final; no key is in that block): the bytes from `start`
   *  to that block's end. `need` is then the whole request, the block's terminator
   *  (Codec.dataEnd) included, so the core may forward it as its bytes arrive. */
  stream = 0;
  /** A well-framed request the proxy rejects: the full reply line without CRLF, in the
   *  protocol's own form ("-ERR unknown command 'x'", "CLIENT_ERROR bad data chunk", "ERROR").
   *  With FATAL: the reply line sent before the connection is closed. */
  error: string | null = null;

  reset(start: number): void {
    this.start = start;
    this.end = start;
    this.command = null;
    this.nargs = 0;
    this.nkeys = 0;
    this.noreply = false;
    this.inline = false;
    this.need = 0;
    this.stream = 0;
    this.error = null;
  }

  pushArg(start: number, end: number): void {
    if (this.nargs >= this.argStart.length) {
      this.argStart = grow(this.argStart, this.nargs);
      this.argEnd = grow(this.argEnd, this.nargs);
    }
    this.argStart[this.nargs] = start;
    this.argEnd[this.nargs++] = end;
  }

  pushKey(arg: number): void {
    if (this.nkeys >= this.keyArg.length) this.keyArg = grow(this.keyArg, this.nkeys);
    this.keyArg[this.nkeys++] = arg;
  }

  keyStart(i: number): number {
    return this.argStart[this.keyArg[i]!]!;
  }

  keyEnd(i: number): number {
    return this.argEnd[this.keyArg[i]!]!;
  }
}

const NO_BYTES = new Uint8Array(0);

/** Scratch result of parseResponse. */
export class Rsp {
  start = 0;
  end = 0;
  need = 0;
  /** The reply is an error reply (redis `-...`, memcached ERROR / CLIENT_ERROR / SERVER_ERROR). */
  isError = false;
  /** The reply says the server is failing (redis -OOM, -BUSY, -LOADING): counts toward ejection. */
  failure = false;
  /** The reply says the server is a replica refusing writes (redis -READONLY): a master that a
   *  failover demoted. */
  demoted = false;
  /** With FATAL: what was wrong with the server's bytes (for the log). */
  error: string | null = null;
  /** With NEED_MORE: the first `opaque` bytes from `start` are final whatever follows (complete
   *  values, then the data of a block whose length is known but whose bytes have not all
   *  arrived), so a large reply can be passed on before it is complete; 0 when there are none.
   *  The rest of the reply is then parsed from where they end with `resume = next`. */
  opaque = 0;
  next = 0;
  /** Input, kept by reset(): 0 to parse a reply from its start, or an earlier `next`. */
  resume = 0;
  /** Input, kept by reset(): the next request on the connection joined this one's command line
   *  (memcached joined lines, set by Upstream.parseReply), so the reply ends before the
   *  terminator, which belongs to the last request of the line, or before the first item that
   *  is not for the next of its keys with a hit (keys are answered in order). Its keys are keyBuf[keys[3i], keys[3i + 1]) for each i with
   *  keys[3i + 2] === keyGroup (Split.keys), or, with keys null, keyBuf[keyStart, keyEnd),
   *  separated by spaces. */
  joined = false;
  keyBuf: Uint8Array = NO_BYTES;
  keys: Int32Array | null = null;
  keyGroup = 0;
  keyStart = 0;
  keyEnd = 0;
  /** Parse state of a joined reply: the index of the first key not yet matched by an item, or,
   *  with keys null, its offset from keyStart (kept when parsing resumes after a part passed on,
   *  Rsp.resume). */
  keyCursor = 0;
  /** A joined reply that ended before its terminator (which its client still needs). */
  open = false;
  /** With isError: where the error line starts (what the rest of a joined line gets). */
  errorStart = 0;

  reset(start: number): void {
    this.start = start;
    this.end = start;
    this.need = 0;
    this.isError = false;
    this.failure = false;
    this.demoted = false;
    this.error = null;
    this.opaque = 0;
    this.next = 0;
    if (this.resume === 0) this.keyCursor = 0;
    this.open = false;
    this.errorStart = start;
  }
}

/** What the core hands to Codec.merge once every fragment of a split request has replied.
 *  Offsets are absolute positions in the buffers named (read buffers are never reused, see
 *  core/reader.ts), so nothing is copied or sliced to describe a split. */
export interface Split {
  readonly route: Route;
  /** The buffer the request was parsed from. */
  readonly bytes: Uint8Array;
  readonly nkeys: number;
  /** Key i is bytes[keys[3i], keys[3i + 1]) and went in fragment keys[3i + 2]. */
  readonly keys: Int32Array;
  readonly nfrags: number;
  /** Fragment f's complete reply is fragBuf[f][fragPos[2f], fragPos[2f + 1]). None is a
   *  proxy-made error (the core answers the whole request with that error itself). */
  readonly fragBuf: Uint8Array[];
  readonly fragPos: Int32Array;
}

/** Per-client protocol state (redis: authenticated or not, the protocol version, the client
 *  name, CLIENT REPLY), made, read and changed only by its codec: the core stores one per client
 *  and hands it back, never looking inside. */
export type Session = object;

/** A reply the proxy makes itself (Codec.local, Codec.admit). Codecs keep their constant ones
 *  as constants, so deciding one allocates nothing. */
export interface LocalReply {
  /** The reply bytes; null for none (QUIT, a noreply request). */
  readonly reply: Uint8Array | null;
  /** Close the client once this reply (and every one before it) is written. */
  readonly close: boolean;
}

/** What every new server connection of a connection group sends before any client request
 *  (redis AUTH and SELECT; later HELLO 3, a cluster READONLY), and how many replies that gets:
 *  the core swallows them without looking at them (an error reply is logged). */
export interface Preamble {
  readonly bytes: Uint8Array;
  readonly replies: number;
}

/** A request on its way upstream, as its server connection's Upstream sees it (core/msg.ts Msg
 *  implements it). The Upstream fills `bytes` and `joined` when it writes the request, and may
 *  record the request's keys for dividing a shared reply (Rsp.joined). */
export interface Outbound {
  /** Bytes the request added to the connection's output (the server's queue stats). */
  bytes: number;
  /** Went upstream as part of the request written before it on the connection (memcached
   *  joined lines): a reply that is an error answers it too. */
  joined: boolean;
  /** The request after it on the same connection. */
  readonly snext: Outbound | null;
  /** Its keys, for the reply parser when a later request joined its line: keyBuf[keys[3i],
   *  keys[3i + 1]) for each i with keys[3i + 2] === keyGroup (a fragment: Split.keys), or, with
   *  keys null, keyBuf[keyStart, keyEnd) separated by spaces (an unsplit request). On a
   *  client's subscriber connection: the request itself, keyBuf[keyStart, keyEnd)
   *  (FanoutTarget.request). */
  keyBuf: Uint8Array | null;
  keys: Int32Array | null;
  keyGroup: number;
  keyStart: number;
  keyEnd: number;
  /** How many values its reply has (a redis MGET fragment: its keys), by which the reply
   *  parser divides the reply of a command that fragments after it joined. */
  values: number;
}

/** What a reload leaves of a client's state (Codec.reconfigure). */
export const Reconfigured = {
  /** Everything follows. */
  Kept: 0,
  /** Its transaction's keys are no longer all on the server it is pinned to: the pinned
   *  connection closes (the transaction is lost, Planner.pinLost). */
  PinMoved: 1,
  /** A subscription's messages are published where it is not subscribed now: the client is
   *  disconnected, to subscribe again. */
  Stranded: 2,
} as const;
export type Reconfigured = (typeof Reconfigured)[keyof typeof Reconfigured];

/** Where an Upstream writes: a server connection's output. */
export interface UpstreamSink {
  /** Coalesced output, written once per loop turn; an Upstream may append to it. */
  readonly out: ByteWriter;
  /** Append buf[start, end) unchanged (a large payload is written through, never copied). */
  send(buf: Uint8Array, start: number, end: number): void;
}

/** How requests are written onto one server connection and how its replies are read: one per
 *  server connection (Codec.upstream), so a protocol may keep per-connection state (memcached
 *  joins consecutive retrievals onto one command line). */
export interface Upstream {
  /** Write the whole request for msg (setting msg.bytes and msg.joined). */
  forward(buf: Uint8Array, req: Req, msg: Outbound, sink: UpstreamSink): void;
  /** Write fragment `group` of a split request, the keys order[from, from + n) (indexes into
   *  req's key list, ascending), for msg (setting msg.bytes and msg.joined). */
  fragment(req: Req, split: Split, group: number, order: Int32Array, from: number, n: number, msg: Outbound, sink: UpstreamSink): void;
  /** The socket took everything written so far: nothing may be added to it any more. */
  sent(): void;
  /** Parse the reply at buf[pos, end) (Codec.parseResponse) to `head`, the oldest request
   *  waiting on the connection (null: a preamble reply). */
  parseReply(buf: Uint8Array, pos: number, end: number, rsp: Rsp, head: Outbound | null): number;
  /** The command msg went up in (with requests joined to it) got an error: write msg alone
   *  again (msg.joined false, msg.bytes set), so that each of them gets its own reply; false
   *  when the protocol does not (the error then answers them all). */
  resend(msg: Outbound, sink: UpstreamSink): boolean;
}

export interface Codec<S extends Session = Session> {
  readonly name: "redis" | "memcache";

  /** Parse one request at buf[pos, end). Returns the position after it (req filled; if
   *  req.error is set the core replies with it and keeps the connection), NEED_MORE or FATAL. */
  parseRequest(buf: Uint8Array, pos: number, end: number, req: Req): number;

  /** Parse one complete reply at buf[pos, end). Returns the position after it, NEED_MORE or FATAL. */
  parseResponse(buf: Uint8Array, pos: number, end: number, rsp: Rsp): number;

  /** The writer of a new server connection of a pool. */
  upstream(pool: PoolConfig): Upstream;

  /** The client's reply to a split request whose fragments all replied, in the client's
   *  protocol (its session): appended to `out` (null returned), or, when it is a reply of its
   *  own (a fragment's error, a constant), returned with `out` left as it was. */
  merge(split: Split, out: ByteWriter, session: S): Uint8Array | null;

  /** A proxy-made error reply: redis "-ERR <reason>\r\n", memcached "SERVER_ERROR <reason>\r\n". */
  errorReply(reason: string): Uint8Array;

  /** A reply line the parser gave as text (Req.error), framed as the protocol frames a line. */
  replyLine(line: string): Uint8Array;

  /** What a reply that ended before its terminator (Rsp.open) lacks; null when no reply does. */
  readonly openEnd: Uint8Array | null;

  /** May a request that is parsed but for the rest of its last data block (Req.stream) go to
   *  its server as its bytes arrive? Only when nothing about it depends on that block or on a
   *  plan (redis: not inline, no multi-key role, the client neither subscribed nor in a
   *  transaction). */
  streams(req: Req, session: S): boolean;

  /** What ends a streamed request's data block, and the reply line (Req.error style) of a
   *  client that sends something else there before it is closed. */
  readonly dataEnd: { readonly bytes: Uint8Array; readonly error: string };

  /** The state of a new client of a pool. */
  newSession(pool: PoolConfig): S;

  /** The pool's config changed (hot reload): what a connected client's session keeps. `moved`
   *  gives a server position of the old config in the new one (-1: the server left the pool; a
   *  redis_cluster pool's slots stay); `view` is the pool as it runs now. Returns what the
   *  core does about state that cannot follow. */
  reconfigure(session: S, pool: PoolConfig, moved: (position: number) => number, view: PoolView): Reconfigured;

  /** Called once for each request as it is dispatched, before admit: true when no reply may
   *  reach the client (redis CLIENT REPLY OFF, or SKIP for the request after it). A local reply
   *  decides for itself (redis answers CLIENT REPLY ON even so). */
  silent(session: S): boolean;

  /** Checked before every well-formed request is routed: null to let it through, else the
   *  reply it gets instead (redis: NOAUTH before AUTH). */
  admit(req: Req, session: S): LocalReply | null;

  /** The reply to a request routed Route.Local, decided from the request and the session,
   *  which it may change (AUTH). `ownConnection`: a server connection of the client's own
   *  carries its requests now (core/dedicated.ts OwnConns.carrying: lent for a blocking
   *  request still waiting, or held by its transaction), in the connection group it was lent
   *  in (redis: HELLO may not change the client's protocol meanwhile). */
  local(buf: Uint8Array, req: Req, session: S, pool: PoolConfig, ownConnection: boolean): LocalReply;

  /** The connection group a client's requests go to (redis: 0 for RESP2, 1 for RESP3 clients,
   *  on connections opened with HELLO 3). Read again after every local reply. */
  group(session: S): number;

  /** What a new server connection of `group` sends first; null when nothing. */
  preamble(pool: PoolConfig, group: number): Preamble | null;

  /** Requests beyond one key (issue 17); null: the protocol has none. */
  readonly planner: Planner<S> | null;
}

// ---- requests beyond one key (issue 17): the codec plans, the core carries the plan out ----

/** The pool as a plan sees it: its servers by position. A redis_cluster pool's positions are
 *  its 16384 slots; a master is at the lowest slot it serves (everyServer). */
export interface PoolView {
  readonly cfg: PoolConfig;
  /** How many positions there are (the config's servers; a cluster's slots). */
  readonly positions: number;
  /** The position of buf[start, end) as a key (-1: none). */
  route(buf: Uint8Array, start: number, end: number): number;
  /** Whether position `index` is served by a server in service. */
  live(index: number): boolean;
  /** The position of every server in service, once each, in order. */
  everyServer(): number[];
  /** A redis_cluster pool: a request's (or a transaction's) keys must share a slot, and every
   *  node hears every PUBLISH (a pattern needs one node). */
  readonly cluster: boolean;
  /** Clients of the pool in subscribed mode now (counted when asked). */
  subscribers(): number;
}

/** Which connection of a server a fan-out request goes on. */
export const Via = {
  /** The pool's shared connections (the client's connection group). */
  Shared: 0,
  /** The client's own connection to that server for its subscriptions (made on first use);
   *  the server may send messages on it unasked (Planner.unasked). */
  Subscriber: 1,
  /** The server's subscription connection shared by the clients of the client's connection
   *  group (redis_shared_subscriptions, core/hub.ts); the target's `topic` says which of the
   *  server's messages the client joins or leaves. A subscribe always goes up (its reply
   *  comes once the server has it); an unsubscribe goes wherever the client holds the topic
   *  (`server` aside), and up only where it was the topic's last client: elsewhere it sends
   *  nothing and has no reply among the fan-out's. */
  Hub: 2,
} as const;
export type Via = (typeof Via)[keyof typeof Via];

/** One request of a fan-out: to `server`, on `via`, as `write` writes it (one reply each). */
export interface FanoutTarget {
  readonly server: number;
  readonly via: Via;
  write(w: ByteWriter): void;
  /** Via.Hub: what the client joins or leaves. */
  readonly topic?: SharedTopic;
  /** Via.Subscriber: the bytes `write` writes, kept with the request on the connection: the
   *  server may send unasked what looks like a reply (Planner.unasked), and a redis_cluster
   *  node's MOVED sends them to the new owner. */
  readonly request?: Uint8Array;
  /** Via.Subscriber: sent after the request as a message of its own, its reply dropped: what
   *  the server sends between the two that is neither a message nor the request's reply is
   *  stale (Unasked.Dropped). */
  readonly after?: Uint8Array;
}

/** A server of the pool as the core knows it: the protocol only compares it with another. */
export type ServerRef = object;

/** What a reply on a client's subscriber connection is (Planner.unasked). */
export const Unasked = {
  /** The reply to the oldest request on the connection. */
  Reply: 0,
  /** A message the server pushed: the client gets it after the replies already due to it. */
  Message: 1,
  /** The server ended one of the client's subscriptions on its own (Planner.ended). */
  Ended: 2,
  /** The server's late answer to a request that has had its reply: dropped. */
  Dropped: 3,
} as const;
export type Unasked = (typeof Unasked)[keyof typeof Unasked];

/** A subscription through a server's shared connection (Via.Hub). */
export interface SharedTopic {
  /** The topic of the messages it brings, as Planner.pushTopic gives it. */
  readonly bytes: Uint8Array;
  /** The client joins it (else leaves it, wherever it holds it). */
  readonly subscribe: boolean;
  /** The request that unsubscribes it alone (sent when its last client goes away). */
  readonly leave: Uint8Array;
}

export const PlanKind = {
  /** The reply is `reply`. */
  Local: 1,
  /** The request as it is to server `server` on the shared connections. */
  Server: 2,
  /** The request as it is to every live server (Route.All's fan-out); the client's reply is
   *  merge(the replies, in server order): a server that failed has an empty reply, and the
   *  request fails only when every server did. */
  All: 6,
  /** One request per target; the client's reply is merge(their replies, in target order)
   *  (appended to `out`, null returned, or a reply of its own). A proxy-made error of any
   *  target is the reply instead. */
  Fanout: 3,
  /** On the client's connection pinned to `server` (lent to it on first use): `before` first
   *  (its `silent` replies dropped), then the request, or, with `reply` set, that is its
   *  reply; `release`: the pin ends (the connection is given back once it has answered). A
   *  blocking request there may wait `waitMs` beyond the pool's timeout. In a redis_cluster
   *  pool, an EXEC sent after its MULTI and queued commands (`before`) goes again whole where a
   *  node redirects it, unless `watched` (its transaction watches keys, which cannot follow):
   *  then Planner.watchRedirected says its reply, as for the requests before it on the
   *  pinned connection. */
  Pinned: 4,
  /** On a connection lent to the client at `server` while the request waits; it may wait
   *  `waitMs` beyond the pool's timeout (Infinity: no limit). */
  Blocking: 5,
  /** Redis WAIT: once every earlier request of the client is answered, on a connection lent to
   *  the client at each server it sent writes to since its last WAIT (CommandSpec.writes):
   *  `probe` (its reply dropped: it makes the connection's own writes the server's latest),
   *  then `request`; with no such server, `request` alone at every server in service. The reply
   *  is merge(their replies); it may wait `waitMs` beyond the pool's timeout. */
  Wait: 7,
  /** The client lets go of its own connections (redis RESET ends its subscriptions and its
   *  transaction): none carries its requests any more, each closes once it has answered what
   *  it carries; then the request is routed as usual. */
  Release: 8,
} as const;
export type PlanKind = (typeof PlanKind)[keyof typeof PlanKind];

export type Plan =
  | { readonly kind: typeof PlanKind.Local; readonly reply: Uint8Array }
  | { readonly kind: typeof PlanKind.Server; readonly server: number }
  | {
      readonly kind: typeof PlanKind.All;
      /** Also to the replicas reads go to (read_from), each in service. */
      readonly replicas: boolean;
      merge(replies: Pick<Split, "nfrags" | "fragBuf" | "fragPos">, out: ByteWriter): Uint8Array | null;
    }
  | {
      readonly kind: typeof PlanKind.Fanout;
      readonly targets: readonly FanoutTarget[];
      merge(replies: Pick<Split, "nfrags" | "fragBuf" | "fragPos">, out: ByteWriter): Uint8Array | null;
    }
  | {
      readonly kind: typeof PlanKind.Pinned;
      readonly server: number;
      readonly before: Uint8Array | null;
      readonly silent: number;
      readonly reply: Uint8Array | null;
      readonly release: boolean;
      readonly waitMs: number;
      readonly watched: boolean;
    }
  | { readonly kind: typeof PlanKind.Blocking; readonly server: number; readonly waitMs: number }
  | {
      readonly kind: typeof PlanKind.Wait;
      readonly request: Uint8Array;
      readonly probe: Uint8Array;
      readonly waitMs: number;
      merge(replies: Pick<Split, "nfrags" | "fragBuf" | "fragPos">, out: ByteWriter): Uint8Array | null;
    }
  | { readonly kind: typeof PlanKind.Release };

/** A protocol's requests beyond one key: subscriptions, transactions, blocking and whole-pool
 *  commands (redis: proto/redis/plan.ts). */
export interface Planner<S extends Session = Session> {
  /** The plan for a request (parsed, Req.error set or not); null: the usual routing. */
  plan(buf: Uint8Array, req: Req, session: S, pool: PoolView): Plan | null;
  /** On a client's subscriber connection: what buf[start, end) is, `head` being the oldest
   *  request waiting there (its bytes in keyBuf[keyStart, keyEnd): FanoutTarget.request or
   *  .after), null when none does. */
  unasked(buf: Uint8Array, start: number, end: number, head: Outbound | null): Unasked;
  /** The session's (un)subscribe `request` (FanoutTarget.request) went on its subscriber
   *  connection to `server` (sent, or sent again after a MOVED): where what it subscribes is held. */
  sentTo(session: S, request: Uint8Array, server: ServerRef): void;
  /** Server `server` ended, on its own, the subscription buf[start, end) names (Unasked.Ended):
   *  the session no longer holds it if it holds it there. What its client is told, or null when
   *  it had let go of it (and may hold it again elsewhere: a late message from an old owner). */
  ended(buf: Uint8Array, start: number, end: number, session: S, server: ServerRef): Uint8Array | null;
  /** On a shared subscription connection (Via.Hub): the topic of the message the server pushed
   *  at buf[start, end), the bytes a FanoutTarget's topic has for the clients it goes to; null
   *  for the reply to a request. */
  pushTopic(buf: Uint8Array, start: number, end: number): Uint8Array | null;
  /** The connection the session's transaction is pinned to closed. */
  pinLost(session: S): void;
  /** Bytes of the session's requests held until later (a transaction's commands before they go
   *  up): they cannot leave before the client sends more, so the buffer budget counts them as
   *  an incomplete request's. */
  held(session: S): number;
  /** A redis_cluster node redirected a request buf[start, end) (as it was sent) of a
   *  transaction of the session that watches keys: the watches cannot follow, the transaction
   *  fails at EXEC; `current`: it is the transaction the session is in now (a later one may
   *  have started since, which the redirection must not fail). The reply the request gets, or
   *  null when it is sent again to the node named. */
  watchRedirected(buf: Uint8Array, start: number, end: number, session: S, current: boolean): Uint8Array | null;
  /** The position of the keys of a planned request buf[start, end) as `pool` routes now (a
   *  blocking request waits on it: another one once a reload moved its keys); -1 when it has
   *  none, -2 when they are on several servers. */
  keysPosition(buf: Uint8Array, start: number, end: number, pool: PoolView): number;
  /** Whether the session is in subscribed mode. */
  subscribed(session: S): boolean;
}
