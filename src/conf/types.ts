// The typed, frozen configuration the proxy runs on. Produced only by src/conf/load.ts;
// nothing else in the proxy reads raw YAML.

export const HASH_NAMES = [
  "one_at_a_time", "md5", "crc16", "crc32", "crc32a", "fnv1_64",
  "fnv1a_64", "fnv1_32", "fnv1a_32", "hsieh", "murmur", "jenkins",
] as const; // twemproxy's hash_type_t enum order: the index is the WASM hash id
export type HashName = (typeof HASH_NAMES)[number];

// The first four are the WASM router's distribution ids, in order; redis_cluster (ours) routes by
// the cluster's slots instead (src/redis-cluster/slot-map.ts).
export const DISTRIBUTIONS = ["ketama", "modula", "random", "server_name", "redis_cluster"] as const;
export type Distribution = (typeof DISTRIBUTIONS)[number];

export const READ_FROM = ["master", "replica", "prefer-replica"] as const;
/** Where read-only commands go (ours, with sentinels): the master, a replica (an error when none
 *  is up), or a replica when one is up, else the master. */
export type ReadFrom = (typeof READ_FROM)[number];

/** Where a pool listens or a server lives: TCP host:port or a unix socket path. */
export interface Address {
  /** The text as written in the config (e.g. "127.0.0.1:22121", "/tmp/x.sock 0666"). */
  readonly spec: string;
  /** Host name or IP (IPv6 without brackets) for TCP; the socket path for unix. */
  readonly host: string;
  /** TCP port; 0 for unix sockets. */
  readonly port: number;
  readonly unix: boolean;
  /** Unix listen sockets only: file mode (e.g. 0o666), or null when not given. */
  readonly perm: number | null;
}

export interface ServerConfig {
  readonly addr: Address;
  readonly weight: number;
  /** The name given after the weight, or null. */
  readonly name: string | null;
  /** Name hashed into the ketama ring and used for sorting: name, else "host:port" as written,
   *  else "host" when the port is 11211. */
  readonly effectiveName: string;
  /** The key of this server in stats output (as twemproxy keys it). */
  readonly statsName: string;
  /** "host:port:weight" as written (twemproxy's pname), for logs. */
  readonly pname: string;
}

/** A PEM file as read when the config was loaded: a reload reads it again (rotation). */
export interface PemFile {
  readonly path: string;
  /** The file's text (certificates and keys, already checked to parse). */
  readonly text: string;
}

/** ours: the pool's clients connect with TLS (key `tls`). */
export interface ListenTls {
  readonly cert: PemFile;
  readonly key: PemFile;
  /** Clients must present a certificate this CA signed (mutual TLS); null: none asked for. */
  readonly ca: PemFile | null;
}

/** ours: the pool connects to its servers with TLS (key `server_tls`). */
export interface ServerTls {
  /** The CAs the servers' certificates are checked against; null: the runtime's public roots. */
  readonly ca: PemFile | null;
  /** A client certificate for servers that require one (mutual TLS); both or neither. */
  readonly cert: PemFile | null;
  readonly key: PemFile | null;
  /** SNI and the name the certificate must carry; null: each server's host. */
  readonly serverName: string | null;
  /** false: any certificate is accepted (logged as a warning at every load). */
  readonly verify: boolean;
}

export interface PoolConfig {
  readonly name: string;
  readonly listen: Address;
  readonly hash: HashName;
  /** Exactly two characters, or null. */
  readonly hashTag: string | null;
  readonly distribution: Distribution;
  /** Request timeout in ms; null waits forever. */
  readonly timeout: number | null;
  readonly backlog: number;
  /** 0 = unlimited. Enforced (twemproxy 0.5.0 ignores it). */
  readonly clientConnections: number;
  readonly redis: boolean;
  readonly redisAuth: string | null;
  readonly redisDb: number;
  readonly preconnect: boolean;
  readonly autoEjectHosts: boolean;
  readonly serverConnections: number;
  readonly serverRetryTimeout: number;
  readonly serverFailureLimit: number;
  readonly tcpkeepalive: boolean;
  /** ours: memcached get (and gets) requests to one server share a command line (proto/memcache/upstream.ts). */
  readonly coalesceGets: boolean;
  readonly reuseport: boolean;
  /** ours: TLS for the pool's clients, or null for plaintext. */
  readonly tls: ListenTls | null;
  /** ours: TLS to the pool's servers, or null for plaintext. */
  readonly serverTls: ServerTls | null;
  /** ours: the largest request a client may send, in bytes; 0: the protocol's own limit. */
  readonly clientMaxRequest: number;
  /** ours: ms a client may stay idle (nothing sent, nothing owed) before it is closed; null:
   *  forever (redis's `timeout`). */
  readonly clientIdleTimeout: number | null;
  /** ours: KEYS is served (merged from every server); else refused. */
  readonly redisAllowKeys: boolean;
  /** ours: FLUSHDB and FLUSHALL are served (on every server); else refused. */
  readonly redisAllowFlush: boolean;
  /** ours: clients in subscribed mode at once; 0 = no limit. */
  readonly redisMaxSubscribers: number;
  /** ours: subscriptions go through one connection per server and connection group, shared by
   *  the pool's clients (core/hub.ts), instead of each client's own. */
  readonly redisSharedSubscriptions: boolean;
  /** ours: dedicated upstream connections (blocking commands, transactions) per server at
   *  once; 0 = no limit. */
  readonly redisDedicatedConnections: number;
  /** ours: Redis Sentinels to follow failovers with (a server's name is its sentinel master
   *  name); empty when the pool has none. TCP addresses only. */
  readonly sentinels: readonly Address[];
  /** ours: the password the sentinels require (their requirepass), or null. */
  readonly sentinelAuth: string | null;
  /** ours: where read-only commands go; "master" unless sentinels report replicas (distribution
   *  redis_cluster serves "master" only so far). */
  readonly readFrom: ReadFrom;
  /** In twemproxy's internal order (sorted by effectiveName: shorter first, then bytewise).
   *  Every server index in the proxy (routing, stats, connections) is an index into this array. */
  readonly servers: readonly ServerConfig[];
}

export interface Config {
  /** The file the config was read from (for messages and reload). */
  readonly file: string;
  /** In the order they appear in the file. */
  readonly pools: readonly PoolConfig[];
}
