// Socket handlers for TLS, wrapped around the plaintext ones so that the core treats a TLS
// connection like any other once its handshake is done.
//
// Accepting: every accepted socket is upgraded (socket.upgradeTLS) with the context current at
// that moment, so a reload that re-read the certificates applies to the next client at once
// and never to a connected one. The connection is handed over only after a successful
// handshake. A failed one is reported with whether the peer sent anything at all: a TCP probe
// (a health check, a port scan) that connects and closes is not a TLS failure.
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
  /** The context for the socket accepted now. */
  current(): AcceptTls;
  /** Handshake done (and the client's certificate verified, with mutual TLS). */
  accepted(socket: Socket<Data>): void;
  /** Handshake failed; `spoke`: the peer sent bytes (false: it connected and closed). */
  refused(socket: Socket<Data>, error: Error | null, spoke: boolean): void;
}

/** Listener handlers that run `handlers` on TLS connections (see the top of the file). Until
 *  `accepted` sets the socket's data, close and error events are not passed on. */
export function tlsAccepting<Data extends object>(
  handlers: SocketHandler<Data, "uint8array">,
  events: TlsAcceptEvents<Data>,
): SocketHandler<Data, "uint8array"> {
  const passOn = (s: Socket<Data>): boolean => !((s.data as unknown) instanceof Hello);
  const upgraded: SocketHandler<Data, "uint8array"> = {
    ...handlers,
    open() {},
    handshake(s, ok, error) {
      const hello = s.data as unknown as Hello;
      const mutual = events.current().mutual;
      if (ok && (!mutual || s.authorized)) events.accepted(s);
      else events.refused(s, error ?? s.getAuthorizationError(), hello.spoke);
    },
    close(s, error) {
      if (passOn(s)) void handlers.close?.(s, error);
    },
    error(s, error) {
      if (passOn(s)) void handlers.error?.(s, error);
    },
  };
  return {
    binaryType: "uint8array",
    open(raw) {
      const hello = new Hello();
      (raw as Socket<unknown>).data = hello;
      raw.upgradeTLS({ tls: events.current().options, socket: upgraded, data: hello as unknown as Data });
    },
    // The ciphertext (the upgraded socket gets the plaintext): only whether any came.
    data(raw) {
      (raw.data as unknown as Hello).spoke = true;
    },
  };
}

/** Connecting handlers that run `handlers` on a TLS connection: `open` once the handshake
 *  succeeded, `failed` (then a close) when it did not. */
export function tlsConnecting<Data>(
  handlers: SocketHandler<Data, "uint8array">,
  failed: (socket: Socket<Data>, error: Error | null) => void,
): SocketHandler<Data, "uint8array"> {
  return {
    ...handlers,
    open() {},
    handshake(s, ok, error) {
      if (ok) void handlers.open?.(s);
      else failed(s, error);
    },
  };
}
