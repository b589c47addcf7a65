// A pool's SocketFactory with TLS on top of the plain one: its listeners accept each client in
// TLS or plaintext as the pool's `tls` says when the client connects, and its outgoing
// connections (to servers, replicas and sentinels) use `server_tls`. A failed handshake is
// logged naming the peer and counted (client_tls_failed, server_tls_failed); a server's failure
// reaches its connection as an error whose message is the reason, so the requests waiting on it
// get that reply. A sentinel's failure goes to the sentinel client as its connection's error
// (which logs it once per outage, as any other reason a sentinel is unreachable).

import type { Socket } from "bun";
import type { Address } from "../conf/types.ts";
import { LOG_INFO, log } from "../log.ts";
import { P, S } from "../stats/table.ts";
import { handshakeFailure } from "../tls/context.ts";
import { tlsAccepting, tlsConnecting } from "../tls/sockets.ts";
import { peerOf } from "./errors.ts";
import type { Pool } from "./pool.ts";
import type { SocketFactory } from "./sockets.ts";

const where = (addr: Address): string => (addr.unix ? addr.host : `${addr.host}:${addr.port}`);

export function tlsSockets(base: SocketFactory, pool: Pool): SocketFactory {
  return {
    listen(addr, handlers, reusePort) {
      const accepting = tlsAccepting(handlers, {
        current: () => pool.tls.accept,
        refused: (s, error, spoke) => refuseClient(pool, s, error, spoke),
      });
      return base.listen(addr, accepting, reusePort);
    },

    connect(addr, handlers, data) {
      const tls = pool.tls.connect;
      if (tls === null) return base.connect(addr, handlers, data);
      const connecting = tlsConnecting(handlers, (s, error) => {
        const reason = handshakeFailure(error);
        if (pool.cfg.sentinels.includes(addr)) {
          void handlers.error?.(s, new Error(`TLS handshake failed: ${reason}`));
          return;
        }
        serverRefused(pool, addr, reason);
        void handlers.error?.(s, new Error(`TLS handshake with server ${where(addr)} failed: ${reason}`));
      });
      return base.connect(addr, connecting, data, tls.options(addr.host));
    },

    unlisten: (addr) => base.unlisten(addr),
  };
}

/** A client failed the TLS handshake (plaintext, no or an untrusted certificate). One that sent
 *  nothing (a TCP health check) is no failure. */
function refuseClient(pool: Pool, s: Socket<unknown>, error: Error | null, spoke: boolean): void {
  const client = `client ${peerOf(s)} of pool '${pool.cfg.name}'`;
  s.terminate();
  if (!spoke) {
    if (log.level >= LOG_INFO) log.info(`${client} closed before the TLS handshake`);
    return;
  }
  pool.stats.counters[P.client_tls_failed]!++;
  log.warn(`${client} refused: TLS handshake failed: ${handshakeFailure(error)}`);
}

/** A server's (or a replica's) certificate did not verify (or it refused ours). */
function serverRefused(pool: Pool, addr: Address, reason: string): void {
  const server = pool.servers.find((s) => s.addr === addr) ?? pool.servers.flatMap((s) => s.replicas).find((r) => r.addr === addr);
  if (server !== undefined) server.stats.counters[S.server_tls_failed]!++;
  const name = server?.nameAt(addr) ?? where(addr);
  log.error(`server ${name} of pool '${pool.cfg.name}': TLS handshake failed: ${reason}`);
}
