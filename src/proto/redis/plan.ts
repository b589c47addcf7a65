// How a redis request is carried out when its key alone does not say (issue 17): the decision,
// per request and client, between the core's usual routing, a local reply, a request sent to
// several servers with its replies merged (whole-pool commands, SCAN, subscriptions), a
// request on the client's pinned transaction connection, and a blocking request on a
// connection of its own. Pure: the pool is seen through PoolView, the client through its
// MultiKeyState; the core carries the plan out.

import type { PoolConfig } from "../../conf/types.ts";
import { ascii, ByteWriter } from "../../lib/bytes.ts";
import { PlanKind, Req, Route, Via, type FanoutTarget, type Plan, type PoolView } from "../codec.ts";
import { BAD_TIMEOUT, blockingTimeout, FOREVER, NO_BLOCK, pushStreamKeys } from "./blocking.ts";
import { HELLO, PING, PoolMerge, PUBSUB_MERGE, PubSubOp, QUIT, RESET, TxOp, type BlockingTimeout, type CommandRole, type SupportedCommand } from "./commands.ts";
import { firstError, isError, mergePool, type ServerReplies } from "./pool-merge.ts";
import { errorReply, OK } from "./replies.ts";
import { parseRequest } from "./request.ts";
import { buildScan, decodeCursor, scanTarget, writeScanEnd, writeScanReply } from "./scan.ts";
import { allowedWhileSubscribed, type Held, notAllowedWhileSubscribed, Subscriptions, SUBSCRIBER_PING, sharedTopic, subscribedPong, writeSubscription } from "./subscriptions.ts";
import { CLUSTER_CROSSSLOT, CROSS_SERVER, CROSSSLOT, KEYLESS, Transaction, TxDo, watchFailed } from "./transaction.ts";

/** A client's state beyond its keys (in its session, made when it first needs one: most
 *  clients never do, and per-client memory counts with 10,000s of clients). */
export class MultiKeyState {
  readonly subscriptions = new Subscriptions();
  readonly transaction: Transaction;

  /** `crossSlot`: the pool's refusal of keys on several servers (a cluster's: of several slots);
   *  `cluster`: a redis_cluster pool's (its transactions go up at EXEC, transaction.ts). */
  constructor(
    readonly crossSlot: Uint8Array,
    cluster = false,
  ) {
    this.transaction = new Transaction(crossSlot, cluster);
  }

  /** In subscribed mode or in a transaction: every request is planned. */
  get busy(): boolean {
    return this.transaction.active || this.subscriptions.subscribed;
  }
}

const local = (reply: Uint8Array): Plan => ({ kind: PlanKind.Local, reply });
const line = (text: string): Uint8Array => ascii(`${text}\r\n`);

const latin1 = new TextDecoder("latin1");

/** Argument 1, lowercase (PUBSUB's and SCRIPT's subcommand). */
function subcommand(buf: Uint8Array, req: Req): string {
  return latin1.decode(buf.subarray(req.argStart[1]!, req.argEnd[1]!)).toLowerCase();
}

const NO_SERVER = line("-ERR Connection refused");
const INVALID_CURSOR = line("-ERR invalid cursor");
const SUBSCRIBERS_FULL = (max: number) => line(`-ERR max number of subscribers reached for this pool (redis_max_subscribers: ${max})`);
const NOT_IN_TRANSACTION = (name: string) => line(`-ERR '${name}' is not allowed in a transaction through the proxy`);
const RELEASE: Plan = { kind: PlanKind.Release };
/** A subcommand without a row: its name (at most 32 bytes of it) and those served. */
const SUBCOMMAND_REFUSED = (name: string, buf: Uint8Array, req: Req, served: ReadonlyMap<string, PoolMerge>) =>
  errorReply(`'${name} ${subcommand(buf, req).slice(0, 32)}' is not served through the proxy (served: ${[...served.keys()].map((s) => `${name} ${s}`).join(", ")})`);
const HELLO_2_SUBSCRIBED = line("-ERR 'hello 2' is not served through the proxy while subscribed in RESP3 (unsubscribe first)");
const DISABLED: Record<string, (name: string) => Uint8Array> = {
  redis_allow_keys: (name) => line(`-ERR '${name}' is refused by this pool: it blocks every server while it runs (enable with redis_allow_keys: true)`),
  redis_allow_flush: (name) => line(`-ERR '${name}' is refused by this pool: it empties every server (enable with redis_allow_flush: true)`),
};

/** The server all of req's keys route to, KEYLESS (none) or CROSS_SERVER. */
export function keysServer(buf: Uint8Array, req: Req, pool: PoolView): number {
  if (req.nkeys === 0) return KEYLESS;
  const first = pool.route(buf, req.keyStart(0), req.keyEnd(0));
  for (let i = 1; i < req.nkeys; i++) if (pool.route(buf, req.keyStart(i), req.keyEnd(i)) !== first) return CROSS_SERVER;
  return first;
}

/** The server of the keys of a request buf[start, end) as the pool routes now (a blocking one
 *  waits there for pushes to them; CROSS_SERVER once they part, after a reload). */
export function keysPosition(buf: Uint8Array, start: number, end: number, pool: PoolView): number {
  const req = new Req();
  parseRequest(buf, start, end, req);
  const role = (req.command as SupportedCommand | null)?.role;
  if (role?.kind === "blocking" && "option" in role.timeout) pushStreamKeys(buf, req);
  return keysServer(buf, req, pool);
}

/** A node redirected a request of a transaction that watches keys, buf[start, end) as it was
 *  sent (a redis_cluster pool's: the watches cannot follow it): the transaction fails at EXEC
 *  as after a watched key changed; `holder`: the client whose transaction it is now, null when
 *  the redirection came late, for one that has ended (its EXEC meets the redirection itself).
 *  The request's reply: an EXEC sent with its MULTI and queued commands gets the failed
 *  WATCH's, a WATCH gets OK (the failure shows at EXEC); null for a command between WATCH and
 *  MULTI, which runs at once and is sent again to the node named. */
export function watchRedirected(buf: Uint8Array, start: number, end: number, holder: HasMultiKey | null, resp3: boolean): Uint8Array | null {
  const req = new Req();
  parseRequest(buf, start, end, req);
  const role = (req.command as SupportedCommand | null)?.role;
  const op = role?.kind === "transaction" ? role.op : null;
  const failed = watchFailed(resp3);
  if (op === TxOp.Multi) return failed;
  holder?.multikey?.transaction.watchMoved(failed);
  return op === TxOp.Watch ? OK : null;
}

/** Copies of req's keys. */
function keyCopies(buf: Uint8Array, req: Req): Uint8Array[] {
  const keys: Uint8Array[] = [];
  for (let i = 0; i < req.nkeys; i++) keys.push(buf.slice(req.keyStart(i), req.keyEnd(i)));
  return keys;
}

/** Where a client keeps its MultiKeyState (its session). */
export interface HasMultiKey {
  multikey: MultiKeyState | null;
}

/** The plan for req (parsed from buf, req.error set or not) of a client (`holder`: its
 *  session); null for the usual routing. */
export function planRequest(buf: Uint8Array, req: Req, holder: HasMultiKey, pool: PoolView, resp3: boolean): Plan | null {
  const command = req.command as SupportedCommand | null;
  const role = command === null ? null : command.role;
  // The hot path: a plain command of a client in no special state.
  if (role === null && (holder.multikey === null || !holder.multikey.busy)) return null;
  const state = (holder.multikey ??= new MultiKeyState(pool.cluster ? CLUSTER_CROSSSLOT : CROSSSLOT, pool.cluster));
  // QUIT closes the connection whatever the client is in the middle of, as redis does.
  if (command === QUIT) return null;
  if (req.error !== null && !state.transaction.active) return null;
  // RESET ends the subscriptions and the transaction: the client's own connections go (the
  // servers end them with the connections), then the handshake answers it as always.
  if (command === RESET && req.error === null) {
    holder.multikey = null;
    return RELEASE;
  }
  const name = command?.name ?? "";
  if (role?.kind === "blocking" && req.error === null && "option" in role.timeout) {
    // XREAD / XREADGROUP: their keys follow STREAMS.
    const error = pushStreamKeys(buf, req);
    if (error !== null) return local(line(error));
  }
  const subs = state.subscriptions;
  if (!resp3 && subs.subscribed && req.error === null && !allowedWhileSubscribed(name, role?.kind === "pubsub" ? role.op : null)) {
    return local(notAllowedWhileSubscribed(name));
  }
  // Its subscriber connections speak RESP3: their messages are pushes a RESP2 client cannot read.
  if (command === HELLO && resp3 && subs.subscribed && req.error === null && req.nargs > 1 && isTwo(buf, req.argStart[1]!, req.argEnd[1]!)) {
    return local(HELLO_2_SUBSCRIBED);
  }
  const tx = state.transaction;
  if (tx.active || role?.kind === "transaction") {
    const refused =
      req.error !== null
        ? line(req.error)
        : keptByProxy(command!) || (role !== null && role.kind !== "transaction" && role.kind !== "blocking" && role.kind !== "one-server" && role.kind !== "wait")
          ? NOT_IN_TRANSACTION(name)
          : null;
    const action = tx.step(
      { op: role?.kind === "transaction" ? role.op : null, server: req.error === null ? keysServer(buf, req, pool) : KEYLESS, refused, buf, start: req.start, end: req.end },
      firstLive(pool),
    );
    if (action.do === TxDo.Reply && action.before === null) return local(action.reply!);
    if (action.do === TxDo.Forward && req.nkeys > 0 && (tx.queueing || (role?.kind === "transaction" && role.op === TxOp.Watch))) tx.noteKeys(keyCopies(buf, req));
    if (action.do !== TxDo.Pass) {
      // Between WATCH and MULTI a blocking command blocks on the pinned connection as on any
      // (queued after MULTI, it runs without blocking at EXEC).
      const waitMs = role?.kind === "blocking" && !tx.queueing && action.reply === null ? blockingWait(buf, req, role.timeout) : 0;
      return { kind: PlanKind.Pinned, server: action.server, before: action.before, silent: action.silent, reply: action.reply, release: action.release, waitMs, watched: action.watched };
    }
  }
  if (req.error !== null || command === null) return null;
  if (name === "ping" && subs.subscribed && !resp3) return pong(buf, req);
  if (role === null) return null;
  return planRole(role, name, buf, req, state, pool, resp3);
}

/** A command the proxy answers from the client's session (AUTH, HELLO, CLIENT, SELECT, ...):
 *  queued in a transaction it would run on the server's connection instead. PING and ECHO
 *  answer alike either way. */
function keptByProxy(command: SupportedCommand): boolean {
  return command.route === Route.Local && command !== PING && command.name !== "echo";
}

function isTwo(buf: Uint8Array, start: number, end: number): boolean {
  return end - start === 1 && buf[start] === 0x32;
}

function planRole(role: CommandRole, name: string, buf: Uint8Array, req: Req, state: MultiKeyState, pool: PoolView, resp3: boolean): Plan | null {
  switch (role.kind) {
    case "one-server":
      return req.nkeys > 1 && keysServer(buf, req, pool) === CROSS_SERVER ? local(state.crossSlot) : null;
    case "pool":
      if (role.enabledBy !== undefined && !enabled(pool.cfg, role.enabledBy)) return local(DISABLED[role.enabledBy]!(name));
      return planPool(role.merge, buf, req, pool, false);
    case "pool-subcommand": {
      const merge = role.merges.get(subcommand(buf, req));
      return merge === undefined ? local(SUBCOMMAND_REFUSED(name, buf, req, role.merges)) : planPool(merge, buf, req, pool, role.replicas);
    }
    case "pubsub":
      return planPubSub(role.op, buf, req, state, pool, resp3);
    case "blocking": {
      const server = keysServer(buf, req, pool);
      if (server === CROSS_SERVER) return local(state.crossSlot);
      if (server < 0 || !pool.live(server)) return local(NO_SERVER);
      const waitMs = blockingWait(buf, req, role.timeout);
      return waitMs === 0 ? { kind: PlanKind.Server, server } : { kind: PlanKind.Blocking, server, waitMs };
    }
    case "transaction":
      // Decided by the transaction above.
      return null;
    case "wait":
      return planWait(buf, req, pool);
  }
}

/** How much longer than the pool's timeout a blocking command may wait for its reply, in ms
 *  (Infinity: no limit); 0 when it does not block (XREAD without BLOCK, a timeout redis
 *  refuses at once). */
function blockingWait(buf: Uint8Array, req: Req, timeout: BlockingTimeout): number {
  const ms = blockingTimeout(buf, req, timeout);
  return ms === FOREVER ? Infinity : ms === NO_BLOCK || ms === BAD_TIMEOUT ? 0 : ms;
}

/** Published before a WAIT (to a channel nobody needs to hear): the connection's last write
 *  is then the server's latest, so WAIT there counts the replicas that have everything written
 *  before, the client's writes on other connections included. */
const WAIT_PROBE = ascii("*3\r\n$7\r\nPUBLISH\r\n$17\r\n__buncracker:wait\r\n$0\r\n\r\n");
const WAIT_IN_CLUSTER = line("-ERR 'wait' is not served with distribution redis_cluster");
const MIN_MERGE = (replies: ServerReplies, out: ByteWriter): Uint8Array | null => mergePool(PoolMerge.Min, replies, out);

/** WAIT numreplicas timeout: on the servers the client wrote to (the core knows them); with
 *  arguments redis refuses, to one server, which says why at once. */
function planWait(buf: Uint8Array, req: Req, pool: PoolView): Plan {
  // A cluster node's PUBLISH is not replicated: no probe can make a connection's writes the latest.
  if (pool.cluster) return local(WAIT_IN_CLUSTER);
  const replicas = integer(buf, req.argStart[1]!, req.argEnd[1]!);
  const timeout = integer(buf, req.argStart[2]!, req.argEnd[2]!);
  if (replicas === null || timeout === null || timeout < 0) {
    const any = firstLive(pool);
    return any < 0 ? local(NO_SERVER) : { kind: PlanKind.Server, server: any };
  }
  const w = new ByteWriter(48);
  w.text("*3\r\n$4\r\nWAIT\r\n");
  for (const value of [replicas, timeout]) {
    const text = String(value);
    w.byte(36);
    w.int(text.length);
    w.crlf();
    w.text(text);
    w.crlf();
  }
  return { kind: PlanKind.Wait, request: w.take(), probe: WAIT_PROBE, waitMs: timeout === 0 ? Infinity : timeout, merge: MIN_MERGE };
}

/** A decimal integer as redis reads a long (an optional minus, no leading +), or null. */
function integer(buf: Uint8Array, start: number, end: number): number | null {
  if (end - start === 0 || end - start > 18) return null;
  let i = start;
  const negative = buf[i] === 45;
  if (negative) i++;
  if (i === end || (buf[i] === 48 && end - i > 1)) return null;
  let n = 0;
  for (; i < end; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return null;
    n = n * 10 + d;
  }
  return negative ? -n : n;
}

function enabled(cfg: PoolConfig, key: "redis_allow_keys" | "redis_allow_flush"): boolean {
  return key === "redis_allow_keys" ? cfg.redisAllowKeys : cfg.redisAllowFlush;
}

function firstLive(pool: PoolView): number {
  return pool.everyServer()[0] ?? -1;
}

function planPool(how: PoolMerge, buf: Uint8Array, req: Req, pool: PoolView, replicas: boolean): Plan {
  const live = pool.everyServer();
  if (live.length === 0) return local(NO_SERVER);
  switch (how) {
    case PoolMerge.AnyOne:
      return { kind: PlanKind.Server, server: live[0]! };
    case PoolMerge.Cursor:
      return planScan(buf, req, pool);
    default:
      return { kind: PlanKind.All, replicas, merge: (replies, out) => mergePool(how, replies, out) };
  }
}

function planScan(buf: Uint8Array, req: Req, pool: PoolView): Plan {
  // A cluster's masters at their lowest slots: the iteration goes over the slots in order.
  const servers = pool.positions;
  const position = decodeCursor(buf, req.argStart[1]!, req.argEnd[1]!, servers);
  if (position === null) return local(INVALID_CURSOR);
  const every = new Set(pool.everyServer());
  const target = scanTarget(position, servers, (s) => every.has(s));
  if (target === null) {
    return { kind: PlanKind.Fanout, targets: [], merge: (_replies, out) => (writeScanEnd(out), null) };
  }
  return {
    kind: PlanKind.Fanout,
    targets: [{ server: target.server, via: Via.Shared, write: (w) => buildScan(buf, req, target.cursor, w) }],
    merge: (replies, out) => {
      const reply = replies.fragBuf[0]!;
      const start = replies.fragPos[0]!;
      const end = replies.fragPos[1]!;
      return writeScanReply(reply, start, end, target.server, servers, out) ? null : reply.subarray(start, end);
    },
  };
}

function planPubSub(op: PubSubOp, buf: Uint8Array, req: Req, state: MultiKeyState, pool: PoolView, resp3: boolean): Plan {
  switch (op) {
    case PubSubOp.Publish: {
      const server = pool.route(buf, req.argStart[1]!, req.argEnd[1]!);
      return server >= 0 && pool.live(server) ? { kind: PlanKind.Server, server } : local(NO_SERVER);
    }
    case PubSubOp.Introspect: {
      return planPool(PUBSUB_MERGE.get(subcommand(buf, req)) ?? PoolMerge.AnyOne, buf, req, pool, false);
    }
    default:
      return planSubscription(op, buf, req, state, pool, resp3);
  }
}

function planSubscription(op: PubSubOp, buf: Uint8Array, req: Req, state: MultiKeyState, pool: PoolView, resp3: boolean): Plan {
  const subs = state.subscriptions;
  const subscribing = op === PubSubOp.Subscribe || op === PubSubOp.PSubscribe || op === PubSubOp.SSubscribe;
  const max = pool.cfg.redisMaxSubscribers;
  if (subscribing && !subs.subscribed && max > 0 && pool.subscribers() >= max) return local(SUBSCRIBERS_FULL(max));
  const names: Uint8Array[] = [];
  for (let a = 1; a < req.nargs; a++) names.push(buf.subarray(req.argStart[a]!, req.argEnd[a]!));
  // A cluster sends every PUBLISH to every node: a pattern on one master hears them all (on
  // each, every message would come once per master).
  const every = pool.everyServer();
  const live = pool.cluster ? every.slice(0, 1) : every;
  if (subscribing && op !== PubSubOp.PSubscribe) {
    for (const name of names) {
      const s = pool.route(name, 0, name.length);
      if (s < 0 || !pool.live(s)) return local(NO_SERVER);
    }
  } else if (subscribing && live.length === 0) {
    return local(NO_SERVER);
  }
  if (!subs.subscribed) subs.shared = pool.cfg.redisSharedSubscriptions;
  const change = subs.change(op, names, (name) => pool.route(name, 0, name.length), live, resp3);
  const targets: FanoutTarget[] = [];
  // Target f's subscription (made[f] for a subscribe: undone where the server refuses it).
  const made: Held[] = [];
  for (const [server, list] of change.upstream) {
    for (const held of list) {
      if (!subs.shared) {
        const w = new ByteWriter(held.name.length + 32);
        writeSubscription(w, op, held.name);
        const request = w.take();
        // A cluster node may end the channel itself before it reads the SUNSUBSCRIBE, which it
        // then answers with a MOVED: the PING after it says where the request's answers end.
        const after = pool.cluster && op === PubSubOp.SUnsubscribe ? SUBSCRIBER_PING : undefined;
        // The node it goes to is the one whose own sunsubscribe ends it (Subscriptions.sentTo).
        if (op === PubSubOp.SSubscribe) held.request = request;
        targets.push({ server, via: Via.Subscriber, write: (out) => out.bytes(request), request, after });
      } else {
        targets.push({ server, via: Via.Hub, write: (w) => writeSubscription(w, op, held.name), topic: sharedTopic(op, held.name) });
      }
      made.push(held);
    }
  }
  if (targets.length === 0) return local(change.reply);
  const merge = (replies: ServerReplies): Uint8Array => {
    const error = firstError(replies);
    if (error === null) return change.reply;
    if (subscribing) targets.forEach((t, f) => f < replies.nfrags && isError(replies, f) && subs.refused(op, made[f]!, t.server));
    return error;
  };
  return { kind: PlanKind.Fanout, targets, merge };
}

/** PING in RESP2 subscribed mode. */
function pong(buf: Uint8Array, req: Req): Plan {
  const w = new ByteWriter(32);
  subscribedPong(req.nargs > 1 ? buf.subarray(req.argStart[1]!, req.argEnd[1]!) : null, w);
  return local(w.take());
}


