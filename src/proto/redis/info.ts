// INFO, answered by the proxy for its pool: one redis-format INFO text built from the INFO
// replies of the pool's servers (gathered by the core, one INFO to each live server) and the
// proxy's own facts. A client's ready check reads it (ioredis and iovalkey wait for `loading:0`),
// monitoring reads the sums. Sections:
//   # Server       redis_version: the lowest of the servers' (what every server can do);
//                  buncracker_version, redis_mode standalone, process_id, tcp_port, uptime
//   # Clients      the servers' integer fields, summed
//   # Memory       the servers' integer fields, summed
//   # Persistence  loading:0: the proxy takes requests (a loading server answers -LOADING)
//   # Stats        the servers' numeric fields, summed
//   # Replication  role:master (clients see one standalone server)
//   # Keyspace     db0: the servers' lines for redis_db, summed (avg_ttl weighted by expires)
//   # Cluster      cluster_enabled:1, for a redis_cluster pool only (redis-py's RedisCluster
//                  checks it); its redis_mode is cluster
// Pure: (requested sections, servers' texts, facts) -> text.

import { CR, DOLLAR, EQUALS, LF, numberValue, readNumber } from "./resp.ts";

export interface InfoFacts {
  /** The proxy's version. */
  readonly version: string;
  readonly processId: number;
  /** The pool's listen port (0 for a unix socket). */
  readonly port: number;
  readonly uptimeSeconds: number;
  /** The pool's redis_db: the servers' keyspace line shown as db0. */
  readonly redisDb: number;
  /** A redis_cluster pool: its servers are the cluster's masters. */
  readonly cluster: boolean;
}

/** One server's INFO text: its sections, each a list of [field, value] in the server's order. */
type Sections = Map<string, [string, string][]>;

const SECTIONS = ["server", "clients", "memory", "persistence", "stats", "replication", "keyspace", "cluster"] as const;
type Section = (typeof SECTIONS)[number];

/** Redis's names for sets of sections. */
const ALL = new Set(["all", "everything", "default"]);

/** The INFO text for `requested` section names (none: the default set), from the servers' INFO
 *  texts (null for a server that did not answer). Empty when no requested section exists. */
export function buildInfo(requested: readonly string[], servers: readonly (string | null)[], facts: InfoFacts): string {
  const wanted = new Set(requested.map((s) => s.toLowerCase()));
  const all = wanted.size === 0 || [...wanted].some((s) => ALL.has(s));
  const parsed = servers.filter((s): s is string => s !== null).map(parseInfo);
  const parts: string[] = [];
  for (const section of SECTIONS) {
    if (!all && !wanted.has(section)) continue;
    if (section === "cluster" && !facts.cluster) continue;
    const fields = sectionFields(section, parsed, facts);
    parts.push(`# ${section[0]!.toUpperCase()}${section.slice(1)}\r\n${fields.map(([k, v]) => `${k}:${v}\r\n`).join("")}`);
  }
  return parts.join("\r\n");
}

function sectionFields(section: Section, servers: Sections[], facts: InfoFacts): [string, string][] {
  switch (section) {
    case "server":
      return [
        ["redis_version", lowestVersion(servers.map((s) => field(s, "server", "redis_version"))) ?? "unknown"],
        ["buncracker_version", facts.version],
        ["redis_mode", facts.cluster ? "cluster" : "standalone"],
        ["process_id", String(facts.processId)],
        ["tcp_port", String(facts.port)],
        ["uptime_in_seconds", String(facts.uptimeSeconds)],
        ["uptime_in_days", String(Math.floor(facts.uptimeSeconds / 86400))],
      ];
    case "clients":
      return sums(servers, "clients", false);
    case "memory":
      return sums(servers, "memory", false);
    case "persistence":
      return [
        ["loading", "0"],
        ["async_loading", "0"],
      ];
    case "stats":
      return sums(servers, "stats", true);
    case "replication":
      return [
        ["role", "master"],
        ["connected_slaves", "0"],
      ];
    case "keyspace":
      return keyspace(servers, facts.redisDb);
    case "cluster":
      return [["cluster_enabled", "1"]];
  }
}

/** Parses an INFO text: `# Section` headers, `field:value` lines. */
export function parseInfo(text: string): Sections {
  const sections: Sections = new Map();
  let current: [string, string][] | null = null;
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith("#")) {
      current = [];
      sections.set(line.slice(1).trim().toLowerCase(), current);
      continue;
    }
    const colon = line.indexOf(":");
    if (current !== null && colon > 0) current.push([line.slice(0, colon), line.slice(colon + 1)]);
  }
  return sections;
}

function field(s: Sections, section: string, name: string): string | null {
  return s.get(section)?.find(([k]) => k === name)?.[1] ?? null;
}

/** One field of an INFO text, or null. */
export function infoField(text: string, section: string, name: string): string | null {
  return field(parseInfo(text), section, name);
}

/** The lowest of dotted versions ("6.2.14" < "7.0.15"); null when there is none. */
export function lowestVersion(versions: readonly (string | null)[]): string | null {
  let lowest: string | null = null;
  for (const v of versions) {
    if (v === null) continue;
    if (lowest === null || compareVersions(v, lowest) < 0) lowest = v;
  }
  return lowest;
}

function compareVersions(a: string, b: string): number {
  const x = a.split(".").map(Number);
  const y = b.split(".").map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

const INTEGER = /^-?\d+$/;
const DECIMAL = /^-?\d+\.\d+$/;

/** The fields of a section whose values are numbers (integers only unless `decimals`), summed
 *  over the servers, in the order the first server lists them. */
function sums(servers: Sections[], section: string, decimals: boolean): [string, string][] {
  const order: string[] = [];
  const total = new Map<string, number>();
  const isDecimal = new Set<string>();
  for (const s of servers) {
    for (const [k, v] of s.get(section) ?? []) {
      const decimal = DECIMAL.test(v);
      if (!INTEGER.test(v) && !(decimals && decimal)) continue;
      if (!total.has(k)) order.push(k);
      total.set(k, (total.get(k) ?? 0) + Number(v));
      if (decimal) isDecimal.add(k);
    }
  }
  return order.map((k) => [k, isDecimal.has(k) ? total.get(k)!.toFixed(2) : String(total.get(k)!)]);
}

/** `db<redisDb>:keys=..,expires=..,avg_ttl=..` of every server, summed, as db0 (redis lists
 *  no line for an empty database). */
function keyspace(servers: Sections[], redisDb: number): [string, string][] {
  const order: string[] = [];
  const total = new Map<string, number>();
  let ttlWeight = 0;
  for (const s of servers) {
    const line = field(s, "keyspace", `db${redisDb}`);
    if (line === null) continue;
    const values = new Map(line.split(",").map((kv) => kv.split("=") as [string, string]));
    const expires = Number(values.get("expires") ?? 0);
    for (const [k, v] of values) {
      if (!INTEGER.test(v)) continue;
      if (!total.has(k)) order.push(k);
      // avg_ttl: the mean over every expiring key, so each server's weighs by its expires.
      const add = k === "avg_ttl" ? Number(v) * expires : Number(v);
      total.set(k, (total.get(k) ?? 0) + add);
    }
    ttlWeight += expires;
  }
  if ((total.get("keys") ?? 0) === 0) return [];
  if (total.has("avg_ttl")) total.set("avg_ttl", ttlWeight === 0 ? 0 : Math.round(total.get("avg_ttl")! / ttlWeight));
  return [["db0", order.map((k) => `${k}=${total.get(k)}`).join(",")]];
}

const latin1 = new TextDecoder("latin1");

/** The text of a server's INFO reply at buf[start, end): a bulk string (RESP2) or a verbatim
 *  string (RESP3, its `txt:` prefix dropped); null for anything else (an error). */
export function infoBody(buf: Uint8Array, start: number, end: number): string | null {
  const type = buf[start];
  if (type !== DOLLAR && type !== EQUALS) return null;
  const from = readNumber(buf, start + 1, end);
  if (from < 0) return null;
  const length = numberValue(buf, start + 1);
  const to = from + length;
  if (length < 0 || to + 2 > end || buf[to] !== CR || buf[to + 1] !== LF) return null;
  return latin1.decode(buf.subarray(type === EQUALS ? from + 4 : from, to));
}
