// `listen:` addresses and the host part of server addresses. Split from the right like
// twemproxy 0.5.0 (so `::1:22121` is IPv6 ::1 port 22121), plus the bracketed `[::1]:22121`
// form that 0.5.0 cannot read. And whether two addresses are the same endpoint.

import { isIPv4, isIPv6 } from "node:net";
import type { Address } from "./types.ts";
import { parsePort, quote, utf8Length, ValueError } from "./value.ts";

/** a and b are the same endpoint: host and port (a config's Address, a moved server's, or a
 *  sentinel's instance). */
export const sameEndpoint = (a: { readonly host: string; readonly port: number }, b: { readonly host: string; readonly port: number }): boolean =>
  a.port === b.port && a.host === b.host;

/** sockaddr_un.sun_path is 108 bytes including the terminating NUL. */
const UNIX_PATH_MAX = 107;

const MAX_PERM = 0o777;

/** `host:port`, `ip:port`, `[ipv6]:port`, or `/path/to.sock [octal perm]`. */
export function parseListen(text: string): Address {
  if (text.startsWith("/")) return parseUnixListen(text);
  const colon = text.lastIndexOf(":");
  if (colon < 0) {
    throw new ValueError(`${quote(text)} is not "host:port", "[ipv6]:port" or "/path/to.sock [perm]"`);
  }
  const port = parsePort(text.slice(colon + 1));
  return { spec: text, host: parseHost(text.slice(0, colon)), port, unix: false, perm: null };
}

/** A TCP `host:port` (or `[ipv6]:port`) another process listens on, e.g. a sentinel. */
export function parseHostPort(text: string): Address {
  const colon = text.lastIndexOf(":");
  if (colon < 0 || text.startsWith("/")) throw new ValueError(`${quote(text)} is not "host:port" or "[ipv6]:port"`);
  const port = parsePort(text.slice(colon + 1));
  return { spec: text, host: parseHost(text.slice(0, colon)), port, unix: false, perm: null };
}

function parseUnixListen(text: string): Address {
  const space = text.lastIndexOf(" ");
  const path = space < 0 ? text : text.slice(0, space);
  checkUnixPath(path);
  return { spec: text, host: path, port: 0, unix: true, perm: space < 0 ? null : parsePerm(text.slice(space + 1)) };
}

function parsePerm(text: string): number {
  const perm = /^[0-7]+$/.test(text) ? parseInt(text, 8) : NaN;
  if (!(perm <= MAX_PERM)) {
    throw new ValueError(`socket permission ${quote(text)} is not an octal file mode from 0 to 0777 (e.g. 0666)`);
  }
  return perm;
}

export function checkUnixPath(path: string): void {
  if (utf8Length(path) > UNIX_PATH_MAX) {
    throw new ValueError(`unix socket path ${quote(path)} is longer than ${UNIX_PATH_MAX} bytes`);
  }
}

/**
 * The host of a TCP address, brackets removed. IP literals must be valid; names are resolved
 * when used (twemproxy resolves server names lazily too).
 */
export function parseHost(text: string): string {
  if (text === "") throw new ValueError(`the host is missing before the port`);
  if (/\s/.test(text)) throw new ValueError(`host ${quote(text)} contains whitespace`);
  const bracketed = /^\[(.*)\]$/.exec(text);
  const host = bracketed ? bracketed[1]! : text;
  if ((bracketed || host.includes(":")) && !isIPv6(host)) {
    throw new ValueError(`host ${quote(text)} is not a valid IPv6 address`);
  }
  if (/^[0-9.]+$/.test(host) && !isIPv4(host)) throw new ValueError(`host ${quote(text)} is not a valid IPv4 address`);
  return host;
}
