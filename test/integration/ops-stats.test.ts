// The stats port, `-D`, /metrics and /healthz of the real buncracker process, after known traffic
// through real redis and memcached backends, side by side with the reference nutcracker given the
// same config and the same traffic: same document layout, same keys and types, same counts
// (except where buncracker is deliberately different, each listed in its test).

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import { exchange, RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { endpointOf, flushBackends, redisHolders, stopAll } from "../helpers/direct.ts";
import { line, memcacheFrame, storage } from "../helpers/memcache.ts";
import { metricsRequest, poolOf, readStatsText, serverOf, waitFor, type StatsDoc } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { runToEnd } from "../helpers/process.ts";
import { parseExposition, value, type Family } from "../helpers/prometheus.ts";
import { proxyCommand, startProxy, TARGET, type ProxyKind, type RunningProxy } from "../helpers/proxy.ts";
import { command, pipeline, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

/** -i: aggregate every 100 ms, so a test waits for counters a short while. */
const STATS_INTERVAL_MS = 100;

const REDIS_KEYS = Array.from({ length: 12 }, (_, i) => `k:${i}`);
const MC_KEYS = Array.from({ length: 8 }, (_, i) => `mk:${i}`);
const DELETED = ["k:10", "k:11"];
const NEVER_SET = "never-set";

const redisTraffic = [
  ...REDIS_KEYS.map((k) => ["SET", k, `value-of-${k}`]),
  ...REDIS_KEYS.slice(0, 4).map((k) => ["GET", k]),
  ["MGET", ...REDIS_KEYS, NEVER_SET],
  ["DEL", ...DELETED],
  ["PING"], // answered by the proxy itself: no server request
];
const mcTraffic = [
  ...MC_KEYS.map((k) => storage("set", k, `value-of-${k}`)),
  line("get", MC_KEYS[0]!),
  line("get", ...MC_KEYS),
];
const DEAD_REQUESTS = 2;

interface Run {
  readonly text: string;
  readonly doc: StatsDoc;
}

function config(backends: { r1: Backend; r2: Backend; m1: Backend; m2: Backend }, deadPort: number): string {
  const listen = () => `127.0.0.1:${freePort()}`;
  return (
    poolYaml("alpha", { listen: listen(), redis: true, hash: "md5", distribution: "ketama" }, [
      serverLine(backends.r1.address, 1, "r1"),
      serverLine(backends.r2.address, 1, "r2"),
    ]) +
    poolYaml(
      "dead",
      { listen: listen(), redis: true, auto_eject_hosts: true, server_failure_limit: 1, server_retry_timeout: 600_000 },
      [serverLine(`127.0.0.1:${deadPort}`, 1, "gone")],
    ) +
    poolYaml("mc", { listen: listen(), hash: "md5", distribution: "ketama" }, [
      serverLine(backends.m1.address, 1, "m1"),
      serverLine(backends.m2.address, 1, "m2"),
    ])
  );
}

/** The same traffic for either proxy. Leaves one client open on alpha and one on mc (gauges). */
async function drive(proxy: RunningProxy): Promise<RawClient[]> {
  const done = await RawClient.connect(proxy.pools.alpha!);
  await done.send(pipeline(redisTraffic));
  await done.readReplies(redisTraffic.length, respFrame);
  done.close();

  const openAlpha = await RawClient.connect(proxy.pools.alpha!);
  await openAlpha.send(command("GET", REDIS_KEYS[0]!));
  await openAlpha.readReply(respFrame);

  const dead = await RawClient.connect(proxy.pools.dead!);
  for (let i = 0; i < DEAD_REQUESTS; i++) {
    await dead.send(command("GET", `x${i}`));
    expect((await dead.readReply(respFrame)).toString()).toBe("-ERR Connection refused\r\n");
  }
  dead.close();

  const openMc = await RawClient.connect(proxy.pools.mc!);
  // One request at a time: pipelined gets to one server would share a line (coalesce_gets,
  // ours), which changes request_bytes; the counts compared here are per request either way.
  for (const request of mcTraffic) {
    await openMc.send(request);
    await openMc.readReply(memcacheFrame);
  }
  return [openAlpha, openMc];
}

/** Without the clock fields, whose values differ between any two reads. */
const stable = (doc: StatsDoc): string => JSON.stringify({ ...doc, uptime: 0, timestamp: 0 });

/** The stats once two reads two intervals apart agree (every reply is in, so counts are final). */
async function settledStats(port: number): Promise<Run> {
  let previous = "";
  return waitFor("the stats to settle", async () => {
    await Bun.sleep(2 * STATS_INTERVAL_MS);
    const text = await readStatsText(port);
    const doc = JSON.parse(text) as StatsDoc;
    const now = stable(doc);
    const settled = now === previous;
    previous = now;
    return settled ? { text, doc } : undefined;
  });
}

/** Which memcached backends hold `key`. */
async function memcachedHolders(backends: readonly Backend[], key: string): Promise<number[]> {
  const found = await Promise.all(
    backends.map(async (b) => (await exchange(endpointOf(b), line("get", key), 1, memcacheFrame))[0]!.toString() !== "END\r\n"),
  );
  return found.flatMap((present, i) => (present ? [i] : []));
}

/** Fragments a multi-key request makes: one per server when its keys span more than one. */
const fragmentsFor = (serverOfKey: readonly number[]): number => {
  const servers = new Set(serverOfKey).size;
  return servers > 1 ? servers : 0;
};

describe.skipIf(TARGET !== "buncracker")("stats, side by side with nutcracker", () => {
  let r1: Backend, r2: Backend, m1: Backend, m2: Backend;
  let nutcracker: Run;
  let buncracker: Run;
  let proxy: RunningProxy;
  let metricsPort: number;
  let openClients: RawClient[] = [];
  /** Server index (0 = r1/m1, 1 = r2/m2) of each key. */
  const redisPlacement = new Map<string, number>();
  let mcPlacement: number[] = [];
  const placed = (keys: readonly string[]) => keys.map((k) => redisPlacement.get(k)!);

  async function runOn(kind: ProxyKind, yamlText: string, args: string[] = []): Promise<RunningProxy> {
    await flushBackends([r1, r2]);
    await flushBackends([m1, m2]);
    return startProxy(kind, yamlText, { args: ["-i", String(STATS_INTERVAL_MS), ...args] });
  }

  beforeAll(async () => {
    [r1, r2, m1, m2] = await Promise.all([startRedis(), startRedis(), startMemcached(), startMemcached()]);
    const yamlText = config({ r1, r2, m1, m2 }, freePort());

    const reference = await runOn("nutcracker", yamlText);
    const referenceClients = await drive(reference);
    nutcracker = await settledStats(reference.statsPort);
    for (const c of referenceClients) c.close();
    await reference.stop();

    metricsPort = freePort();
    proxy = await runOn("buncracker", yamlText, ["--metrics-port", String(metricsPort)]);
    openClients = await drive(proxy);
    buncracker = await settledStats(proxy.statsPort);

    // Where each key went, read back from the backends (keys no longer stored are placed again
    // through the proxy, after the stats above were taken).
    for (const key of [...REDIS_KEYS, NEVER_SET]) {
      const [holder] = await redisHolders([r1, r2], key);
      redisPlacement.set(key, holder ?? (await placeAgain(key)));
    }
    mcPlacement = await Promise.all(MC_KEYS.map(async (k) => (await memcachedHolders([m1, m2], k))[0]!));
  });

  afterAll(async () => {
    for (const c of openClients) c.close();
    await proxy?.stop();
    await stopAll([r1, r2, m1, m2].filter(Boolean));
  });

  test("the traffic reaches both servers of each sharded pool (so it exercises the splits)", () => {
    expect(new Set(placed(REDIS_KEYS))).toEqual(new Set([0, 1]));
    expect(new Set(mcPlacement)).toEqual(new Set([0, 1]));
  });

  test("same document byte for byte once the numbers are blanked: keys, order, nesting, spacing", () => {
    const blank = (text: string) => text.replace(/":-?\d+/g, '":0');
    expect(blank(buncracker.text)).toBe(blank(nutcracker.text));
    expect(buncracker.text.endsWith("}\n")).toBe(true);
  });

  test("same keys with the same types at every level; same service, source and version", () => {
    const shape = (doc: StatsDoc): unknown =>
      Object.entries(doc).map(([k, v]) => [k, typeof v === "object" ? shape(v) : typeof v]);
    expect(shape(buncracker.doc)).toEqual(shape(nutcracker.doc));
    for (const key of ["service", "source", "version"]) expect(buncracker.doc[key]).toBe(nutcracker.doc[key]!);
  });

  test("same server counters: requests, responses, their bytes, connections, queues, errors", () => {
    for (const [pool, servers] of [["alpha", ["r1", "r2"]], ["dead", ["gone"]], ["mc", ["m1", "m2"]]] as const) {
      for (const server of servers) {
        const ours = { ...serverOf(buncracker.doc, pool, server) };
        const theirs = { ...serverOf(nutcracker.doc, pool, server) };
        // A timestamp: set (non-zero) on both or on neither.
        expect(ours.server_ejected_at !== 0).toBe(theirs.server_ejected_at !== 0);
        delete ours.server_ejected_at;
        delete theirs.server_ejected_at;
        if (pool === "mc") {
          // Deliberate: nutcracker re-encodes every multi-key get as `get k1 k2 \r\n` (a trailing
          // space), split or not; buncracker forwards `get k1 k2\r\n`: one byte less per
          // multi-key get that reaches the server.
          const index = server === "m1" ? 0 : 1;
          const multiGets = mcPlacement.includes(index) ? 1 : 0;
          expect((theirs.request_bytes as number) - (ours.request_bytes as number)).toBe(multiGets);
          delete ours.request_bytes;
          delete theirs.request_bytes;
        }
        expect({ pool, server, ...ours }).toEqual({ pool, server, ...theirs });
      }
    }
  });

  test("requests and responses follow from the traffic (every request answered, PING local)", () => {
    const sum = (pool: string, key: string, servers: string[]) =>
      servers.reduce((n, s) => n + (serverOf(buncracker.doc, pool, s)[key] as number), 0);
    const parts = (servers: readonly number[]) => new Set(servers).size;
    // SETs, GETs, the MGET and the DEL (one request per server they reach), the open client's GET.
    const alphaRequests =
      REDIS_KEYS.length + 4 + parts(placed([...REDIS_KEYS, NEVER_SET])) + parts(placed(DELETED)) + 1;
    expect(sum("alpha", "requests", ["r1", "r2"])).toBe(alphaRequests);
    expect(sum("alpha", "responses", ["r1", "r2"])).toBe(alphaRequests);
    const mcRequests = MC_KEYS.length + 1 + parts(mcPlacement);
    expect(sum("mc", "requests", ["m1", "m2"])).toBe(mcRequests);
    expect(sum("mc", "responses", ["m1", "m2"])).toBe(mcRequests);
  });

  test("same pool counters: client_eof, client_err, client_connections, forward_error, server_ejects", () => {
    for (const pool of ["alpha", "dead", "mc"]) {
      const { fragments: ours, ...oursRest } = Object.fromEntries(
        Object.entries(poolOf(buncracker.doc, pool)).filter(([, v]) => typeof v === "number"),
      );
      const { fragments: theirs, ...theirsRest } = Object.fromEntries(
        Object.entries(poolOf(nutcracker.doc, pool)).filter(([, v]) => typeof v === "number"),
      );
      expect({ pool, ...oursRest }).toEqual({ pool, ...theirsRest });
      // Deliberate: nutcracker 0.5.0 lists `fragments` but never counts it.
      expect(theirs).toBe(0);
      expect(ours).toBeNumber();
    }
    // One open client each on alpha and mc; the others closed (eof).
    expect(poolOf(buncracker.doc, "alpha").client_connections).toBe(1);
    expect(poolOf(buncracker.doc, "mc").client_connections).toBe(1);
    // Each request to the dead server is refused, and the first refusal ejects it.
    expect(poolOf(buncracker.doc, "dead").forward_error).toBe(DEAD_REQUESTS);
    expect(poolOf(buncracker.doc, "dead").server_ejects).toBe(1);
  });

  test("fragments: one per server a multi-key request is split over (nutcracker never counts them)", () => {
    const expected = fragmentsFor(placed([...REDIS_KEYS, NEVER_SET])) + fragmentsFor(placed(DELETED));
    expect(poolOf(buncracker.doc, "alpha").fragments).toBe(expected);
    // The multi-get splits; the single-key get does not.
    expect(poolOf(buncracker.doc, "mc").fragments).toBe(fragmentsFor(mcPlacement));
  });

  test("connection totals: the same open connections now (listeners, clients, servers)", () => {
    expect(buncracker.doc.curr_connections).toBe(nutcracker.doc.curr_connections!);
  });

  // Known gap: nutcracker counts a server connection when it tries to connect (conn_get), so the
  // refused connect to the dead server adds one to total_connections; buncracker counts server
  // connections once they are established (src/core/server-conn.ts onOpen). Flip to `test` once fixed.
  test("connection totals: total_connections counts refused connects as nutcracker does", () => {
    expect(buncracker.doc.total_connections).toBe(nutcracker.doc.total_connections!);
  });

  /** Where a key not (or no longer) stored would land: SET it through the proxy, look, DEL it. */
  async function placeAgain(key: string): Promise<number> {
    const client = await RawClient.connect(proxy.pools.alpha!);
    await client.send(command("SET", key, "probe"));
    await client.readReply(respFrame);
    const [holder] = await redisHolders([r1, r2], key);
    await client.send(command("DEL", key));
    await client.readReply(respFrame);
    client.close();
    return holder!;
  }

  describe("/metrics and /healthz of the same process", () => {
    let families: Map<string, Family>;
    let liveStats: StatsDoc;

    beforeAll(async () => {
      const res = await metricsRequest(metricsPort, "/metrics");
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/plain; version=0.0.4");
      families = parseExposition(await res.text());
      liveStats = await settledStats(proxy.statsPort).then((r) => r.doc);
    });

    test("parses as Prometheus text; every pool and server of the stats document is labelled", () => {
      const pools = families.get("buncracker_pool_client_eof_total")!.samples.map((s) => s.labels.pool).sort();
      expect(pools).toEqual(["alpha", "dead", "mc"]);
      const servers = families.get("buncracker_server_requests_total")!.samples.map((s) => `${s.labels.pool}/${s.labels.server}`);
      expect(servers.sort()).toEqual(["alpha/r1", "alpha/r2", "dead/gone", "mc/m1", "mc/m2"]);
    });

    test("counters equal the stats port's (the same table, read live)", () => {
      for (const [pool, server] of [["alpha", "r1"], ["alpha", "r2"], ["mc", "m1"], ["mc", "m2"], ["dead", "gone"]] as const) {
        const s = serverOf(liveStats, pool, server);
        const labels = { pool, server };
        expect(value(families, "buncracker_server_requests_total", labels)).toBe(s.requests as number);
        expect(value(families, "buncracker_server_request_bytes_total", labels)).toBe(s.request_bytes as number);
        expect(value(families, "buncracker_server_responses_total", labels)).toBe(s.responses as number);
        expect(value(families, "buncracker_server_response_bytes_total", labels)).toBe(s.response_bytes as number);
        expect(value(families, "buncracker_server_connections", labels)).toBe(s.server_connections as number);
        expect(value(families, "buncracker_server_err_total", labels)).toBe(s.server_err as number);
      }
      for (const pool of ["alpha", "dead", "mc"]) {
        const p = poolOf(liveStats, pool);
        for (const name of ["client_eof", "forward_error", "server_ejects", "fragments"]) {
          expect(value(families, `buncracker_pool_${name}_total`, { pool })).toBe(p[name] as number);
        }
        expect(value(families, "buncracker_pool_client_connections", { pool })).toBe(p.client_connections as number);
      }
      // server_ejected_at: µs in the JSON, seconds here.
      const ejectedAt = serverOf(liveStats, "dead", "gone").server_ejected_at as number;
      expect(value(families, "buncracker_server_ejected_at_seconds", { pool: "dead", server: "gone" })).toBe(ejectedAt / 1e6);
    });

    test("latency histograms counted every answered request, process metrics are present", () => {
      const poolCount = value(families, "buncracker_pool_request_duration_seconds", { pool: "mc" }, "buncracker_pool_request_duration_seconds_count");
      expect(poolCount).toBe(mcTraffic.length);
      for (const server of ["m1", "m2"]) {
        const count = value(families, "buncracker_request_duration_seconds", { pool: "mc", server }, "buncracker_request_duration_seconds_count");
        expect(count).toBe(serverOf(liveStats, "mc", server).responses as number);
      }
      expect(value(families, "process_resident_memory_bytes", {})).toBeGreaterThan(0);
      expect(families.get("buncracker_event_loop_lag_seconds")?.type).toBe("gauge");
      expect(value(families, "buncracker_connections", {})).toBe(liveStats.curr_connections as number);
    });

    test("/healthz: 200, every pool listening, the dead server listed as ejected", async () => {
      const res = await metricsRequest(metricsPort, "/healthz");
      expect(res.status).toBe(200);
      const body = (await res.json()) as { status: string; pools: { name: string; listening: boolean; live: string[]; ejected: string[] }[] };
      expect(body.status).toBe("ok");
      const byName = Object.fromEntries(body.pools.map((p) => [p.name, p]));
      expect(byName.alpha).toMatchObject({ listening: true, live: ["r1", "r2"], ejected: [] });
      expect(byName.dead).toMatchObject({ listening: true, live: [], ejected: ["gone"] });
      expect(byName.mc).toMatchObject({ listening: true, live: ["m1", "m2"], ejected: [] });
    });
  });
});

describe.skipIf(TARGET !== "buncracker")("-D", () => {
  test("the same description as nutcracker -D, apart from the banner", async () => {
    const ours = await runToEnd([...proxyCommand("buncracker"), "-D"]);
    const theirs = await runToEnd([...proxyCommand("nutcracker"), "-D"]);
    expect(ours.code).toBe(theirs.code);
    const body = (out: string) => out.split("\n").slice(2).join("\n");
    expect(theirs.stdout + theirs.stderr).toContain("pool stats:");
    expect(body(ours.stdout + ours.stderr)).toBe(body(theirs.stdout + theirs.stderr));
    expect(ours.stdout).toBe(theirs.stdout);
  });
});
