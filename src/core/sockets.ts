// Where sockets come from: every listener and every server connection is opened through a
// SocketFactory, so the transport is one choice per pool (plain TCP and unix sockets, with TLS
// on top: tls-sockets.ts) and the core never calls Bun.listen / Bun.connect itself.

import { chmodSync, unlinkSync } from "node:fs";
import type { Socket, SocketHandler, SocketListener } from "bun";
import type { Address } from "../conf/types.ts";

export interface SocketFactory {
  /** Connect to `addr`; the handlers get `data` as socket.data. Rejects when the connect fails
   *  before a socket exists. `tls`: Bun's TLS options for the connection, if any. */
  connect<T>(addr: Address, handlers: SocketHandler<T>, data: T, tls?: object): Promise<Socket<T>>;
  /** Listen on `addr` (a unix path: an old socket file is replaced, `perm` applied); throws
   *  when it cannot. Clients' sockets stay open for reading after their FIN (half-close). */
  listen<T>(addr: Address, handlers: SocketHandler<T>, reusePort: boolean): SocketListener<T>;
  /** Remove what listen() left behind once its listener is stopped (a unix socket file). */
  unlisten(addr: Address): void;
}

function removeSocketFile(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // no such file
  }
}

/** Plain TCP and unix sockets. */
export const plainSockets: SocketFactory = {
  connect<T>(addr: Address, handlers: SocketHandler<T>, data: T, tls?: object): Promise<Socket<T>> {
    const secure = tls === undefined ? {} : { tls };
    const opts = addr.unix
      ? { unix: addr.host, socket: handlers, data, ...secure }
      : { hostname: addr.host, port: addr.port, socket: handlers, data, ...secure };
    return Bun.connect<T>(opts as Parameters<typeof Bun.connect<T>>[0]);
  },

  listen<T>(addr: Address, handlers: SocketHandler<T>, reusePort: boolean): SocketListener<T> {
    if (addr.unix) {
      removeSocketFile(addr.host);
      const listener = Bun.listen<T>({ unix: addr.host, socket: handlers, allowHalfOpen: true });
      if (addr.perm !== null) chmodSync(addr.host, addr.perm);
      return listener;
    }
    return Bun.listen<T>({
      hostname: addr.host,
      port: addr.port,
      socket: handlers,
      allowHalfOpen: true,
      ...(reusePort ? { reusePort: true } : {}),
    } as Bun.TCPSocketListenOptions<T>);
  },

  unlisten(addr: Address): void {
    if (addr.unix) removeSocketFile(addr.host);
  },
};
