// The open-file budget for client connections. An accept that fails with EMFILE leaves the
// client hanging in the listen backlog and a connect that fails leaves a request without a
// server, so, as twemproxy does, clients get what the process's open-file limit leaves after
// every possible server connection and a reserve; a client over that is refused with an error
// reply (which needs one descriptor for a moment, not one for good).

import { readFileSync } from "node:fs";
import type { Config } from "../conf/types.ts";

/** Descriptors kept for listeners, the stats and metrics servers, logs and the runtime. */
const RESERVED_FDS = 64;

/** The soft RLIMIT_NOFILE, or Infinity where /proc does not say. */
function openFileLimit(): number {
  try {
    const line = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync("/proc/self/limits", "latin1"));
    return line === null || line[1] === "unlimited" ? Infinity : Number(line[1]);
  } catch {
    return Infinity;
  }
}

export const fdBudget = {
  /** Client connections open now, over all pools. */
  clients: 0,
  /** Client connections the process can hold, over all pools. */
  maxClients: Infinity,

  /** Recompute for `config` (at start and after a reload). */
  plan(config: Config): void {
    let servers = 0;
    for (const p of config.pools) servers += p.servers.length * p.serverConnections;
    this.maxClients = Math.max(0, openFileLimit() - servers - config.pools.length - RESERVED_FDS);
  },
};
