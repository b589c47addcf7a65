// A server pool as it runs: its config, codec, servers, router, clients and listener, and its
// life (listen, preconnect, close, retire). What happens to requests is in dispatch.ts and
// deliver.ts, server health in health.ts, a hot reload in reload.ts, following sentinels in
// failover.ts.

import type { Address, PoolConfig, ServerConfig } from "../conf/types.ts";
import { bufferPool } from "../lib/bytes.ts";
import { LOG_INFO, log } from "../log.ts";
import type { Codec, PoolView } from "../proto/codec.ts";
import { ClusterRouting } from "../redis-cluster/routing.ts";
import { ResendQueues } from "./cluster-resend.ts";
import type { SlotMap } from "../redis-cluster/slot-map.ts";
import { SLOT_COUNT } from "../route/key-slot.ts";
import { createRouter, type KeyRouter } from "../route/router.ts";
import { newClusterStats, ServerStats, type PoolStats, type ProxyStats } from "../stats/store.ts";
import { P } from "../stats/table.ts";
import { poolTls, type PoolTls } from "../tls/context.ts";
import type { ClientConn } from "./client.ts";
import { peerOf } from "./errors.ts";
import { PoolFailover, type Reloaded } from "./failover.ts";
import { bind, Listener, type Bound } from "./listener.ts";
import { poolView } from "./planned.ts";
import { Server } from "./server.ts";
import type { ServerConn } from "./server-conn.ts";
import { plainSockets, type SocketFactory } from "./sockets.ts";
import { SplitPlan } from "./split.ts";
import { tlsSockets } from "./tls-sockets.ts";

/** Proxy-made error replies kept per pool (a handful of distinct reasons). */
const MAX_ERROR_REPLIES = 64;

/** A cluster node's address, as a server's. */
const nodeAddress = (host: string, port: number): Address => ({ spec: `${host}:${port}`, host, port, unix: false, perm: null });

export class Pool {
  /** Replaced as a whole by a reload; in-flight messages keep their servers. */
  cfg: PoolConfig;
  servers: Server[] = [];
  /** The ring; null for a redis_cluster pool, which routes by `cluster`. */
  router: KeyRouter | null;
  /** distribution redis_cluster: slots, the cluster's map and its redirections; the pool's
   *  servers are the cluster's nodes, added as the map names them (serverAt). */
  readonly cluster: ClusterRouting | null;
  /** redis_cluster: requests waiting to be sent again after their node was lost. */
  readonly resends: ResendQueues | null;
  readonly clients = new Set<ClientConn>();
  /** Connections taken out of service that still wait for replies (ServerConn.retire). */
  readonly retiringConns = new Set<ServerConn>();
  /** Split planning, reused by every split request of the pool (dispatch.ts). */
  splitPlan: SplitPlan;
  /** The pool as its codec's planner sees it (planned.ts). */
  readonly view: PoolView = poolView(this);
  private listener: Listener | null = null;
  private readonly errorReplies = new Map<string, Uint8Array>();
  /** redis_cluster (slotMaster): the server of each shard of the map shardMastersOf. */
  private shardMasters: Server[] = [];
  private shardMastersOf: SlotMap | null = null;
  /** Running average of the replies' sizes, counted for each request in flight by the buffer
   *  budget and the per-client bounds. Until replies come it is an mbuf's size (-m), so a
   *  client's first pipeline is bounded too. */
  replyEstimate = bufferPool.size;
  /** TLS for new clients and new server connections (replaced by a reload: rotation). */
  tls: PoolTls;
  /** Where listeners and server connections come from: `base`, with the pool's TLS. */
  readonly sockets: SocketFactory;
  /** Following the pool's sentinels (pool key `sentinels`), else null. */
  failover: PoolFailover | null = null;

  constructor(
    cfg: PoolConfig,
    readonly codec: Codec,
    readonly stats: PoolStats,
    readonly proxyStats: ProxyStats,
    base: SocketFactory = plainSockets,
  ) {
    this.cfg = cfg;
    this.tls = poolTls(cfg);
    this.sockets = tlsSockets(base, this);
    const clustered = cfg.distribution === "redis_cluster";
    this.router = clustered ? null : createRouter(cfg);
    this.splitPlan = new SplitPlan(clustered ? SLOT_COUNT : cfg.servers.length);
    // The slot map's own connections come from the pool's sockets (TLS with server_tls).
    this.cluster = clustered
      ? new ClusterRouting(
          cfg,
          (stats.cluster ??= newClusterStats()),
          (node, handlers, data) => this.sockets.connect(nodeAddress(node.host, node.port), handlers, data),
          (map) => this.mapped(map),
        )
      : null;
    this.resends = clustered ? new ResendQueues() : null;
    this.install(
      cfg,
      this.router,
      cfg.servers.map((s, i) => new Server(this, i, s, stats.servers[i]!)),
    );
    this.follow(null);
  }

  /** Run on `cfg` with these servers (in cfg.servers order) and this router (built on cfg, every
   *  server live): at start and in a reload (which then calls follow()). */
  install(cfg: PoolConfig, router: KeyRouter | null, servers: Server[]): void {
    this.cfg = cfg;
    this.stats.extended = cfg.tls !== null || cfg.serverTls !== null || cfg.clientMaxRequest > 0 || cfg.clientIdleTimeout !== null;
    this.servers = servers;
    this.stats.servers = servers.map((s) => s.stats);
    this.router = router;
    // A cluster's fragments are planned by slot (redis refuses keys of two slots in one command).
    const groups = this.cluster !== null ? SLOT_COUNT : servers.length;
    if (this.splitPlan.fragServer.length !== groups) this.splitPlan = new SplitPlan(groups);
  }

  /** redis_cluster: the server of the node at host:port, added the first time it is named. */
  serverAt(host: string, port: number): Server {
    for (const server of this.servers) if (server.addr.port === port && server.addr.host === host) return server;
    const address = `${host}:${port}`;
    const cfg: ServerConfig = {
      addr: nodeAddress(host, port),
      weight: 1,
      name: null,
      effectiveName: address,
      statsName: address,
      pname: `${address}:1`,
    };
    const server = new Server(this, this.servers.length, cfg, new ServerStats(address));
    this.servers.push(server);
    this.stats.servers.push(server.stats);
    log.notice(`pool '${this.cfg.name}': cluster node ${address} added`);
    return server;
  }

  /** redis_cluster: the server of the master serving `slot`; null before the first map, or
   *  when the slot is uncovered. A typed-array lookup and an array index per request: the
   *  servers of the map's shards are found by address once per map (a MOVED may add a shard). */
  slotMaster(slot: number): Server | null {
    const map = this.cluster!.topology.map;
    if (map === null) return null;
    const shard = map.shardOf(slot);
    if (shard < 0) return null;
    if (map !== this.shardMastersOf) {
      this.shardMastersOf = map;
      this.shardMasters = [];
    }
    const known = this.shardMasters[shard];
    if (known !== undefined) return known;
    const node = map.shards[shard]!.master!;
    return (this.shardMasters[shard] = this.serverAt(node.host, node.port));
  }

  /** redis_cluster: a new slot map. Every master gets its server (and stats) at once, connected
   *  with preconnect; with read_from, so do its replicas, which become the master's
   *  Server.replicas (reads go to them as in a pool with sentinels, dispatch.ts destination). */
  private mapped(map: SlotMap): void {
    const reads = this.cfg.readFrom !== "master";
    const masters = new Set<Server>();
    for (const shard of map.shards) {
      const master = this.serverAt(shard.master!.host, shard.master!.port);
      masters.add(master);
      master.replicas = reads ? shard.replicas.map((r) => this.serverAt(r.host, r.port)) : [];
      if (this.cfg.preconnect) for (const s of [master, ...master.replicas]) s.preconnect();
    }
    // A node that is no master now (demoted, or gone) serves no reads for anyone.
    for (const s of this.servers) if (!masters.has(s)) s.replicas = [];
  }

  /** (Re)start following the sentinels of the config, if it has any: at start, and anew at the
   *  end of a reload (`reloaded`; sentinels or servers may have changed), which hands the
   *  failovers under way and the requests waiting for them to the new follower; servers that
   *  stay keep their address meanwhile. */
  follow(reloaded: Reloaded | null): void {
    const previous = this.failover;
    this.failover = null;
    // A cluster's replicas come with its slot map (mapped), and are servers of the pool.
    if (this.cluster !== null) return;
    for (const s of this.servers) {
      for (const r of s.replicas) r.retire();
      s.replicas = [];
    }
    if (this.cfg.sentinels.length > 0) this.failover = new PoolFailover(this);
    if (previous !== null) previous.handOver(this.failover, reloaded!);
    this.failover?.start();
  }

  // ---- listening ----

  listen(reusePort: boolean): void {
    this.serve(bind(this, this.cfg, reusePort));
  }

  /** Serve clients on a bound address (replacing the listener, if any: its clients stay). */
  serve(bound: Bound | null): void {
    const previous = this.listener;
    this.listener = null;
    // The new listener may have re-created the same path (a changed perm).
    if (previous !== null) previous.stop(previous.addr.host !== bound?.addr.host);
    if (bound !== null) this.listener = new Listener(this, bound);
  }

  get listening(): boolean {
    return this.listener !== null;
  }

  /** Stop accepting new clients (drain, shutdown, a pool a reload removed). */
  stopListening(): void {
    this.serve(null);
  }

  preconnect(): void {
    for (const s of this.servers) s.preconnect();
  }

  /** A proxy-made error reply for `reason`, in the pool's protocol. */
  errorReply(reason: string): Uint8Array {
    let r = this.errorReplies.get(reason);
    if (r === undefined) {
      r = this.codec.errorReply(reason);
      if (this.errorReplies.size < MAX_ERROR_REPLIES) this.errorReplies.set(reason, r);
    }
    return r;
  }

  /** Clients idle (nothing read, nothing owed) for client_idle_timeout ms are closed; as with
   *  redis's `timeout`, not those subscribed or blocked (they wait for the servers). */
  closeIdle(now: number): void {
    const limit = this.cfg.clientIdleTimeout;
    if (limit === null) return;
    let closed = 0;
    let first = "";
    for (const c of this.clients) {
      if (c.closing || c.queued !== 0 || c.pendingOut !== 0 || now - c.lastRead < limit) continue;
      if (c.own !== null && c.own.waiting) continue;
      this.stats.counters[P.client_idle_closed]!++;
      if (closed++ === 0) first = peerOf(c.socket);
      if (log.level >= LOG_INFO) log.info(`client ${peerOf(c.socket)} of pool '${this.cfg.name}' idle for ${limit} ms: closed`);
      c.closing = true;
      c.socket.end();
    }
    // One line per sweep at the default level (thousands of idle clients would flood it).
    if (closed > 0) log.notice(`pool '${this.cfg.name}': ${closed} client(s) idle for ${limit} ms closed (client_idle_timeout), ${first} first`);
  }

  // ---- the end ----

  /** Requests still waiting for replies, over all clients; a reply ready but not yet written
   *  (coalesced until the end of the turn, or held back by a full socket) counts too, so a
   *  drain or retire never closes a client before its last reply is out. */
  get inFlight(): number {
    let n = 0;
    for (const c of this.clients) n += c.queued + (c.pendingOut > 0 ? 1 : 0);
    return n;
  }

  close(): void {
    this.cluster?.stop();
    this.stopListening();
    this.failover?.stop();
    this.failover = null;
    // Requests in flight fail first, so that their clients get the errors before the end.
    for (const s of this.servers) {
      s.closeAll("Connection closed by proxy");
      for (const r of s.replicas) r.closeAll("Connection closed by proxy");
    }
    // Nothing checks their timeouts once the pool is gone.
    for (const c of [...this.retiringConns]) c.close("Connection closed by proxy");
    for (const c of [...this.clients]) c.finish();
  }

  /** Removed by a reload: stop accepting, let in-flight requests finish (at most
   *  `timeoutMs`; the proxy's ticker still times them out meanwhile), then close clients and
   *  servers and call `closed`. */
  retire(timeoutMs: number, closed: () => void): void {
    this.stopListening();
    const deadline = performance.now() + timeoutMs;
    const check = setInterval(() => {
      if (this.inFlight > 0 && performance.now() < deadline) return;
      clearInterval(check);
      this.close();
      closed();
    }, 20);
  }
}
