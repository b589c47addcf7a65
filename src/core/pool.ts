// A server pool: its listener, its clients, its servers and the routing between them. This is
// where a parsed request becomes a forwarded message, a set of fragments, or a local reply.

import { chmodSync, unlinkSync } from "node:fs";
import type { Socket, SocketListener } from "bun";
import type { PoolConfig, ServerConfig } from "../conf/types.ts";
import { LOG_INFO, log } from "../log.ts";
import { Route, type Codec, type Req } from "../proto/codec.ts";
import { Router } from "../route/router.ts";
import { ServerStats, type PoolStats, type ProxyStats } from "../stats/store.ts";
import { P, S } from "../stats/table.ts";
import { ascii, ByteWriter } from "./bytes.ts";
import { ClientConn } from "./client.ts";
import { fdBudget } from "./fdlimit.ts";
import { MSG_CLOSE, MSG_JOINED, MSG_SILENT, Msg, SplitState } from "./msg.ts";
import { Server, type ServerConn } from "./server.ts";

const CRLF = "\r\n";

/** Merged replies that must wait for earlier ones are built here, then copied out (take()). A
 *  buffer grown past MERGE_SCRATCH_KEEP by a huge multi-get is dropped after use. */
let mergeScratch = new ByteWriter(4096);
const MERGE_SCRATCH_KEEP = 1 << 20;
const NOTHING = new Uint8Array(0);

function removeSocketFile(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // no such file
  }
}

/** A server stays the same server across a reload when its name and address do. */
function serverIdentity(s: ServerConfig): string {
  return `${s.effectiveName}\n${s.addr.spec}`;
}

export class Pool {
  /** Replaced as a whole by reconfigure() (hot reload); in-flight messages keep their servers. */
  cfg: PoolConfig;
  servers: Server[];
  router: Router;
  readonly clients = new Set<ClientConn>();
  /** Connections a reload took out of service that still wait for replies (ServerConn.retire). */
  readonly retiringConns = new Set<ServerConn>();
  private listener: SocketListener<ClientConn> | null = null;
  private authBytes: Uint8Array | null;
  /** Proxy-made error replies by reason (a handful of distinct texts). */
  private readonly errorReplies = new Map<string, Uint8Array>();
  // Split scratch, reused by every request of the pool.
  private keyServer = new Int32Array(64);
  private fragKeys = new Int32Array(64);
  private fragOf: Int32Array;
  private fragServer: Int32Array;
  private fragStart: Int32Array;
  /** Retrievals may join the line of the one before them on a server connection (Codec.join,
   *  coalesce_gets). */
  private joining: boolean;

  constructor(
    cfg: PoolConfig,
    readonly codec: Codec,
    readonly stats: PoolStats,
    readonly proxyStats: ProxyStats,
  ) {
    this.cfg = cfg;
    this.router = new Router(cfg);
    this.servers = cfg.servers.map((s, i) => new Server(this, i, s, stats.servers[i]!));
    this.authBytes = cfg.redisAuth === null ? null : ascii(cfg.redisAuth);
    this.fragOf = new Int32Array(cfg.servers.length).fill(-1);
    this.fragServer = new Int32Array(cfg.servers.length);
    this.fragStart = new Int32Array(cfg.servers.length);
    this.joining = cfg.coalesceGets && codec.join !== null;
  }

  /** Hot reload: apply a changed config of this pool. Servers that stay (same name and address)
   *  keep their connections and stats; servers that left close once idle; the routing table is
   *  swapped at once. When the listen address changed, `listener` is the one bound on it by the
   *  caller (null: this process does not serve it); clients of the old one stay connected.
   *  Returns what changed, for the log. */
  reconfigure(cfg: PoolConfig, listener: SocketListener<ClientConn> | null): string[] {
    const old = this.cfg;
    // Before anything changes: the only step that can fail.
    const router = new Router(cfg);
    // First: servers read their connection count from it.
    this.cfg = cfg;
    const changes: string[] = [];
    const kept = new Map(this.servers.map((s) => [serverIdentity(s.cfg), s]));
    const servers = cfg.servers.map((sc, i) => {
      const id = serverIdentity(sc);
      const s = kept.get(id);
      if (s === undefined) {
        changes.push(`+server ${sc.pname}`);
        return new Server(this, i, sc, new ServerStats(sc.statsName));
      }
      kept.delete(id);
      if (s.cfg.weight !== sc.weight) changes.push(`~server ${sc.pname}`);
      s.reconfigure(i, sc);
      return s;
    });
    for (const s of kept.values()) {
      changes.push(`-server ${s.cfg.pname}`);
      s.retire();
    }
    if (old.redisDb !== cfg.redisDb || old.redisAuth !== cfg.redisAuth) {
      // Open connections were set up (AUTH, SELECT) for the old settings: later requests go to
      // new connections, the old ones close once they have answered theirs.
      for (const s of servers) s.retire();
    }
    // Without redis_auth nobody has to authenticate, clients that never did included.
    // Without redis_auth nobody has to authenticate, clients that never did included. A new
    // password applies to new connections: connected clients keep working (issue 10).
    if (cfg.redisAuth === null) for (const c of this.clients) c.authed = true;
    this.servers = servers;
    this.stats.servers = servers.map((s) => s.stats);
    this.router = router;
    this.fragOf = new Int32Array(servers.length).fill(-1);
    this.fragServer = new Int32Array(servers.length);
    this.fragStart = new Int32Array(servers.length);
    this.joining = cfg.coalesceGets && this.codec.join !== null;
    this.authBytes = cfg.redisAuth === null ? null : ascii(cfg.redisAuth);
    this.rebuild();
    for (const key of Object.keys(cfg) as (keyof PoolConfig)[]) {
      // Named as in the config file: redisAuth -> redis_auth.
      if (key !== "servers" && key !== "listen" && old[key] !== cfg[key]) {
        changes.push(key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
      }
    }
    if (old.listen.spec !== cfg.listen.spec) {
      const previous = this.listener;
      this.listener = null;
      if (previous !== null) {
        previous.stop(false);
        this.proxyStats.currConnections--;
        // The new listener may have re-created the same path (a changed perm).
        if (old.listen.unix && old.listen.host !== cfg.listen.host) removeSocketFile(old.listen.host);
      }
      if (listener !== null) this.adopt(listener);
      changes.push(`listen ${old.listen.spec} -> ${cfg.listen.spec}`);
    }
    if (cfg.preconnect) this.preconnect();
    return changes;
  }

  // ---- listening and clients ----

  listen(reusePort: boolean): void {
    this.adopt(this.bind(this.cfg, reusePort));
  }

  /** A listener on cfg.listen for this pool's clients (a reload binds the next address before
   *  it changes anything). Throws, naming the pool and the address, when it cannot bind. */
  bind(cfg: PoolConfig, reusePort: boolean): SocketListener<ClientConn> {
    const pool = this;
    const socket = {
      binaryType: "uint8array" as const,
      open(s: Socket<ClientConn>) {
        pool.accept(s);
      },
      data(s: Socket<ClientConn>, chunk: Uint8Array) {
        s.data?.onData(chunk);
      },
      drain(s: Socket<ClientConn>) {
        s.data?.onDrain();
      },
      // A client that half-closes (sends FIN) still gets the replies it is owed, as twemproxy.
      end(s: Socket<ClientConn>) {
        s.data?.onEnd();
      },
      close(s: Socket<ClientConn>, err?: Error) {
        if (s.data !== undefined) pool.disconnected(s.data, err);
      },
      error(s: Socket<ClientConn>, err: Error) {
        if (s.data !== undefined) pool.disconnected(s.data, err);
      },
    };
    const l = cfg.listen;
    try {
      if (l.unix) {
        removeSocketFile(l.host);
        const listener = Bun.listen<ClientConn>({ unix: l.host, socket, allowHalfOpen: true });
        if (l.perm !== null) chmodSync(l.host, l.perm);
        return listener;
      }
      return Bun.listen<ClientConn>({
        hostname: l.host,
        port: l.port,
        socket,
        allowHalfOpen: true,
        ...(reusePort || cfg.reuseport ? { reusePort: true } : {}),
      } as Bun.TCPSocketListenOptions<ClientConn>);
    } catch (err) {
      throw new Error(`pool '${cfg.name}': cannot listen on ${l.spec}: ${(err as Error).message}`);
    }
  }

  private adopt(listener: SocketListener<ClientConn>): void {
    this.listener = listener;
    this.proxyStats.totalConnections++;
    this.proxyStats.currConnections++;
    log.notice(`pool '${this.cfg.name}' listening on ${this.cfg.listen.spec}`);
  }

  get listening(): boolean {
    return this.listener !== null;
  }

  /** Stop accepting new clients (drain, shutdown). */
  stopListening(): void {
    if (this.listener === null) return;
    this.listener.stop(false);
    this.listener = null;
    this.proxyStats.currConnections--;
    if (this.cfg.listen.unix) removeSocketFile(this.cfg.listen.host);
  }

  preconnect(): void {
    for (const s of this.servers) {
      for (let i = 0; i < s.conns.length; i++) if (s.conns[i] === null) s.open(i);
    }
  }

  private accept(s: Socket<ClientConn>): void {
    const limit = this.cfg.clientConnections;
    const full = limit > 0 && this.clients.size >= limit;
    if (full || fdBudget.clients >= fdBudget.maxClients) {
      this.stats.counters[P.client_refused]!++;
      s.write(this.errorReply("max client connections reached"));
      s.end();
      return;
    }
    const c = new ClientConn(this, s);
    s.data = c;
    s.setNoDelay(true);
    this.clients.add(c);
    fdBudget.clients++;
    this.stats.counters[P.client_connections]!++;
    this.proxyStats.totalConnections++;
    this.proxyStats.currConnections++;
  }

  disconnected(c: ClientConn, err?: Error): void {
    if (c.closed) return;
    c.closed = true;
    this.clients.delete(c);
    c.dropPending();
    fdBudget.clients--;
    c.out.clear();
    c.out.release();
    c.held.clear();
    const counters = this.stats.counters;
    counters[P.client_connections]!--;
    if (err === undefined) counters[P.client_eof]!++;
    else counters[P.client_err]!++;
    this.proxyStats.currConnections--;
  }

  // ---- requests ----

  /** A request parsed at `now` (performance.now()). */
  dispatch(c: ClientConn, buf: Uint8Array, req: Req, now: number): void {
    const msg = new Msg(c, now);
    c.enqueue(msg, req.end - req.start);
    if (req.error !== null) {
      this.stats.counters[P.request_errors]!++;
      // A rejected noreply request stays silent, as memcached keeps it.
      this.local(msg, req.noreply ? null : ascii(req.error + CRLF));
      return;
    }
    const route = req.command!.route;
    if (!c.authed && route !== Route.Auth && route !== Route.Quit) {
      this.local(msg, this.codec.noAuth);
      return;
    }
    switch (route) {
      case Route.Key:
        this.forward(msg, this.routeKey(buf, req, 0), buf, req);
        return;
      case Route.Get:
      case Route.Sum:
      case Route.Set:
        if (req.nkeys === 1) this.forward(msg, this.routeKey(buf, req, 0), buf, req);
        else this.split(msg, buf, req, route);
        return;
      case Route.Any: {
        const index = this.anyLiveServer();
        if (index < 0) this.fail(msg, "Connection refused");
        else this.forward(msg, index, buf, req);
        return;
      }
      case Route.Ping:
        this.local(msg, this.codec.pong);
        return;
      case Route.Quit:
        msg.flags |= MSG_CLOSE;
        c.closing = true;
        this.local(msg, null);
        return;
      case Route.Auth:
        this.auth(c, msg, buf, req);
        return;
    }
  }

  /** A request the stream cannot recover from: reply, then close after earlier replies. */
  rejectFatal(c: ClientConn, error: string | null): void {
    const msg = new Msg(c, performance.now());
    c.enqueue(msg, 0);
    msg.flags |= MSG_CLOSE;
    c.closing = true;
    this.stats.counters[P.request_errors]!++;
    this.local(msg, error === null ? null : ascii(error + CRLF));
  }

  private auth(c: ClientConn, msg: Msg, buf: Uint8Array, req: Req): void {
    const want = this.authBytes;
    if (want === null) {
      this.local(msg, this.codec.authNotSet);
      return;
    }
    const s = req.argStart[1]!;
    const n = req.argEnd[1]! - s;
    let ok = n === want.length;
    for (let i = 0; ok && i < n; i++) ok = buf[s + i] === want[i];
    if (ok) c.authed = true;
    this.local(msg, ok ? this.codec.authOk : this.codec.authInvalid);
  }

  private local(msg: Msg, reply: Uint8Array | null): void {
    this.stats.counters[P.requests_local]!++;
    msg.setReply(reply);
    msg.done = true;
    msg.client.advance();
  }

  /** Server index for key i, -1 when none. */
  private routeKey(buf: Uint8Array, req: Req, i: number): number {
    return this.router.route(buf, req.keyStart(i), req.keyEnd(i));
  }

  private anyLiveServer(): number {
    const servers = this.servers;
    for (let i = 0; i < servers.length; i++) if (!servers[i]!.ejected) return i;
    return -1;
  }

  /** Forward the whole request to server `index`. */
  private forward(msg: Msg, index: number, buf: Uint8Array, req: Req): void {
    const server = this.target(msg, index, buf, req, 0);
    if (server === null) return;
    const conn = server.conn();
    const joinKind = this.joining ? (req.command!.join ?? 0) : 0;
    if (joinKind !== 0) {
      // Kept for the reply's boundaries, should later retrievals join this one's line.
      msg.keyBuf = buf;
      msg.keyStart = req.keyStart(0);
      msg.keyEnd = req.keyEnd(req.nkeys - 1);
      const lineEnd = conn.joinTail(joinKind, buf, req, null, 0, req.nkeys);
      if (lineEnd !== 0) {
        const out = conn.out;
        const before = out.len;
        this.codec.join!.appendAllKeys(buf, req, out);
        this.joined(conn, msg, server, out.len - before - lineEnd);
        return;
      }
    }
    if (req.noreply) {
      const out = conn.out;
      const before = out.len;
      msg.flags |= MSG_SILENT;
      this.codec.buildForward(buf, req, out);
      msg.bytes = out.len - before;
    } else {
      conn.send(buf, req.start, req.end);
      msg.bytes = req.end - req.start;
    }
    msg.server = server;
    conn.push(msg, joinKind);
  }

  /** Queue a retrieval whose keys went onto the line at the end of conn's output, which grew by
   *  `bytes` (what its line end, taken off by conn.joinTail, and its keys add up to: so the queue
   *  stats of the line's requests add up to its length). */
  private joined(conn: ServerConn, msg: Msg, server: Server, bytes: number): void {
    msg.bytes = bytes;
    msg.flags |= MSG_JOINED;
    msg.server = server;
    conn.push(msg);
  }

  /** The live server at `index`, or null after failing msg with the reason there is none. */
  private target(msg: Msg, index: number, buf: Uint8Array, req: Req, key: number): Server | null {
    if (index >= 0) {
      const server = this.servers[index]!;
      if (!server.ejected) return server;
    } else if (this.cfg.distribution === "server_name") {
      const part = this.router.routingPart(buf, req.keyStart(key), req.keyEnd(key));
      this.fail(
        msg,
        `no server named '${new TextDecoder().decode(part)}' in pool '${this.cfg.name}'`,
      );
      return null;
    }
    this.fail(msg, "Connection refused");
    return null;
  }

  /** Route every key; forward whole when they share a server, else one fragment per server. */
  private split(msg: Msg, buf: Uint8Array, req: Req, route: Route): void {
    const n = req.nkeys;
    if (this.keyServer.length < n) {
      this.keyServer = new Int32Array(n * 2);
      this.fragKeys = new Int32Array(n * 2);
    }
    const keyServer = this.keyServer;
    let same = true;
    for (let i = 0; i < n; i++) {
      const idx = this.routeKey(buf, req, i);
      if (idx < 0 || this.servers[idx]!.ejected) {
        this.target(msg, idx, buf, req, i);
        return;
      }
      keyServer[i] = idx;
      if (idx !== keyServer[0]) same = false;
    }
    if (same) {
      this.forward(msg, keyServer[0]!, buf, req);
      return;
    }
    // Server -> its fragment, -1 for none yet: all -1 between splits (reset below, entry by
    // entry; TypedArray#fill is a native call that costs more than a small split's loops).
    const fragOf = this.fragOf;
    // Key i: its bytes' start and end, and its fragment (Split.keys).
    const keys = new Int32Array(3 * n);
    let nfrags = 0;
    for (let i = 0; i < n; i++) {
      const s = keyServer[i]!;
      let f = fragOf[s]!;
      if (f < 0) {
        f = fragOf[s] = nfrags++;
        this.fragServer[f] = s;
      }
      keys[3 * i] = req.keyStart(i);
      keys[3 * i + 1] = req.keyEnd(i);
      keys[3 * i + 2] = f;
    }
    for (let f = 0; f < nfrags; f++) fragOf[this.fragServer[f]!] = -1;
    msg.split = new SplitState(route, buf, n, keys, nfrags);
    this.stats.counters[P.fragments]! += nfrags;
    // Group the keys by fragment in one pass (a counting sort; keys keep their order).
    // Counts, then their running sums (each fragment's end), then each key placed from the end:
    // fragStart[f] ends as the start of fragment f's keys in `order`.
    const order = this.fragKeys;
    const fragStart = this.fragStart;
    const joinKind = this.joining ? (req.command!.join ?? 0) : 0;
    for (let f = 0; f < nfrags; f++) fragStart[f] = 0;
    for (let i = 0; i < n; i++) fragStart[keys[3 * i + 2]!]!++;
    for (let f = 1; f < nfrags; f++) fragStart[f]! += fragStart[f - 1]!;
    for (let i = n - 1; i >= 0; i--) order[--fragStart[keys[3 * i + 2]!]!] = i;
    for (let f = 0; f < nfrags; f++) {
      const first = fragStart[f]!;
      const m = (f + 1 < nfrags ? fragStart[f + 1]! : n) - first;
      const server = this.servers[this.fragServer[f]!]!;
      const child = new Msg(msg.client, msg.t0);
      child.parent = msg;
      child.fragIndex = f;
      child.server = server;
      const conn = server.conn();
      const lineEnd = joinKind === 0 ? 0 : conn.joinTail(joinKind, buf, req, order, first, m);
      if (lineEnd !== 0) {
        const before = conn.out.len;
        this.codec.join!.appendKeys(buf, req, order, first, m, conn.out);
        this.joined(conn, child, server, conn.out.len - before - lineEnd);
        continue;
      }
      const before = conn.out.len;
      this.codec.buildFragment(buf, req, order, first, m, conn.out);
      child.bytes = conn.out.len - before;
      conn.push(child, joinKind);
    }
  }

  // ---- replies ----

  /** buf[start, end) is the server's complete reply to msg. */
  reply(msg: Msg, buf: Uint8Array, start: number, end: number, now: number): void {
    msg.server!.stats.observe((now - msg.t0) * 1000);
    const parent = msg.parent;
    if (parent !== null) {
      const split = parent.split!;
      const f = msg.fragIndex;
      split.fragBuf[f] = buf;
      split.fragPos[2 * f] = start;
      split.fragPos[2 * f + 1] = end;
      if (--split.pending === 0) this.finishSplit(parent, now);
      return;
    }
    const c = msg.client;
    if ((msg.flags & MSG_SILENT) !== 0) {
      msg.done = true;
      c.advance();
    } else if (c.first === msg) {
      c.writeHead(msg, buf, start, end, now);
    } else {
      msg.setReply(buf, start, end);
      msg.done = true;
    }
  }

  /** msg (or fragment) gets a proxy-made error instead of a server reply. */
  fail(msg: Msg, reason: string): void {
    this.stats.counters[P.forward_error]!++;
    const parent = msg.parent;
    if (parent !== null) {
      const split = parent.split!;
      split.error ??= reason;
      if (--split.pending === 0) this.finishSplit(parent, performance.now());
      return;
    }
    msg.setReply((msg.flags & MSG_SILENT) !== 0 ? null : this.errorReply(reason));
    msg.done = true;
    msg.client.advance();
  }

  /** Every fragment of a split request has its reply: the merged reply goes straight into the
   *  client's output when the client waits for it next, else into the request's slot. */
  private finishSplit(parent: Msg, now: number): void {
    const split = parent.split!;
    parent.split = null;
    const c = parent.client;
    if (split.error !== null) {
      parent.setReply(this.errorReply(split.error));
    } else if (c.closed) {
      parent.setReply(null);
    } else if (c.first === parent) {
      const own = this.codec.merge(split, c.out) ?? NOTHING;
      c.writeHead(parent, own, 0, own.length, now);
      return;
    } else {
      const w = mergeScratch;
      w.reset();
      parent.setReply(this.codec.merge(split, w) ?? w.take());
      if (w.buf.length > MERGE_SCRATCH_KEEP) mergeScratch = new ByteWriter(4096);
    }
    parent.done = true;
    c.advance();
  }

  private errorReply(reason: string): Uint8Array {
    let r = this.errorReplies.get(reason);
    if (r === undefined) {
      r = this.codec.errorReply(reason);
      if (this.errorReplies.size < 64) this.errorReplies.set(reason, r);
    }
    return r;
  }

  /** A reply slot was written to its client: client-visible latency. */
  completed(msg: Msg, now: number): void {
    this.stats.observe((now - msg.t0) * 1000);
  }

  // ---- server health ----

  /** A connection error, EOF, timeout or failure reply (auto_eject_hosts). */
  serverFailed(server: Server): void {
    const cfg = this.cfg;
    if (!cfg.autoEjectHosts || server.ejected) return;
    if (++server.failures < cfg.serverFailureLimit) return;
    server.failures = 0;
    server.ejected = true;
    this.stats.counters[P.server_ejects]!++;
    server.stats.counters[S.server_ejected_at] = Date.now() * 1000;
    log.warn(
      `server ${server.cfg.pname} of pool '${cfg.name}' ejected for ${cfg.serverRetryTimeout} ms`,
    );
    this.rebuild();
    setTimeout(() => this.retry(server), cfg.serverRetryTimeout).unref();
  }

  private retry(server: Server): void {
    server.ejected = false;
    if (log.level >= LOG_INFO) log.info(`server ${server.cfg.pname} back in pool '${this.cfg.name}'`);
    this.rebuild();
  }

  private rebuild(): void {
    const live = new Uint8Array(this.servers.length);
    for (let i = 0; i < live.length; i++) live[i] = this.servers[i]!.ejected ? 0 : 1;
    this.router.setLive(live);
  }

  /** Requests with no reply after `timeout` ms close their server connection. */
  checkTimeouts(now: number): void {
    const timeout = this.cfg.timeout;
    if (timeout === null) return;
    for (const server of this.servers) {
      for (const conn of server.conns) {
        const head = conn?.first;
        if (head != null && now - head.t0 > timeout) conn!.timedOut();
      }
    }
    for (const conn of this.retiringConns) {
      const head = conn.first;
      if (head !== null && now - head.t0 > timeout) conn.timedOut();
    }
  }

  /** Requests still waiting for replies, over all clients; a reply ready but not yet written
   *  (coalesced until the end of the turn, or held back by a full socket) counts too, so a
   *  drain or retire never closes a client before its last reply is out. */
  get inFlight(): number {
    let n = 0;
    for (const c of this.clients) n += c.queued + (c.pendingOut > 0 ? 1 : 0);
    return n;
  }

  close(): void {
    this.stopListening();
    for (const c of this.clients) c.socket.end();
    for (const s of this.servers) s.closeAll("Connection closed by proxy");
    // Nothing checks their timeouts once the pool is gone.
    for (const c of [...this.retiringConns]) c.close("Connection closed by proxy");
  }

  /** Removed by a reload: stop accepting, let in-flight requests finish (at most
   *  `timeoutMs`), then close clients and servers. */
  retire(timeoutMs: number): void {
    this.stopListening();
    const deadline = performance.now() + timeoutMs;
    const check = setInterval(() => {
      if (this.inFlight > 0 && performance.now() < deadline) return;
      clearInterval(check);
      this.close();
    }, 20);
  }
}
