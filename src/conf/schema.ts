// The pool schema: one row per YAML key with its type, default and check. The loader derives
// parsing, defaults, the unknown-key error and the required-key errors from this table alone.
// Defaults and checks are twemproxy 0.5.0's (nc_conf.h, nc_conf.c) unless marked "ours".

import { parseHostPort, parseListen } from "./address.ts";
import { parseServer } from "./server.ts";
import { DISTRIBUTIONS, HASH_NAMES, READ_FROM, type Distribution, type HashName, type PoolConfig, type ReadFrom } from "./types.ts";
import { parseDecimal, quote, ValueError } from "./value.ts";

/** `hash: server_name` is accepted as another way to ask for the server_name distribution. */
export const SERVER_NAME = "server_name";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** A pool as the table fills it, before cross-key rules, sorting and freezing. */
export type PoolSettings = Omit<Mutable<PoolConfig>, "name" | "hash" | "servers" | "sentinels"> & {
  hash: HashName | typeof SERVER_NAME;
  servers: PoolConfig["servers"][number][];
  sentinels: PoolConfig["sentinels"][number][];
};

/** How the YAML value of a key is read: one scalar, or a block sequence of scalars. */
type ValueType<T> =
  | { readonly shape: "scalar"; parse(text: string): T }
  | { readonly shape: "list"; parse(items: readonly string[]): T };

/** A bad list item: which one, and what is wrong with it. */
export class ItemError extends ValueError {
  constructor(
    readonly index: number,
    message: string,
  ) {
    super(message);
  }
}

const REQUIRED = Symbol("required");

/** One row of the table, seen by the loader without its value type. */
export interface Directive {
  readonly key: string;
  readonly shape: "scalar" | "list";
  readonly required: boolean;
  /** Parses and checks a value (a string, or the list's strings) into `settings`; throws ValueError. */
  read(settings: Partial<PoolSettings>, value: string | readonly string[]): void;
  /** Stores the default of an optional key that was not given. */
  setDefault(settings: Partial<PoolSettings>): void;
}

/** A table row: the key, the PoolConfig field it fills, its type, default and extra check. */
function directive<F extends keyof PoolSettings>(
  key: string,
  field: F,
  type: ValueType<PoolSettings[F]>,
  defaultValue: PoolSettings[F] | typeof REQUIRED,
  check?: (value: PoolSettings[F]) => string | null,
): Directive {
  return {
    key,
    shape: type.shape,
    required: defaultValue === REQUIRED,
    read(settings, raw) {
      const value = type.shape === "scalar" ? type.parse(raw as string) : type.parse(raw as readonly string[]);
      const problem = check?.(value);
      if (problem) throw new ValueError(problem);
      settings[field] = value;
    },
    setDefault(settings) {
      if (defaultValue !== REQUIRED) settings[field] = defaultValue;
    },
  };
}

const scalar = <T>(parse: (text: string) => T): ValueType<T> => ({ shape: "scalar", parse });

function oneOf<T extends string>(names: readonly T[], what: string): ValueType<T> {
  return scalar((text) => {
    if ((names as readonly string[]).includes(text)) return text as T;
    throw new ValueError(`${quote(text)} is not a valid ${what}; use one of ${names.join(", ")}`);
  });
}

const count = scalar((text) => parseDecimal(text, "value"));

/** Milliseconds; 0 means no timeout, as in twemproxy (msg_tmo_insert skips timeout <= 0). */
const timeoutMs = scalar((text): number | null => parseDecimal(text, "value") || null);

const bool = scalar((text) => {
  // Exactly these two words: twemproxy rejects yes/no/on/off/True/1.
  if (text === "true") return true;
  if (text === "false") return false;
  throw new ValueError(`${quote(text)} is not "true" or "false"`);
});

const text = scalar((value): string | null => value);

const hashTag = scalar((value): string | null => {
  // ours: ASCII only, so that one character is one byte of the key (0.5.0 counts bytes and
  // would take a single two-byte UTF-8 character).
  if (!/^[\x00-\x7f]{2}$/.test(value)) {
    throw new ValueError(`${quote(value)} is not a hash tag of exactly two ASCII characters, e.g. "{}"`);
  }
  return value;
});


/** A list whose items are parsed one by one; a bad item is reported with its position. */
function listOf<T>(parseItem: (text: string) => T): ValueType<T[]> {
  return {
    shape: "list",
    parse: (items) =>
      items.map((item, i) => {
        try {
          return parseItem(item);
        } catch (error) {
          throw error instanceof ValueError ? new ItemError(i, error.message) : error;
        }
      }),
  };
}

const sentinels: ValueType<PoolSettings["sentinels"]> = {
  shape: "list",
  parse(items) {
    const addresses = listOf(parseHostPort).parse(items);
    addresses.forEach((a, i) => {
      const first = addresses.findIndex((b) => b.host.toLowerCase() === a.host.toLowerCase() && b.port === a.port);
      if (first < i) throw new ItemError(i, `sentinel ${quote(a.spec)} is listed twice`);
    });
    return addresses;
  },
};

const servers: ValueType<PoolSettings["servers"]> = listOf(parseServer);

/** Not given: no sentinels (one shared empty list, so a reload sees no change). */
const NO_SENTINELS: PoolSettings["sentinels"] = [];

export const POOL_DIRECTIVES: readonly Directive[] = [
  directive("listen", "listen", scalar(parseListen), REQUIRED),
  directive("hash", "hash", oneOf<HashName | typeof SERVER_NAME>([...HASH_NAMES, SERVER_NAME], "hash"), "fnv1a_64"),
  directive("hash_tag", "hashTag", hashTag, null),
  directive("distribution", "distribution", oneOf<Distribution>(DISTRIBUTIONS, "distribution"), "ketama"),
  directive("timeout", "timeout", timeoutMs, null),
  directive("backlog", "backlog", count, 512),
  // 0 = unlimited. 0.5.0 parses and ignores it; ours enforces it.
  directive("client_connections", "clientConnections", count, 0),
  directive("redis", "redis", bool, false),
  directive("redis_auth", "redisAuth", text, null),
  directive("redis_db", "redisDb", count, 0),
  directive("preconnect", "preconnect", bool, false),
  directive("auto_eject_hosts", "autoEjectHosts", bool, false),
  directive("server_connections", "serverConnections", count, 1, (n) => (n > 0 ? null : "cannot be 0")),
  directive("server_retry_timeout", "serverRetryTimeout", count, 30000),
  directive("server_failure_limit", "serverFailureLimit", count, 2),
  directive("tcpkeepalive", "tcpkeepalive", bool, false),
  // ours: added to twemproxy after 0.5.0, which rejects the key.
  directive("reuseport", "reuseport", bool, false),
  // ours: consecutive memcached get (or gets) requests to a server go as one command line.
  directive("coalesce_gets", "coalesceGets", bool, true),
  // ours (issue 17): redis commands that touch every server. KEYS blocks every server while it
  // runs, FLUSHDB / FLUSHALL empty them: both refused unless the pool enables them.
  directive("redis_allow_keys", "redisAllowKeys", bool, false),
  directive("redis_allow_flush", "redisAllowFlush", bool, false),
  // ours: clients of the pool in subscribed mode at once (each holds its own connection to
  // every server it subscribes on); 0 = no limit.
  directive("redis_max_subscribers", "redisMaxSubscribers", count, 0),
  // ours: dedicated connections (blocking commands, transactions) per server at once; 0 = no
  // limit.
  directive("redis_dedicated_connections", "redisDedicatedConnections", count, 0),
  // ours: follow Redis Sentinel failovers (issue 20); each server's name is its master name.
  directive("sentinels", "sentinels", sentinels, NO_SENTINELS),
  directive("sentinel_auth", "sentinelAuth", text, null),
  // ours: where read-only commands go; other than master only with sentinels (load.ts);
  // distribution redis_cluster serves "master" so far (replica reads are to come).
  directive("read_from", "readFrom", oneOf<ReadFrom>(READ_FROM, "read_from"), "master"),
  directive("servers", "servers", servers, REQUIRED),
];
