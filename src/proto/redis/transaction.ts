// A client's transaction (WATCH, MULTI, queued commands, EXEC / DISCARD) as a pure state
// machine: each request in, what to do with it out. A transaction runs on one server: WATCH, or
// the first command with a key after MULTI, pins the client to that server (the core gives it a
// dedicated connection there) until EXEC, DISCARD or an UNWATCH outside MULTI. While pinned,
// every command of the client whose keys are on that server goes on the pinned connection, so
// it reaches the server in order with the transaction.
//
// As redis does: a command refused while queueing (unknown, wrong arity, keys on another server
// than the pinned one: -CROSSSLOT) flags the transaction and EXEC answers -EXECABORT. MULTI is
// answered here until the server is known; commands without keys before that are held (copied)
// and answered +QUEUED, then sent after MULTI once the server is known (their upstream replies
// and MULTI's are dropped). Protocol texts are redis 7's (checked against redis-server in
// test/unit/redis-transaction.test.ts).
//
// In a redis_cluster pool (`deferred`) every command after MULTI is held so, keyed or not, and
// MULTI, the held commands and EXEC go up together at EXEC (WATCH and the commands between it
// and MULTI still go at once): a node that redirects the transaction (its slot moved, or is
// being moved and its keys are gone) has then run nothing of it, and the core sends it whole
// to the node named (core/cluster-dispatch.ts); one that watches keys cannot follow (the
// watches stay behind), so its EXEC gets the null reply of a failed WATCH (`watched`).

import { ascii } from "../../lib/bytes.ts";
import { TxOp } from "./commands.ts";

const QUEUED = ascii("+QUEUED\r\n");
const OK = ascii("+OK\r\n");
const EMPTY_EXEC = ascii("*0\r\n");
const EXECABORT = ascii("-EXECABORT Transaction discarded because of previous errors.\r\n");
const NESTED = ascii("-ERR MULTI calls can not be nested\r\n");
const WATCH_IN_MULTI = ascii("-ERR WATCH inside MULTI is not allowed\r\n");
const EXEC_WITHOUT = ascii("-ERR EXEC without MULTI\r\n");
const DISCARD_WITHOUT = ascii("-ERR DISCARD without MULTI\r\n");
export const CROSSSLOT = ascii("-CROSSSLOT Keys in request don't hash to the same server (a transaction runs on one server: use hash tags)\r\n");
/** A redis_cluster pool's: redis's own (a transaction's keys must share a slot). */
export const CLUSTER_CROSSSLOT = ascii("-CROSSSLOT Keys in request don't hash to the same slot\r\n");
const LOST = ascii("-ERR the connection of this transaction to its server was lost\r\n");
const MULTI_COMMAND = ascii("*1\r\n$5\r\nMULTI\r\n");
const DISCARD_COMMAND = ascii("*1\r\n$7\r\nDISCARD\r\n");
const UNWATCH_COMMAND = ascii("*1\r\n$7\r\nUNWATCH\r\n");
/** EXEC's reply when a watched key changed: a null array (RESP3: null). */
const WATCH_FAILED_RESP2 = ascii("*-1\r\n");
const WATCH_FAILED_RESP3 = ascii("_\r\n");

/** EXEC's reply when a watched key changed, in RESP3 or RESP2. */
export function watchFailed(resp3: boolean): Uint8Array {
  return resp3 ? WATCH_FAILED_RESP3 : WATCH_FAILED_RESP2;
}

/** A request's keys are on no server in particular (it has none). */
export const KEYLESS = -1;
/** A request's keys are on more than one server. */
export const CROSS_SERVER = -2;

export const TxDo = {
  /** Not the transaction's business: serve the request as usual. */
  Pass: 0,
  /** Answer it with `reply` (after sending `before` on the pinned connection, when set). */
  Reply: 1,
  /** Send it on the connection pinned to `server` (after `before`). */
  Forward: 2,
} as const;
export type TxDo = (typeof TxDo)[keyof typeof TxDo];

export interface TxAction {
  readonly do: TxDo;
  /** Reply: the reply. */
  readonly reply: Uint8Array | null;
  /** Forward, or Reply with `before`: the pinned server. */
  readonly server: number;
  /** Commands to send first on the pinned connection; their `silent` replies are dropped. */
  readonly before: Uint8Array | null;
  readonly silent: number;
  /** The pin ends with this request (the dedicated connection is free once its replies are in). */
  readonly release: boolean;
  /** An EXEC of a transaction that watches keys (WATCH): a redirection fails it (`deferred`). */
  readonly watched: boolean;
}

const PASS: TxAction = { do: TxDo.Pass, reply: null, server: -1, before: null, silent: 0, release: false, watched: false };

const local = (reply: Uint8Array): TxAction => ({ do: TxDo.Reply, reply, server: -1, before: null, silent: 0, release: false, watched: false });

/** One request, as the transaction needs to see it. */
export interface TxRequest {
  /** Its transaction role, or null for any other command. */
  readonly op: TxOp | null;
  /** The server of its keys, KEYLESS or CROSS_SERVER. */
  readonly server: number;
  /** The error reply the proxy gives it anyway (unknown command, arity, not allowed in a
   *  transaction), or null. */
  readonly refused: Uint8Array | null;
  /** Its bytes, buf[start, end) (copied when it must be held). */
  readonly buf: Uint8Array;
  readonly start: number;
  readonly end: number;
}

export class Transaction {
  /** The pinned server, -1 when none. */
  private pinned = -1;
  private watching = false;
  private multi = false;
  /** MULTI went upstream on the pinned connection. */
  private multiSent = false;
  /** A queued command was refused: EXEC answers -EXECABORT. */
  private dirty = false;
  /** The pinned connection closed: the watches and queued commands are gone with it. */
  private lost = false;
  /** Keyless commands after MULTI, before the server was known (`deferred`: every command after
   *  MULTI). */
  private held: Uint8Array[] = [];
  /** Their bytes (the buffer budget counts them: Planner.held). */
  heldBytes = 0;
  /** `deferred`, no WATCH: the server of the held commands' keys, -1 while they have none. */
  private heldServer = -1;
  /** EXEC's reply once a node redirected a request of the transaction while it watches keys. */
  private failedWatch: Uint8Array | null = null;
  /** The keys watched and queued on the pinned server (copies): a reload may move them. */
  private keys: Uint8Array[] = [];

  /** `crossSlot`: the refusal of keys elsewhere than the pinned server (or slot); `deferred`:
   *  MULTI and the commands after it go up at EXEC (a redis_cluster pool). */
  constructor(
    private readonly crossSlot: Uint8Array = CROSSSLOT,
    private readonly deferred = false,
  ) {}

  /** Whether the client is between WATCH or MULTI and the end of its transaction. */
  get active(): boolean {
    return this.multi || this.watching || this.lost;
  }

  /** Between MULTI and EXEC / DISCARD: commands are queued, and run at EXEC. */
  get queueing(): boolean {
    return this.multi;
  }

  /** What to do with a request. `anyServer`: a live server, for a transaction of keyless
   *  commands only (-1 when none is live). */
  step(req: TxRequest, anyServer: number): TxAction {
    if (req.refused !== null && req.op !== null) {
      // A transaction command the proxy refuses (its argument count): EXEC's refusal ends the
      // transaction (redis says -EXECABORT), any other's in MULTI flags it.
      if (req.op === TxOp.Exec && this.multi) return this.finish(this.multiSent ? this.discardUpstream(req.refused) : local(req.refused));
      return this.multi ? this.refuse(req.refused) : local(req.refused);
    }
    switch (req.op) {
      case TxOp.Watch:
        return this.watch(req);
      case TxOp.Unwatch:
        if (this.multi) return this.queue(req);
        return this.finish(this.lost || this.pinned < 0 ? local(OK) : this.forward(true));
      case TxOp.Multi:
        if (this.multi) return local(NESTED);
        this.multi = true;
        this.dirty = this.lost;
        if (this.pinned < 0 || this.deferred) return local(OK);
        this.multiSent = true;
        return this.forward(false);
      case TxOp.Exec:
        return this.exec(anyServer);
      case TxOp.Discard:
        if (!this.multi) return local(DISCARD_WITHOUT);
        return this.finish(this.multiSent ? this.forward(true) : this.abortUpstream(OK));
      default:
        if (this.multi) return this.queue(req);
        // Between WATCH and MULTI: the pinned server's commands keep to the pinned connection.
        if (this.pinned >= 0 && req.server === this.pinned && req.refused === null) return this.forward(false);
        return PASS;
    }
  }

  /** A node redirected a request of the transaction while it watches keys (`deferred`): the
   *  watches cannot follow, so EXEC answers `reply` (watchFailed), as after a watched key
   *  changed. */
  watchMoved(reply: Uint8Array): void {
    if (this.watching) this.failedWatch = reply;
  }

  /** Keys a request watched or queued on the pinned server (`keys` is the transaction's now). */
  noteKeys(keys: Uint8Array[]): void {
    this.keys.push(...keys);
  }

  /** A reload renumbered the pool's servers (`moved`: a position's new one, -1 for a server
   *  that left) and may have moved keys (`where`: a key's position now): the pinned server
   *  keeps its connection at its new position; one that left took the connection with it.
   *  False when a key watched or queued is on another server now: its writes would land where
   *  its keys are no longer read (the core closes the pinned connection: the pin is lost). */
  renumber(moved: (position: number) => number, where: (key: Uint8Array) => number): boolean {
    if (this.pinned < 0) return true;
    const now = moved(this.pinned);
    if (now < 0) {
      this.connectionLost();
      return true;
    }
    this.pinned = now;
    return this.keys.every((key) => where(key) === now);
  }

  /** The pinned connection closed (its server failed, or it was cut). */
  connectionLost(): void {
    if (this.pinned < 0) return;
    this.pinned = this.heldServer = -1;
    this.multiSent = false;
    this.held = [];
    this.heldBytes = 0;
    this.keys = [];
    this.lost = true;
    if (this.multi) this.dirty = true;
  }

  private watch(req: TxRequest): TxAction {
    if (this.multi) return this.multiSent ? this.forward(false) : local(WATCH_IN_MULTI);
    if (this.lost) return local(LOST);
    if (req.refused !== null) return local(req.refused);
    if (req.server === CROSS_SERVER || (this.pinned >= 0 && req.server !== this.pinned)) return local(this.crossSlot);
    this.pinned = req.server;
    this.watching = true;
    return this.forward(false);
  }

  /** A command after MULTI. */
  private queue(req: TxRequest): TxAction {
    if (req.refused !== null) return this.refuse(req.refused);
    if (this.lost) return this.refuse(LOST);
    if (req.server === CROSS_SERVER) return this.refuse(this.crossSlot);
    if (this.deferred) return this.hold(req);
    if (req.server === KEYLESS) {
      if (this.pinned >= 0) return this.forward(false);
      this.keep(req);
      return local(QUEUED);
    }
    if (this.pinned < 0) {
      this.pinned = req.server;
      return this.sendMulti(false);
    }
    return req.server === this.pinned ? this.forward(false) : this.refuse(this.crossSlot);
  }

  /** `deferred`: a command after MULTI is held until EXEC, its keys on the transaction's server. */
  private hold(req: TxRequest): TxAction {
    if (req.server !== KEYLESS) {
      const server = this.pinned >= 0 ? this.pinned : this.heldServer;
      if (server >= 0 && req.server !== server) return this.refuse(this.crossSlot);
      if (this.pinned < 0) this.heldServer = req.server;
    }
    this.keep(req);
    return local(QUEUED);
  }

  private keep(req: TxRequest): void {
    this.held.push(req.buf.slice(req.start, req.end));
    this.heldBytes += req.end - req.start;
  }

  private exec(anyServer: number): TxAction {
    if (!this.multi) return local(EXEC_WITHOUT);
    if (this.dirty) return this.finish(this.multiSent ? this.discardUpstream(EXECABORT) : this.abortUpstream(EXECABORT));
    if (this.failedWatch !== null) return this.finish(this.abortUpstream(this.failedWatch));
    if (this.deferred && (this.pinned >= 0 || this.heldServer >= 0)) {
      if (this.pinned < 0) this.pinned = this.heldServer;
      return this.finish(this.sendMulti(true));
    }
    if (this.pinned >= 0) return this.finish(this.forward(true));
    if (this.held.length === 0) return this.finish(local(EMPTY_EXEC));
    if (anyServer < 0) return this.finish(local(LOST));
    this.pinned = anyServer;
    return this.finish(this.sendMulti(true));
  }

  /** Answer `reply` and discard the transaction upstream (DISCARD, its reply dropped). */
  private discardUpstream(reply: Uint8Array): TxAction {
    return this.endUpstream(reply, DISCARD_COMMAND);
  }

  /** Answer `reply` to a transaction whose MULTI never went up (`deferred`): its watches, if
   *  any, end upstream (UNWATCH, its reply dropped), as EXEC and DISCARD end them. */
  private abortUpstream(reply: Uint8Array): TxAction {
    return this.pinned < 0 ? local(reply) : this.endUpstream(reply, UNWATCH_COMMAND);
  }

  /** Answer `reply` once `command` (its reply dropped) has ended the transaction on the pinned
   *  connection, which is then let go. */
  private endUpstream(reply: Uint8Array, command: Uint8Array): TxAction {
    return { do: TxDo.Reply, reply, server: this.pinned, before: command, silent: 1, release: true, watched: false };
  }

  /** MULTI and the held commands go first on the newly pinned connection. */
  private sendMulti(release: boolean): TxAction {
    let size = MULTI_COMMAND.length;
    for (const h of this.held) size += h.length;
    const before = new Uint8Array(size);
    before.set(MULTI_COMMAND);
    let at = MULTI_COMMAND.length;
    for (const h of this.held) {
      before.set(h, at);
      at += h.length;
    }
    const silent = 1 + this.held.length;
    this.held = [];
    this.heldBytes = 0;
    this.multiSent = true;
    return { do: TxDo.Forward, reply: null, server: this.pinned, before, silent, release, watched: this.watching };
  }

  private refuse(reply: Uint8Array): TxAction {
    this.dirty = true;
    return local(reply);
  }

  private forward(release: boolean): TxAction {
    return { do: TxDo.Forward, reply: null, server: this.pinned, before: null, silent: 0, release, watched: false };
  }

  /** The transaction ends with this action: back to no state at all. */
  private finish(action: TxAction): TxAction {
    this.pinned = this.heldServer = -1;
    this.watching = this.multi = this.multiSent = this.dirty = this.lost = false;
    this.held = [];
    this.heldBytes = 0;
    this.keys = [];
    this.failedWatch = null;
    return action;
  }
}
