// The workloads of the side-by-side comparison: one table, everything else is derived from it.

import type { TargetName } from "./cluster.ts";

/** The proxy pools (the same four in every proxy's config, and redis4s: redis4 with
 *  buncracker's redis_shared_subscriptions, which the others serve on redis4). */
export type Pool = "redis4" | "redis1" | "mc4" | "mc1" | "redis4s";
/** redisload.ts: a mixed GET/SET generator; pubsub.ts: one publisher, many subscribers. */
export type Tool = "redis-benchmark" | "memaslap" | "mcload" | "redisload" | "pubsub";
/** `mix`: GETs and SETs at random, `getShare` of them GETs; `publish`: pub/sub fan-out. */
export type Op = "get" | "set" | "mix" | "publish";

export interface Workload {
  name: string;
  pool: Pool;
  tool: Tool;
  op: Op;
  /** Share of GETs in a `mix` workload. */
  getShare: number;
  /** Connections; for `publish`, the subscribers (one more connection publishes). */
  clients: number;
  pipeline: number;
  /** Keys per request: 10 for MGET / MSET / 10-key multi-get. */
  keys: number;
  /** Keys are `<prefix><12 digits>`, drawn at random from `keyspace` keys (prefilled). */
  prefix: "key:" | "big:";
  keyspace: number;
  valueSize: number;
  /** Part of the --quick smoke run. */
  quick: boolean;
  /** Targets that cannot run this workload at all, and why (reported instead of a figure). */
  unsupported: Partial<Record<TargetName, string>>;
}

const SMALL = { prefix: "key:", keyspace: 100_000, valueSize: 32 } as const;
const LARGE = { prefix: "big:", keyspace: 1_000, valueSize: 100 * 1024 } as const;

type Shape = Omit<Workload, "name" | "quick">;
const shape = (pool: Pool, tool: Tool, op: Op, more: Partial<Shape> = {}): Shape => ({
  pool,
  tool,
  op,
  getShare: op === "get" ? 1 : 0,
  unsupported: {},
  clients: 50,
  pipeline: 1,
  keys: 1,
  ...SMALL,
  ...more,
});

const NO_PUBSUB = "nutcracker cannot do it: twemproxy does not proxy pub/sub (it refuses SUBSCRIBE and PUBLISH)";

const TABLE: Array<[name: string, quick: boolean, shape: Shape]> = [
  ["redis-get-p1", true, shape("redis4", "redis-benchmark", "get")],
  ["redis-set-p1", false, shape("redis4", "redis-benchmark", "set")],
  ["redis-get-p16", true, shape("redis4", "redis-benchmark", "get", { pipeline: 16 })],
  ["redis-set-p16", false, shape("redis4", "redis-benchmark", "set", { pipeline: 16 })],
  ["redis-mget10-p16", true, shape("redis4", "redis-benchmark", "get", { pipeline: 16, keys: 10 })],
  ["redis-mset10-p16", false, shape("redis4", "redis-benchmark", "set", { pipeline: 16, keys: 10 })],
  ["redis-get-p16-1srv", false, shape("redis1", "redis-benchmark", "get", { pipeline: 16 })],
  ["redis-get-c1000", false, shape("redis4", "redis-benchmark", "get", { clients: 1000 })],
  ["redis-get-100k", false, shape("redis4", "redis-benchmark", "get", { ...LARGE })],
  ["redis-set-100k", false, shape("redis4", "redis-benchmark", "set", { ...LARGE })],
  ["mc-get-p1", true, shape("mc4", "mcload", "get")],
  ["mc-set-p1", false, shape("mc4", "mcload", "set")],
  ["mc-get-p16", true, shape("mc4", "mcload", "get", { pipeline: 16 })],
  ["mc-set-p16", false, shape("mc4", "mcload", "set", { pipeline: 16 })],
  ["mc-mget10-p1", false, shape("mc4", "mcload", "get", { keys: 10 })],
  ["mc-mget10-p16", true, shape("mc4", "mcload", "get", { pipeline: 16, keys: 10 })],
  ["mc-get-p16-1srv", false, shape("mc1", "mcload", "get", { pipeline: 16 })],
  ["mc-get-c1000", false, shape("mc4", "mcload", "get", { clients: 1000 })],
  ["mc-get-100k", false, shape("mc4", "mcload", "get", { ...LARGE })],
  ["mc-set-100k", false, shape("mc4", "mcload", "set", { ...LARGE })],
  ["memaslap-get-p1", true, shape("mc4", "memaslap", "get")],
  ["memaslap-mget10-p1", false, shape("mc4", "memaslap", "get", { keys: 10 })],
  ["redis-mix80-p4-c500", true, shape("redis4", "redisload", "mix", { getShare: 0.8, pipeline: 4, clients: 500 })],
  [
    "redis-pubsub-100",
    true,
    shape("redis4", "pubsub", "publish", {
      clients: 100,
      pipeline: 16,
      unsupported: { nutcracker: NO_PUBSUB },
    }),
  ],
  // The same through buncracker's shared subscriptions (redis_shared_subscriptions: true); the
  // other targets as in redis-pubsub-100.
  ["redis-pubsub-100-shared", false, shape("redis4s", "pubsub", "publish", { clients: 100, pipeline: 16, unsupported: { nutcracker: NO_PUBSUB } })],
];

export const WORKLOADS: readonly Workload[] = TABLE.map(([name, quick, s]) => ({ name, quick, ...s }));

export const isRedis = (pool: Pool): boolean => pool.startsWith("redis");

/** One line saying what a workload does, for the report. */
export function describe(w: Workload): string {
  const size = w.valueSize >= 1024 ? `${w.valueSize / 1024} KB` : `${w.valueSize} B`;
  if (w.op === "publish") {
    const shared = w.pool === "redis4s" ? "; buncracker's pool has redis_shared_subscriptions: true (the others' as in redis-pubsub-100)" : "";
    return `${w.tool}: 1 publisher (PUBLISH, ${w.pipeline} in flight) and ${w.clients} subscribers of one channel, ${size} messages; ops/s = messages delivered to subscribers${shared}`;
  }
  const command = w.op === "mix"
    ? `${Math.round(w.getShare * 100)}% GET / ${Math.round((1 - w.getShare) * 100)}% SET`
    : isRedis(w.pool)
    ? w.keys > 1
      ? `${w.op === "get" ? "MGET" : "MSET"} of ${w.keys} keys`
      : w.op.toUpperCase()
    : w.keys > 1
      ? `${w.keys}-key get`
      : w.op;
  const servers = w.pool.endsWith("1") ? "1-server pool" : "4-server pool";
  return `${w.tool}: ${command}, ${w.clients} conns, pipeline ${w.pipeline}, ${size} values, ${w.keyspace} keys, ${servers}`;
}
