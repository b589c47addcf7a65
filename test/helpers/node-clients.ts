// The same workload through each Node.js redis client library at its newest major version with
// its default options (ioredis, node-redis, iovalkey): plain commands, a pipeline, MSET/MGET over
// keys spread across servers, binary values, Lua through EVAL and EVALSHA (each library's script
// helper: EVALSHA first, EVAL after NOSCRIPT), errors that keep the connection, and RESP3 types
// (a map from HGETALL, a double from ZSCORE, nulls in MGET). Each run returns what the library
// handed back, as plain JSON, so a run through the proxy can be compared with a run against a
// redis-server directly (the independent expectation).

import IORedis from "ioredis";
import IOValkey from "iovalkey";
import { createClient, defineScript } from "redis";
import type { Endpoint } from "./client.ts";

export interface ConnectOptions {
  password?: string;
  /** A client name the library sets on connect (CLIENT SETNAME). */
  name?: string;
}

export interface Outcome {
  [step: string]: unknown;
}

/** Buffers as hex, so outcomes compare as JSON. */
function plain(value: unknown): unknown {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return { hex: Buffer.from(value).toString("hex") };
  if (Array.isArray(value)) return value.map(plain);
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), plain(v)]));
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  return value;
}

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** 256 bytes, every byte value once. */
export const BINARY = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
const LUA_GET = "return redis.call('GET', KEYS[1])";

/** The workload on keys under `prefix` (mset keys: `keys`, which should span several servers). */
export type Workload = (endpoint: Endpoint, prefix: string, keys: readonly string[], opts?: ConnectOptions) => Promise<Outcome>;

function ioLike(Client: typeof IORedis | typeof IOValkey): Workload {
  return async (endpoint, prefix, keys, opts = {}) => {
    if ("path" in endpoint) throw new Error("TCP only");
    // iovalkey is ioredis's fork with the same API; its types are a copy that TypeScript cannot
    // unite with ioredis's in one constructor type.
    const client = new (Client as typeof IORedis)({
      host: endpoint.host,
      port: endpoint.port,
      password: opts.password,
      connectionName: opts.name,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on("error", () => {});
    const out: Outcome = {};
    try {
      await client.connect();
      out.set = await client.set(`${prefix}a`, "1");
      out.get = await client.get(`${prefix}a`);
      const pipe = client.pipeline();
      for (let i = 0; i < 10; i++) pipe.incr(`${prefix}n${i % 3}`);
      pipe.get(`${prefix}missing`);
      out.pipeline = (await pipe.exec())!.map(([e, v]) => (e ? errorText(e) : v));
      out.mset = await client.mset(...keys.flatMap((k, i) => [k, `v${i}`]));
      out.mget = await client.mget(...keys, `${prefix}none1`, `${prefix}none2`);
      out.setBinary = await client.set(`${prefix}bin`, BINARY);
      out.getBinary = await client.getBuffer(`${prefix}bin`);
      out.eval = await client.eval(LUA_GET, 1, `${prefix}a`);
      client.defineCommand("getKey", { numberOfKeys: 1, lua: LUA_GET });
      const scripted = client as unknown as { getKey(key: string): Promise<unknown> };
      out.evalsha = [await scripted.getKey(`${prefix}a`), await scripted.getKey(`${prefix}a`)];
      out.wrongType = await client.hset(`${prefix}a`, "f", "v").catch(errorText);
      out.afterError = await client.get(`${prefix}a`);
      await client.hset(`${prefix}h`, "a", "1", "b", "2");
      out.hgetall = await client.hgetall(`${prefix}h`);
      await client.zadd(`${prefix}z`, "1.5", "m");
      out.zscore = await client.zscore(`${prefix}z`, "m");
      if (opts.name !== undefined) out.name = await client.client("GETNAME");
    } finally {
      client.disconnect();
    }
    return plain(out) as Outcome;
  };
}

export const ioredis: Workload = ioLike(IORedis);
export const iovalkey: Workload = ioLike(IOValkey);

export const nodeRedis: Workload = async (endpoint, prefix, keys, opts = {}) => {
  if ("path" in endpoint) throw new Error("TCP only");
  const client = createClient({
    socket: { host: endpoint.host, port: endpoint.port, reconnectStrategy: false },
    password: opts.password,
    name: opts.name,
    scripts: { getKey: defineScript({ NUMBER_OF_KEYS: 1, SCRIPT: LUA_GET, parseCommand: (parser, key: string) => parser.pushKey(key), transformReply: (reply: unknown) => reply }) },
  });
  client.on("error", () => {});
  const out: Outcome = {};
  try {
    await client.connect();
    out.set = await client.set(`${prefix}a`, "1");
    out.get = await client.get(`${prefix}a`);
    const multi = client.multi();
    for (let i = 0; i < 10; i++) multi.incr(`${prefix}n${i % 3}`);
    multi.get(`${prefix}missing`);
    out.pipeline = await multi.execAsPipeline();
    out.mset = await client.mSet(keys.map((k, i) => [k, `v${i}`] as [string, string]));
    out.mget = await client.mGet([...keys, `${prefix}none1`, `${prefix}none2`]);
    out.setBinary = await client.set(`${prefix}bin`, BINARY);
    out.getBinary = await client.sendCommand([Buffer.from("GET"), Buffer.from(`${prefix}bin`)], { typeMapping: { [36]: Buffer } });
    out.eval = await client.eval(LUA_GET, { keys: [`${prefix}a`] });
    out.evalsha = [await client.getKey(`${prefix}a`), await client.getKey(`${prefix}a`)];
    out.wrongType = await client.hSet(`${prefix}a`, "f", "v").catch(errorText);
    out.afterError = await client.get(`${prefix}a`);
    await client.hSet(`${prefix}h`, { a: "1", b: "2" });
    out.hgetall = await client.hGetAll(`${prefix}h`);
    await client.zAdd(`${prefix}z`, { score: 1.5, value: "m" });
    out.zscore = await client.zScore(`${prefix}z`, "m");
    if (opts.name !== undefined) out.name = await client.clientGetName();
  } finally {
    client.destroy();
  }
  return plain(out) as Outcome;
};
