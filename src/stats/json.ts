// The twemproxy-compatible stats document, byte for byte as nutcracker 0.5.0 writes it
// (nc_stats.c): `"key":value, ` pairs, `"name": {` nestings whose end overwrites the trailing
// ", " with "}," (or "}," with "}},"), and a final "}\n". Dashboards and the collectd/nagios
// plugins parse this, so service and version say what nutcracker says.

import { hostname } from "node:os";
import { TWEMPROXY_VERSION } from "../lib/version.ts";
import type { PoolStats, ProxyStats, ServerStats } from "./store.ts";
import { CLUSTER_STATS, POOL_STATS, S, SERVER_STATS, type StatSpec } from "./table.ts";

export const STATS_SERVICE = "nutcracker";
export const STATS_VERSION = TWEMPROXY_VERSION;

/** twemproxy's string_compare: shorter first, then bytewise. It sorts the pools at load, which
 *  is the order its stats list them in (servers come sorted the same way in PoolConfig). */
function byNutcrackerOrder(a: PoolStats, b: PoolStats): number {
  const la = Buffer.byteLength(a.name);
  const lb = Buffer.byteLength(b.name);
  return la !== lb ? la - lb : Buffer.compare(Buffer.from(a.name), Buffer.from(b.name));
}

/** nutcracker's stats buffer, with its last bytes held apart (so closing a nesting edits a short
 *  string, not the whole document). */
class StatsWriter {
  private readonly parts: string[] = ["{"];
  /** The buffer's end: ", " after a value, "" after `"name": {`, "}," (or "}},") after a close. */
  private tail = "";

  private push(text: string, tail: string): void {
    this.parts.push(this.tail, text);
    this.tail = tail;
  }

  string(key: string, value: string): void {
    this.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`, ", ");
  }

  number(key: string, value: number): void {
    this.push(`${JSON.stringify(key)}:${Math.trunc(value)}`, ", ");
  }

  begin(key: string): void {
    this.push(`${JSON.stringify(key)}: {`, "");
  }

  /** nutcracker's stats_end_nesting: ", " becomes "},", a trailing "}," becomes "}},". */
  end(): void {
    this.tail = this.tail === ", " ? "}," : `${this.tail.slice(0, -1)}},`;
  }

  /** nutcracker's stats_add_footer: the last byte becomes "}\n". */
  finish(): string {
    this.parts.push(`${this.tail.slice(0, -1)}}\n`);
    return this.parts.join("");
  }

  /** Gauges live, everything else as of the last aggregation; ours when `extended`. */
  slots(table: readonly StatSpec[], stats: PoolStats | ServerStats, extended: boolean): void {
    table.forEach((spec, i) => {
      if (spec.json === false || (spec.json === "extended" && !extended)) return;
      this.number(spec.name, spec.kind === "gauge" ? stats.counters[i]! : stats.aggregated[i]!);
    });
  }
}

/** The document the stats port serves, as of `nowMs`. */
export function renderStatsJson(
  stats: ProxyStats,
  nowMs: number = Date.now(),
  source: string = hostname(),
): string {
  const w = new StatsWriter();
  const now = Math.floor(nowMs / 1000);
  w.string("service", STATS_SERVICE);
  w.string("source", source);
  w.string("version", STATS_VERSION);
  w.number("uptime", now - Math.floor(stats.startedAt / 1000));
  w.number("timestamp", now);
  w.number("total_connections", stats.totalConnections);
  w.number("curr_connections", stats.currConnections);
  for (const pool of [...stats.pools].sort(byNutcrackerOrder)) {
    w.begin(pool.name);
    w.slots(POOL_STATS, pool, pool.extended);
    // ours, for redis_cluster pools only (live): the slot map and the redirections followed.
    if (pool.cluster !== null) CLUSTER_STATS.forEach((spec, i) => w.number(spec.name, pool.cluster![i]!));
    for (const server of pool.servers) {
      w.begin(server.name);
      w.slots(SERVER_STATS, server, pool.extended);
      if (server.address !== null) {
        // ours, for pools that follow sentinels only: where the server is, how often it moved.
        w.string("server_address", server.address);
        w.number("failovers", server.aggregated[S.failovers]!);
      }
      w.end();
    }
    w.end();
  }
  return w.finish();
}
