// YAML text -> the typed, deeply frozen Config. Keys, types, defaults and per-key checks come
// from the table in schema.ts; this file walks the YAML, reports errors with their location,
// and applies the rules that span several keys or pools.

import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { CST, isMap, isScalar, isSeq, Lexer, LineCounter, parseDocument, type Node, type Pair } from "yaml";
import { log } from "../log.ts";
import { EntryError, ItemError, POOL_DIRECTIVES, SERVER_NAME, type Directive, type PoolSettings } from "./schema.ts";
import { pemTexts, withPemTexts } from "./pem.ts";
import { compareServers } from "./server.ts";
import type { Config, PoolConfig } from "./types.ts";
import { quote, ValueError } from "./value.ts";

/** A config the proxy cannot run. The message is one line: file:line, pool, key, problem. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Receives warnings (valid but suspicious settings); by default they go to the log. */
export type Warn = (message: string) => void;

const logWarning: Warn = (message) => log.warn(message);

const REDIS_CLUSTER = "redis_cluster";

const DIRECTIVES = new Map<string, Directive>(POOL_DIRECTIVES.map((d) => [d.key, d]));

/** YAML that twemproxy (libyaml tokens, checked before parsing) refuses: its config is plain
 *  block mappings and sequences of scalars. */
const FORBIDDEN_TOKENS: Readonly<Record<string, string>> = {
  "directive-line": "YAML directives (%YAML, %TAG) are",
  "doc-start": 'YAML document markers ("---", "...") are',
  "doc-end": 'YAML document markers ("---", "...") are',
  "flow-map-start": "YAML flow style ({...}, [...]) is",
  "flow-seq-start": "YAML flow style ({...}, [...]) is",
  anchor: "YAML anchors and aliases (&x, *x) are",
  alias: "YAML anchors and aliases (&x, *x) are",
  tag: "YAML tags (!!str, !x) are",
};

/** Control tokens the yaml lexer emits that are not part of the source text. */
const LEXER_CONTROL = new Set(["\x02", "\x18", "\x1f"]);

export function loadConfig(file: string, warn: Warn = logWarning): Config {
  return parseConfig(readConfigText(file), file, warn);
}

/** The config file's text; throws a ConfigError when it cannot be read. */
export function readConfigText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError(`${file}: cannot read the configuration file (${reason})`);
  }
}

/** `pems`: PEM file texts to read instead of the files (see ConfigSource). */
export function parseConfig(text: string, file: string, warn: Warn = logWarning, pems: ReadonlyMap<string, string> | null = null): Config {
  return withPemTexts(pems, () => new ConfigReader(text, file, warn).read());
}

/** A config as read at one moment, the YAML and the PEM files it names: what a supervisor hands
 *  its workers, so that each parses the same thing whenever it starts or reloads. */
export interface ConfigSource {
  readonly text: string;
  /** By path; empty when the text does not parse (each worker then says why). */
  readonly pems: Readonly<Record<string, string>>;
}

/** Reads the config file and the PEM files it names, and why it is invalid (null: it is not);
 *  throws a ConfigError when the file cannot be read. */
export function readConfigSource(file: string): { source: ConfigSource; invalid: string | null } {
  const text = readConfigText(file);
  try {
    return { source: { text, pems: pemTexts(parseConfig(text, file, () => {})) }, invalid: null };
  } catch (err) {
    return { source: { text, pems: {} }, invalid: (err as Error).message };
  }
}

export function parseConfigSource(source: ConfigSource, file: string, warn: Warn = logWarning): Config {
  return parseConfig(source.text, file, warn, new Map(Object.entries(source.pems)));
}

class ConfigReader {
  private readonly text: string;
  private readonly lines = new LineCounter();

  constructor(
    text: string,
    private readonly file: string,
    private readonly warn: Warn,
  ) {
    // libyaml (YAML 1.1) takes a lone CR as a line break, so a stray \r never reaches a value.
    this.text = text.replace(/\r\n?/g, "\n");
  }

  read(): Config {
    const doc = parseDocument(this.text, {
      schema: "failsafe", // every scalar stays a string: twemproxy reads "true", not YAML booleans
      uniqueKeys: false, // duplicates get our own message
      lineCounter: this.lines,
      prettyErrors: false,
    });
    this.rejectForbiddenTokens();
    const syntax = doc.errors[0];
    if (syntax) throw this.error(syntax.pos[0], `YAML syntax error: ${syntax.message.split("\n")[0]}`);

    const root = doc.contents;
    if (root === null || (isScalar(root) && root.value === "")) {
      throw this.error(0, `no pools defined; expected "pool_name:" followed by its settings`);
    }
    if (!isMap(root)) throw this.error(offset(root), `expected a mapping of pool names to pool settings`);

    const pools: PoolConfig[] = [];
    const lineOfPool = new Map<string, number>();
    for (const pair of root.items) {
      const name = this.keyText(pair, "pool name");
      const previous = lineOfPool.get(name);
      if (previous !== undefined) {
        throw this.error(offset(pair.key), `pool ${quote(name)} is defined twice (first on line ${previous})`);
      }
      lineOfPool.set(name, this.line(offset(pair.key)));
      pools.push(this.readPool(name, pair));
    }
    this.rejectSharedListen(pools, root.items);
    return deepFreeze({ file: this.file, pools });
  }

  private rejectForbiddenTokens(): void {
    let at = 0;
    for (const token of new Lexer().lex(this.text)) {
      const what = FORBIDDEN_TOKENS[CST.tokenType(token) ?? ""];
      if (what) throw this.error(at, `${what} not allowed in a twemproxy config; use plain block style`);
      if (!LEXER_CONTROL.has(token)) at += token.length;
    }
  }

  private readPool(name: string, pair: Pair): PoolConfig {
    const body = pair.value as Node | null;
    if (!isMap(body)) {
      const expected = `expected the pool's settings ("listen:", "servers:", ...) indented below its name`;
      throw this.error(offset(body ?? pair.key), `pool ${quote(name)}: ${expected}`);
    }
    const given = new Map<string, { at: number; lines: readonly number[] }>();
    const settings: Partial<PoolSettings> = {};
    for (const item of body.items) {
      const key = this.keyText(item, `key in pool ${quote(name)}`);
      const at = offset(item.key);
      const directive = DIRECTIVES.get(key);
      if (!directive) {
        const known = [...DIRECTIVES.keys()].join(", ");
        throw this.error(at, `pool ${quote(name)}: directive ${quote(key)} is unknown (known: ${known})`);
      }
      if (given.has(key)) throw this.error(at, `pool ${quote(name)}: directive ${quote(key)} is a duplicate`);
      const where = `pool ${quote(name)}, key ${quote(key)}`;
      const value = item.value as Node | null;
      if (value === null) throw this.error(at, `${where}: the value is empty`);
      const lines = this.readValue(directive, value, settings, where);
      given.set(key, { at, lines });
    }
    for (const directive of POOL_DIRECTIVES) {
      if (given.has(directive.key)) continue;
      if (directive.required) {
        throw this.error(offset(pair.key), `pool ${quote(name)}: directive ${quote(directive.key)} is missing`);
      }
      directive.setDefault(settings);
    }
    return this.finishPool(name, settings as PoolSettings, given);
  }

  /** Parses one key's value into `settings`; returns the line of each list item. */
  private readValue(directive: Directive, node: Node, settings: Partial<PoolSettings>, where: string): number[] {
    if (directive.shape === "scalar") {
      const text = this.scalarText(node, where);
      this.apply(offset(node), where, () => directive.read(settings, text));
      return [];
    }
    if (directive.shape === "map") {
      this.readMapping(directive, node, settings, where);
      return [];
    }
    if (!isSeq(node) || node.items.length === 0) {
      throw this.error(offset(node), `${where}: expected a list below it, one "- entry" per line`);
    }
    const items = node.items as Node[];
    const texts = items.map((item) => this.scalarText(item, where));
    this.apply(offset(node), where, () => directive.read(settings, texts), (i) => offset(items[i]));
    return items.map((item) => this.line(offset(item)));
  }

  /** A mapping value: scalar keys (each once) to non-empty scalar values. */
  private readMapping(directive: Directive, node: Node, settings: Partial<PoolSettings>, where: string): void {
    if (!isMap(node) || node.items.length === 0) {
      throw this.error(offset(node), `${where}: expected its settings indented below it, one "name: value" per line`);
    }
    const entries = new Map<string, string>();
    const at = new Map<string, number>();
    for (const pair of node.items) {
      const key = this.keyText(pair, `setting name in ${where}`);
      if (entries.has(key)) throw this.error(offset(pair.key), `${where}: ${quote(key)} is a duplicate`);
      entries.set(key, this.scalarText(pair.value as Node | null, `${where}, ${quote(key)}`));
      at.set(key, offset(pair.key));
    }
    try {
      directive.read(settings, entries);
    } catch (error) {
      if (!(error instanceof ValueError)) throw error;
      if (!(error instanceof EntryError)) throw this.error(offset(node), `${where}: ${error.message}`);
      throw this.error(at.get(error.key) ?? offset(node), `${where}, setting ${quote(error.key)}: ${error.message}`);
    }
  }

  private scalarText(node: Node | null, where: string): string {
    if (!isScalar(node)) {
      const what = isSeq(node) ? "a list" : isMap(node) ? "a mapping" : "nothing";
      throw this.error(offset(node), `${where}: expected a single value, found ${what}`);
    }
    const text = node.value as string;
    if (text === "") throw this.error(offset(node), `${where}: the value is empty`);
    return text;
  }

  /** Runs a schema step, turning its ValueError into a located ConfigError. */
  private apply(at: number, where: string, step: () => void, itemAt?: (index: number) => number): void {
    try {
      step();
    } catch (error) {
      if (!(error instanceof ValueError)) throw error;
      const place = error instanceof ItemError && itemAt ? itemAt(error.index) : at;
      throw this.error(place, `${where}: ${error.message}`);
    }
  }

  /** Rules between keys: hash vs distribution, redis_auth, server names and order. */
  private finishPool(
    name: string,
    settings: PoolSettings,
    given: ReadonlyMap<string, { at: number; lines: readonly number[] }>,
  ): PoolConfig {
    const pool = `pool ${quote(name)}`;
    const at = (key: string) => given.get(key)?.at ?? 0;

    if (!settings.redis) {
      // redis_db is accepted on memcached pools, as 0.5.0 accepts it.
      const redisOnly = [...given.keys()].find((key) => key.startsWith("redis_") && key !== "redis_db");
      if (redisOnly !== undefined) {
        const problem = `directive ${quote(redisOnly)} is only valid for a redis pool (add "redis: true")`;
        throw this.error(at(redisOnly), `${pool}: ${problem}`);
      }
    }

    let { hash, distribution } = settings;
    if (hash === SERVER_NAME && !given.has("distribution")) distribution = SERVER_NAME;
    if (distribution === SERVER_NAME) {
      if (given.has("hash") && hash !== SERVER_NAME) {
        const ignored = `hash ${quote(hash)} is ignored with distribution server_name`;
        this.warn(`${this.where(at("hash"))}: ${pool}: ${ignored} (keys are matched to server names, not hashed)`);
      }
      hash = "fnv1a_64";
    } else if (hash === SERVER_NAME) {
      const problem = `hash "server_name" needs distribution server_name, not ${quote(distribution)}`;
      throw this.error(at("hash"), `${pool}: ${problem}`);
    }

    this.warnTls(name, settings, at);

    const serverLines = given.get("servers")!.lines;
    const entries = settings.servers.map((server, i) => ({ server, line: serverLines[i]! }));
    this.checkRedisCluster(pool, settings, distribution, given, entries);
    this.checkSentinels(pool, settings, given, entries);
    if (distribution === SERVER_NAME) {
      const unnamed = entries.find((e) => e.server.name === null);
      if (unnamed) {
        const needs = `distribution server_name needs "host:port:weight name" for every server`;
        throw this.errorOnLine(unnamed.line, `${pool}: server ${quote(unnamed.server.pname)} has no name; ${needs}`);
      }
    }
    // Ketama and modula count weights in 32 bits (twemproxy's uint32_t total_weight).
    const totalWeight = entries.reduce((sum, e) => sum + e.server.weight, 0);
    if (totalWeight > 0xffffffff) {
      throw this.error(at("servers"), `${pool}: the servers' weights add up to ${totalWeight}, over 4294967295`);
    }
    entries.sort((a, b) => compareServers(a.server, b.server));
    for (let i = 1; i < entries.length; i++) {
      const a = entries[i - 1]!;
      const b = entries[i]!;
      if (a.server.effectiveName !== b.server.effectiveName) continue;
      const [first, second] = a.line <= b.line ? [a, b] : [b, a];
      const name = quote(first.server.effectiveName);
      const problem = `servers on lines ${first.line} and ${second.line} have the same name ${name}`;
      throw this.errorOnLine(second.line, `${pool}: ${problem} (names, else host:port, must be unique)`);
    }

    return { ...settings, name, hash, distribution, servers: entries.map((e) => e.server) };
  }

  /** Valid TLS settings that still deserve a loud line: no verification, an expired certificate. */
  private warnTls(name: string, settings: PoolSettings, at: (key: string) => number): void {
    const pool = `pool ${quote(name)}`;
    if (settings.serverTls !== null && !settings.serverTls.verify) {
      const unsafe = `server_tls verify is false: the servers' certificates are NOT checked (anyone in the path can read and change the traffic)`;
      this.warn(`${this.where(at("server_tls"))}: ${pool}: ${unsafe}`);
    }
    const own = [
      { key: "tls", file: settings.tls?.cert ?? null },
      { key: "server_tls", file: settings.serverTls?.cert ?? null },
    ];
    for (const { key, file } of own) {
      if (file === null) continue;
      const until = new X509Certificate(file.text).validToDate;
      if (until.getTime() < Date.now()) {
        this.warn(`${this.where(at(key))}: ${pool}: the certificate in ${quote(file.path)} expired on ${until.toISOString()}`);
      }
    }
  }

  /** distribution redis_cluster: a redis pool whose servers are TCP seed nodes; the cluster
   *  fixes hash and hash tag, and has no sentinels (its replicas, for read_from, come from the
   *  cluster). */
  private checkRedisCluster(
    pool: string,
    settings: PoolSettings,
    distribution: PoolConfig["distribution"],
    given: ReadonlyMap<string, { at: number; lines: readonly number[] }>,
    entries: readonly { server: PoolSettings["servers"][number]; line: number }[],
  ): void {
    if (distribution !== REDIS_CLUSTER) return;
    const at = (key: string) => given.get(key)?.at ?? 0;
    if (!settings.redis) {
      throw this.error(at("distribution"), `${pool}: distribution redis_cluster is only valid for a redis pool (add "redis: true")`);
    }
    if (settings.sentinels.length > 0) {
      const problem = `directive "sentinels" cannot apply with distribution redis_cluster (the cluster fails over by itself)`;
      throw this.error(at("sentinels"), `${pool}: ${problem}`);
    }
    if (settings.hashTag !== null && settings.hashTag !== "{}") {
      const problem = `hash_tag ${quote(settings.hashTag)} cannot apply with distribution redis_cluster, whose hash tag is "{}"`;
      throw this.error(at("hash_tag"), `${pool}: ${problem}`);
    }
    if (settings.redisDb !== 0) {
      throw this.error(at("redis_db"), `${pool}: redis_db cannot apply with distribution redis_cluster (a cluster has database 0 only)`);
    }
    if (settings.redisSharedSubscriptions) {
      const problem = `redis_shared_subscriptions cannot apply with distribution redis_cluster (each client subscribes on its own connections)`;
      throw this.error(at("redis_shared_subscriptions"), `${pool}: ${problem}`);
    }
    if (given.has("hash")) {
      const ignored = `hash ${quote(settings.hash)} is ignored with distribution redis_cluster`;
      this.warn(`${this.where(at("hash"))}: ${pool}: ${ignored} (keys go by the cluster's slots, CRC16)`);
    }
    for (const { server, line } of entries) {
      if (server.addr.unix) {
        const problem = `is a unix socket; cluster nodes announce each other by host and port`;
        throw this.errorOnLine(line, `${pool}: server ${quote(server.pname)} ${problem}`);
      }
    }
  }

  /** Sentinel keys: a redis pool of named TCP servers (a name is the sentinel master name);
   *  sentinel_auth, and read_from other than master, only with sentinels (a redis_cluster
   *  pool, checked before, learns its replicas from the cluster). */
  private checkSentinels(
    pool: string,
    settings: PoolSettings,
    given: ReadonlyMap<string, { at: number; lines: readonly number[] }>,
    entries: readonly { server: PoolSettings["servers"][number]; line: number }[],
  ): void {
    const at = (key: string) => given.get(key)?.at ?? 0;
    if (settings.sentinels.length === 0) {
      const needs = `needs "sentinels:" (the replicas are learned from them)`;
      if (given.has("sentinel_auth")) throw this.error(at("sentinel_auth"), `${pool}: directive "sentinel_auth" ${needs}`);
      const clustered = settings.distribution === REDIS_CLUSTER;
      if (settings.readFrom !== "master" && !clustered) throw this.error(at("read_from"), `${pool}: directive "read_from" other than master ${needs}`);
      return;
    }
    if (!settings.redis) {
      throw this.error(at("sentinels"), `${pool}: directive "sentinels" is only valid for a redis pool (add "redis: true")`);
    }
    for (const { server, line } of entries) {
      if (server.name === null) {
        const needs = `with sentinels every server needs "host:port:weight name", its sentinel master name`;
        throw this.errorOnLine(line, `${pool}: server ${quote(server.pname)} has no name; ${needs}`);
      }
      if (server.addr.unix) {
        const problem = `is a unix socket; sentinels announce masters by host and port`;
        throw this.errorOnLine(line, `${pool}: server ${quote(server.pname)} ${problem}`);
      }
    }
  }

  private rejectSharedListen(pools: readonly PoolConfig[], pairs: readonly Pair[]): void {
    const seen = new Map<string, string>();
    pools.forEach((pool, i) => {
      const { unix, host, port } = pool.listen;
      const where = unix ? host : `${host.toLowerCase()}:${port}`;
      const other = seen.get(where);
      if (other !== undefined) {
        const problem = `pools ${quote(other)} and ${quote(pool.name)} have the same listen address ${quote(where)}`;
        throw this.error(offset(pairs[i]!.key), problem);
      }
      seen.set(where, pool.name);
    });
  }

  private keyText(pair: Pair, what: string): string {
    const key = pair.key as Node | null;
    if (!isScalar(key) || key.value === "") throw this.error(key ? offset(key) : 0, `expected a ${what}`);
    return key.value as string;
  }

  private line(at: number): number {
    return this.lines.linePos(at).line;
  }

  private where(at: number): string {
    return `${this.file}:${this.line(at)}`;
  }

  private error(at: number, problem: string): ConfigError {
    return this.errorOnLine(this.line(at), problem);
  }

  private errorOnLine(line: number, problem: string): ConfigError {
    return new ConfigError(`${this.file}:${line}: ${problem}`);
  }
}

/** Where a node starts in the text; 0 (line 1) for a missing node. */
const offset = (node: unknown): number => (node as { range?: [number, number, number] } | null)?.range?.[0] ?? 0;

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
