// A pool's listener: binds its listen address (through the pool's SocketFactory), accepts
// clients within the limits (client_connections, the process's open-file budget) and hands
// socket events to each client's ClientConn.

import type { Socket, SocketHandler, SocketListener } from "bun";
import type { Address, PoolConfig } from "../conf/types.ts";
import { log } from "../log.ts";
import { P } from "../stats/table.ts";
import { ClientConn } from "./client.ts";
import { fdBudget } from "./fdlimit.ts";
import type { Pool } from "./pool.ts";

/** A bound listen address of a pool, not yet serving it (a reload binds every new address
 *  before it changes anything). */
export interface Bound {
  readonly addr: Address;
  readonly socket: SocketListener<ClientConn>;
}

/** Bind cfg.listen for pool's clients. Throws, naming the pool and the address, when it cannot. */
export function bind(pool: Pool, cfg: PoolConfig, reusePort: boolean): Bound {
  const handlers: SocketHandler<ClientConn> = {
    binaryType: "uint8array",
    open(s) {
      accept(pool, s);
    },
    data(s, chunk) {
      s.data?.onData(chunk);
    },
    drain(s) {
      s.data?.onDrain();
    },
    // A client that half-closes (sends FIN) still gets the replies it is owed, as twemproxy.
    end(s) {
      s.data?.onEnd();
    },
    close(s, err) {
      s.data?.teardown(err);
    },
    error(s, err) {
      s.data?.teardown(err);
    },
  };
  try {
    return { addr: cfg.listen, socket: pool.sockets.listen(cfg.listen, handlers, reusePort || cfg.reuseport) };
  } catch (err) {
    throw new Error(`pool '${cfg.name}': cannot listen on ${cfg.listen.spec}: ${(err as Error).message}`);
  }
}

/** Serves a pool's listen address: counts as a connection in the stats (as nutcracker's). */
export class Listener {
  constructor(
    private readonly pool: Pool,
    private readonly bound: Bound,
  ) {
    pool.proxyStats.totalConnections++;
    pool.proxyStats.currConnections++;
    log.notice(`pool '${pool.cfg.name}' listening on ${bound.addr.spec}`);
  }

  /** Stop accepting; connected clients stay. `removeFile`: also the unix socket file (not when
   *  the next listener re-created the same path). */
  stop(removeFile: boolean): void {
    this.bound.socket.stop(false);
    this.pool.proxyStats.currConnections--;
    if (removeFile) this.pool.sockets.unlisten(this.bound.addr);
  }

  get addr(): Address {
    return this.bound.addr;
  }
}

/** A client connected to pool on socket s: refused (an error reply, then closed) when over the
 *  limits, else served by a new ClientConn (s.data). */
export function accept(pool: Pool, s: Socket<ClientConn>): void {
  const limit = pool.cfg.clientConnections;
  const full = limit > 0 && pool.clients.size >= limit;
  if (full || fdBudget.clients >= fdBudget.maxClients) {
    pool.stats.counters[P.client_refused]!++;
    s.write(pool.errorReply("max client connections reached"));
    s.end();
    return;
  }
  const c = new ClientConn(pool, s);
  s.data = c;
  s.setNoDelay(true);
  pool.clients.add(c);
  fdBudget.clients++;
  pool.stats.counters[P.client_connections]!++;
  pool.proxyStats.totalConnections++;
  pool.proxyStats.currConnections++;
}
