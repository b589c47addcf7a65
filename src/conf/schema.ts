// The pool schema: one row per YAML key with its type, default and check. The loader derives
// parsing, defaults, the unknown-key error and the required-key errors from this table alone.
// Defaults and checks are twemproxy 0.5.0's (nc_conf.h, nc_conf.c) unless marked "ours".

import { parseHostPort, parseListen } from "./address.ts";
import { checkKeyPair, readCertificates, readKey } from "./pem.ts";
import { parseServer } from "./server.ts";
import {
  DISTRIBUTIONS,
  HASH_NAMES,
  READ_FROM,
  type Distribution,
  type HashName,
  type ListenTls,
  type PoolConfig,
  type ReadFrom,
  type ServerTls,
} from "./types.ts";
import { parseByteSize, parseDecimal, quote, ValueError } from "./value.ts";

/** `hash: server_name` is accepted as another way to ask for the server_name distribution. */
export const SERVER_NAME = "server_name";

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** A pool as the table fills it, before cross-key rules, sorting and freezing. */
export type PoolSettings = Omit<Mutable<PoolConfig>, "name" | "hash" | "servers" | "sentinels"> & {
  hash: HashName | typeof SERVER_NAME;
  servers: PoolConfig["servers"][number][];
  sentinels: PoolConfig["sentinels"][number][];
};

/** How the YAML value of a key is read: one scalar, a block sequence of scalars, or a block
 *  mapping of scalars (key -> text, in file order). */
type ValueType<T> =
  | { readonly shape: "scalar"; parse(text: string): T }
  | { readonly shape: "list"; parse(items: readonly string[]): T }
  | { readonly shape: "map"; parse(entries: ReadonlyMap<string, string>): T };

export type Shape = ValueType<unknown>["shape"];
export type RawValue = string | readonly string[] | ReadonlyMap<string, string>;

/** A bad list item: which one, and what is wrong with it. */
export class ItemError extends ValueError {
  constructor(
    readonly index: number,
    message: string,
  ) {
    super(message);
  }
}

/** A bad entry of a mapping value: its key, and what is wrong with it. */
export class EntryError extends ValueError {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
  }
}

const REQUIRED = Symbol("required");

/** One row of the table, seen by the loader without its value type. */
export interface Directive {
  readonly key: string;
  readonly shape: Shape;
  readonly required: boolean;
  /** Parses and checks a value (a string, the list's strings, or the mapping's entries) into
   *  `settings`; throws ValueError. */
  read(settings: Partial<PoolSettings>, value: RawValue): void;
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
      const value =
        type.shape === "scalar"
          ? type.parse(raw as string)
          : type.shape === "list"
            ? type.parse(raw as readonly string[])
            : type.parse(raw as ReadonlyMap<string, string>);
      const problem = check?.(value);
      if (problem) throw new ValueError(problem);
      settings[field] = value;
    },
    setDefault(settings) {
      if (defaultValue !== REQUIRED) settings[field] = defaultValue;
    },
  };
}

type Scalar<T> = Extract<ValueType<T>, { shape: "scalar" }>;

type List<T> = Extract<ValueType<T>, { shape: "list" }>;

const scalar = <T>(parse: (text: string) => T): Scalar<T> => ({ shape: "scalar", parse });

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
function listOf<T>(parseItem: (text: string) => T): List<T[]> {
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

/** ms, 0 = never (client_idle_timeout). */
const idleMs = timeoutMs;

/** Bytes, with an optional kb/mb/gb suffix; 0 = the protocol's own limit. */
const byteSize = scalar((text) => parseByteSize(text, "value"));

/** One entry of a mapping value: its key and whether it must be given. */
interface Entry {
  readonly key: string;
  readonly required: boolean;
}

/** A mapping value with these entries: unknown and missing ones are refused before `build`
 *  reads them (each through `entry`, so that an error names its entry). */
function mapping<T>(entries: readonly Entry[], build: (get: (key: string) => string | null) => T): ValueType<T> {
  return {
    shape: "map",
    parse(given) {
      for (const key of given.keys()) {
        if (!entries.some((e) => e.key === key)) {
          throw new EntryError(key, `unknown setting (known: ${entries.map((e) => e.key).join(", ")})`);
        }
      }
      for (const e of entries) {
        if (e.required && !given.has(e.key)) throw new ValueError(`setting ${quote(e.key)} is missing`);
      }
      return build((key) => given.get(key) ?? null);
    },
  };
}

/** Runs `step` for the entry `key`, so its ValueError points at that entry. */
function entry<T>(key: string, step: () => T): T {
  try {
    return step();
  } catch (error) {
    if (error instanceof ValueError && !(error instanceof EntryError)) throw new EntryError(key, error.message);
    throw error;
  }
}

/** `cert` + `key` (+ `ca` for clients' certificates) files, checked to parse and to match. */
const listenTls = mapping<ListenTls | null>(
  [
    { key: "cert", required: true },
    { key: "key", required: true },
    { key: "ca", required: false },
  ],
  (get) => {
    const cert = entry("cert", () => readCertificates(get("cert")!));
    const key = entry("key", () => readKey(get("key")!));
    entry("key", () => checkKeyPair(cert.certs[0]!, cert.file.path, key.key, key.file.path));
    const ca = get("ca");
    return { cert: cert.file, key: key.file, ca: ca === null ? null : entry("ca", () => readCertificates(ca).file) };
  },
);

const serverTls = mapping<ServerTls | null>(
  [
    { key: "ca", required: false },
    { key: "cert", required: false },
    { key: "key", required: false },
    { key: "server_name", required: false },
    { key: "verify", required: false },
  ],
  (get) => {
    const caPath = get("ca");
    const ca = caPath === null ? null : entry("ca", () => readCertificates(caPath).file);
    const certPath = get("cert");
    const keyPath = get("key");
    if ((certPath === null) !== (keyPath === null)) {
      throw new EntryError(certPath === null ? "key" : "cert", `"cert" and "key" go together (a client certificate and its key)`);
    }
    let cert = null;
    let key = null;
    if (certPath !== null && keyPath !== null) {
      const c = entry("cert", () => readCertificates(certPath));
      const k = entry("key", () => readKey(keyPath));
      entry("key", () => checkKeyPair(c.certs[0]!, certPath, k.key, keyPath));
      cert = c.file;
      key = k.file;
    }
    const verify = get("verify");
    return {
      ca,
      cert,
      key,
      serverName: get("server_name"),
      verify: verify === null ? true : entry("verify", () => bool.parse(verify)),
    };
  },
);

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
  // ours: TLS for the pool's clients (cert, key, optional ca: mutual TLS).
  directive("tls", "tls", listenTls, null),
  // ours: TLS to the pool's servers (ca, cert + key, server_name, verify).
  directive("server_tls", "serverTls", serverTls, null),
  // ours: a client's request larger than this is refused with an error (0: no cap of ours).
  directive("client_max_request", "clientMaxRequest", byteSize, 0),
  // ours: ms a client may be idle before it is closed (0: never).
  directive("client_idle_timeout", "clientIdleTimeout", idleMs, null),
  // ours (issue 17): redis commands that touch every server. KEYS blocks every server while it
  // runs, FLUSHDB / FLUSHALL empty them: both refused unless the pool enables them.
  directive("redis_allow_keys", "redisAllowKeys", bool, false),
  directive("redis_allow_flush", "redisAllowFlush", bool, false),
  // ours: clients of the pool in subscribed mode at once (each holds its own connection to
  // every server it subscribes on); 0 = no limit.
  directive("redis_max_subscribers", "redisMaxSubscribers", count, 0),
  // ours: every client's subscriptions go through one connection per server and protocol,
  // shared by the pool's clients (PUBSUB NUMSUB and PUBLISH then count the proxy once).
  directive("redis_shared_subscriptions", "redisSharedSubscriptions", bool, false),
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
