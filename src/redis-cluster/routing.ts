// What the core asks of a redis_cluster pool's routing: a key's slot (WASM), the current slot
// map (topology.map, kept current by ClusterTopology; Pool.slotMaster reads a slot's master
// from it), what to do with a node's reply that redirects its request (MOVED: the map
// re-pointed at once and reloaded, then sent to the new owner; ASK: sent to the named node after
// ASKING; TRYAGAIN, CLUSTERDOWN: sent again after a pause, within the request's time), and the
// CLUSTER replies the pool makes itself for cluster-aware clients (its INFO is every master's,
// merged, with cluster_enabled:1; READONLY and READWRITE are the handshake's, as in every redis
// pool). The core maps the nodes named here to its servers by "host:port".

import type { PoolConfig } from "../conf/types.ts";
import type { Req, Session } from "../proto/codec.ts";
import type { RedisSession } from "../proto/redis/session.ts";
import { clusterReply, selfId, type SelfNode } from "../proto/redis/cluster-local.ts";
import type { ClusterNode } from "../proto/redis/cluster-topology.ts";
import { Redirect, redirectOf, redirectTarget } from "../proto/redis/redirect.ts";
import { KeySlots, SLOT_COUNT } from "../route/key-slot.ts";
import { C } from "../stats/table.ts";
import type { SlotMap } from "./slot-map.ts";
import { ClusterTopology, type TopologyOptions } from "./topology.ts";
import type { NodeConnect } from "./topology-loader.ts";

/** How long a node may take to connect and answer a topology query. */
const LOAD_TIMEOUT_MS = 2000;
/** A request is sent again at most this often (a slot moving twice while one request is
 *  redirected is rare; more is a loop, or a multi-key request bounced between a migration's two
 *  nodes, ASK then TRYAGAIN, for as long as the migration lasts). */
const MAX_RESENDS = 16;
/** The reason a request gets when a MOVED or ASK cannot be followed (Resend.Refuse). */
export const TOO_MANY_REDIRECTIONS = "too many cluster redirections";
/** TRYAGAIN / CLUSTERDOWN: the first retry waits this long, each next twice as long, up to
 *  RETRY_MAX_MS, while the request's time allows (the pool's timeout, else RETRY_WINDOW_MS,
 *  beyond a blocking command's own wait). */
const RETRY_FIRST_MS = 5;
const RETRY_MAX_MS = 200;
const RETRY_WINDOW_MS = 2000;

const encoder = new TextEncoder();

/** How a redirected request goes again. */
export const Resend = {
  /** To host:port now (MOVED). */
  Now: 0,
  /** To host:port now, after ASKING (ASK). */
  Asking: 1,
  /** To the slot's master after delayMs (TRYAGAIN, CLUSTERDOWN). */
  Later: 2,
  /** Not followed (sent again too often): the client gets the proxy's TOO_MANY_REDIRECTIONS,
   *  never the node's MOVED or ASK, which would send it past the proxy. */
  Refuse: 3,
} as const;
export type Resend = (typeof Resend)[keyof typeof Resend];

export interface Redirection {
  readonly how: Resend;
  /** Resend.Now / Asking: where. */
  readonly host: string;
  readonly port: number;
  /** Resend.Later: after how long. */
  readonly delayMs: number;
}

const REFUSE: Redirection = { how: Resend.Refuse, host: "", port: 0, delayMs: 0 };

/** What a request that went to the cluster carries, for redirection(). */
export interface SentRequest {
  /** Its slot. */
  readonly slot: number;
  /** Times it was sent again so far. */
  readonly resends: number;
  /** performance.now() when parsed. */
  readonly t0: number;
  /** How much longer than the pool's timeout it may take (a blocking command's own wait,
   *  Msg.extraWait): a BLPOP that redis lets go with CLUSTERDOWN after waiting a minute is
   *  retried as one that just came. */
  readonly extraWait: number;
}

export class ClusterRouting {
  private readonly keySlots = new KeySlots();
  readonly topology: ClusterTopology;
  /** ASKING, sent before a request an ASK reply sends to another node. */
  readonly asking = encoder.encode("*1\r\n$6\r\nASKING\r\n");
  /** redis's own reply to keys of several slots in one command that cannot be split. */
  readonly crossSlot = encoder.encode("-CROSSSLOT Keys in request don't hash to the same slot\r\n");

  constructor(
    private cfg: PoolConfig,
    /** The pool's CLUSTER_STATS (stats/table.ts): the map in use, loads, redirections. */
    private readonly stats: Float64Array,
    /** How the map's own connections are opened: the pool's socket factory (server_tls). */
    private readonly connect: NodeConnect,
    /** Called with every new map. */
    onMap: (map: SlotMap) => void,
  ) {
    this.topology = new ClusterTopology(
      this.topologyOptions(cfg),
      (map) => {
        stats[C.cluster_map_loaded] = 1;
        stats[C.cluster_epoch] = map.epoch;
        stats[C.cluster_uncovered_slots] = map.uncovered();
        stats[C.cluster_map_loads]!++;
        onMap(map);
      },
      () => stats[C.cluster_map_load_failures]!++,
    );
  }

  private topologyOptions(cfg: PoolConfig): TopologyOptions {
    return {
      pool: cfg.name,
      seeds: cfg.servers.map((s) => ({ host: s.addr.host, port: s.addr.port })),
      auth: cfg.redisAuth,
      timeoutMs: LOAD_TIMEOUT_MS,
      connect: this.connect,
      tls: cfg.serverTls !== null,
    };
  }

  /** A reload: new seeds, password, name, server_tls. */
  reconfigure(cfg: PoolConfig): void {
    this.cfg = cfg;
    this.topology.reconfigure(this.topologyOptions(cfg));
  }

  /** The slot of the key buf[start, end). */
  slotOf(buf: Uint8Array, start: number, end: number): number {
    return this.keySlots.slot(buf, start, end);
  }

  /** Every master of the map (Route.All: INFO); none before the first map. */
  masters(): ClusterNode[] {
    return this.topology.map?.shards.map((s) => s.master!) ?? [];
  }

  /** Any master (commands without a key). */
  anyMaster(): ClusterNode | null {
    return this.topology.map?.shards[0]?.master ?? null;
  }

  /** Why `slot` has no master, as an error reason. */
  unserved(slot: number): string {
    return this.topology.map === null ? "cluster slot map not loaded yet" : `slot ${slot} is not served`;
  }

  /** What to do with the reply buf[start, end) a node at `fromHost` gave to `sent`: null when it
   *  is the client's reply (not a redirection, or a TRYAGAIN/CLUSTERDOWN sent again too often or
   *  out of time). `movedOnly`: only a MOVED is followed (a request on a client's subscriber
   *  connection: redis asks none of those again, and never ASKs for a shard channel). */
  redirection(buf: Uint8Array, start: number, end: number, fromHost: string, sent: SentRequest, movedOnly = false): Redirection | null {
    const kind = redirectOf(buf, start, end);
    if (kind === Redirect.None || (movedOnly && kind !== Redirect.Moved)) return null;
    if (kind === Redirect.Moved || kind === Redirect.Ask) {
      if (sent.resends >= MAX_RESENDS) return REFUSE;
      const target = redirectTarget(buf, start, end);
      if (target === null) return null;
      const host = target.host ?? fromHost;
      if (kind === Redirect.Moved) {
        this.stats[C.cluster_moved]!++;
        // Routed there from now on, and the whole map reloaded: a MOVED rarely comes alone.
        this.topology.map?.moved(target.slot, host, target.port);
        this.topology.refresh();
        return { how: Resend.Now, host, port: target.port, delayMs: 0 };
      }
      this.stats[C.cluster_asked]!++;
      return { how: Resend.Asking, host, port: target.port, delayMs: 0 };
    }
    if (sent.resends >= MAX_RESENDS) return null;
    const delayMs = Math.min(RETRY_FIRST_MS << sent.resends, RETRY_MAX_MS);
    if (performance.now() + delayMs - sent.t0 > (this.cfg.timeout ?? RETRY_WINDOW_MS) + sent.extraWait) return null;
    this.stats[C.cluster_retried]!++;
    // CLUSTERDOWN: a failover is under way; its end changes the map.
    if (kind === Redirect.ClusterDown) this.topology.refresh();
    return { how: Resend.Later, host: "", port: 0, delayMs };
  }

  /** Is buf[start, end) a TRYAGAIN or CLUSTERDOWN (sent again while the request's bound
   *  allows)? */
  retryable(buf: Uint8Array, start: number, end: number): boolean {
    const kind = redirectOf(buf, start, end);
    return kind === Redirect.TryAgain || kind === Redirect.ClusterDown;
  }

  /** A request whose connection to a node was lost, to be sent again (core/cluster-resend.ts):
   *  how long to wait first (half the time it has waited so far, 5 to 200 ms, so a failover's
   *  map reload has time to come), or -1 when that would leave it less than a quarter of its
   *  time (the pool's timeout, else 2 s) for its reply. */
  lostDelay(sent: SentRequest): number {
    const now = performance.now();
    const delayMs = Math.min(Math.max(RETRY_FIRST_MS, (now - sent.t0) / 2), RETRY_MAX_MS);
    if (now + delayMs - sent.t0 > ((this.cfg.timeout ?? RETRY_WINDOW_MS) * 3) / 4) return -1;
    this.stats[C.cluster_resent_lost]!++;
    return delayMs;
  }

  /** A connection to a node failed: how a failover starts, so the map may change. */
  nodeFailed(): void {
    this.topology.refresh();
  }

  /** The pool's own reply to CLUSTER (null for other commands), for a client that reached the
   *  proxy at host:port, in its protocol (a redis_cluster pool is a redis pool: its sessions
   *  are RedisSessions). */
  local(buf: Uint8Array, req: Req, session: Session, host: string, port: number): Uint8Array | null {
    if (req.command?.name !== "cluster") return null;
    const proto = (session as RedisSession).proto;
    return clusterReply(buf, req.argStart, req.argEnd, req.nargs, this.self(host, port), (b, s, e) => this.slotOf(b, s, e), proto);
  }

  private self(host: string, port: number): SelfNode {
    const map = this.topology.map;
    return {
      id: selfId(this.cfg.name, host, port),
      host,
      port,
      epoch: map?.epoch ?? -1,
      uncovered: map === null ? SLOT_COUNT : map.uncovered(),
    };
  }

  stop(): void {
    this.topology.stop();
  }
}
