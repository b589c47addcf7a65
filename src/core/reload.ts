// Hot reload of one pool, in two steps: prepare() does everything that can fail (the new
// Router, binding a changed listen address) and changes nothing; apply() then cannot fail: it
// keeps servers whose name and address stay (with their connections and stats), retires
// servers that left (their shared connections close once their queue is empty, the clients'
// own ones at once), swaps in the new router, hands a failover under way and the requests
// waiting for it to the sentinels' new follower (failover.ts), and serves the new listen
// address without touching connected clients. The proxy
// prepares every pool before it applies any (Proxy.reload), so a reload applies whole or not
// at all.

import type { Address, PoolConfig, ServerConfig } from "../conf/types.ts";
import { equalBytes } from "../lib/bytes.ts";
import { Reconfigured, type Codec } from "../proto/codec.ts";
import { createRouter, type KeyRouter } from "../route/router.ts";
import { ServerStats } from "../stats/store.ts";
import { poolTls, tlsChanged, type PoolTls } from "../tls/context.ts";
import type { ClientConn } from "./client.ts";
import { noteHeld } from "./dedicated.ts";
import { applyLiveness } from "./health.ts";
import { bind, type Bound } from "./listener.ts";
import type { Pool } from "./pool.ts";
import { Server } from "./server.ts";

/** What a reload of one pool needs, made before anything changes. */
export interface PreparedReload {
  readonly cfg: PoolConfig;
  /** Null for a redis_cluster pool (it routes by its slot map). */
  readonly router: KeyRouter | null;
  /** TLS contexts from the PEM files as read for this reload (rotation). */
  readonly tls: PoolTls;
  /** The listen address, bound, when it changed or the pool could not bind it at start (a
   *  restarted worker's, Proxy.start partial); null: unchanged, or not served by this process. */
  readonly bound: Bound | null;
}

/** Do new connections of `group` open differently under cfg than under old? */
function preambleChanged(codec: Codec, old: PoolConfig, cfg: PoolConfig, group: number): boolean {
  const a = codec.preamble(old, group);
  const b = codec.preamble(cfg, group);
  if (a === null || b === null) return a !== b;
  return a.replies !== b.replies || !equalBytes(a.bytes, 0, a.bytes.length, b.bytes, 0, b.bytes.length);
}

const sameAddresses = (a: readonly Address[], b: readonly Address[]): boolean =>
  a.length === b.length && a.every((x, i) => x.spec === b[i]!.spec);

/** A server stays the same server across a reload when its name and address do. */
function serverIdentity(s: ServerConfig): string {
  return `${s.effectiveName}\n${s.addr.spec}`;
}

/** Everything that can fail, for pool to run on cfg; throws (and has bound nothing) when
 *  something cannot be done. `serve`: this process serves cfg's listen address; `unbound`: the
 *  pool could not bind it at start, so it is bound now even if unchanged. */
export function prepare(pool: Pool, cfg: PoolConfig, serve: boolean, reusePort: boolean, unbound: boolean): PreparedReload {
  const router = pool.cluster !== null ? null : createRouter(cfg);
  const tls = poolTls(cfg);
  const moved = pool.cfg.listen.spec !== cfg.listen.spec;
  return { cfg, router, tls, bound: (moved || unbound) && serve ? bind(pool, cfg, reusePort) : null };
}

/** Give up a prepared reload (another pool's could not be prepared). */
export function abandon(prepared: PreparedReload): void {
  prepared.bound?.socket.stop(true);
}

/** Apply a prepared reload; returns what changed, for the log. */
export function apply(pool: Pool, prepared: PreparedReload): string[] {
  const old = pool.cfg;
  const cfg = prepared.cfg;
  const before = pool.servers;
  // First: servers read their connection count from it.
  pool.cfg = cfg;
  const changes: string[] = [];
  // A cluster's servers are its nodes, from its slot map (the servers: list only seeds it).
  const cluster = pool.cluster;
  cluster?.reconfigure(cfg);
  const kept = new Map(cluster !== null ? [] : pool.servers.map((s) => [serverIdentity(s.cfg), s]));
  // A server's position in the new config by its old one (-1: it left); a cluster's stay.
  const moved = new Int32Array(pool.servers.length).fill(-1);
  const servers = cluster !== null ? pool.servers : cfg.servers.map((sc, i) => {
    const id = serverIdentity(sc);
    const s = kept.get(id);
    if (s === undefined) {
      changes.push(`+server ${sc.pname}`);
      return new Server(pool, i, sc, new ServerStats(sc.statsName));
    }
    kept.delete(id);
    if (s.cfg.weight !== sc.weight) changes.push(`~server ${sc.pname}`);
    moved[s.index] = i;
    s.reconfigure(i, sc);
    return s;
  });
  for (const s of kept.values()) {
    changes.push(`-server ${s.cfg.pname}`);
    s.retire();
    // Its keys and channels are served elsewhere now, as when a failover moves a server
    // (Server.moveTo): a blocking request there would wait for pushes that go elsewhere, a
    // transaction would write where its keys no longer are, a subscriber would hear nothing
    // more. Their connections close: the request fails, the transaction is lost (EXEC
    // -EXECABORT), the subscriber is disconnected to subscribe again.
    s.lending.closeAll(`server ${s.cfg.pname} left the pool`);
  }
  const serverTls = tlsChanged(old.serverTls, cfg.serverTls);
  // Connections opened with a preamble (AUTH, SELECT) or TLS settings for the old config:
  // later requests go to new connections, the old ones close once they have answered theirs.
  const stale = (group: number) => serverTls || preambleChanged(pool.codec, old, cfg, group);
  for (const s of servers) {
    for (const g of s.groups) if (g !== undefined && stale(g.id)) g.retire();
    s.lending.retireGroups(stale);
  }
  // New clients and connections get the certificates as read now; open ones keep theirs.
  pool.tls = prepared.tls;
  const position = cluster !== null ? (p: number) => p : (p: number) => (p < moved.length ? moved[p]! : -1);
  pool.install(cfg, prepared.router, servers);
  applyLiveness(pool);
  // Told once the pool routes by cfg: a client subscribed where its channel is no longer
  // published would hear nothing more (disconnected, as when its server leaves, to subscribe
  // again); a transaction whose keys moved would write where they are no longer read (its
  // pinned connection closes: EXEC gets -EXECABORT).
  const stranded: ClientConn[] = [];
  const txLost = new Set<ClientConn>();
  for (const c of pool.clients) {
    const verdict = pool.codec.reconfigure(c.session, cfg, position, pool.view);
    if (verdict === Reconfigured.Stranded) stranded.push(c);
    else if (verdict === Reconfigured.PinMoved) {
      const pin = c.own?.pinned ?? null;
      if (pin !== null) pin.close("its transaction's keys moved to another server in a reload");
      else {
        // Pinned by a request that has no connection yet (it waits for a failover): the
        // transaction is lost all the same, and that request fails (PoolFailover.handOver).
        pool.codec.planner!.pinLost(c.session);
        noteHeld(c);
        txLost.add(c);
      }
    }
  }
  for (const c of stranded) c.drop(new Error("its subscriptions moved to other servers in a reload"));
  // The sessions know the new config: the requests waiting for a failover follow it.
  pool.follow({ servers: before, txLost });
  for (const key of Object.keys(cfg) as (keyof PoolConfig)[]) {
    // Named as in the config file: redisAuth -> redis_auth.
    const changed =
      key === "tls" || key === "serverTls"
        ? tlsChanged(old[key], cfg[key])
        : key === "sentinels"
          ? !sameAddresses(old.sentinels, cfg.sentinels)
          : old[key] !== cfg[key];
    if (key !== "servers" && key !== "listen" && changed) {
      changes.push(key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
    }
  }
  if (old.listen.spec !== cfg.listen.spec) {
    pool.serve(prepared.bound);
    changes.push(`listen ${old.listen.spec} -> ${cfg.listen.spec}`);
  } else if (prepared.bound !== null) {
    pool.serve(prepared.bound);
    changes.push(`listening on ${cfg.listen.spec} (not bound at start)`);
  }
  if (cfg.preconnect) pool.preconnect();
  return changes;
}
