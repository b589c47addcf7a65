// TLS for the proxy's sockets, from a pool's `tls` and `server_tls` settings: the secure contexts
// (built once per config load, so a reload that re-read the PEM files gives new connections the
// new certificates while open ones keep theirs), the options Bun takes to accept and to connect
// with them, and the words a failed handshake is logged with.
//
// Clients are accepted on a plain listener and upgraded to TLS in its `open` handler
// (socket.upgradeTLS with the pool's current context): a listener's own TLS context cannot be
// swapped, and swapping listeners on one port would reset the connections waiting in the old
// one's accept queue.

import type { TLSOptions } from "bun";
import { createSecureContext } from "node:tls";
import type { ListenTls, PoolConfig, ServerTls } from "../conf/types.ts";

/** Bun's TLS options, with the two it takes but does not declare: a prebuilt context (node:tls
 *  createSecureContext(...).context) and which side of the handshake we are. */
export type SocketTls = TLSOptions & { readonly secureContext: unknown; readonly isServer?: boolean };

/** How a pool's clients are upgraded to TLS. */
export interface AcceptTls {
  /** For socket.upgradeTLS of an accepted socket. */
  readonly options: SocketTls;
  /** Clients must present a certificate the configured CA signed. */
  readonly mutual: boolean;
}

/** TLS 1.2 at least, on both sides. */
const MIN_VERSION = "TLSv1.2";

export function acceptTls(cfg: ListenTls): AcceptTls {
  const mutual = cfg.ca !== null;
  const context = createSecureContext({
    cert: cfg.cert.text,
    key: cfg.key.text,
    ...(mutual ? { ca: cfg.ca!.text, requestCert: true } : {}),
    minVersion: MIN_VERSION,
  } as Parameters<typeof createSecureContext>[0]);
  return {
    options: { secureContext: context.context, isServer: true, requestCert: mutual, rejectUnauthorized: mutual },
    mutual,
  };
}

/** How a pool connects to its servers: one context for the pool, the name checked per server. */
export class ConnectTls {
  private readonly context: unknown;

  constructor(private readonly cfg: ServerTls) {
    this.context = createSecureContext({
      // Without a CA, the runtime's public roots (managed services' certificates chain to them).
      ...(cfg.ca !== null ? { ca: cfg.ca.text } : {}),
      ...(cfg.cert !== null ? { cert: cfg.cert.text, key: cfg.key!.text } : {}),
      minVersion: MIN_VERSION,
    } as Parameters<typeof createSecureContext>[0]).context;
  }

  /** For Bun.connect to `host` (SNI and the checked name: server_name, else the host). */
  options(host: string): SocketTls {
    return {
      secureContext: this.context,
      serverName: this.cfg.serverName ?? host,
      rejectUnauthorized: this.cfg.verify,
    };
  }
}

/** A pool's TLS as it runs: for new clients and for new server connections (null: plaintext).
 *  A reload replaces it whole. */
export interface PoolTls {
  readonly accept: AcceptTls | null;
  readonly connect: ConnectTls | null;
}

/** The contexts of cfg's `tls` and `server_tls` (the PEM files were read and checked by the
 *  loader). */
export function poolTls(cfg: PoolConfig): PoolTls {
  return {
    accept: cfg.tls === null ? null : acceptTls(cfg.tls),
    connect: cfg.serverTls === null ? null : new ConnectTls(cfg.serverTls),
  };
}

/** Whether a reload changes TLS settings (the PEM files' contents included). */
export function tlsChanged(a: ListenTls | ServerTls | null, b: ListenTls | ServerTls | null): boolean {
  return JSON.stringify(a) !== JSON.stringify(b);
}

/** Why a handshake failed, in words for the log line that names the peer. */
export function handshakeFailure(error: Error | null): string {
  if (error === null) return "refused";
  const code = (error as Error & { code?: string }).code ?? "";
  const text = error.message;
  if (/WRONG_VERSION_NUMBER|HTTP_REQUEST|UNKNOWN_PROTOCOL|NO_PROTOCOLS_AVAILABLE/.test(text)) {
    return `not a TLS client hello (plaintext on a TLS port?): ${text}`;
  }
  if (/PEER_DID_NOT_RETURN_A_CERTIFICATE|CERTIFICATE_REQUIRED/.test(text)) return `no client certificate: ${text}`;
  if (code === "ECONNRESET") return "closed during the handshake (the peer refused our certificate?)";
  return code !== "" && !text.includes(code) ? `${text} (${code})` : text;
}
