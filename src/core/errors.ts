// Proxy-made error reasons, in twemproxy's words (strerror text of the failing errno), and how
// log lines name a peer.

import type { Socket } from "bun";

const REASONS: Record<string, string> = {
  ECONNREFUSED: "Connection refused",
  ECONNRESET: "Connection reset by peer",
  ETIMEDOUT: "Connection timed out",
  EPIPE: "Broken pipe",
  ENETUNREACH: "Network is unreachable",
  EHOSTUNREACH: "No route to host",
  EHOSTDOWN: "Host is down",
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EMFILE: "Too many open files",
  ENOTFOUND: "Host is down",
  EAI_NONAME: "Host is down",
  EAI_AGAIN: "Host is down",
  EAI_FAIL: "Host is down",
  DNS_ENOTFOUND: "Host is down",
};

export function describeError(err: Error): string {
  const code = (err as Error & { code?: string }).code;
  if (code !== undefined) {
    const reason = REASONS[code];
    if (reason !== undefined) return reason;
    if (code.startsWith("DNS_") || code.startsWith("EAI_")) return "Host is down";
  }
  return err.message || "Connection reset by peer";
}

/** The peer of an accepted or connected socket, for log lines. */
export function peerOf(socket: Socket<unknown>): string {
  const address = socket.remoteAddress;
  if (address === undefined || address === "") return "a unix socket peer";
  return address.includes(":") ? `[${address}]:${socket.remotePort}` : `${address}:${socket.remotePort}`;
}
