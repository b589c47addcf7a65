// Redis Cluster's redirections and retryable refusals, read from a node's error reply:
// `-MOVED <slot> <host>:<port>` (the slot lives elsewhere now: update the map, resend),
// `-ASK <slot> <host>:<port>` (this one request goes there, after ASKING), `-TRYAGAIN ...`
// (a multi-key request during a slot's migration) and `-CLUSTERDOWN ...` (no quorum, or the
// slot is not served): both retried after a pause. Pure; the kind is told from the first bytes
// without making a string, the address only for a redirection.

import { CR, MINUS } from "./resp.ts";

export const Redirect = {
  /** Any other reply: it goes to the client. */
  None: 0,
  Moved: 1,
  Ask: 2,
  TryAgain: 3,
  ClusterDown: 4,
} as const;
export type Redirect = (typeof Redirect)[keyof typeof Redirect];

const encoder = new TextEncoder();
const PREFIXES: readonly [Uint8Array, Redirect][] = [
  [encoder.encode("-MOVED "), Redirect.Moved],
  [encoder.encode("-ASK "), Redirect.Ask],
  [encoder.encode("-TRYAGAIN"), Redirect.TryAgain],
  [encoder.encode("-CLUSTERDOWN"), Redirect.ClusterDown],
];

/** What the reply buf[start, end) asks of the proxy (Redirect.None for every non-error reply). */
export function redirectOf(buf: Uint8Array, start: number, end: number): Redirect {
  if (buf[start] !== MINUS) return Redirect.None;
  for (const [prefix, kind] of PREFIXES) {
    if (end - start < prefix.length) continue;
    let i = 1;
    while (i < prefix.length && buf[start + i] === prefix[i]) i++;
    if (i === prefix.length) return kind;
  }
  return Redirect.None;
}

/** Where a MOVED or ASK reply points. */
export interface Target {
  readonly slot: number;
  /** null: the replying node's own host (redis sends `:port` when its endpoint is unknown). */
  readonly host: string | null;
  readonly port: number;
}

const latin1 = new TextDecoder("latin1");

/** The slot and address of the MOVED or ASK reply buf[start, end); null when malformed. */
export function redirectTarget(buf: Uint8Array, start: number, end: number): Target | null {
  let lineEnd = start;
  while (lineEnd < end && buf[lineEnd] !== CR) lineEnd++;
  const match = /^-(?:MOVED|ASK) (\d{1,5}) (.*):(\d{1,5})$/.exec(latin1.decode(buf.subarray(start, lineEnd)));
  if (match === null) return null;
  const slot = Number(match[1]);
  const port = Number(match[3]);
  if (slot > 16383 || port < 1 || port > 65535) return null;
  // An IPv6 address may come bracketed or bare (the last colon is the port's).
  const host = match[2]!.replace(/^\[(.*)\]$/, "$1");
  return { slot, host: host === "" || host === "?" ? null : host, port };
}
