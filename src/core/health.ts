// Server health: failures counted toward auto_eject_hosts, ejection from the ring and the
// return after server_retry_timeout (a replica: from reads), and request timeouts (a connection
// whose oldest request waited longer than the pool's timeout is closed, failing what it carries;
// a request waiting for a failover gets an error).

import { LOG_INFO, log } from "../log.ts";
import { P, S } from "../stats/table.ts";
import type { Msg } from "./msg.ts";
import type { Pool } from "./pool.ts";
import type { Server } from "./server.ts";
import type { ServerConn } from "./server-conn.ts";

/** A connection error, EOF, timeout or failure reply (auto_eject_hosts). */
export function serverFailed(pool: Pool, server: Server): void {
  if (pool.cluster !== null) {
    // No ejection in a cluster: the cluster fails the node over, and its map says where to.
    pool.cluster.nodeFailed();
    return;
  }
  const cfg = pool.cfg;
  if (server.replicaOf !== null) {
    replicaFailed(pool, server);
    return;
  }
  if (!cfg.autoEjectHosts || server.ejected) return;
  if (++server.failures < cfg.serverFailureLimit) return;
  server.failures = 0;
  server.ejected = true;
  pool.stats.counters[P.server_ejects]!++;
  server.stats.counters[S.server_ejected_at] = Date.now() * 1000;
  log.warn(`server ${server.logName} of pool '${cfg.name}' ejected for ${cfg.serverRetryTimeout} ms`);
  applyLiveness(pool);
  setTimeout(() => retry(pool, server), cfg.serverRetryTimeout).unref();
}

/** A replica that fails server_failure_limit times in a row gets no reads for
 *  server_retry_timeout, auto_eject_hosts or not (where keys live does not change). */
function replicaFailed(pool: Pool, replica: Server): void {
  const cfg = pool.cfg;
  if (replica.ejected || ++replica.failures < Math.max(1, cfg.serverFailureLimit)) return;
  replica.failures = 0;
  replica.ejected = true;
  log.warn(`replica ${replica.logName} of pool '${cfg.name}' gets no reads for ${cfg.serverRetryTimeout} ms`);
  setTimeout(() => (replica.ejected = false), cfg.serverRetryTimeout).unref();
}

/** A master answered -READONLY: a failover demoted it before its news came. */
export function serverDemoted(pool: Pool, server: Server): void {
  if (server.replicaOf === null) pool.failover?.demoted(server);
}

/** A reply that is not a failure: the count of consecutive failures starts over. */
export function serverAnswered(server: Server): void {
  server.failures = 0;
}

function retry(pool: Pool, server: Server): void {
  server.ejected = false;
  if (log.level >= LOG_INFO) log.info(`server ${server.logName} back in pool '${pool.cfg.name}'`);
  applyLiveness(pool);
}

/** Rebuild the pool's routing over the servers not ejected (and after a reload). */
export function applyLiveness(pool: Pool): void {
  if (pool.router === null) return;
  const servers = pool.servers;
  const live = new Uint8Array(servers.length);
  for (let i = 0; i < live.length; i++) live[i] = servers[i]!.ejected ? 0 : 1;
  pool.router.setLive(live);
  failStrandedWaits(pool);
}

/** A blocking request waits for pushes to its keys: once they route to another server (one
 *  ejected or back, one joined in a reload, the hash changed), it would wait in vain. Its
 *  connection closes, so it fails. */
function failStrandedWaits(pool: Pool): void {
  const planner = pool.codec.planner;
  if (planner === null) return;
  for (const s of pool.servers) {
    const strands = (msg: Msg): boolean => msg.sentBuf !== null && planner.keysPosition(msg.sentBuf, msg.sentStart, msg.sentEnd, pool.view) !== s.index;
    s.lending.closeStranded(strands, `its keys moved off server ${s.cfg.pname}`);
  }
}

/** Close every connection of the pool whose oldest request has waited more than the pool's
 *  timeout at `now`. */
export function checkTimeouts(pool: Pool, now: number): void {
  const timeout = pool.cfg.timeout;
  if (timeout === null) return;
  for (const server of pool.servers) {
    expireServer(server, now, timeout);
    for (const replica of server.replicas) expireServer(replica, now, timeout);
  }
  for (const conn of pool.retiringConns) expire(conn, now, timeout);
  pool.failover?.checkTimeouts(now, timeout);
}

function expireServer(server: Server, now: number, timeout: number): void {
  for (const group of server.groups) {
    if (group === undefined) continue;
    for (const conn of group.conns) if (conn !== null) expire(conn, now, timeout);
  }
  for (const conn of server.lending.all) {
    // A blocking request may wait its own timeout on top; what is queued behind it, from when
    // it is answered (Dedicated.headSince).
    const head = conn.first;
    if (head !== null && now - Math.max(head.t0, conn.dedicated!.headSince) > timeout + head.extraWait) conn.timedOut();
  }
}

function expire(conn: ServerConn, now: number, timeout: number): void {
  if (now - conn.waitingSince(now, timeout) > timeout) conn.timedOut();
}
