// Hot reload seen from outside: a proxy started with a metrics port whose config file a test
// rewrites and reloads (SIGUSR1 or POST /reload, waiting for the proxy's own log line), what the
// proxy then reports (/healthz, /metrics, the stats JSON), where a config routes keys (the
// Router, verified against the vectors, built on the parsed config), and pipelined traffic that
// keeps running across a reload and checks every reply.

import { writeFileSync } from "node:fs";
import { parseConfig } from "../../src/conf/load.ts";
import { Router } from "../../src/route/router.ts";
import type { Backend } from "./backends.ts";
import { RawClient, type Endpoint } from "./client.ts";
import { redisCall, redisKeys } from "./direct.ts";
import { freePort } from "./ports.ts";
import { metricSample } from "./prometheus.ts";
import { spread } from "./random.ts";
import { listenEndpoints, startProxy, type ProxyOptions, type RunningProxy } from "./proxy.ts";
import { command, decode, respFrame, RespError, type RespValue } from "./resp.ts";

/** The proxy's log line for a reload it applied or rejected. */
const OUTCOME = /reloaded '[^']*' \(generation \d+\): .*|reload rejected, the running configuration is unchanged: .*/g;

/** Polls `check` until it returns a value other than undefined; throws `what` after `timeoutMs`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(20);
  }
}

export class ReloadableProxy {
  private constructor(
    readonly proxy: RunningProxy,
    readonly metricsPort: number,
    /** The config the proxy runs: the start file, then each file a reload applied. */
    public running: string,
  ) {}

  /** Starts buncracker on `yaml` with `--metrics-port` and a 100 ms stats interval. */
  static async start(yaml: string, opts: ProxyOptions = {}): Promise<ReloadableProxy> {
    const metricsPort = freePort();
    const args = ["--metrics-port", String(metricsPort), "-i", "100", ...(opts.args ?? [])];
    const proxy = await startProxy("buncracker", yaml, { ...opts, args });
    return new ReloadableProxy(proxy, metricsPort, yaml);
  }

  /** A pool's listen endpoint in the running config. */
  endpoint(pool: string): Endpoint {
    const e = listenEndpoints(this.running)[pool];
    if (e === undefined) throw new Error(`no pool ${pool} in the running config`);
    return e;
  }

  /** The reload outcome lines logged so far. */
  outcomes(): string[] {
    return this.proxy.stderr().match(OUTCOME) ?? [];
  }

  /** Writes `yaml` to the config file and sends SIGUSR1; resolves with the `lines` new outcome
   *  lines (one per process that reloads: one, or one per worker). */
  async signalReload(yaml: string, lines = 1): Promise<string[]> {
    const before = this.outcomes().length;
    writeFileSync(this.proxy.configPath, yaml);
    this.proxy.signal("SIGUSR1");
    const logged = await this.newOutcomes(before, lines, "SIGUSR1");
    if (logged.every((l) => l.startsWith("reloaded"))) this.running = yaml;
    return logged;
  }

  /** Writes `yaml` to the config file and POSTs /reload: the HTTP status, the JSON body and the
   *  `lines` outcome lines logged (0: do not wait for any). */
  async postReload(yaml: string, lines = 1): Promise<{ status: number; body: Record<string, unknown>; logged: string[] }> {
    const before = this.outcomes().length;
    writeFileSync(this.proxy.configPath, yaml);
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/reload`, { method: "POST" });
    const body = (await res.json()) as Record<string, unknown>;
    const logged = await this.newOutcomes(before, lines, "POST /reload");
    if (res.status === 200) this.running = yaml;
    return { status: res.status, body, logged };
  }

  /** The outcome lines after the first `before`, once there are `lines` of them (the log is read
   *  from a pipe: it can lag behind the HTTP answer). */
  private newOutcomes(before: number, lines: number, after: string): Promise<string[]> {
    return eventually(`${lines} reload log line(s) after ${after}`, () => {
      const all = this.outcomes();
      return all.length >= before + lines ? all.slice(before) : undefined;
    }).catch((err: Error) => {
      const state = this.proxy.process.running ? "runs" : "exited";
      throw new Error(`${err.message}; the proxy ${state}, its log ends:\n${this.proxy.stderr().slice(-2000)}`);
    });
  }

  async healthz(): Promise<{ status: number; body: Healthz }> {
    const res = await fetch(`http://127.0.0.1:${this.metricsPort}/healthz`);
    return { status: res.status, body: (await res.json()) as Healthz };
  }

  /** The value of a sample in /metrics (see metricSample). */
  metric(sample: string): Promise<number> {
    return metricSample(this.metricsPort, sample);
  }

  /** The twemproxy stats document. */
  async stats(): Promise<StatsDoc> {
    const client = await RawClient.connect({ host: "127.0.0.1", port: this.proxy.statsPort });
    return JSON.parse((await client.readUntilClose()).toString("utf8")) as StatsDoc;
  }

  /** The first stats document that satisfies `ok` (counters in it are as of the last
   *  aggregation, every 100 ms). */
  async statsWhere(what: string, ok: (doc: StatsDoc) => boolean): Promise<StatsDoc> {
    return eventually(`a stats document with ${what}`, async () => {
      const doc = await this.stats();
      return ok(doc) ? doc : undefined;
    });
  }

  stop(): Promise<number> {
    return this.proxy.stop();
  }
}

export interface Healthz {
  status: string;
  config?: { generation: number; loaded_at: string };
  pools: { name: string; listening: boolean; live: string[]; ejected: string[] }[];
}

export type StatsDoc = Record<string, unknown>;

/** One server's counters in a stats document. */
export function serverStats(doc: StatsDoc, pool: string, server: string): Record<string, number> | undefined {
  const p = doc[pool] as Record<string, unknown> | undefined;
  return p?.[server] as Record<string, number> | undefined;
}

// ---- placement ----

/** Key -> the "host:port" of the server that pool `pool` of config `yaml` routes it to. */
export function placer(yaml: string, pool: string): (key: string) => string {
  const cfg = parseConfig(yaml, "reload-test.yml", () => {}).pools.find((p) => p.name === pool);
  if (cfg === undefined) throw new Error(`no pool ${pool}`);
  const router = new Router(cfg);
  return (key) => {
    const bytes = Buffer.from(key, "latin1");
    const addr = cfg.servers[router.route(bytes, 0, bytes.length)]!.addr;
    return `${addr.host}:${addr.port}`;
  };
}

/** Key -> the addresses of the redis backends (db `db`) that hold it, for keys starting with `prefix`. */
export async function holders(backends: readonly Backend[], prefix: string, db = 0): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>();
  const lists = await Promise.all(backends.map((b) => redisKeys(b, db)));
  lists.forEach((keys, i) => {
    for (const k of keys) {
      const key = k.toString("latin1");
      if (!key.startsWith(prefix)) continue;
      found.set(key, [...(found.get(key) ?? []), backends[i]!.address]);
    }
  });
  return found;
}

/** Keys (with where they were expected and found) that do not sit on exactly their expected backend. */
export function misplaced(keys: readonly string[], expected: (key: string) => string, found: Map<string, string[]>): string[] {
  return keys.flatMap((key) => {
    const at = found.get(key) ?? [];
    const want = expected(key);
    return at.length === 1 && at[0] === want ? [] : [`${key}: expected on ${want}, found on [${at.join(", ")}]`];
  });
}

/** The ids of a redis backend's client connections, besides the one asking. */
export async function clientIds(backend: Backend): Promise<string[]> {
  const list = (await redisCall(backend, "CLIENT", "LIST")) as Buffer;
  return list
    .toString("latin1")
    .split("\n")
    .filter((l) => l.trim() !== "" && !l.includes("cmd=client|list"))
    .map((l) => /(?:^|\s)id=(\d+)/.exec(l)![1]!);
}

/** Pipelines `count` GETs of keys `${prefix}${spread(i)}` through `endpoint` and reads the replies. */
export async function pipelineGets(endpoint: Endpoint, prefix: string, count: number): Promise<void> {
  const client = await RawClient.connect(endpoint);
  try {
    await client.send(Buffer.concat(Array.from({ length: count }, (_, i) => command("GET", `${prefix}${spread(i)}`))));
    await client.readReplies(count, respFrame);
  } finally {
    client.close();
  }
}

/** Holds every write (and whatever a connection pipelined after it) on `backend` until unpause(). */
export async function pauseWrites(backend: Backend): Promise<void> {
  expectSimpleOk(await redisCall(backend, "CLIENT", "PAUSE", "30000", "WRITE"));
}

export async function unpause(backend: Backend): Promise<void> {
  expectSimpleOk(await redisCall(backend, "CLIENT", "UNPAUSE"));
}

function expectSimpleOk(reply: RespValue): void {
  if (reply !== "OK") throw new Error(`expected +OK, got ${JSON.stringify(reply)}`);
}

// ---- traffic across a reload ----

export interface TrafficOptions {
  /** Client connections, each pipelining its own batches; default 4. */
  connections?: number;
  /** Sent with AUTH first on each connection (a pool with redis_auth). */
  password?: string;
  /** The key for connection c, batch b, item i (default `${prefix}${c}.${b}.${spread(i)}`), e.g. with a hash tag. */
  key?: (c: number, b: number, i: number) => string;
}

/** SET/GET pairs per batch (plus one 3-key MSET and its MGET). */
const PAIRS = 16;

/** Where a batch ran relative to the reload. */
const enum Phase {
  Before = 0,
  Across = 1,
  After = 2,
}

/**
 * Pipelined SET k v / GET k pairs and an MSET / MGET of 3 keys per batch, with values unique to
 * this run, over several connections, until stop(). Every reply is checked: SET and MSET +OK,
 * GET and MGET the value just written. A batch that straddles the reload may read nil for a key
 * that the reload moved (its SET went to the old server, its GET to the new one): that is
 * resharding, not loss, and is allowed only for keys the caller says moved. Anything else (an
 * error reply, a missing or wrong reply, a closed connection) is a problem.
 */
export class RedisTraffic {
  readonly problems: string[] = [];
  /** Keys of batches that ran wholly before the reload signal / wholly after it was applied. */
  readonly before: string[] = [];
  readonly after: string[] = [];
  /** Batches completed, by the phase they started in. */
  private readonly done = [0, 0, 0];
  private phase = Phase.Before;
  private moved: (key: string) => boolean = () => false;
  private stopping = false;
  private readonly loops: Promise<void>[] = [];
  private readonly nonce = Math.random().toString(36).slice(2, 8);
  private readonly key: (c: number, b: number, i: number) => string;
  private readonly password: string | undefined;

  constructor(
    private readonly endpoint: Endpoint,
    prefix: string,
    opts: TrafficOptions = {},
  ) {
    this.password = opts.password;
    this.key = opts.key ?? ((c, b, i) => `${prefix}${c}.${b}.${spread(i)}`);
    const connections = opts.connections ?? 4;
    for (let c = 0; c < connections; c++) this.loops.push(this.run(c));
  }

  /** The reload is about to be requested; `moved` says which keys it re-routes. */
  signalled(moved: (key: string) => boolean = () => false): void {
    this.moved = moved;
    this.phase = Phase.Across;
  }

  /** The reload was applied (its log line was seen). */
  reloaded(): void {
    this.phase = Phase.After;
  }

  /** Waits until `n` batches per connection ran before the reload (call before signalled()). */
  async warmUp(n = 2): Promise<void> {
    await eventually(`${n} batches per connection before the reload`, () =>
      this.problems.length > 0 || this.done[Phase.Before]! >= n * this.loops.length ? true : undefined,
    );
  }

  /** Waits until `n` batches per connection started after the reload completed, then stops. */
  async finish(n = 2): Promise<void> {
    await eventually(`${n} batches per connection after the reload`, () =>
      this.problems.length > 0 || this.done[Phase.After]! >= n * this.loops.length ? true : undefined,
    ).finally(() => this.stop());
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
  }

  private async run(c: number): Promise<void> {
    let client: RawClient;
    try {
      client = await RawClient.connect(this.endpoint);
      if (this.password !== undefined) {
        await client.send(command("AUTH", this.password));
        const reply = decode(await client.readReply(respFrame));
        if (reply !== "OK") throw new Error(`AUTH gave ${describe(reply)}`);
      }
    } catch (err) {
      this.problems.push(`connection ${c}: ${(err as Error).message}`);
      return;
    }
    try {
      for (let b = 0; !this.stopping && this.problems.length === 0; b++) await this.batch(client, c, b);
    } catch (err) {
      this.problems.push(`connection ${c}: ${(err as Error).message}`);
    } finally {
      client.close();
    }
  }

  private async batch(client: RawClient, c: number, b: number): Promise<void> {
    const started = this.phase;
    const keys: string[] = [];
    const requests: Buffer[] = [];
    const value = (key: string) => `${key}=${this.nonce}`;
    for (let i = 0; i < PAIRS; i++) {
      const key = this.key(c, b, i);
      keys.push(key);
      requests.push(command("SET", key, value(key)), command("GET", key));
    }
    const multi = [0, 1, 2].map((j) => this.key(c, b, PAIRS + j));
    keys.push(...multi);
    requests.push(command("MSET", ...multi.flatMap((k) => [k, value(k)])), command("MGET", ...multi));
    await client.send(Buffer.concat(requests));
    const replies = await client.readReplies(requests.length, respFrame);
    const ended = this.phase;
    // A key may read nil only if its SET and GET can have been routed by different configs.
    const mayMiss = (key: string) => (started !== ended || started === Phase.Across) && this.moved(key);
    const read = (key: string, got: RespValue, where: string) => {
      if (Buffer.isBuffer(got) && got.toString("latin1") === value(key)) return;
      if (got === null && mayMiss(key)) return;
      this.problems.push(`connection ${c} batch ${b}: ${where} ${key} gave ${describe(got)}`);
    };
    for (let i = 0; i < PAIRS; i++) {
      const set = decode(replies[2 * i]!);
      if (set !== "OK") this.problems.push(`connection ${c} batch ${b}: SET ${keys[i]} gave ${describe(set)}`);
      read(keys[i]!, decode(replies[2 * i + 1]!), "GET");
    }
    const mset = decode(replies[2 * PAIRS]!);
    if (mset !== "OK") this.problems.push(`connection ${c} batch ${b}: MSET gave ${describe(mset)}`);
    const mget = decode(replies[2 * PAIRS + 1]!);
    if (!Array.isArray(mget) || mget.length !== 3) {
      this.problems.push(`connection ${c} batch ${b}: MGET gave ${describe(mget)}`);
    } else multi.forEach((k, j) => read(k, mget[j]!, "MGET"));
    if (started === ended && started !== Phase.Across) (started === Phase.Before ? this.before : this.after).push(...keys);
    this.done[started]!++;
  }
}

function describe(v: RespValue): string {
  if (v instanceof RespError) return `error "${v.message}"`;
  if (Buffer.isBuffer(v)) return JSON.stringify(v.toString("latin1"));
  return JSON.stringify(v);
}
