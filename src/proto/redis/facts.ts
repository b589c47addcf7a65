// What a pool's servers have said about themselves in their replies to the preamble of a
// server connection (preamble.ts) and to INFO: their versions and whether one of them does
// not know HELLO (redis before 6). HELLO reports the lowest version to clients, and answers
// HELLO 3 with -NOPROTO once a server is known not to speak RESP3, so clients fall back to
// RESP2. Kept per pool name, so it outlives a reload of the pool's config.

import { log } from "../../log.ts";
import { lowestVersion } from "./info.ts";
import { helloVersion, preambleRefusal } from "./preamble.ts";

/** What HELLO reports before any server of the pool has said its version. */
const ASSUMED_VERSION = "7.0.0";

export class ServerFacts {
  /** The lowest version a server has said, or null. */
  private lowest: string | null = null;
  /** Why the pool cannot serve RESP3, or null. */
  resp3Refusal: string | null = null;

  constructor(private readonly pool: string) {}

  /** The version HELLO reports. */
  get version(): string {
    return this.lowest ?? ASSUMED_VERSION;
  }

  /** A server said it runs `version` (in its HELLO map or its INFO). */
  noteVersion(version: string): void {
    this.lowest = lowestVersion([this.lowest, version]);
  }

  /** Learns from a server's reply buf[start, end) to a preamble command: the HELLO map has its
   *  version; an unknown-command error to HELLO 3 says it is older than redis 6. */
  learn(buf: Uint8Array, start: number, end: number): void {
    const version = helloVersion(buf, start, end);
    if (version !== null) this.noteVersion(version);
    const refusal = preambleRefusal(buf, start, end, 3);
    if (refusal === null || !refusal.startsWith("does not know HELLO") || this.resp3Refusal !== null) return;
    this.resp3Refusal = `a server of pool ${this.pool} ${refusal}`;
    log.error(`${this.resp3Refusal}; HELLO 3 is answered -NOPROTO from now on (clients fall back to RESP2)`);
  }
}

const byPool = new Map<string, ServerFacts>();

export function factsOf(pool: string): ServerFacts {
  let facts = byPool.get(pool);
  if (facts === undefined) byPool.set(pool, (facts = new ServerFacts(pool)));
  return facts;
}
