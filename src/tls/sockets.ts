// Socket handlers for TLS, wrapped around the plaintext ones so that the core treats a TLS
// connection like any other once its handshake is done.
//
// Accepting: a pool's listener is plain; each accepted socket is upgraded (socket.upgradeTLS)
// with the pool's context current at that moment, or served in plaintext when the pool has no
// `tls` now. So a reload that re-read the certificates, or turned TLS on or off, applies to the
// next client at once and never to a connected one. A TLS connection is handed over only after
// a successful handshake; a failed one is reported with whether the peer sent anything at all
// (a TCP probe, such as a health check, that connects and closes is no TLS failure).
//
// Connecting: Bun calls `open` at the TCP connect and `handshake` when TLS is up; the
// connection is usable only then (writes before it are dropped).

import type { Socket, SocketHandler } from "bun";
import type { AcceptTls } from "./context.ts";

/** What an accepted socket carries until its handshake succeeds: whether the peer spoke. */
class Hello {
  spoke = false;
}

export interface TlsAcceptEvents<Data> {
  /** The context for a socket accepted now; null: serve it in plaintext. */
  current(): AcceptTls | null;
  /** Handshake failed; `spoke`: the peer sent bytes (false: it connected and closed). */
  refused(socket: Socket<Data>, error: Error | null, spoke: boolean): void;
}

const isHello = (data: unknown): data is Hello => data instanceof Hello;

/** Listener handlers that run `handlers` on plaintext and on TLS connections (see the top of
 *  the file). `handlers.open` gets a TLS socket after its handshake. */
export function tlsAccepting<Data>(handlers: SocketHandler<Data>, events: TlsAcceptEvents<Data>): SocketHandler<Data> {
  const upgraded: SocketHandler<Data> = {
    ...handlers,
    open() {},
    handshake(s, ok, error) {
      const hello = s.data as unknown as Hello;
      const mutual = events.current()?.mutual ?? false;
      if (ok && (!mutual || s.authorized)) void handlers.open?.(s);
      else events.refused(s, error ?? s.getAuthorizationError(), hello.spoke);
    },
    // Until `open` gave the socket its data, there is nothing to tell.
    close(s, error) {
      if (!isHello(s.data)) void handlers.close?.(s, error);
    },
    error(s, error) {
      if (!isHello(s.data)) void handlers.error?.(s, error);
    },
  };
  return {
    ...handlers,
    open(raw) {
      const tls = events.current();
      if (tls === null) return handlers.open?.(raw);
      const hello = new Hello();
      (raw as Socket<unknown>).data = hello;
      raw.upgradeTLS({ tls: tls.options, socket: upgraded, data: hello as unknown as Data });
    },
    // On an upgraded socket's raw side: the ciphertext (its plaintext goes to `upgraded`).
    data(raw, chunk) {
      const d = raw.data as unknown;
      if (isHello(d)) d.spoke = true;
      else void handlers.data?.(raw, chunk);
    },
    drain(raw) {
      if (!isHello(raw.data)) void handlers.drain?.(raw);
    },
    end(raw) {
      if (!isHello(raw.data)) void handlers.end?.(raw);
    },
    close(raw, error) {
      if (!isHello(raw.data)) void handlers.close?.(raw, error);
    },
    error(raw, error) {
      if (!isHello(raw.data)) void handlers.error?.(raw, error);
    },
  };
}

/** Connecting handlers that run `handlers` on a TLS connection: `open` once the handshake
 *  succeeded, `failed` when it did not (the socket is closed then). */
export function tlsConnecting<Data>(
  handlers: SocketHandler<Data>,
  failed: (socket: Socket<Data>, error: Error | null) => void,
): SocketHandler<Data> {
  return {
    ...handlers,
    open() {},
    handshake(s, ok, error) {
      if (ok) void handlers.open?.(s);
      else failed(s, error);
    },
  };
}
