// `-D`: the counters of the twemproxy-shaped stats JSON with their descriptions, laid out as
// nutcracker 0.5.0's stats_describe() prints them (`  %-20s"%s"` per counter).

import { POOL_STATS, SERVER_STATS, type StatSpec } from "./table.ts";

const section = (title: string, table: readonly StatSpec[]): string =>
  `${title}\n` +
  table
    .filter((spec) => spec.json === true)
    .map((spec) => `  ${spec.name.padEnd(20)}"${spec.description}"\n`)
    .join("");

export function describeStats(): string {
  return `${section("pool stats:", POOL_STATS)}\n${section("server stats:", SERVER_STATS)}`;
}
