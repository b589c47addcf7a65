// End-to-end key placement against ../shared/vectors/distribution.json: every key is written
// through the proxy, read back from the backends directly, and must sit on the server that
// `placements` names. Placement hashes each server's effective name, which is its address when
// it has no name, so the backends run on the vectors' own ports (127.0.0.1:30501-30525) when
// those are free. When they are not, the pools whose placement does not depend on the addresses
// (named servers, modula with order-preserving ports, single servers) still run on other ports,
// and the rest fail saying why (helpers/needs.ts; BC_ALLOW_SKIPS=1 skips them). Ports another
// run holds are waited for, up to a minute.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout } from "bun:test";
import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import { exchange, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { endpointOf, flushBackends, redisKeys, stopAll } from "../helpers/direct.ts";
import { line, memcacheFrame, parseRetrieval, storage } from "../helpers/memcache.ts";
import { canBind, freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { command, OK, respFrame } from "../helpers/resp.ts";
import { expectReplies } from "../helpers/assertions.ts";
import { readyWithin, testNeeding } from "../helpers/needs.ts";
import { addressesMatter, loadDistribution, rewritePoolYaml, type VectorPool } from "../helpers/vectors.ts";

// Real processes and large payloads: allow more than bun's 5 s default per test and hook.
setDefaultTimeout(60_000);

const vectors = loadDistribution();
const VECTOR_PORTS = Array.from({ length: 25 }, (_, i) => 30501 + i);
const exactPorts = (count: number) => VECTOR_PORTS.slice(0, count).every((p) => canBind("127.0.0.1", p));
const EXACT25 = await readyWithin(() => exactPorts(25), 60_000);
const EXACT5 = EXACT25 || exactPorts(5);
const NEED5 = "127.0.0.1:30501-30505 are taken: pools keyed by address need the vectors' own ports";
const NEED25 = "127.0.0.1:30501-30525 are taken: pools keyed by address need the vectors' own ports";

const poolsOf = (size: number) => vectors.pools.filter((p) => p.servers.every((s) => s.port - 30501 < size) && p.servers.length <= size);
const runnable = (pool: VectorPool, exact: boolean) => exact || !addressesMatter(pool);

/** Vector port -> our backend's port. Identity on the exact ports; otherwise order-preserving (same digit count). */
function portMapFor(backends: Backend[]): Map<number, number> {
  return new Map(backends.map((b, i) => [30501 + i, b.port]));
}

/** The servers[] index of the backend each key was found on (-1: nowhere, -2: on several). */
function toPlacements(pool: VectorPool, holders: Map<string, number[]>, keys: Buffer[]): number[] {
  return keys.map((key) => {
    const found = holders.get(key.toString("hex")) ?? [];
    if (found.length !== 1) return found.length === 0 ? -1 : -2;
    const port = 30501 + found[0]!;
    return pool.servers.findIndex((s) => s.port === port);
  });
}

function expectPlacements(pool: VectorPool, actual: number[], keys: Buffer[], wanted: number[]): void {
  const wrong = actual.flatMap((server, i) => (server === wanted[i] ? [] : [`key ${keys[i]!.toString("hex") || '""'}: server ${server}, expected ${wanted[i]}`]));
  if (wrong.length > 0) throw new Error(`${pool.name}: ${wrong.length} of ${keys.length} keys misplaced\n  ${wrong.slice(0, 10).join("\n  ")}`);
}

describe("redis", () => {
  const pools = poolsOf(5);
  let backends: Backend[] = [];
  let proxy: RunningProxy;

  beforeAll(async () => {
    // Sorted by port, so a fallback port map preserves the servers' name order (see modula).
    backends = await Promise.all(
      VECTOR_PORTS.slice(0, 5).map((port) => startRedis({ port: EXACT5 ? port : undefined, args: ["--databases", "64"] })),
    );
    backends.sort((a, b) => a.port - b.port);
    const portMap = portMapFor(backends);
    const yaml = pools
      .filter((p) => runnable(p, EXACT5))
      .map((p) => rewritePoolYaml(p, { listen: `127.0.0.1:${freePort()}`, redis: true, portMap }))
      .join("");
    proxy = await startProxy(TARGET, yaml);
  });

  afterAll(async () => {
    await proxy?.stop();
    await stopAll(backends);
  });

  for (const pool of pools) {
    testNeeding(runnable(pool, EXACT5), NEED5)(`${pool.name}: ${vectors.keys.length} keys land on the vector's servers`, async () => {
      const db = Number(/redis_db: (\d+)/.exec(pool.yaml)![1]);
      const replies = await exchange(proxy.pools[pool.name]!, Buffer.concat(vectors.keys.map((k) => command("SET", k, "v"))), vectors.keys.length, respFrame);
      expectReplies(replies, vectors.keys.map(() => OK));
      const holders = new Map<string, number[]>();
      for (const [i, backend] of backends.entries()) {
        for (const key of await redisKeys(backend, db)) holders.set(key.toString("hex"), [...(holders.get(key.toString("hex")) ?? []), i]);
      }
      expectPlacements(pool, toPlacements(pool, holders, vectors.keys), vectors.keys, pool.placements);
    });
  }
});

describe("redis, 25 servers", () => {
  const pools = vectors.pools.filter((p) => p.servers.length === 25);
  let backends: Backend[] = [];
  let proxy: RunningProxy;

  beforeAll(async () => {
    if (!EXACT25) return;
    backends = await Promise.all(VECTOR_PORTS.map((port) => startRedis({ port, args: ["--databases", "64"] })));
    const yaml = pools.map((p) => rewritePoolYaml(p, { listen: `127.0.0.1:${freePort()}`, redis: true })).join("");
    proxy = await startProxy(TARGET, yaml);
  });

  afterAll(async () => {
    await proxy?.stop();
    await stopAll(backends);
  });

  for (const pool of pools) {
    testNeeding(EXACT25, NEED25)(`${pool.name}: keys land on the vector's servers`, async () => {
      const db = Number(/redis_db: (\d+)/.exec(pool.yaml)![1]);
      const replies = await exchange(proxy.pools[pool.name]!, Buffer.concat(vectors.keys.map((k) => command("SET", k, "v"))), vectors.keys.length, respFrame);
      expectReplies(replies, vectors.keys.map(() => OK));
      const holders = new Map<string, number[]>();
      for (const [i, backend] of backends.entries()) {
        for (const key of await redisKeys(backend, db)) holders.set(key.toString("hex"), [...(holders.get(key.toString("hex")) ?? []), i]);
      }
      expectPlacements(pool, toPlacements(pool, holders, vectors.keys), vectors.keys, pool.placements);
    });
  }
});

/** Keys memcached's text protocol can carry: 1-250 bytes, no spaces or control characters. */
const memcachedKeys = vectors.keys
  .map((key, index) => ({ key, index }))
  .filter(({ key }) => key.length > 0 && key.length <= 250 && key.every((b) => b > 0x20 && b !== 0x7f));

/** For each key, the indexes of the memcached backends that hold it. */
async function memcachedHolders(backends: Backend[], keys: Buffer[]): Promise<Map<string, number[]>> {
  const holders = new Map<string, number[]>();
  for (const [i, backend] of backends.entries()) {
    const replies = await exchange(endpointOf(backend), Buffer.concat(keys.map((k) => line("get", k))), keys.length, memcacheFrame);
    replies.forEach((reply, k) => {
      if (parseRetrieval(reply).length > 0) holders.set(keys[k]!.toString("hex"), [...(holders.get(keys[k]!.toString("hex")) ?? []), i]);
    });
  }
  return holders;
}

async function storeThrough(endpoint: Endpoint, keys: Buffer[]): Promise<void> {
  const replies = await exchange(endpoint, Buffer.concat(keys.map((k) => storage("set", k, "v"))), keys.length, memcacheFrame);
  expectReplies(replies, keys.map(() => Buffer.from("STORED\r\n")));
}

describe("memcached", () => {
  const pools = poolsOf(5);
  let backends: Backend[] = [];
  let proxy: RunningProxy;
  const keys = memcachedKeys.map((k) => k.key);

  beforeAll(async () => {
    backends = await Promise.all(VECTOR_PORTS.slice(0, 5).map((port) => startMemcached({ port: EXACT5 ? port : undefined })));
    backends.sort((a, b) => a.port - b.port);
    const portMap = portMapFor(backends);
    const yaml = pools
      .filter((p) => runnable(p, EXACT5))
      .map((p) => rewritePoolYaml(p, { listen: `127.0.0.1:${freePort()}`, redis: false, portMap }))
      .join("");
    proxy = await startProxy(TARGET, yaml);
  });

  afterAll(async () => {
    await proxy?.stop();
    await stopAll(backends);
  });

  for (const pool of pools) {
    testNeeding(runnable(pool, EXACT5), NEED5)(`${pool.name}: ${memcachedKeys.length} keys land on the vector's servers`, async () => {
      await flushBackends(backends);
      await storeThrough(proxy.pools[pool.name]!, keys);
      const actual = toPlacements(pool, await memcachedHolders(backends, keys), keys);
      expectPlacements(pool, actual, keys, memcachedKeys.map(({ index }) => pool.placements[index]!));
    });
  }
});

// Servers on port 11211 are named by their host alone (the libmemcached rule), so a pool of
// `127.0.0.N:11211` servers must place keys exactly like a pool of servers *named* `127.0.0.N`,
// and unlike one named `127.0.0.N:11211`.
describe("memcached, servers on port 11211", () => {
  const HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];
  const free = HOSTS.every((h) => canBind(h, 11211));
  let on11211: Backend[] = [];
  let elsewhere: Backend[] = [];
  let proxy: RunningProxy;
  const keys = memcachedKeys.map((k) => k.key);

  beforeAll(async () => {
    if (!free) return;
    [on11211, elsewhere] = await Promise.all([
      Promise.all(HOSTS.map((host) => startMemcached({ host, port: 11211 }))),
      Promise.all(HOSTS.map(() => startMemcached())),
    ]);
    const settings = () => ({ listen: `127.0.0.1:${freePort()}`, hash: "fnv1a_64", distribution: "ketama" });
    proxy = await startProxy(
      TARGET,
      poolYaml("port11211", settings(), on11211.map((b) => serverLine(b.address))) +
        poolYaml("named_hosts", settings(), elsewhere.map((b, i) => serverLine(b.address, 1, HOSTS[i]))) +
        poolYaml("named_with_port", settings(), elsewhere.map((b, i) => serverLine(b.address, 1, `${HOSTS[i]}:11211`))),
    );
  });

  afterAll(async () => {
    await proxy?.stop();
    await stopAll([...on11211, ...elsewhere]);
  });

  async function placementVia(pool: string, backends: Backend[]): Promise<number[]> {
    await flushBackends(backends);
    await storeThrough(proxy.pools[pool]!, keys);
    const holders = await memcachedHolders(backends, keys);
    return keys.map((k) => {
      const found = holders.get(k.toString("hex")) ?? [];
      return found.length === 1 ? found[0]! : -1;
    });
  }

  testNeeding(free, "port 11211 is taken on 127.0.0.2-5: the case is about servers on that port")("the effective name of host:11211 is the host", async () => {
    const viaPort = await placementVia("port11211", on11211);
    const viaHostNames = await placementVia("named_hosts", elsewhere);
    const viaFullNames = await placementVia("named_with_port", elsewhere);
    expect(viaPort).not.toContain(-1);
    expect(viaPort).toEqual(viaHostNames);
    // The comparison can tell the two rules apart.
    expect(viaFullNames).not.toEqual(viaHostNames);
  });
});
