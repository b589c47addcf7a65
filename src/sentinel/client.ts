// Follows the topology of some sentinel-monitored masters (a pool's servers, by name) and
// reports every change as a typed TopologyChange, synchronously, as it learns it.
//
// It subscribes to the events of every configured sentinel (only the sentinel leading a failover
// announces it before the promotion, so one subscription is not enough to see it coming), and
// asks the sentinels what they know (query.ts) at start, after every (re)subscription (events
// may have been missed), when a replica's state changes, on demand (a master answered -READONLY),
// every second while a failover is in progress or a replica is settling, and every 10 s. Answers
// are weighed by config epoch, and an answer older than a +switch-master already followed is
// ignored, so a lagging sentinel can never move a master back. With no sentinel reachable the last known topology stays, and is logged.
// A client that replaces another in a reload starts from where that one knew the same master
// groups to be (inherit), so dropping the sentinel that led a failover moves nothing back.

import type { Address } from "../conf/types.ts";
import { log } from "../log.ts";
import type { SentinelSockets } from "./conn.ts";
import { instanceText, sameInstance, type Instance, type SentinelEvent } from "./events.ts";
import { SentinelLink } from "./link.ts";
import { askSentinel, type MasterView, type SentinelAnswer } from "./query.ts";
import type { ReplyFramer } from "./reply.ts";

/** What the proxy knows of one master now. */
export interface MasterTopology {
  readonly name: string;
  /** null until a sentinel has answered for it. */
  readonly master: Instance | null;
  /** The replicas reads may go to (reachable, replicating from the master with their link up). */
  readonly replicas: readonly Instance[];
  /** A sentinel announced a failover of it that has neither completed nor been aborted. */
  readonly failingOver: boolean;
}

export type TopologyChange =
  /** New writes go to `to`; the master at `from` may be a replica already, and its failovers
   *  are over. `from` null: the master's first known address, which ends no failover (one
   *  announced before the first answer is still under way). */
  | { readonly kind: "master-moved"; readonly name: string; readonly from: Instance | null; readonly to: Instance; readonly source: string }
  /** A failover began: its master will stop being master soon, at a moment no one announces. */
  | { readonly kind: "failover-started"; readonly name: string; readonly source: string }
  /** Every failover announced is over and writes stay where they go: given up, or switched to
   *  the master they already go to (a query saw it before the +switch-master). */
  | { readonly kind: "failover-ended"; readonly name: string; readonly source: string }
  | { readonly kind: "master-down" | "master-up"; readonly name: string; readonly source: string }
  | { readonly kind: "replica-up" | "replica-down"; readonly name: string; readonly replica: Instance; readonly source: string };

export interface SentinelClientOptions {
  readonly sentinels: readonly Address[];
  /** The sentinels' password (sentinel_auth), or null. */
  readonly auth: string | null;
  /** The master names to follow. */
  readonly names: readonly string[];
  /** For log lines: whose client this is (e.g. "pool 'alpha'"). */
  readonly label: string;
  readonly onChange: (change: TopologyChange) => void;
  /** Frames the sentinels' replies: the redis Codec. */
  readonly framer: ReplyFramer;
  /** Where connections to the sentinels come from: the pool's socket factory. */
  readonly sockets: SentinelSockets;
  /** Connecting to and hearing from a sentinel; default 1000 ms. */
  readonly timeoutMs?: number;
}

/** How long events may keep coming in before the query they ask for is sent. */
const QUERY_DELAY_MS = 20;
const TICK_MS = 1000;
/** Ticks between two queries when nothing is changing (sentinel itself refreshes a replica's
 *  state every 10 s). */
const REFRESH_TICKS = 10;
/** A failover with no +switch-master this long after sentinel's failover-timeout is given up. */
const FAILOVER_GRACE_MS = 5000;

class MasterState {
  master: Instance | null = null;
  /** Config epoch of the master as last answered. */
  epoch = -1;
  /** `master` came from a +switch-master not yet confirmed by an answer: an answer naming
   *  another master is older than the event when it was asked before it, or has no newer epoch
   *  (the failover leader reports the new epoch with the old address until it switches). */
  pinned = false;
  replicas: Instance[] = [];
  /** Sentinels running a failover of it (by address), and when each was first seen doing so. */
  readonly failovers = new Map<string, number>();
  failoverTimeout = 180000;
  /** When `master` last changed (performance.now()): answers asked before then say nothing
   *  about failovers. */
  movedAt = -Infinity;
  /** Replicas reachable but not yet replicating from the master (asked about every second). */
  settling = 0;

  constructor(readonly name: string) {}
}

export class SentinelClient {
  private readonly links: SentinelLink[];
  private readonly masters = new Map<string, MasterState>();
  private readonly timeoutMs: number;
  private queryTimer: ReturnType<typeof setTimeout> | null = null;
  private querying = false;
  private queryAgain = false;
  private ticker: ReturnType<typeof setInterval> | null = null;
  private ticks = 0;
  private stopped = true;
  /** Logged once until a sentinel is reachable again. */
  private allLostLogged = false;
  /** "sentinel\nmaster" pairs already logged as unknown to that sentinel. */
  private readonly unknownLogged = new Set<string>();

  constructor(private readonly opts: SentinelClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? 1000;
    for (const name of opts.names) this.masters.set(name, new MasterState(name));
    const handlers = {
      subscribed: (link: SentinelLink) => this.onSubscribed(link),
      event: (link: SentinelLink, event: SentinelEvent) => this.onEvent(link, event),
      lost: (link: SentinelLink, reason: string, first: boolean) => this.onLost(link, reason, first),
    };
    this.links = opts.sentinels.map((addr) => new SentinelLink(addr, opts.auth, handlers, this.timeoutMs, opts.framer, opts.sockets));
  }

  /** Before start(), when this client replaces `previous` (a reload). A master of `same` (its
   *  server kept its name and address) followed by both through a sentinel in common is the same
   *  master group: where `previous` knew it to be stands, whichever sentinel said so (one this
   *  client no longer follows included), as after a +switch-master, until an answer names it
   *  or is newer (its config epoch); the other masters are where the first answers say. The
   *  failovers `previous` saw under way, by the sentinels both follow, go on here until a
   *  sentinel ends them. Returns the names of the masters still failing over. */
  inherit(previous: SentinelClient, same: ReadonlySet<string>): string[] {
    const followed = new Set(this.links.map((l) => l.addr.spec));
    const shared = previous.links.some((l) => followed.has(l.addr.spec));
    const names: string[] = [];
    for (const m of this.masters.values()) {
      const old = previous.masters.get(m.name);
      if (old === undefined) continue;
      if (shared && same.has(m.name) && old.master !== null) this.keepMaster(m, old);
      for (const [sentinel, since] of old.failovers) if (followed.has(sentinel)) m.failovers.set(sentinel, since);
      m.failoverTimeout = old.failoverTimeout;
      if (m.failovers.size > 0) names.push(m.name);
    }
    return names;
  }

  /** m is where `old` knew it to be: pinned there (its replicas are asked about again). */
  private keepMaster(m: MasterState, old: MasterState): void {
    m.master = old.master;
    m.epoch = old.epoch;
    m.movedAt = old.movedAt;
    m.pinned = true;
    log.notice(`${this.opts.label}: ${m.name} master stays ${instanceText(m.master!)} (config epoch ${m.epoch}) until a sentinel names it or a newer one`);
  }

  start(): void {
    this.stopped = false;
    for (const link of this.links) link.start();
    this.ticker = setInterval(() => this.tick(), TICK_MS);
    this.scheduleQuery();
  }

  stop(): void {
    this.stopped = true;
    for (const link of this.links) link.stop();
    if (this.ticker !== null) clearInterval(this.ticker);
    if (this.queryTimer !== null) clearTimeout(this.queryTimer);
    this.ticker = this.queryTimer = null;
  }

  /** What is known of master `name` now, or null for a name not followed. */
  topology(name: string): MasterTopology | null {
    const m = this.masters.get(name);
    if (m === undefined) return null;
    return { name, master: m.master, replicas: [...m.replicas], failingOver: m.failovers.size > 0 };
  }

  /** Sentinels whose events are followed now. */
  get reachable(): number {
    return this.links.filter((l) => l.subscribed).length;
  }

  /** Ask the sentinels again soon (e.g. a master answered -READONLY: it was demoted). */
  requery(reason: string): void {
    log.info(`${this.opts.label}: asking the sentinels again (${reason})`);
    this.scheduleQuery();
  }

  // ---- events ----

  private onSubscribed(link: SentinelLink): void {
    this.allLostLogged = false;
    log.notice(`${this.opts.label}: following sentinel ${link.addr.spec}`);
    this.scheduleQuery();
  }

  private onLost(link: SentinelLink, reason: string, first: boolean): void {
    if (first) log.warn(`${this.opts.label}: sentinel ${link.addr.spec} unreachable: ${reason}`);
    if (this.reachable > 0 || this.allLostLogged) return;
    this.allLostLogged = true;
    const known = [...this.masters.values()].map((m) => `${m.name} at ${m.master === null ? "(unknown)" : instanceText(m.master)}`);
    log.warn(`${this.opts.label}: no sentinel reachable; keeping the last known masters: ${known.join(", ")}`);
  }

  private onEvent(link: SentinelLink, event: SentinelEvent): void {
    const m = this.masters.get(event.master);
    if (m === undefined || this.stopped) return;
    const source = `${event.channel} from sentinel ${link.addr.spec}`;
    switch (event.meaning) {
      case "switch-master":
        // It names the old master: a failover ends with it even before the first answer.
        this.moveMaster(m, event.to!, source, m.master ?? event.instance);
        m.pinned = true;
        // Replicas are being pointed at the new master now: ask which are ready.
        this.scheduleQuery();
        return;
      case "failover":
        this.failoverStarted(m, link.addr.spec, source);
        return;
      case "abort":
        this.failoverEnded(m, link.addr.spec, source);
        return;
      case "down":
        if (event.type === "master") this.emit({ kind: "master-down", name: m.name, source });
        else if (event.type === "slave") this.dropReplica(m, event.instance, source);
        return;
      case "up":
        if (event.type === "master") this.emit({ kind: "master-up", name: m.name, source });
        else if (event.type === "slave") this.scheduleQuery();
        return;
      case "replicas":
        // An instance that calls itself master is no replica to read from, at once.
        if (event.channel === "-role-change") this.dropReplica(m, event.instance, source);
        this.scheduleQuery();
        return;
    }
  }

  /** The master is at `to` now, moved from `from` (null: the first answer, which only says
   *  where it is, so the failovers seen before it go on). */
  private moveMaster(m: MasterState, to: Instance, source: string, from: Instance | null = m.master): void {
    const failingOver = from !== null && m.failovers.size > 0;
    if (from !== null) m.failovers.clear();
    if (sameInstance(m.master, to)) {
      // Followed already; a failover announced since (a late event) ends here all the same,
      // or the writes it holds would wait for an end nothing else announces.
      if (failingOver) {
        log.notice(`${this.opts.label}: ${m.name} failover over, writes already go to ${instanceText(to)} (${source})`);
        this.emit({ kind: "failover-ended", name: m.name, source });
      }
      return;
    }
    m.master = to;
    m.movedAt = performance.now();
    // The replicas followed the old master; they are asked about again.
    const dropped = m.replicas;
    m.replicas = [];
    log.notice(`${this.opts.label}: ${m.name} master ${from === null ? "(unknown)" : instanceText(from)} -> ${instanceText(to)} (${source})`);
    this.emit({ kind: "master-moved", name: m.name, from, to, source });
    for (const replica of dropped) this.emit({ kind: "replica-down", name: m.name, replica, source });
  }

  private failoverStarted(m: MasterState, sentinel: string, source: string): void {
    if (m.failovers.has(sentinel)) return;
    m.failovers.set(sentinel, performance.now());
    if (m.failovers.size > 1) return;
    log.notice(`${this.opts.label}: ${m.name} failover started (${source})`);
    this.emit({ kind: "failover-started", name: m.name, source });
  }

  private failoverEnded(m: MasterState, sentinel: string, source: string): void {
    if (!m.failovers.delete(sentinel) || m.failovers.size > 0) return;
    log.notice(`${this.opts.label}: ${m.name} failover aborted, master stays ${m.master === null ? "(unknown)" : instanceText(m.master)} (${source})`);
    this.emit({ kind: "failover-ended", name: m.name, source });
  }

  private dropReplica(m: MasterState, replica: Instance, source: string): void {
    const i = m.replicas.findIndex((r) => sameInstance(r, replica));
    if (i < 0) return;
    m.replicas.splice(i, 1);
    this.emit({ kind: "replica-down", name: m.name, replica, source });
  }

  private emit(change: TopologyChange): void {
    try {
      this.opts.onChange(change);
    } catch (error) {
      log.error(`${this.opts.label}: applying ${change.kind} of ${change.name} failed: ${(error as Error).stack ?? error}`);
    }
  }

  // ---- queries ----

  private scheduleQuery(): void {
    if (this.stopped || this.queryTimer !== null) return;
    this.queryTimer = setTimeout(() => {
      this.queryTimer = null;
      void this.query();
    }, QUERY_DELAY_MS);
  }

  private async query(): Promise<void> {
    if (this.querying) {
      this.queryAgain = true;
      return;
    }
    this.querying = true;
    const sent = performance.now();
    const names = [...this.masters.keys()];
    const results = await Promise.allSettled(
      this.links.map((l) => askSentinel(l.addr, this.opts.auth, names, this.timeoutMs, this.opts.framer, this.opts.sockets)),
    );
    this.querying = false;
    if (this.stopped) return;
    const answers: { sentinel: string; answer: SentinelAnswer }[] = [];
    results.forEach((r, i) => {
      const spec = this.links[i]!.addr.spec;
      if (r.status === "fulfilled") answers.push({ sentinel: spec, answer: r.value });
      else log.info(`${this.opts.label}: sentinel ${spec} did not answer: ${(r.reason as Error).message}`);
    });
    if (answers.length === 0) {
      log.warn(`${this.opts.label}: no sentinel answered; keeping the last known topology`);
    }
    for (const m of this.masters.values()) this.applyAnswers(m, answers, sent);
    if (this.queryAgain) {
      this.queryAgain = false;
      this.scheduleQuery();
    }
  }

  /** Weigh the sentinels' answers about one master (asked at `sent`) and apply the newest. */
  private applyAnswers(m: MasterState, answers: readonly { sentinel: string; answer: SentinelAnswer }[], sent: number): void {
    let best: MasterView | null = null;
    for (const { sentinel, answer } of answers) {
      const view = answer.get(m.name);
      if (typeof view === "string") {
        const key = `${sentinel}\n${m.name}`;
        if (!this.unknownLogged.has(key)) log.warn(`${this.opts.label}: sentinel ${sentinel} knows no master ${m.name}: ${view}`);
        this.unknownLogged.add(key);
        continue;
      }
      this.unknownLogged.delete(`${sentinel}\n${m.name}`);
      if (view === undefined) continue;
      if (best === null || view.epoch > best.epoch) best = view;
    }
    if (best === null) return;
    // Asked before the switch: before the first answer there is no epoch to weigh it by.
    if (m.pinned && !sameInstance(best.master, m.master) && (best.epoch <= m.epoch || sent < m.movedAt)) {
      log.info(`${this.opts.label}: ${m.name}: sentinel answer naming ${instanceText(best.master)} (config epoch ${best.epoch}) is older than master ${instanceText(m.master!)}: kept`);
      return;
    }
    m.pinned = false;
    const source = "sentinel query";
    if (!sameInstance(m.master, best.master)) this.moveMaster(m, best.master, source);
    m.epoch = best.epoch;
    m.failoverTimeout = best.failoverTimeout;
    // Failovers: a sentinel that says it runs one counts; one that no longer does (asked after
    // it was seen doing so) is done with it.
    for (const { sentinel, answer } of answers) {
      const view = answer.get(m.name);
      if (view === undefined || typeof view === "string" || sent < m.movedAt) continue;
      if (view.failingOver) this.failoverStarted(m, sentinel, source);
      else if (!view.failingOver && (m.failovers.get(sentinel) ?? Infinity) < sent) this.failoverEnded(m, sentinel, source);
    }
    m.settling = best.replicas.filter((r) => r.settling).length;
    this.applyReplicas(m, best.replicas.filter((r) => r.usable), source);
  }

  private applyReplicas(m: MasterState, usable: readonly Instance[], source: string): void {
    const before = m.replicas;
    m.replicas = usable.map((r) => ({ host: r.host, port: r.port }));
    for (const r of before) {
      if (!m.replicas.some((u) => sameInstance(u, r))) this.emit({ kind: "replica-down", name: m.name, replica: r, source });
    }
    for (const r of m.replicas) {
      if (!before.some((b) => sameInstance(b, r))) this.emit({ kind: "replica-up", name: m.name, replica: r, source });
    }
  }

  /** Ask every 10 s; every second while a failover runs (an abort or a switch may have been
   *  missed) or a replica is settling. Give up on a failover that outlived sentinel's own
   *  failover-timeout. */
  private tick(): void {
    const now = performance.now();
    let running = ++this.ticks % REFRESH_TICKS === 0;
    for (const m of this.masters.values()) {
      for (const [sentinel, since] of m.failovers) {
        if (now - since > m.failoverTimeout + FAILOVER_GRACE_MS) {
          this.failoverEnded(m, sentinel, `no +switch-master within failover-timeout from sentinel ${sentinel}`);
        }
      }
      if (m.failovers.size > 0 || m.settling > 0) running = true;
    }
    if (running) this.scheduleQuery();
  }
}
