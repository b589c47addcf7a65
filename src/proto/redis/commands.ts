// The redis command table: the one source of truth for every command the proxy knows, its
// arity, where its keys are, and how it is routed. Arity and key positions follow redis's own
// `COMMAND` conventions (test/unit/redis-commands.test.ts checks them against a real
// redis-server): arity N means exactly N arguments counting the name, -N at least N; keys are
// the arguments firstKey..lastKey (a negative lastKey counts from the end) every keyStep, plus,
// when numkeysAt > 0, the `numkeys` keys that follow the argument numkeysAt.
//
// The commands are twemproxy 0.5.0's plus the newer redis 7 ones. Route Local is answered by the
// proxy (local.ts; CLUSTER by redis_cluster pools only, see src/redis-cluster/routing.ts,
// others refuse it), Route All goes to every server. Route Key sends the request to
// the server of its first key (for multi-key commands, such as SMOVE or ZUNIONSTORE, all keys
// must share a hash tag, as in twemproxy). A null route is a command the proxy knows but does
// not serve (it replies "-ERR unsupported command"); a name missing here is unknown. Two facts
// have a column of their own beside the table (short rows, names checked against it): which
// commands are read-only (READ_ONLY, for read_from) and which have a role beyond one key (ROLES,
// for the planner, plan.ts).

import { Route, type CommandSpec } from "../codec.ts";

interface KeyPositions {
  readonly arity: number;
  readonly firstKey: number;
  readonly lastKey: number;
  readonly keyStep: number;
  readonly numkeysAt: number;
}

/** A command the proxy serves. */
export interface SupportedCommand extends CommandSpec, KeyPositions {
  readonly readOnly: boolean;
  readonly writes: boolean;
  /** What the proxy does with it beyond routing it by key (issue 17); null for none. */
  readonly role: CommandRole | null;
  /** The reply to a call with the wrong number of arguments (redis's own text). */
  readonly arityError: string;
  /** Flag bits (Flag). */
  readonly flags: number;
}

/** A command the proxy knows but does not serve. */
export interface UnsupportedCommand extends KeyPositions {
  readonly name: string;
  readonly route: null;
  readonly readOnly: boolean;
}

export type RedisCommand = SupportedCommand | UnsupportedCommand;

type Row = readonly [name: string, arity: number, route: Route | null, firstKey: number, lastKey: number, keyStep: number, numkeysAt?: number, flags?: number];

/** Command flags (the last column), as redis's COMMAND flags. */
export const Flag = {
  /** May be called before AUTH (redis's `no_auth`). */
  NoAuth: 1,
} as const;

const { Key, Get, Sum, Any, Local, All } = Route;
const No = null;
const NoAuth = Flag.NoAuth;

// COMMAND and LOLWUT have no key: any server answers them alike. The connection handshake
// (AUTH, HELLO, CLIENT, SELECT, ECHO, RESET, READONLY, READWRITE) is answered by the proxy from
// the client's session (handshake.ts); INFO is built from every server's (info.ts).
const TABLE: readonly Row[] = [
  // name                 arity route first last step numkeysAt
  ["acl",                   -2, No,    0,  0, 0],
  ["append",                 3, Key,   1,  1, 1],
  ["asking",                 1, No,    0,  0, 0],
  ["auth",                  -2, Local, 0,  0, 0, 0, NoAuth],
  ["bgrewriteaof",           1, No,    0,  0, 0],
  ["bgsave",                -1, No,    0,  0, 0],
  ["bitcount",              -2, Key,   1,  1, 1],
  ["bitfield",              -2, Key,   1,  1, 1],
  ["bitfield_ro",           -2, Key,   1,  1, 1],
  ["bitop",                 -4, No,    2, -1, 1],
  ["bitpos",                -3, Key,   1,  1, 1],
  ["blmove",                 6, No,    1,  2, 1],
  ["blmpop",                -5, No,    0,  0, 0, 2],
  ["blpop",                 -3, No,    1, -2, 1],
  ["brpop",                 -3, No,    1, -2, 1],
  ["brpoplpush",             4, No,    1,  2, 1],
  ["bzmpop",                -5, No,    0,  0, 0, 2],
  ["bzpopmax",              -3, No,    1, -2, 1],
  ["bzpopmin",              -3, No,    1, -2, 1],
  ["client",                -2, Local, 0,  0, 0],
  ["cluster",               -2, Local, 0,  0, 0],
  ["command",               -1, Any,   0,  0, 0],
  ["config",                -2, No,    0,  0, 0],
  ["copy",                  -3, Key,   1,  2, 1],
  ["dbsize",                 1, No,    0,  0, 0],
  ["debug",                 -2, No,    0,  0, 0],
  ["decr",                   2, Key,   1,  1, 1],
  ["decrby",                 3, Key,   1,  1, 1],
  ["del",                   -2, Sum,   1, -1, 1],
  ["discard",                1, No,    0,  0, 0],
  ["dump",                   2, Key,   1,  1, 1],
  ["echo",                   2, Local, 0,  0, 0],
  ["eval",                  -3, Key,   0,  0, 0, 2],
  ["eval_ro",               -3, Key,   0,  0, 0, 2],
  ["evalsha",               -3, Key,   0,  0, 0, 2],
  ["evalsha_ro",            -3, Key,   0,  0, 0, 2],
  ["exec",                   1, No,    0,  0, 0],
  ["exists",                -2, Sum,   1, -1, 1],
  ["expire",                -3, Key,   1,  1, 1],
  ["expireat",              -3, Key,   1,  1, 1],
  ["expiretime",             2, Key,   1,  1, 1],
  ["failover",              -1, No,    0,  0, 0],
  ["fcall",                 -3, Key,   0,  0, 0, 2],
  ["fcall_ro",              -3, Key,   0,  0, 0, 2],
  ["flushall",              -1, No,    0,  0, 0],
  ["flushdb",               -1, No,    0,  0, 0],
  ["function",              -2, No,    0,  0, 0],
  ["geoadd",                -5, Key,   1,  1, 1],
  ["geodist",               -4, Key,   1,  1, 1],
  ["geohash",               -2, Key,   1,  1, 1],
  ["geopos",                -2, Key,   1,  1, 1],
  ["georadius",             -6, Key,   1,  1, 1],
  ["georadius_ro",          -6, Key,   1,  1, 1],
  ["georadiusbymember",     -5, Key,   1,  1, 1],
  ["georadiusbymember_ro",  -5, Key,   1,  1, 1],
  ["geosearch",             -7, Key,   1,  1, 1],
  ["geosearchstore",        -8, Key,   1,  2, 1],
  ["get",                    2, Key,   1,  1, 1],
  ["getbit",                 3, Key,   1,  1, 1],
  ["getdel",                 2, Key,   1,  1, 1],
  ["getex",                 -2, Key,   1,  1, 1],
  ["getrange",               4, Key,   1,  1, 1],
  ["getset",                 3, Key,   1,  1, 1],
  ["hdel",                  -3, Key,   1,  1, 1],
  ["hello",                 -1, Local, 0,  0, 0, 0, NoAuth],
  ["hexists",                3, Key,   1,  1, 1],
  ["hget",                   3, Key,   1,  1, 1],
  ["hgetall",                2, Key,   1,  1, 1],
  ["hincrby",                4, Key,   1,  1, 1],
  ["hincrbyfloat",           4, Key,   1,  1, 1],
  ["hkeys",                  2, Key,   1,  1, 1],
  ["hlen",                   2, Key,   1,  1, 1],
  ["hmget",                 -3, Key,   1,  1, 1],
  ["hmset",                 -4, Key,   1,  1, 1],
  ["hrandfield",            -2, Key,   1,  1, 1],
  ["hscan",                 -3, Key,   1,  1, 1],
  ["hset",                  -4, Key,   1,  1, 1],
  ["hsetnx",                 4, Key,   1,  1, 1],
  ["hstrlen",                3, Key,   1,  1, 1],
  ["hvals",                  2, Key,   1,  1, 1],
  ["incr",                   2, Key,   1,  1, 1],
  ["incrby",                 3, Key,   1,  1, 1],
  ["incrbyfloat",            3, Key,   1,  1, 1],
  ["info",                  -1, All,   0,  0, 0],
  ["keys",                   2, No,    0,  0, 0],
  ["lastsave",               1, No,    0,  0, 0],
  ["latency",               -2, No,    0,  0, 0],
  ["lcs",                   -3, Key,   1,  2, 1],
  ["lindex",                 3, Key,   1,  1, 1],
  ["linsert",                5, Key,   1,  1, 1],
  ["llen",                   2, Key,   1,  1, 1],
  ["lmove",                  5, Key,   1,  2, 1],
  ["lmpop",                 -4, Key,   0,  0, 0, 1],
  ["lolwut",                -1, Any,   0,  0, 0],
  ["lpop",                  -2, Key,   1,  1, 1],
  ["lpos",                  -3, Key,   1,  1, 1],
  ["lpush",                 -3, Key,   1,  1, 1],
  ["lpushx",                -3, Key,   1,  1, 1],
  ["lrange",                 4, Key,   1,  1, 1],
  ["lrem",                   4, Key,   1,  1, 1],
  ["lset",                   4, Key,   1,  1, 1],
  ["ltrim",                  4, Key,   1,  1, 1],
  ["memory",                -2, No,    0,  0, 0],
  ["mget",                  -2, Get,   1, -1, 1],
  ["migrate",               -6, No,    3,  3, 1],
  ["module",                -2, No,    0,  0, 0],
  ["monitor",                1, No,    0,  0, 0],
  ["move",                   3, No,    1,  1, 1],
  ["mset",                  -3, Route.Set, 1, -1, 2],
  ["msetnx",                -3, No,    1, -1, 2],
  ["multi",                  1, No,    0,  0, 0],
  ["object",                -2, No,    0,  0, 0],
  ["persist",                2, Key,   1,  1, 1],
  ["pexpire",               -3, Key,   1,  1, 1],
  ["pexpireat",             -3, Key,   1,  1, 1],
  ["pexpiretime",            2, Key,   1,  1, 1],
  ["pfadd",                 -2, Key,   1,  1, 1],
  ["pfcount",               -2, Key,   1, -1, 1],
  ["pfdebug",                3, No,    2,  2, 1],
  ["pfmerge",               -2, Key,   1, -1, 1],
  ["pfselftest",             1, No,    0,  0, 0],
  ["ping",                  -1, Local, 0,  0, 0],
  ["psetex",                 4, Key,   1,  1, 1],
  ["psubscribe",            -2, No,    0,  0, 0],
  ["psync",                 -3, No,    0,  0, 0],
  ["pttl",                   2, Key,   1,  1, 1],
  ["publish",                3, No,    0,  0, 0],
  ["pubsub",                -2, No,    0,  0, 0],
  ["punsubscribe",          -1, No,    0,  0, 0],
  ["quit",                  -1, Local, 0,  0, 0, 0, NoAuth],
  ["randomkey",              1, No,    0,  0, 0],
  ["readonly",               1, Local, 0,  0, 0],
  ["readwrite",              1, Local, 0,  0, 0],
  ["rename",                 3, No,    1,  2, 1],
  ["renamenx",               3, No,    1,  2, 1],
  ["replconf",              -1, No,    0,  0, 0],
  ["replicaof",              3, No,    0,  0, 0],
  ["reset",                   1, Local, 0,  0, 0, 0, NoAuth],
  ["restore",               -4, Key,   1,  1, 1],
  ["restore-asking",        -4, No,    1,  1, 1],
  ["role",                   1, No,    0,  0, 0],
  ["rpop",                  -2, Key,   1,  1, 1],
  ["rpoplpush",              3, Key,   1,  2, 1],
  ["rpush",                 -3, Key,   1,  1, 1],
  ["rpushx",                -3, Key,   1,  1, 1],
  ["sadd",                  -3, Key,   1,  1, 1],
  ["save",                   1, No,    0,  0, 0],
  ["scan",                  -2, No,    0,  0, 0],
  ["scard",                  2, Key,   1,  1, 1],
  ["script",                -2, No,    0,  0, 0],
  ["sdiff",                 -2, Key,   1, -1, 1],
  ["sdiffstore",            -3, Key,   1, -1, 1],
  ["select",                 2, Local, 0,  0, 0],
  ["set",                   -3, Key,   1,  1, 1],
  ["setbit",                 4, Key,   1,  1, 1],
  ["setex",                  4, Key,   1,  1, 1],
  ["setnx",                  3, Key,   1,  1, 1],
  ["setrange",               4, Key,   1,  1, 1],
  ["shutdown",              -1, No,    0,  0, 0],
  ["sinter",                -2, Key,   1, -1, 1],
  ["sintercard",            -3, Key,   0,  0, 0, 1],
  ["sinterstore",           -3, Key,   1, -1, 1],
  ["sismember",              3, Key,   1,  1, 1],
  ["slaveof",                3, No,    0,  0, 0],
  ["slowlog",               -2, No,    0,  0, 0],
  ["smembers",               2, Key,   1,  1, 1],
  ["smismember",            -3, Key,   1,  1, 1],
  ["smove",                  4, Key,   1,  2, 1],
  ["sort",                  -2, Key,   1,  1, 1],
  ["sort_ro",               -2, Key,   1,  1, 1],
  ["spop",                  -2, Key,   1,  1, 1],
  ["spublish",               3, No,    1,  1, 1],
  ["srandmember",           -2, Key,   1,  1, 1],
  ["srem",                  -3, Key,   1,  1, 1],
  ["sscan",                 -3, Key,   1,  1, 1],
  ["ssubscribe",            -2, No,    1, -1, 1],
  ["stralgo",               -2, No,    0,  0, 0],
  ["strlen",                 2, Key,   1,  1, 1],
  ["subscribe",             -2, No,    0,  0, 0],
  ["substr",                 4, Key,   1,  1, 1],
  ["sunion",                -2, Key,   1, -1, 1],
  ["sunionstore",           -3, Key,   1, -1, 1],
  ["sunsubscribe",          -1, No,    1, -1, 1],
  ["swapdb",                 3, No,    0,  0, 0],
  ["sync",                   1, No,    0,  0, 0],
  ["time",                   1, No,    0,  0, 0],
  ["touch",                 -2, Sum,   1, -1, 1],
  ["ttl",                    2, Key,   1,  1, 1],
  ["type",                   2, Key,   1,  1, 1],
  ["unlink",                -2, Sum,   1, -1, 1],
  ["unsubscribe",           -1, No,    0,  0, 0],
  ["unwatch",                1, No,    0,  0, 0],
  ["wait",                   3, No,    0,  0, 0],
  ["watch",                 -2, No,    1, -1, 1],
  ["xack",                  -4, Key,   1,  1, 1],
  ["xadd",                  -5, Key,   1,  1, 1],
  ["xautoclaim",            -6, Key,   1,  1, 1],
  ["xclaim",                -6, Key,   1,  1, 1],
  ["xdel",                  -3, Key,   1,  1, 1],
  ["xgroup",                -2, No,    0,  0, 0],
  ["xinfo",                 -2, No,    0,  0, 0],
  ["xlen",                   2, Key,   1,  1, 1],
  ["xpending",              -3, Key,   1,  1, 1],
  ["xrange",                -4, Key,   1,  1, 1],
  ["xread",                 -4, No,    0,  0, 0],
  ["xreadgroup",            -7, No,    0,  0, 0],
  ["xrevrange",             -4, Key,   1,  1, 1],
  ["xsetid",                -3, Key,   1,  1, 1],
  ["xtrim",                 -4, Key,   1,  1, 1],
  ["zadd",                  -4, Key,   1,  1, 1],
  ["zcard",                  2, Key,   1,  1, 1],
  ["zcount",                 4, Key,   1,  1, 1],
  ["zdiff",                 -3, Key,   0,  0, 0, 1],
  ["zdiffstore",            -4, Key,   1,  1, 1, 2],
  ["zincrby",                4, Key,   1,  1, 1],
  ["zinter",                -3, Key,   0,  0, 0, 1],
  ["zintercard",            -3, Key,   0,  0, 0, 1],
  ["zinterstore",           -4, Key,   1,  1, 1, 2],
  ["zlexcount",              4, Key,   1,  1, 1],
  ["zmpop",                 -4, Key,   0,  0, 0, 1],
  ["zmscore",               -3, Key,   1,  1, 1],
  ["zpopmax",               -2, Key,   1,  1, 1],
  ["zpopmin",               -2, Key,   1,  1, 1],
  ["zrandmember",           -2, Key,   1,  1, 1],
  ["zrange",                -4, Key,   1,  1, 1],
  ["zrangebylex",           -4, Key,   1,  1, 1],
  ["zrangebyscore",         -4, Key,   1,  1, 1],
  ["zrangestore",           -5, Key,   1,  2, 1],
  ["zrank",                  3, Key,   1,  1, 1],
  ["zrem",                  -3, Key,   1,  1, 1],
  ["zremrangebylex",         4, Key,   1,  1, 1],
  ["zremrangebyrank",        4, Key,   1,  1, 1],
  ["zremrangebyscore",       4, Key,   1,  1, 1],
  ["zrevrange",             -4, Key,   1,  1, 1],
  ["zrevrangebylex",        -4, Key,   1,  1, 1],
  ["zrevrangebyscore",      -4, Key,   1,  1, 1],
  ["zrevrank",               3, Key,   1,  1, 1],
  ["zscan",                 -3, Key,   1,  1, 1],
  ["zscore",                 3, Key,   1,  1, 1],
  ["zunion",                -3, Key,   0,  0, 0, 1],
  ["zunionstore",           -4, Key,   1,  1, 1, 2],
];

// The commands redis flags `readonly` in COMMAND (redis 7; test/unit/redis-commands.test.ts
// checks the list against a real redis-server): they may be served by a replica (read_from).
// A column of its own beside the table: one fact, short rows.
const READ_ONLY = new Set([
  "bitcount", "bitfield_ro", "bitpos", "dbsize", "dump", "eval_ro", "evalsha_ro", "exists",
  "expiretime", "fcall_ro", "geodist", "geohash", "geopos", "georadius_ro", "georadiusbymember_ro",
  "geosearch", "get", "getbit", "getrange", "hexists", "hget", "hgetall", "hkeys", "hlen", "hmget",
  "hrandfield", "hscan", "hstrlen", "hvals", "keys", "lcs", "lindex", "llen", "lolwut", "lpos",
  "lrange", "mget", "pexpiretime", "pfcount", "pttl", "randomkey", "scan", "scard", "sdiff",
  "sinter", "sintercard", "sismember", "smembers", "smismember", "sort_ro", "srandmember", "sscan",
  "strlen", "substr", "sunion", "touch", "ttl", "type", "xlen", "xpending", "xrange", "xread",
  "xrevrange", "zcard", "zcount", "zdiff", "zinter", "zintercard", "zlexcount", "zmscore",
  "zrandmember", "zrange", "zrangebylex", "zrangebyscore", "zrank", "zrevrange", "zrevrangebylex",
  "zrevrangebyscore", "zrevrank", "zscan", "zscore", "zunion",
]);

// ---- commands beyond one key (issue 17): what the proxy does with them besides routing ----
//
// One row per command that is not served by key alone. `pool` commands go to every live server
// (or to one) and their replies are merged (`pool-subcommand`: as their subcommand's row says);
// `pubsub` commands run on the client's own upstream connections; `blocking` commands wait on a
// dedicated connection, and their timeout argument says how long the request timeout must let
// them wait; `transaction` commands pin the client to a dedicated connection to one server;
// `one-server` commands need all their keys on one.

/** How the replies of a command sent to every live server become the client's one reply. */
export const PoolMerge = {
  /** The integers summed (DBSIZE). */
  Sum: "sum",
  /** The arrays concatenated (KEYS). */
  Concat: "concat",
  /** The arrays concatenated, each element once (PUBSUB CHANNELS / SHARDCHANNELS). */
  Union: "union",
  /** [name, count, ...] arrays of the same names in the same order: the counts summed
   *  (PUBSUB NUMSUB / SHARDNUMSUB). */
  PairSum: "pair-sum",
  /** The largest integer (PUBSUB NUMPAT: every pattern subscription is on every server). */
  Max: "max",
  /** The smallest integer (WAIT: the replicas that acknowledged, on every server asked). */
  Min: "min",
  /** +OK when every server said +OK (FLUSHDB, FLUSHALL, SCRIPT FLUSH). */
  AllOk: "all-ok",
  /** The one reply every server gave (SCRIPT LOAD: the script's sha); an error when they differ. */
  Same: "same",
  /** Arrays of 0/1 of one length: 1 where every server says 1 (SCRIPT EXISTS: a script is
   *  usable only if every server a key may route to has it). */
  And: "and",
  /** Not merged: one live server answers (TIME, LASTSAVE). */
  AnyOne: "any-one",
  /** A reply that is not nil, at random (RANDOMKEY: a random server that has keys). */
  RandomOne: "random-one",
  /** SCAN: the server and its cursor are in the client's cursor (scan.ts). */
  Cursor: "cursor",
} as const;
export type PoolMerge = (typeof PoolMerge)[keyof typeof PoolMerge];

/** Pub/sub operations (subscriptions.ts). Channels route like keys; patterns go to every server. */
export const PubSubOp = {
  Subscribe: "subscribe",
  Unsubscribe: "unsubscribe",
  PSubscribe: "psubscribe",
  PUnsubscribe: "punsubscribe",
  SSubscribe: "ssubscribe",
  SUnsubscribe: "sunsubscribe",
  /** PUBLISH / SPUBLISH: routed by the channel (argument 1) on the shared connections. */
  Publish: "publish",
  /** PUBSUB <subcommand>: to every live server, merged by PUBSUB_MERGE. */
  Introspect: "pubsub",
} as const;
export type PubSubOp = (typeof PubSubOp)[keyof typeof PubSubOp];

export const TxOp = { Multi: "multi", Exec: "exec", Discard: "discard", Watch: "watch", Unwatch: "unwatch" } as const;
export type TxOp = (typeof TxOp)[keyof typeof TxOp];

/** Where a blocking command's timeout is: the argument `at` (negative: from the end) in
 *  seconds, or the value after the option `BLOCK` in milliseconds (XREAD, XREADGROUP). */
export type BlockingTimeout = { readonly at: number; readonly unit: "s" } | { readonly option: "block"; readonly unit: "ms" };

export type CommandRole =
  | { readonly kind: "pool"; readonly merge: PoolMerge; readonly enabledBy?: "redis_allow_keys" | "redis_allow_flush" }
  /** Every key must be on one server (scripts: twemproxy would run them on the first key's
   *  server, with the other keys missing there). */
  | { readonly kind: "one-server" }
  | { readonly kind: "pubsub"; readonly op: PubSubOp }
  | { readonly kind: "blocking"; readonly timeout: BlockingTimeout }
  | { readonly kind: "transaction"; readonly op: TxOp }
  /** WAIT: on the servers the client wrote to (CommandSpec.writes), the replies' smallest. */
  | { readonly kind: "wait" }
  /** A whole-pool command by its subcommand (argument 1, lowercase): to every live server (and
   *  with `replicas`, to the replicas reads go to), merged by the subcommand's row; the
   *  subcommands without one are refused. */
  | { readonly kind: "pool-subcommand"; readonly merges: ReadonlyMap<string, PoolMerge>; readonly replicas: boolean };

/** SCRIPT's subcommands served: on every server and every replica reads go to, so EVALSHA and
 *  EVALSHA_RO find the script wherever they route. KILL and DEBUG are about one server's
 *  running script: refused. */
const SCRIPT_MERGE: ReadonlyMap<string, PoolMerge> = new Map([
  ["load", PoolMerge.Same],
  ["exists", PoolMerge.And],
  ["flush", PoolMerge.AllOk],
]);

const LAST_ARG: BlockingTimeout = { at: -1, unit: "s" };
const SECOND_ARG: BlockingTimeout = { at: 1, unit: "s" };
const BLOCK_OPTION: BlockingTimeout = { option: "block", unit: "ms" };

const ROLES: readonly (readonly [name: string, role: CommandRole])[] = [
  ["blmove",       { kind: "blocking", timeout: LAST_ARG }],
  ["blmpop",       { kind: "blocking", timeout: SECOND_ARG }],
  ["blpop",        { kind: "blocking", timeout: LAST_ARG }],
  ["brpop",        { kind: "blocking", timeout: LAST_ARG }],
  ["brpoplpush",   { kind: "blocking", timeout: LAST_ARG }],
  ["bzmpop",       { kind: "blocking", timeout: SECOND_ARG }],
  ["bzpopmax",     { kind: "blocking", timeout: LAST_ARG }],
  ["bzpopmin",     { kind: "blocking", timeout: LAST_ARG }],
  ["xread",        { kind: "blocking", timeout: BLOCK_OPTION }],
  ["xreadgroup",   { kind: "blocking", timeout: BLOCK_OPTION }],
  ["dbsize",       { kind: "pool", merge: PoolMerge.Sum }],
  ["flushall",     { kind: "pool", merge: PoolMerge.AllOk, enabledBy: "redis_allow_flush" }],
  ["flushdb",      { kind: "pool", merge: PoolMerge.AllOk, enabledBy: "redis_allow_flush" }],
  ["keys",         { kind: "pool", merge: PoolMerge.Concat, enabledBy: "redis_allow_keys" }],
  ["lastsave",     { kind: "pool", merge: PoolMerge.AnyOne }],
  ["randomkey",    { kind: "pool", merge: PoolMerge.RandomOne }],
  ["scan",         { kind: "pool", merge: PoolMerge.Cursor }],
  ["time",         { kind: "pool", merge: PoolMerge.AnyOne }],
  ["script",       { kind: "pool-subcommand", merges: SCRIPT_MERGE, replicas: true }],
  ["psubscribe",   { kind: "pubsub", op: PubSubOp.PSubscribe }],
  ["publish",      { kind: "pubsub", op: PubSubOp.Publish }],
  ["pubsub",       { kind: "pubsub", op: PubSubOp.Introspect }],
  ["punsubscribe", { kind: "pubsub", op: PubSubOp.PUnsubscribe }],
  ["spublish",     { kind: "pubsub", op: PubSubOp.Publish }],
  ["ssubscribe",   { kind: "pubsub", op: PubSubOp.SSubscribe }],
  ["subscribe",    { kind: "pubsub", op: PubSubOp.Subscribe }],
  ["sunsubscribe", { kind: "pubsub", op: PubSubOp.SUnsubscribe }],
  ["unsubscribe",  { kind: "pubsub", op: PubSubOp.Unsubscribe }],
  ["eval",         { kind: "one-server" }],
  ["eval_ro",      { kind: "one-server" }],
  ["evalsha",      { kind: "one-server" }],
  ["evalsha_ro",   { kind: "one-server" }],
  ["fcall",        { kind: "one-server" }],
  ["fcall_ro",     { kind: "one-server" }],
  ["discard",      { kind: "transaction", op: TxOp.Discard }],
  ["exec",         { kind: "transaction", op: TxOp.Exec }],
  ["multi",        { kind: "transaction", op: TxOp.Multi }],
  ["unwatch",      { kind: "transaction", op: TxOp.Unwatch }],
  ["watch",        { kind: "transaction", op: TxOp.Watch }],
  ["wait",         { kind: "wait" }],
];

// Which commands may change data (CommandSpec.writes, for WAIT): those with keys that are not
// read-only, and these few; redis flags them `write` or `may_replicate`, but for EVAL, EVALSHA
// and FCALL (scripts that may write) and EXEC (its queued commands may), which it does not
// (test/unit/redis-commands.test.ts checks the list against a real redis-server).
const WRITES_WITHOUT_KEYS = new Set(["exec", "flushall", "flushdb", "xreadgroup"]);
const KEYS_WITHOUT_WRITES = new Set(["watch", "ssubscribe", "sunsubscribe", "spublish"]);
const writes = (name: string, readOnly: boolean, firstKey: number, numkeysAt: number): boolean =>
  WRITES_WITHOUT_KEYS.has(name) || (!readOnly && (firstKey > 0 || numkeysAt > 0) && !KEYS_WITHOUT_WRITES.has(name));

const roleByName = new Map<string, CommandRole>(ROLES);

/** PUBSUB's subcommands (lowercase) and how their replies from every server merge. */
export const PUBSUB_MERGE: ReadonlyMap<string, PoolMerge> = new Map([
  ["channels", PoolMerge.Union],
  ["shardchannels", PoolMerge.Union],
  ["numsub", PoolMerge.PairSum],
  ["shardnumsub", PoolMerge.PairSum],
  ["numpat", PoolMerge.Max],
]);

// A command with a role is served (the plan routes it), whatever its row's route says.
export const COMMANDS: readonly RedisCommand[] = TABLE.map(([name, arity, tableRoute, firstKey, lastKey, keyStep, numkeysAt = 0, flags = 0]) => {
  const role = roleByName.get(name) ?? null;
  const route = tableRoute ?? (role === null ? null : Route.Any);
  const readOnly = READ_ONLY.has(name);
  return route === null
    ? { name, route, arity, firstKey, lastKey, keyStep, numkeysAt, readOnly }
    : {
        name,
        route,
        arity,
        firstKey,
        lastKey,
        keyStep,
        numkeysAt,
        readOnly,
        writes: writes(name, readOnly, firstKey, numkeysAt),
        role,
        planned: role !== null && role.kind !== "one-server",
        flags,
        arityError: arityError(name),
      };
});

/** Redis's reply to a wrong argument count; EXEC's also aborts the transaction, so it says so. */
function arityError(name: string): string {
  const text = `wrong number of arguments for '${name}' command`;
  return name === "exec" ? `-EXECABORT Transaction discarded because of: ${text}` : `-ERR ${text}`;
}
for (const name of [...roleByName.keys(), ...READ_ONLY, ...WRITES_WITHOUT_KEYS, ...KEYS_WITHOUT_WRITES]) if (!TABLE.some((row) => row[0] === name)) throw new Error(`${name}: not in the command table`);


function supported(name: string): SupportedCommand {
  const command = COMMANDS.find((c) => c.name === name);
  if (command === undefined || command.route === null) throw new Error(`${name} is not a supported command`);
  return command;
}

/** The commands the proxy answers itself (local.ts). */
export const PING = supported("ping");
export const QUIT = supported("quit");
export const AUTH = supported("auth");
/** Handshake commands that change what the planner keeps for a client (plan.ts). */
export const HELLO = supported("hello");
export const RESET = supported("reset");

/** PING with a message: redis echoes the message, so any server answers it. */
export const PING_MESSAGE: SupportedCommand = { ...PING, route: Route.Any };

// ---- lookup: case-insensitive, no string per request ----

const LOWER = Uint8Array.from({ length: 256 }, (_, b) => (b >= 65 && b <= 90 ? b + 32 : b));
/** Every name, lowercase, back to back: command i's is NAMES[nameAt[i], nameAt[i + 1]). */
const NAMES = new TextEncoder().encode(COMMANDS.map((c) => c.name).join(""));
const nameAt = new Int32Array(COMMANDS.length + 1);
for (let i = 0; i < COMMANDS.length; i++) nameAt[i + 1] = nameAt[i]! + COMMANDS[i]!.name.length;
const MAX_NAME = Math.max(...COMMANDS.map((c) => c.name.length));

const SLOTS = 1024; // a power of two, > 4x the number of commands
const slotCommand = new Int16Array(SLOTS).fill(-1);

/** FNV-1a of the lowercased bytes. */
function hashName(buf: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ LOWER[buf[i]!]!, 0x01000193);
  return h;
}

for (let i = 0; i < COMMANDS.length; i++) {
  let slot = hashName(NAMES, nameAt[i]!, nameAt[i + 1]!) & (SLOTS - 1);
  while (slotCommand[slot] !== -1) slot = (slot + 1) & (SLOTS - 1);
  slotCommand[slot] = i;
}

/** The command named by buf[start, end) in any letter case, or null when unknown. */
export function lookupCommand(buf: Uint8Array, start: number, end: number): RedisCommand | null {
  const len = end - start;
  if (len === 0 || len > MAX_NAME) return null;
  for (let slot = hashName(buf, start, end) & (SLOTS - 1); ; slot = (slot + 1) & (SLOTS - 1)) {
    const index = slotCommand[slot]!;
    if (index < 0) return null;
    const at = nameAt[index]!;
    if (nameAt[index + 1]! - at !== len) continue;
    let i = 0;
    while (i < len && LOWER[buf[start + i]!] === NAMES[at + i]) i++;
    if (i === len) return COMMANDS[index]!;
  }
}
