// Following Redis Sentinel in a pool (pool key `sentinels`): the sentinel client's topology
// changes applied to the pool's servers, each named by its sentinel master name.
//
// - A master moved: the server moves (new requests go to the new address, requests already
//   sent finish or fail on the old connections, which then close), counted in `failovers`.
// - A failover announced: from then on the server's writes wait here ("parked"), in arrival
//   order, until the master moved (they go to the new one) or the failover ended with writes
//   going where they went (given up, or already following the new master), or the request
//   timeout fails them. Reads go on. A client with a parked request has all its later requests
//   parked behind it, so its own order holds. A request the planner planned (planned.ts) keeps
//   its plan, carried out on release: one that writes, and everything on a transaction's or a
//   blocking request's connection to the server, waits.
//   A transaction whose pinned connection went with the old master fails instead.
// - A reload during a failover (handOver): the failover and the parked requests go on in the
//   PoolFailover of the new config. A plan was made with the old config's server positions: a
//   request with keys goes where they are now (a transaction, whole, stays on its server or
//   fails), one without keeps the servers its plan chose (PUBLISH's, a subscription's), at
//   their new positions; one whose server left the pool fails.
// - Replicas up or down: the server's replica list, where read_from sends read-only commands.
// - A master answered -READONLY (demoted before the event arrived): the sentinels are asked again.

import { sameEndpoint } from "../conf/address.ts";
import type { Address } from "../conf/types.ts";
import { log } from "../log.ts";
import { PlanKind, Req, type Plan } from "../proto/codec.ts";
import { SentinelClient, type TopologyChange } from "../sentinel/client.ts";
import { instanceText, type Instance } from "../sentinel/events.ts";
import { S } from "../stats/table.ts";
import type { ClientConn } from "./client.ts";
import { fail } from "./deliver.ts";
import { runPlan, serve } from "./dispatch.ts";
import type { Msg } from "./msg.ts";
import type { Pool } from "./pool.ts";
import { Server } from "./server.ts";
import type { ServerConn } from "./server-conn.ts";

/** A request waiting for a failover to end: its slot, and its bytes in the client's read buffer
 *  (never reused, core/reader.ts), parsed again when it is released; the planner's plan for it
 *  (null: routed by its keys) and the connection its client's transaction was pinned to then. */
interface Parked {
  readonly msg: Msg;
  readonly buf: Uint8Array;
  readonly start: number;
  readonly end: number;
  readonly plan: Plan | null;
  readonly pin: ServerConn | null;
}

const TX_LOST = "the connection of this transaction to its server was lost while it waited for a failover";
const TX_MOVED = "its transaction's keys moved to another server in a reload";

/** What a reload changed that the parked requests must follow (Pool.follow). */
export interface Reloaded {
  /** The servers as they were, by their positions then. */
  readonly servers: readonly Server[];
  /** Clients whose transaction the reload ended before a connection was pinned to it. */
  readonly txLost: ReadonlySet<ClientConn>;
}

const DEMOTED_ASK_MS = 100;

const addressOf = (i: Instance): Address => ({ spec: instanceText(i), host: i.host, port: i.port, unix: false, perm: null });

export class PoolFailover {
  private readonly client: SentinelClient;
  private parked: Parked[] = [];
  /** Parked requests per client. */
  private parkedBy = new Map<ClientConn, number>();
  /** Servers holding their writes now. */
  private holding = 0;
  /** Released requests are parsed again into this. */
  private readonly req = new Req();
  /** When -READONLY last made the sentinels be asked again. */
  private demotedAskedAt = -Infinity;

  constructor(private readonly pool: Pool) {
    const cfg = pool.cfg;
    this.client = new SentinelClient({
      sentinels: cfg.sentinels,
      auth: cfg.sentinelAuth,
      names: cfg.servers.map((s) => s.name!),
      label: `pool '${cfg.name}'`,
      onChange: (change) => this.apply(change),
      framer: pool.codec,
      sockets: pool.sockets,
    });
    for (const s of pool.servers) s.stats.address = s.addr.spec;
  }

  start(): void {
    this.client.start();
  }

  /** Stop following; parked requests go where their servers are now. */
  stop(): void {
    this.client.stop();
    for (const s of this.pool.servers) s.holdWrites = false;
    this.holding = 0;
    this.release();
  }

  /** Sentinels followed now (for /healthz). */
  get sentinelsReachable(): number {
    return this.client.reachable;
  }

  /** Does dispatch have to ask parks()? Only during a failover or while requests are parked. */
  get active(): boolean {
    return this.holding > 0 || this.parked.length > 0;
  }

  /** A request (parsed into req from buf) about to be served (plan null: routed, or answered by
   *  the proxy) or carried out as `plan`: parks it and returns true when it writes to a server
   *  whose failover is under way, or its client has requests parked. A planned local reply never
   *  waits (its slot keeps its order). */
  parks(msg: Msg, buf: Uint8Array, req: Req, plan: Plan | null): boolean {
    if (plan !== null && plan.kind === PlanKind.Local) return false;
    const c = msg.client;
    const before = this.parkedBy.get(c) ?? 0;
    if (before === 0 && !(plan === null ? this.writes(buf, req) : this.planWaits(plan, req))) return false;
    this.parked.push({ msg, buf, start: req.start, end: req.end, plan, pin: c.own?.pinned ?? null });
    this.parkedBy.set(c, before + 1);
    return true;
  }

  /** Does `plan` (for req) write to a server that holds its writes? A transaction's and a
   *  blocking request's connection to the old master closes when it moves, so all they send
   *  waits; (un)subscriptions wait too, to be made on the new master. */
  private planWaits(plan: Plan, req: Req): boolean {
    const servers = this.pool.servers;
    const writes = req.command?.readOnly !== true;
    switch (plan.kind) {
      case PlanKind.Local:
      case PlanKind.Release:
      case PlanKind.Wait:
        return false;
      case PlanKind.Pinned:
      case PlanKind.Blocking:
        return plan.server >= 0 && servers[plan.server]!.holdWrites;
      case PlanKind.Server:
        return writes && servers[plan.server]!.holdWrites;
      case PlanKind.All:
        return writes && servers.some((s) => s.holdWrites);
      case PlanKind.Fanout:
        return writes && plan.targets.some((t) => servers[t.server]!.holdWrites);
    }
  }

  /** Does req (routed by its keys) write to a server that holds its writes? */
  private writes(buf: Uint8Array, req: Req): boolean {
    return req.command!.readOnly !== true && this.writesToHolding(buf, req);
  }

  private writesToHolding(buf: Uint8Array, req: Req): boolean {
    const servers = this.pool.servers;
    const router = this.pool.router!; // a pool with sentinels is never redis_cluster (load.ts)
    for (let i = 0; i < req.nkeys; i++) {
      const index = router.route(buf, req.keyStart(i), req.keyEnd(i));
      if (index >= 0 && servers[index]!.holdWrites) return true;
    }
    return false;
  }

  /** A reload replaced this by `next` (null: the pool follows no sentinels now), the sessions
   *  told already: stop following. Where the masters of the servers that stayed are, and the
   *  failovers under way (by sentinels both follow), go on in `next` (SentinelClient.inherit);
   *  the parked requests wait there, their plans renumbered; with none under way they go now,
   *  by the new config. */
  handOver(next: PoolFailover | null, reloaded: Reloaded): void {
    this.client.stop();
    const stayed = new Set(this.pool.servers.filter((s) => reloaded.servers.includes(s)).map((s) => s.cfg.name!));
    const failing = new Set(next === null ? [] : next.client.inherit(this.client, stayed));
    let holding = 0;
    for (const s of this.pool.servers) {
      s.holdWrites = failing.has(s.cfg.name!);
      if (s.holdWrites) holding++;
    }
    this.holding = 0;
    const parked = this.take();
    const strays = this.strayTransactions(parked, reloaded);
    const kept: Parked[] = [];
    for (const p of parked) {
      const plan = p.plan === null ? null : this.renumbered(p, p.plan, reloaded, strays);
      if (plan === p.plan) kept.push(p);
      else if (plan !== null) kept.push({ ...p, plan });
    }
    if (next === null || holding === 0) {
      this.dispatch(kept);
      return;
    }
    next.holding = holding;
    next.parked = kept;
    for (const p of kept) next.parkedBy.set(p.msg.client, (next.parkedBy.get(p.msg.client) ?? 0) + 1);
  }

  /** A server position of the config before a reload, in the one it installed (-1: the server
   *  left the pool). */
  private now(reloaded: Reloaded, position: number): number {
    const s = reloaded.servers[position];
    return s !== undefined && this.pool.servers[s.index] === s ? s.index : -1;
  }

  /** Where the keys of a parked request are now (-1: it has none; -2: on several servers). */
  private keysAt(p: Parked): number {
    return this.pool.codec.planner!.keysPosition(p.buf, p.start, p.end, this.pool.view);
  }

  /** The parked plans of transactions that cannot run whole on their server any more: it left
   *  the pool, or a key of theirs moved off it. A transaction runs whole or not at all: each of
   *  its plans, up to the one that ends it (`release`), fails. */
  private strayTransactions(parked: readonly Parked[], reloaded: Reloaded): Set<Parked> {
    const strays = new Set<Parked>();
    const open = new Map<ClientConn, { plans: Parked[]; stray: boolean }>();
    const end = (tx: { plans: Parked[]; stray: boolean }): void => {
      if (tx.stray) for (const p of tx.plans) strays.add(p);
    };
    for (const p of parked) {
      const plan = p.plan;
      if (plan === null || plan.kind !== PlanKind.Pinned) continue;
      const c = p.msg.client;
      let tx = open.get(c);
      if (tx === undefined) open.set(c, (tx = { plans: [], stray: reloaded.txLost.has(c) }));
      tx.plans.push(p);
      if (plan.server >= 0) {
        const server = this.now(reloaded, plan.server);
        const at = this.keysAt(p);
        if (server < 0 || (at !== -1 && at !== server)) tx.stray = true;
      }
      if (plan.release) {
        end(tx);
        open.delete(c);
      }
    }
    for (const tx of open.values()) end(tx);
    return strays;
  }

  /** A parked request's plan under the config a reload installed, or null when it failed: a
   *  server it chose left the pool, or its transaction cannot run whole (`strays`). */
  private renumbered(p: Parked, plan: Plan, reloaded: Reloaded, strays: ReadonlySet<Parked>): Plan | null {
    const pool = this.pool;
    const left = (position: number): null => {
      fail(pool, p.msg, `server ${reloaded.servers[position]!.cfg.name} left the pool in a reload`);
      return null;
    };
    switch (plan.kind) {
      case PlanKind.Pinned: {
        if (plan.server < 0) return plan;
        const server = this.now(reloaded, plan.server);
        if (server < 0) return left(plan.server);
        if (!strays.has(p)) return { ...plan, server };
        fail(pool, p.msg, TX_MOVED);
        return null;
      }
      case PlanKind.Server: {
        // With keys, where they are now; else the server it chose (PUBLISH's, any server).
        const at = this.keysAt(p);
        const server = at >= 0 ? at : this.now(reloaded, plan.server);
        return server < 0 ? left(plan.server) : { ...plan, server };
      }
      case PlanKind.Blocking: {
        // It waits for pushes to its keys: where they are now.
        const server = this.keysAt(p);
        if (server >= 0) return { ...plan, server };
        fail(pool, p.msg, "its keys are no longer on one server after a reload");
        return null;
      }
      case PlanKind.Fanout: {
        const gone = plan.targets.find((t) => this.now(reloaded, t.server) < 0);
        if (gone !== undefined) return left(gone.server);
        return { ...plan, targets: plan.targets.map((t) => ({ ...t, server: this.now(reloaded, t.server) })) };
      }
      default:
        return plan;
    }
  }

  /** The parked requests, none parked any more. */
  private take(): Parked[] {
    const parked = this.parked;
    this.parked = [];
    this.parkedBy = new Map();
    return parked;
  }

  /** Dispatch every parked request again, in arrival order (those whose server still holds
   *  park again, and their clients' later ones behind them). */
  private release(): void {
    if (this.parked.length > 0) this.dispatch(this.take());
  }

  private dispatch(parked: readonly Parked[]): void {
    const codec = this.pool.codec;
    const req = this.req;
    for (const p of parked) {
      if (p.msg.client.closed) {
        fail(this.pool, p.msg, "client closed");
        continue;
      }
      codec.parseRequest(p.buf, p.start, p.end, req);
      if (p.plan === null) serve(this.pool, p.msg.client, p.msg, p.buf, req);
      // Planned on a pinned connection that closed since (its server moved): the rest of the
      // transaction must not run anywhere else.
      else if (p.plan.kind === PlanKind.Pinned && p.pin !== null && p.pin !== p.msg.client.own?.pinned) {
        fail(this.pool, p.msg, TX_LOST);
      } else if (!runPlan(this.pool, p.msg, p.buf, req, p.plan)) serve(this.pool, p.msg.client, p.msg, p.buf, req);
    }
  }

  /** Parked requests older than the pool's timeout get an error. */
  checkTimeouts(now: number, timeout: number): void {
    if (this.parked.length === 0 || now - this.parked[0]!.msg.t0 <= timeout) return;
    const kept: Parked[] = [];
    for (const p of this.parked) {
      if (now - p.msg.t0 <= timeout) {
        kept.push(p);
        continue;
      }
      const c = p.msg.client;
      const n = this.parkedBy.get(c)! - 1;
      if (n === 0) this.parkedBy.delete(c);
      else this.parkedBy.set(c, n);
      fail(this.pool, p.msg, "Failover in progress");
    }
    this.parked = kept;
  }

  /** A server answered -READONLY: its master was demoted; find out where it went (once per
   *  DEMOTED_ASK_MS: a pipeline of writes gets as many -READONLY). */
  demoted(server: Server): void {
    const now = performance.now();
    if (now - this.demotedAskedAt < DEMOTED_ASK_MS) return;
    this.demotedAskedAt = now;
    this.client.requery(`server ${server.cfg.name} answered -READONLY`);
  }

  private serverNamed(name: string): Server | null {
    for (const s of this.pool.servers) if (s.cfg.name === name) return s;
    return null;
  }

  private apply(change: TopologyChange): void {
    const server = this.serverNamed(change.name);
    if (server === null) return;
    switch (change.kind) {
      case "master-moved": {
        const addr = addressOf(change.to);
        if (!sameEndpoint(server.addr, addr)) {
          log.notice(`pool '${this.pool.cfg.name}': server ${change.name} moves from ${server.addr.spec} to ${addr.spec}`);
          server.moveTo(addr);
          server.stats.address = addr.spec;
          server.stats.counters[S.failovers]!++;
          // The new master is no replica to read from any more.
          this.dropReplica(server, change.to);
        }
        // The first answer (no `from`) says where the master is, not that a failover announced
        // before it is over: releasing its held writes then sent them to the old master.
        if (change.from !== null) this.endHold(server);
        return;
      }
      case "failover-started":
        if (!server.holdWrites) {
          server.holdWrites = true;
          this.holding++;
        }
        return;
      case "failover-ended":
        this.endHold(server);
        return;
      case "replica-up":
        if (server.replicas.some((r) => sameEndpoint(r.addr, change.replica))) return;
        server.replicas.push(this.replica(server, addressOf(change.replica)));
        return;
      case "replica-down":
        this.dropReplica(server, change.replica);
        return;
      case "master-down":
      case "master-up":
        return;
    }
  }

  private endHold(server: Server): void {
    if (!server.holdWrites) return;
    server.holdWrites = false;
    this.holding--;
    this.release();
  }

  /** A replica of `master` at `addr`: a server of its own (connections, health), counted in
   *  its master's stats. */
  private replica(master: Server, addr: Address): Server {
    const cfg = { ...master.cfg, addr, pname: `${addr.spec} (replica of ${master.cfg.name})` };
    return new Server(this.pool, master.index, cfg, master.stats, master);
  }

  private dropReplica(server: Server, replica: Instance): void {
    const i = server.replicas.findIndex((r) => sameEndpoint(r.addr, replica));
    if (i < 0) return;
    const [gone] = server.replicas.splice(i, 1);
    gone!.retire();
  }
}
