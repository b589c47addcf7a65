// The config loader: an accept/reject table checked against our errors and, case by case,
// against `nutcracker -t` (twemproxy 0.5.0); defaults; freezing; the server order and effective
// names of the ground-truth vectors; the stats keys nutcracker gives servers; server_name pools.

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { testConf } from "../../src/cli/testconf.ts";
import { ConfigError, loadConfig, parseConfig } from "../../src/conf/load.ts";
import { HASH_NAMES, type Config, type PoolConfig } from "../../src/conf/types.ts";
import { startProxy } from "../helpers/proxy.ts";
import { makeRng } from "../helpers/random.ts";
import { makeTempDir } from "../helpers/tmp.ts";
import { loadDistribution, type VectorPool } from "../helpers/vectors.ts";
import { describeNeeding, NO_NUTCRACKER } from "../helpers/needs.ts";

const NUTCRACKER = "/usr/sbin/nutcracker";
const haveNutcracker = existsSync(NUTCRACKER);
const dir = makeTempDir("bc-conf-");
afterAll(() => dir.remove());

const LISTEN = "  listen: 127.0.0.1:22121";
const SERVERS = ["  servers:", "   - 127.0.0.1:6379:1"];
const yaml = (...lines: string[]): string => lines.join("\n") + "\n";
/** Pool "p" listening on 127.0.0.1:22121 with one server, plus `settings`. */
const withSettings = (...settings: string[]): string => yaml("p:", LISTEN, ...settings, ...SERVERS);
/** Pool "p" listening on 127.0.0.1:22121 with these server lines. */
const withServers = (...servers: string[]): string => yaml("p:", LISTEN, "  servers:", ...servers.map((s) => `   - ${s}`));
const withListen = (listen: string): string => yaml("p:", `  listen: ${listen}`, ...SERVERS);

interface Case {
  name: string;
  yaml: string;
  /** null when the config is valid, else a piece of our error message. */
  error: string | null;
  /** Why twemproxy 0.5.0 decides the other way, for a deliberate difference. */
  differs?: string;
}

const SERVER_NAME_POOL = yaml(
  "servers:",
  "  listen: /tmp/twemproxy.sock",
  "  hash: server_name",
  "  distribution: server_name",
  "  timeout: 8000",
  "  redis: true",
  "  auto_eject_hosts: false",
  "  preconnect: true",
  "  servers:",
  ...[1, 2, 3, 4, 5, 6].map((i) => `   - 127.0.0.1:6379:1 r${i}`),
);

/** The example: a redis_cluster pool with two seed nodes. */
const REDIS_CLUSTER_POOL = yaml(
  "big:",
  "  listen: 127.0.0.1:22121",
  "  redis: true",
  "  distribution: redis_cluster",
  "  read_from: master",
  "  servers:",
  "   - 127.0.0.1:7000:1",
  "   - 127.0.0.1:7001:1",
);
/** Pool "p": redis_cluster on one seed, plus `settings`. */
const withClusterSettings = (...settings: string[]): string =>
  withSettings("  redis: true", "  distribution: redis_cluster", ...settings);

const CASES: Case[] = [
  // valid
  { name: "minimal", yaml: withSettings(), error: null },
  {
    name: "every key",
    yaml: withSettings(
      "  hash: md5",
      '  hash_tag: "{}"',
      "  distribution: modula",
      "  timeout: 400",
      "  backlog: 1024",
      "  client_connections: 100",
      "  redis: true",
      "  redis_auth: secret",
      "  redis_db: 3",
      "  preconnect: true",
      "  auto_eject_hosts: true",
      "  server_connections: 2",
      "  server_retry_timeout: 2000",
      "  server_failure_limit: 3",
      "  tcpkeepalive: true",
    ),
    error: null,
  },
  ...HASH_NAMES.map((hash) => ({ name: `hash ${hash}`, yaml: withSettings(`  hash: ${hash}`), error: null })),
  ...["ketama", "modula", "random"].map((d) => ({ name: `distribution ${d}`, yaml: withSettings(`  distribution: ${d}`), error: null })),
  { name: "hash_tag ::", yaml: withSettings('  hash_tag: "::"'), error: null },
  { name: "zero values", yaml: withSettings("  timeout: 0", "  backlog: 0", "  server_retry_timeout: 0", "  server_failure_limit: 0"), error: null },
  { name: "quoted values", yaml: withSettings('  redis: "true"', '  timeout: "400"'), error: null },
  { name: "quoted key", yaml: withSettings('  "hash": md5'), error: null },
  { name: "key after servers", yaml: yaml("p:", LISTEN, ...SERVERS, "  hash: md5"), error: null },
  { name: "numeric pool name", yaml: yaml("123:", LISTEN, ...SERVERS), error: null },
  { name: "comments", yaml: "# top\np: # pool\n" + yaml(LISTEN, "  # between", ...SERVERS), error: null },
  { name: "byte order mark", yaml: "\ufeff" + withSettings(), error: null },
  { name: "CRLF line ends", yaml: withServers("127.0.0.1:6379:1 a").replaceAll("\n", "\r\n"), error: null },
  { name: "CR line ends", yaml: withServers("127.0.0.1:6379:1 a").replaceAll("\n", "\r"), error: null },
  { name: "stray CR at the end of the file", yaml: withServers("127.0.0.1:6379:1 a").trimEnd() + "\r", error: null },
  { name: "stray CR before a line end", yaml: withSettings("  redis: true\r\r"), error: null },
  { name: "listen IPv6 ::1:port", yaml: withListen("::1:22121"), error: null },
  { name: "listen IPv6 any", yaml: withListen(":::22121"), error: null },
  { name: "listen [::1]:port", yaml: withListen('"[::1]:22121"'), error: null, differs: "0.5.0 cannot resolve [::1]" },
  { name: "listen localhost", yaml: withListen("localhost:22121"), error: null },
  { name: "listen unix", yaml: withListen("/tmp/bc.sock"), error: null },
  { name: "listen unix with perm", yaml: withListen("/tmp/bc.sock 0666"), error: null },
  { name: "listen unix path with a space", yaml: withListen("/tmp/a b.sock 0600"), error: null },
  { name: "reuseport", yaml: withSettings("  reuseport: true"), error: null, differs: "added after 0.5.0" },
  { name: "coalesce_gets false", yaml: withSettings("  coalesce_gets: false"), error: null, differs: "coalesce_gets is ours" },
  {
    name: "whole-pool and dedicated-connection keys",
    yaml: withSettings("  redis: true", "  redis_allow_keys: true", "  redis_allow_flush: true", "  redis_max_subscribers: 10", "  redis_dedicated_connections: 64"),
    error: null,
    differs: "the redis_allow_*, redis_max_subscribers and redis_dedicated_connections keys are ours",
  },
  { name: "named servers", yaml: withServers("127.0.0.1:6379:1 a", "127.0.0.1:6379:1 b"), error: null },
  { name: "unix servers", yaml: withServers("/tmp/r.sock:1", "/tmp/s.sock:2 s"), error: null },
  { name: "IPv6 servers", yaml: withServers("::1:6379:1", '"[::1]:6380:1"'), error: null },
  { name: "port 11211 servers", yaml: withServers("127.0.0.1:11211:1", "127.0.0.2:11211:1"), error: null },
  { name: "unresolved server host", yaml: withServers("no.such.host.invalid:6379:1"), error: null },
  { name: "large weight", yaml: withServers("127.0.0.1:6379:100000"), error: null },
  { name: "UTF-8 server name", yaml: withServers("127.0.0.1:6379:1 café"), error: null },
  { name: "two pools", yaml: withSettings() + yaml("q:", "  listen: 127.0.0.1:22122", ...SERVERS), error: null },
  {
    name: "two pools, one port spelled two ways",
    yaml: withSettings() + yaml("q:", "  listen: localhost:22121", ...SERVERS),
    error: null,
  },
  { name: "server_name example", yaml: SERVER_NAME_POOL, error: null, differs: "server_name is ours" },
  {
    name: "hash server_name alone",
    yaml: withServers("127.0.0.1:6379:1 a").replace("  servers:", "  hash: server_name\n  servers:"),
    error: null,
    differs: "server_name is ours",
  },
  {
    name: "server_name with another hash",
    yaml: withServers("127.0.0.1:6379:1 a").replace("  servers:", "  hash: md5\n  distribution: server_name\n  servers:"),
    error: null,
    differs: "server_name is ours",
  },

  // the file and its YAML
  { name: "empty file", yaml: "", error: "no pools defined" },
  { name: "comments only", yaml: "# nothing\n", error: "no pools defined" },
  { name: "top-level scalar", yaml: "hello\n", error: "expected a mapping of pool names" },
  { name: "top-level list", yaml: "- a\n- b\n", error: "expected a mapping of pool names" },
  { name: "pool is a scalar", yaml: "p: x\n", error: `pool "p": expected the pool's settings` },
  { name: "pool is empty", yaml: "p:\n", error: `pool "p": expected the pool's settings` },
  { name: "document start", yaml: "---\n" + withSettings(), error: "document markers" },
  { name: "document end", yaml: withSettings() + "...\n", error: "document markers" },
  { name: "two documents", yaml: withSettings() + "---\n" + withSettings(), error: "document markers" },
  { name: "YAML directive", yaml: "%YAML 1.1\n---\n" + withSettings(), error: "YAML directives" },
  { name: "flow mapping", yaml: 'p: {listen: "127.0.0.1:22121", servers: ["127.0.0.1:6379:1"]}\n', error: "flow style" },
  { name: "flow sequence", yaml: yaml("p:", LISTEN, "  servers: [127.0.0.1:6379:1]"), error: "flow style" },
  { name: "anchor and alias", yaml: withSettings("  timeout: &t 5", "  backlog: *t"), error: "anchors and aliases" },
  { name: "tag", yaml: withSettings("  timeout: !!str 5"), error: "YAML tags" },
  { name: "tab indentation", yaml: "p:\n\tlisten: 127.0.0.1:22121\n", error: "YAML syntax error" },
  { name: "unterminated quote", yaml: withServers('"127.0.0.1:6379:1'), error: "YAML syntax error" },
  { name: "unknown key", yaml: withSettings("  foo: bar"), error: `pool "p": directive "foo" is unknown` },
  { name: "misspelt key", yaml: withSettings("  Hash: md5"), error: `directive "Hash" is unknown` },
  { name: "nested mapping", yaml: withSettings("  hash:", "    x: 1"), error: `key "hash": expected a single value, found a mapping` },
  { name: "list for a scalar key", yaml: withSettings("  hash:", "   - md5"), error: `key "hash": expected a single value, found a list` },
  { name: "duplicate key", yaml: withSettings("  timeout: 1", "  timeout: 2"), error: `directive "timeout" is a duplicate` },
  { name: "duplicate pool", yaml: withSettings() + withSettings(), error: `pool "p" is defined twice` },

  // listen
  { name: "listen missing", yaml: yaml("p:", "  hash: md5", ...SERVERS), error: `directive "listen" is missing` },
  { name: "listen twice", yaml: withSettings("  listen: 127.0.0.1:22122"), error: `directive "listen" is a duplicate` },
  { name: "listen without port", yaml: withListen("127.0.0.1"), error: `is not "host:port"` },
  { name: "listen port only", yaml: withListen("22121"), error: `is not "host:port"` },
  { name: "listen relative unix path", yaml: withListen("bc.sock"), error: `is not "host:port"` },
  { name: "listen empty host", yaml: withListen(":22121"), error: "the host is missing" },
  { name: "listen port 0", yaml: withListen("127.0.0.1:0"), error: `port "0" is not a valid port` },
  { name: "listen port 65536", yaml: withListen("127.0.0.1:65536"), error: `port "65536" is not a valid port` },
  { name: "listen empty port", yaml: withListen('"127.0.0.1:"'), error: `port "" is not a number` },
  { name: "listen space before port", yaml: withListen('"127.0.0.1: 22121"'), error: `port " 22121" is not a number` },
  { name: "listen bad IPv4", yaml: withListen("999.1.1.1:22121"), error: "not a valid IPv4 address" },
  { name: "listen bad IPv6", yaml: withListen('"[::zz]:22121"'), error: "not a valid IPv6 address" },
  {
    name: "listen unresolvable host",
    yaml: withListen("no.such.host.invalid:22121"),
    error: null,
    differs: "0.5.0 resolves listen names while loading; ours when it listens",
  },
  { name: "listen unix path too long", yaml: withListen(`/tmp/${"a".repeat(110)}.sock`), error: "longer than 107 bytes" },
  { name: "listen unix perm too large", yaml: withListen("/tmp/bc.sock 1777"), error: `socket permission "1777"` },
  { name: "listen unix perm not octal", yaml: withListen("/tmp/bc.sock 0999"), error: `socket permission "0999"`, differs: "0.5.0 reads it as 0" },
  { name: "listen unix perm junk", yaml: withListen("/tmp/bc.sock abc"), error: `socket permission "abc"`, differs: "0.5.0 reads it as 0" },
  { name: "listen empty", yaml: withSettings().replace(LISTEN, "  listen:"), error: `key "listen": the value is empty` },
  {
    name: "two pools, same listen",
    yaml: withSettings() + yaml("q:", LISTEN, ...SERVERS),
    error: `pools "p" and "q" have the same listen address "127.0.0.1:22121"`,
  },
  {
    name: "two pools, same socket, different perm",
    yaml: withListen("/tmp/bc.sock") + yaml("q:", "  listen: /tmp/bc.sock 0600", ...SERVERS),
    error: "have the same listen address",
    differs: "0.5.0 compares the text, perm included",
  },

  // servers
  { name: "servers missing", yaml: yaml("p:", LISTEN, "  hash: md5"), error: `directive "servers" is missing` },
  { name: "servers empty", yaml: yaml("p:", LISTEN, "  servers:"), error: `key "servers": expected a list` },
  { name: "servers scalar", yaml: yaml("p:", LISTEN, "  servers: 127.0.0.1:6379:1"), error: `key "servers": expected a list` },
  { name: "servers twice", yaml: yaml("p:", LISTEN, ...SERVERS, ...SERVERS), error: `directive "servers" is a duplicate` },
  { name: "server is a number", yaml: withServers("5"), error: `"5" has no weight` },
  { name: "server is a mapping", yaml: withServers("a: b"), error: "expected a single value, found a mapping" },
  { name: "server without weight", yaml: withServers("127.0.0.1:6379"), error: "has no port or no weight" },
  { name: "server weight 0", yaml: withServers("127.0.0.1:6379:0"), error: "the weight must be greater than 0" },
  { name: "server weight negative", yaml: withServers("127.0.0.1:6379:-1"), error: `weight "-1" is not a number` },
  { name: "server weight junk", yaml: withServers("127.0.0.1:6379:x"), error: `weight "x" is not a number` },
  {
    name: "server weights over 32 bits",
    yaml: withServers("127.0.0.1:6379:2000000000", "127.0.0.1:6380:2000000000", "127.0.0.1:6381:2000000000"),
    error: "weights add up to 6000000000, over 4294967295",
    differs: "0.5.0 adds them in a uint32_t",
  },
  { name: "server port 0", yaml: withServers("127.0.0.1:0:1"), error: `port "0" is not a valid port` },
  { name: "server port 65536", yaml: withServers("127.0.0.1:65536:1"), error: `port "65536" is not a valid port` },
  { name: "server with two names", yaml: withServers("127.0.0.1:6379:1 a b"), error: "has more than one name" },
  { name: "unix server with a port", yaml: withServers("/tmp/r.sock:6379:1"), error: `unix socket path cannot contain ":"` },
  { name: "unix server without weight", yaml: withServers("/tmp/r.sock"), error: "has no weight" },
  { name: "server without host", yaml: withServers(":6379:1"), error: "the host is missing", differs: "0.5.0 accepts it and fails to connect" },
  {
    name: "server name empty",
    yaml: withServers('"127.0.0.1:6379:1 "'),
    error: "has no name after it",
    differs: "0.5.0 takes an empty name",
  },
  { name: "server host not IPv6", yaml: withServers("a:b:6379:1"), error: "not a valid IPv6 address", differs: "0.5.0 resolves server names later" },
  {
    name: "unix server path too long",
    yaml: withServers(`/tmp/${"a".repeat(110)}.sock:1`),
    error: "longer than 107 bytes",
    differs: "0.5.0 resolves server paths later",
  },
  { name: "servers with one name", yaml: withServers("127.0.0.1:6379:1 a", "127.0.0.1:6380:1 a"), error: `the same name "a"` },
  { name: "servers with one address", yaml: withServers("127.0.0.1:6379:1", "127.0.0.1:6379:1"), error: `the same name "127.0.0.1:6379"` },
  {
    name: "servers with one address, other weights",
    yaml: withServers("127.0.0.1:6379:1", "127.0.0.1:6379:2"),
    error: `the same name "127.0.0.1:6379"`,
  },
  {
    name: "name equal to another server's address",
    yaml: withServers("127.0.0.1:6379:1", "127.0.0.1:6380:1 127.0.0.1:6379"),
    error: `the same name "127.0.0.1:6379"`,
  },
  { name: "port 11211 name clash", yaml: withServers("127.0.0.1:11211:1", "127.0.0.1:6380:1 127.0.0.1"), error: `the same name "127.0.0.1"` },

  // values
  { name: "hash unknown", yaml: withSettings("  hash: sha1"), error: `key "hash": "sha1" is not a valid hash` },
  { name: "hash upper case", yaml: withSettings("  hash: MD5"), error: `"MD5" is not a valid hash` },
  { name: "hash null", yaml: withSettings("  hash: ~"), error: `"~" is not a valid hash` },
  { name: "distribution unknown", yaml: withSettings("  distribution: foo"), error: `"foo" is not a valid distribution` },
  { name: "hash_tag one char", yaml: withSettings('  hash_tag: "{"'), error: "exactly two ASCII characters" },
  { name: "hash_tag three chars", yaml: withSettings('  hash_tag: "{}}"'), error: "exactly two ASCII characters" },
  { name: "hash_tag empty", yaml: withSettings('  hash_tag: ""'), error: "the value is empty" },
  { name: "hash_tag UTF-8", yaml: withSettings('  hash_tag: "é"'), error: "exactly two ASCII characters", differs: "0.5.0 counts bytes" },
  { name: "timeout negative", yaml: withSettings("  timeout: -1"), error: `key "timeout": value "-1" is not a number` },
  { name: "timeout float", yaml: withSettings("  timeout: 1.5"), error: `value "1.5" is not a number` },
  { name: "timeout plus sign", yaml: withSettings("  timeout: +5"), error: `value "+5" is not a number` },
  { name: "timeout hex", yaml: withSettings("  timeout: 0x10"), error: `value "0x10" is not a number` },
  { name: "timeout empty", yaml: withSettings("  timeout:"), error: `key "timeout": the value is empty` },
  { name: "timeout over INT_MAX", yaml: withSettings("  timeout: 2147483648"), error: "is too large" },
  { name: "timeout 2^32", yaml: withSettings("  timeout: 4294967296"), error: "is too large", differs: "0.5.0 wraps it to 0" },
  { name: "redis yes", yaml: withSettings("  redis: yes"), error: `key "redis": "yes" is not "true" or "false"` },
  { name: "redis True", yaml: withSettings("  redis: True"), error: `"True" is not "true" or "false"` },
  { name: "redis 1", yaml: withSettings("  redis: 1"), error: `"1" is not "true" or "false"` },
  { name: "preconnect on", yaml: withSettings("  preconnect: on"), error: `"on" is not "true" or "false"` },
  { name: "redis_auth without redis", yaml: withSettings("  redis_auth: pw"), error: `directive "redis_auth" is only valid for a redis pool` },
  { name: "redis_allow_keys without redis", yaml: withSettings("  redis_allow_keys: true"), error: `directive "redis_allow_keys" is only valid for a redis pool` },
  { name: "redis_max_subscribers not a number", yaml: withSettings("  redis: true", "  redis_max_subscribers: many"), error: `value "many" is not a number` },
  { name: "redis_auth empty", yaml: withSettings('  redis_auth: ""'), error: `key "redis_auth": the value is empty` },
  { name: "redis_db negative", yaml: withSettings("  redis_db: -1"), error: `value "-1" is not a number` },
  { name: "server_connections 0", yaml: withSettings("  server_connections: 0"), error: `key "server_connections": cannot be 0` },

  // server_name
  {
    name: "server_name with an unnamed server",
    yaml: withServers("127.0.0.1:6379:1 a", "127.0.0.1:6380:1").replace("  servers:", "  distribution: server_name\n  servers:"),
    error: `pool "p": server "127.0.0.1:6380:1" has no name`,
  },
  {
    name: "server_name with a duplicate name",
    yaml: withServers("127.0.0.1:6379:1 a", "127.0.0.1:6380:1 a").replace("  servers:", "  distribution: server_name\n  servers:"),
    error: `the same name "a"`,
  },
  {
    name: "hash server_name with ketama",
    yaml: withServers("127.0.0.1:6379:1 a").replace("  servers:", "  hash: server_name\n  distribution: ketama\n  servers:"),
    error: `hash "server_name" needs distribution server_name`,
  },

  // redis_cluster (ours)
  { name: "redis_cluster example", yaml: REDIS_CLUSTER_POOL, error: null, differs: "redis_cluster is ours" },
  {
    name: "redis_cluster with read_from master and the cluster's own hash tag",
    yaml: withClusterSettings("  read_from: master", '  hash_tag: "{}"'),
    error: null,
    differs: "redis_cluster is ours",
  },
  {
    name: "redis_cluster with read_from replica (its replicas come from the cluster)",
    yaml: withClusterSettings("  read_from: replica"),
    error: null,
    differs: "redis_cluster is ours",
  },
  {
    name: "redis_cluster with read_from prefer-replica",
    yaml: withClusterSettings("  read_from: prefer-replica"),
    error: null,
    differs: "redis_cluster is ours",
  },
  {
    name: "redis_cluster with a database",
    yaml: withClusterSettings("  redis_db: 2"),
    error: `redis_db cannot apply with distribution redis_cluster (a cluster has database 0 only)`,
  },
  {
    name: "redis_cluster with a hash",
    yaml: withClusterSettings("  hash: md5"),
    error: null,
    differs: "redis_cluster is ours",
  },
  {
    name: "redis_cluster without redis",
    yaml: withSettings("  distribution: redis_cluster"),
    error: `pool "p": distribution redis_cluster is only valid for a redis pool (add "redis: true")`,
  },
  {
    name: "redis_cluster with another hash tag",
    yaml: withClusterSettings('  hash_tag: "[]"'),
    error: `hash_tag "[]" cannot apply with distribution redis_cluster, whose hash tag is "{}"`,
  },
  {
    name: "redis_cluster with a unix socket seed",
    yaml: yaml("p:", LISTEN, "  redis: true", "  distribution: redis_cluster", "  servers:", "   - /tmp/r.sock:1"),
    error: `test.yml:6: pool "p": server "/tmp/r.sock:1" is a unix socket`,
  },
  {
    name: "redis_cluster with server_tls (the map and every node over TLS)",
    yaml: withClusterSettings("  server_tls:", "    verify: false"),
    error: null,
    differs: "redis_cluster is ours",
  },
  {
    name: "redis_cluster with sentinels",
    yaml: withClusterSettings("  sentinels:", "   - 127.0.0.1:26379"),
    error: `directive "sentinels" cannot apply with distribution redis_cluster`,
  },
  { name: "read_from unknown", yaml: withClusterSettings("  read_from: slave"), error: `"slave" is not a valid read_from; use one of master, replica, prefer-replica` },
  // sentinels (ours: twemproxy 0.5.0 knows none of these keys)
  ...[
    { name: "sentinels", settings: ["  redis: true", "  sentinels:", "   - 127.0.0.1:26379", '   - "[::1]:26380"', "   - localhost:26381"], error: null },
    { name: "sentinels with auth and read_from", settings: ["  redis: true", "  sentinels:", "   - 127.0.0.1:26379", "  sentinel_auth: pw", "  read_from: prefer-replica"], error: null },
    { name: "read_from replica", settings: ["  redis: true", "  read_from: replica", "  sentinels:", "   - 127.0.0.1:26379"], error: null },
    { name: "sentinels without redis", settings: ["  sentinels:", "   - 127.0.0.1:26379"], error: `directive "sentinels" is only valid for a redis pool` },
    { name: "sentinels scalar", settings: ["  redis: true", "  sentinels: 127.0.0.1:26379"], error: `key "sentinels": expected a list` },
    { name: "sentinel without port", settings: ["  redis: true", "  sentinels:", "   - 127.0.0.1"], error: `"127.0.0.1" is not "host:port"` },
    { name: "sentinel bad port", settings: ["  redis: true", "  sentinels:", "   - 127.0.0.1:0"], error: `port "0" is not a valid port` },
    { name: "sentinel unix socket", settings: ["  redis: true", "  sentinels:", "   - /tmp/s.sock:1"], error: `is not "host:port"` },
    { name: "sentinel twice", settings: ["  redis: true", "  sentinels:", "   - 127.0.0.1:26379", "   - 127.0.0.1:26379"], error: `sentinel "127.0.0.1:26379" is listed twice` },
    { name: "read_from unknown", settings: ["  redis: true", "  read_from: slave", "  sentinels:", "   - 127.0.0.1:26379"], error: `"slave" is not a valid read_from; use one of master, replica, prefer-replica` },
    { name: "read_from without sentinels", settings: ["  redis: true", "  read_from: replica"], error: `directive "read_from" other than master needs "sentinels:"` },
    { name: "read_from master without sentinels", settings: ["  redis: true", "  read_from: master"], error: null },
    { name: "sentinel_auth without sentinels", settings: ["  redis: true", "  sentinel_auth: pw"], error: `directive "sentinel_auth" needs "sentinels:"` },
  ].map((c) => ({
    name: c.name,
    yaml: yaml("p:", LISTEN, ...c.settings, "  servers:", "   - 127.0.0.1:6379:1 shard1", "   - 127.0.0.1:6380:1 shard2"),
    error: c.error,
    ...(c.error === null ? { differs: "sentinels are ours" } : {}),
  })),
  {
    name: "sentinels with an unnamed server",
    yaml: yaml("p:", LISTEN, "  redis: true", "  sentinels:", "   - 127.0.0.1:26379", "  servers:", "   - 127.0.0.1:6379:1 shard1", "   - 127.0.0.1:6380:1"),
    error: `pool "p": server "127.0.0.1:6380:1" has no name; with sentinels every server needs "host:port:weight name"`,
  },
  {
    name: "sentinels with a unix socket server",
    yaml: yaml("p:", LISTEN, "  redis: true", "  sentinels:", "   - 127.0.0.1:26379", "  servers:", "   - /tmp/r.sock:1 shard1"),
    error: `server "/tmp/r.sock:1" is a unix socket`,
  },
];

const quiet = (): void => {};

function configError(text: string, file = "test.yml"): string | null {
  try {
    parseConfig(text, file, quiet);
    return null;
  } catch (error) {
    if (error instanceof ConfigError) return error.message;
    throw error;
  }
}

describe("accepts and rejects", () => {
  for (const c of CASES) {
    test(c.name, () => {
      const message = configError(c.yaml);
      if (c.error === null) expect(message).toBeNull();
      else {
        expect(message).toContain(c.error);
        expect(message).not.toContain("\n");
        expect(message!.startsWith("test.yml:")).toBe(true);
      }
    });
  }
});

describeNeeding(haveNutcracker, NO_NUTCRACKER)("-t agrees with nutcracker -t (twemproxy 0.5.0)", () => {
  CASES.forEach((c, i) => {
    test(c.differs ? `${c.name} (differs: ${c.differs})` : c.name, () => {
      const file = dir.file(`case${i}.yml`);
      writeFileSync(file, c.yaml);
      const theirs = Bun.spawnSync([NUTCRACKER, "-t", "-c", file]).exitCode;
      const ours = testConf(file, quiet);
      expect(ours).toBe(c.error === null ? 0 : 1);
      expect(theirs).toBe(c.differs ? 1 - ours : ours);
    });
  });
});

const minimal = (): PoolConfig => parseConfig(withSettings(), "t.yml", quiet).pools[0]!;

describe("defaults are twemproxy 0.5.0's", () => {
  test("every optional key", () => {
    const { listen, servers, ...rest } = minimal();
    expect(rest).toEqual({
      name: "p",
      hash: "fnv1a_64",
      hashTag: null,
      distribution: "ketama",
      timeout: null,
      backlog: 512,
      clientConnections: 0,
      redis: false,
      redisAuth: null,
      redisDb: 0,
      preconnect: false,
      autoEjectHosts: false,
      serverConnections: 1,
      serverRetryTimeout: 30000,
      serverFailureLimit: 2,
      tcpkeepalive: false,
      reuseport: false,
      coalesceGets: true,
      // ours, off unless configured
      tls: null,
      serverTls: null,
      clientMaxRequest: 0,
      clientIdleTimeout: null,
      redisAllowKeys: false,
      redisAllowFlush: false,
      redisMaxSubscribers: 0,
      redisSharedSubscriptions: false,
      redisDedicatedConnections: 0,
      sentinels: [],
      sentinelAuth: null,
      readFrom: "master",
    });
    expect(listen).toEqual({ spec: "127.0.0.1:22121", host: "127.0.0.1", port: 22121, unix: false, perm: null });
    expect(servers).toEqual([
      {
        addr: { spec: "127.0.0.1:6379", host: "127.0.0.1", port: 6379, unix: false, perm: null },
        weight: 1,
        name: null,
        effectiveName: "127.0.0.1:6379",
        statsName: "127.0.0.1:6379",
        pname: "127.0.0.1:6379:1",
      },
    ]);
  });

  test("timeout 0 waits forever, like no timeout", () => {
    expect(parseConfig(withSettings("  timeout: 0"), "t.yml", quiet).pools[0]!.timeout).toBeNull();
    expect(parseConfig(withSettings("  timeout: 250"), "t.yml", quiet).pools[0]!.timeout).toBe(250);
  });

  test("every key given is read", () => {
    const pool = parseConfig(CASES.find((c) => c.name === "every key")!.yaml, "t.yml", quiet).pools[0]!;
    expect(pool).toMatchObject({
      hash: "md5",
      hashTag: "{}",
      distribution: "modula",
      timeout: 400,
      backlog: 1024,
      clientConnections: 100,
      redis: true,
      redisAuth: "secret",
      redisDb: 3,
      preconnect: true,
      autoEjectHosts: true,
      serverConnections: 2,
      serverRetryTimeout: 2000,
      serverFailureLimit: 3,
      tcpkeepalive: true,
      reuseport: false,
      coalesceGets: true,
      // ours, off unless configured
      tls: null,
      serverTls: null,
      clientMaxRequest: 0,
      clientIdleTimeout: null,
    });
  });
});

test("sentinel keys are read", () => {
  const pool = parseConfig(CASES.find((c) => c.name === "sentinels with auth and read_from")!.yaml, "t.yml", quiet).pools[0]!;
  expect(pool.sentinels).toEqual([{ spec: "127.0.0.1:26379", host: "127.0.0.1", port: 26379, unix: false, perm: null }]);
  expect(pool).toMatchObject({ sentinelAuth: "pw", readFrom: "prefer-replica" });
  const v6 = parseConfig(CASES.find((c) => c.name === "sentinels")!.yaml, "t.yml", quiet).pools[0]!.sentinels;
  expect(v6.map((a) => [a.host, a.port])).toEqual([["127.0.0.1", 26379], ["::1", 26380], ["localhost", 26381]]);
});

describe("addresses", () => {
  const listen = (text: string) => parseConfig(withListen(text), "t.yml", quiet).pools[0]!.listen;
  test("listen forms", () => {
    expect(listen("::1:22121")).toEqual({ spec: "::1:22121", host: "::1", port: 22121, unix: false, perm: null });
    expect(listen('"[::1]:22121"')).toEqual({ spec: "[::1]:22121", host: "::1", port: 22121, unix: false, perm: null });
    expect(listen("localhost:22121")).toMatchObject({ host: "localhost", port: 22121 });
    expect(listen("/tmp/x.sock")).toEqual({ spec: "/tmp/x.sock", host: "/tmp/x.sock", port: 0, unix: true, perm: null });
    expect(listen("/tmp/x.sock 0666")).toEqual({ spec: "/tmp/x.sock 0666", host: "/tmp/x.sock", port: 0, unix: true, perm: 0o666 });
    expect(listen("/tmp/a b.sock 0600")).toMatchObject({ host: "/tmp/a b.sock", perm: 0o600 });
  });

  test("server forms", () => {
    const servers = parseConfig(
      withServers("/tmp/r.sock:2", "/tmp/s.sock:1 s", "::1:6379:1", '"[::1]:6380:3 v6"', "10.0.0.1:11211:1"),
      "t.yml",
      quiet,
    ).pools[0]!.servers;
    const byPname = Object.fromEntries(servers.map((s) => [s.pname, s]));
    expect(byPname["/tmp/r.sock:2"]).toEqual({
      addr: { spec: "/tmp/r.sock", host: "/tmp/r.sock", port: 0, unix: true, perm: null },
      weight: 2,
      name: null,
      effectiveName: "/tmp/r.sock:",
      statsName: "/tmp/r.sock:",
      pname: "/tmp/r.sock:2",
    });
    expect(byPname["/tmp/s.sock:1"]).toMatchObject({ name: "s", effectiveName: "s" });
    expect(byPname["::1:6379:1"]).toMatchObject({ addr: { host: "::1", port: 6379 }, effectiveName: "::1:6379" });
    expect(byPname["[::1]:6380:3"]).toMatchObject({ addr: { spec: "[::1]:6380", host: "::1", port: 6380 }, weight: 3, name: "v6" });
    expect(byPname["10.0.0.1:11211:1"]).toMatchObject({ effectiveName: "10.0.0.1" });
  });
});

describe("line ends", () => {
  const lf = withServers("127.0.0.1:6379:1 a", "127.0.0.1:6380:1");
  const pools = (text: string) => parseConfig(text, "t.yml", quiet).pools;
  for (const [name, text] of [
    ["CRLF", lf.replaceAll("\n", "\r\n")],
    ["CR", lf.replaceAll("\n", "\r")],
    ["CR at the end", lf.trimEnd() + "\r"],
  ] as const) {
    test(`${name} reads like LF (no \\r in any value)`, () => expect(pools(text)).toEqual(pools(lf)));
  }
});

describe("the config is deeply frozen", () => {
  const config: Config = parseConfig(withServers("127.0.0.1:6379:1 a", "/tmp/r.sock:1"), "t.yml", quiet);
  test("every object is frozen", () => {
    const pool = config.pools[0]!;
    for (const object of [config, config.pools, pool, pool.listen, pool.servers, ...pool.servers, ...pool.servers.map((s) => s.addr)]) {
      expect(Object.isFrozen(object)).toBe(true);
    }
  });
  test("writes throw", () => {
    expect(() => ((config.pools[0] as { backlog: number }).backlog = 1)).toThrow();
    expect(() => (config.pools[0]!.servers as unknown[]).push(null)).toThrow();
    expect(() => ((config.pools[0]!.servers[0]!.addr as { port: number }).port = 1)).toThrow();
  });
});

describe("servers are in twemproxy's internal order (vectors)", () => {
  for (const vector of loadDistribution().pools as (VectorPool & { internal_order: number[] })[]) {
    test(vector.name, () => {
      const pool = parseConfig(vector.yaml, `${vector.name}.yml`, quiet).pools[0]!;
      const expected = vector.internal_order.map((i) => vector.servers[i]!);
      expect(pool.servers.map((s) => [s.effectiveName, s.weight, s.name])).toEqual(
        expected.map((s) => [s.effective_name, s.weight, s.name]),
      );
      expect(pool.servers.map((s) => [s.addr.host, s.addr.port])).toEqual(expected.map((s) => [s.host, s.port]));
    });
  }

  test("shorter names first, then bytewise", () => {
    const pool = parseConfig(withServers("127.0.0.1:6379:1 bb", "127.0.0.1:6379:1 a", "127.0.0.1:6379:1 ab", "127.0.0.1:6379:1 B"), "t.yml", quiet).pools[0]!;
    expect(pool.servers.map((s) => s.name)).toEqual(["B", "a", "ab", "bb"]);
  });
});

/** Reads nutcracker's stats JSON: it writes one document on accept and closes. */
function readStats(port: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(port, "127.0.0.1");
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", reject);
    socket.on("close", () => resolve(JSON.parse(Buffer.concat(chunks).toString("utf8"))));
  });
}

describeNeeding(haveNutcracker, NO_NUTCRACKER)("statsName is the key nutcracker gives each server in its stats", () => {
  test("named, unnamed, port 11211 and unix servers, in order", async () => {
    const text = withServers(
      "127.0.0.1:6379:1",
      "127.0.0.1:11211:1",
      "localhost:11211:2",
      "127.0.0.1:6380:1 named1",
      "/tmp/bc-none.sock:1",
      "/tmp/bc-other.sock:1 unixnamed",
      "::1:6381:1",
    ).replace(LISTEN, `  listen: ${dir.file("stats.sock")}`);
    const proxy = await startProxy("nutcracker", text);
    try {
      const stats = await readStats(proxy.statsPort);
      const poolStats = stats["p"] as Record<string, unknown>;
      const serverKeys = Object.keys(poolStats).filter((key) => typeof poolStats[key] === "object");
      const ours = parseConfig(text, "t.yml", quiet).pools[0]!.servers.map((s) => s.statsName);
      expect(ours).toEqual(serverKeys);
    } finally {
      await proxy.stop();
    }
  });
});

describe("server_name", () => {
  test("the issue's example: six names on one redis, each its own server", () => {
    const warnings: string[] = [];
    const pool = parseConfig(SERVER_NAME_POOL, "t.yml", (w) => warnings.push(w)).pools[0]!;
    expect(pool.distribution).toBe("server_name");
    expect(pool.servers.map((s) => s.name)).toEqual(["r1", "r2", "r3", "r4", "r5", "r6"]);
    expect(new Set(pool.servers.map((s) => s.addr.spec))).toEqual(new Set(["127.0.0.1:6379"]));
    expect(warnings).toEqual([]);
  });

  test("hash: server_name alone selects the distribution", () => {
    const text = CASES.find((c) => c.name === "hash server_name alone")!.yaml;
    expect(parseConfig(text, "t.yml", quiet).pools[0]!.distribution).toBe("server_name");
  });

  test("another hash is ignored with a warning naming the file, pool and hash", () => {
    const warnings: string[] = [];
    const text = CASES.find((c) => c.name === "server_name with another hash")!.yaml;
    const pool = parseConfig(text, "t.yml", (w) => warnings.push(w)).pools[0]!;
    expect(pool.distribution).toBe("server_name");
    expect(pool.hash).toBe("fnv1a_64");
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`t.yml:3: pool "p": hash "md5" is ignored`);
  });
});

describe("redis_cluster", () => {
  test("the issue's example: seeds as servers, read_from master", () => {
    const warnings: string[] = [];
    const pool = parseConfig(REDIS_CLUSTER_POOL, "t.yml", (w) => warnings.push(w)).pools[0]!;
    expect(pool.distribution).toBe("redis_cluster");
    expect(pool.readFrom).toBe("master");
    expect(pool.servers.map((s) => s.addr.spec)).toEqual(["127.0.0.1:7000", "127.0.0.1:7001"]);
    expect(warnings).toEqual([]);
  });

  test("a hash is ignored with a warning naming the file, pool and hash", () => {
    const warnings: string[] = [];
    const text = CASES.find((c) => c.name === "redis_cluster with a hash")!.yaml;
    expect(parseConfig(text, "t.yml", (w) => warnings.push(w)).pools[0]!.distribution).toBe("redis_cluster");
    expect(warnings).toEqual([`t.yml:5: pool "p": hash "md5" is ignored with distribution redis_cluster (keys go by the cluster's slots, CRC16)`]);
  });
});

describe("messages", () => {
  test("name the file, line, pool and key", () => {
    expect(configError(withSettings("  timeout: soon"), "conf/x.yml")).toBe(
      `conf/x.yml:3: pool "p", key "timeout": value "soon" is not a number (digits only)`,
    );
  });

  test("a bad server names its own line", () => {
    expect(configError(withServers("127.0.0.1:6379:1", "127.0.0.1:6380:0"))).toStartWith(`test.yml:5: pool "p", key "servers": "127.0.0.1:6380:0"`);
  });

  test("a missing file", () => {
    expect(() => loadConfig(dir.file("absent.yml"), quiet)).toThrow(/absent\.yml: cannot read the configuration file \(ENOENT\)/);
  });

  test("loadConfig reads the file", () => {
    const file = dir.file("good.yml");
    writeFileSync(file, withSettings());
    const config = loadConfig(file, quiet);
    expect(config.file).toBe(file);
    expect(config.pools.map((p) => p.name)).toEqual(["p"]);
  });
});

describe("bad input gets a ConfigError, never a crash", () => {
  test("600 mutated configs (seeded)", () => {
    const rng = makeRng(20240601);
    const bases = [CASES.find((c) => c.name === "every key")!.yaml, SERVER_NAME_POOL, withServers("/tmp/r.sock:1 a", '"[::1]:6380:3 v6"')];
    const alphabet = [..." :-#\"'{}[]&*!|>%\t\r\n0123456789abc/\\~?,.@`\u00e9\ufeff\u0000"];
    let rejected = 0;
    for (let i = 0; i < 600; i++) {
      const chars = [...rng.pick(bases)];
      for (let edits = 1 + rng.int(3); edits > 0; edits--) {
        const at = rng.int(chars.length + 1);
        const op = rng.int(3);
        if (op === 0) chars.splice(at, 0, rng.pick(alphabet));
        else if (op === 1) chars.splice(at, 1);
        else chars.splice(at, 1, rng.pick(alphabet));
      }
      const message = configError(chars.join(""), "fuzz.yml");
      if (message === null) continue;
      rejected++;
      expect(message).toStartWith("fuzz.yml:");
      expect(message).not.toContain("\n");
    }
    expect(rejected).toBeGreaterThan(150);
  });
});
