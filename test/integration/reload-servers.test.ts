// Hot reload of one redis pool's servers and settings, with clients pipelining through every
// reload: add a server, change a weight, remove a server with requests in flight on it, change
// hash_tag, an invalid file, redis_auth, redis_db, server_connections, hash + distribution + a
// server name, and preconnect for a server that joins. Each reload must leave every
// client reply correct, route keys as a fresh build of the new config does (Router, verified
// against the vectors), and keep the connections and counters of the servers that stay.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine, type Setting } from "../helpers/config.ts";
import { redisCall, stopAll } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { spread } from "../helpers/random.ts";
import { TARGET } from "../helpers/proxy.ts";
import {
  clientIds,
  eventually,
  holders,
  misplaced,
  pauseWrites,
  pipelineGets,
  placer,
  RedisTraffic,
  ReloadableProxy,
  serverStats,
  unpause,
  type StatsDoc,
  type TrafficOptions,
} from "../helpers/reload.ts";
import { bulk, command, error, OK, pipeline, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

let backends: Backend[] = [];
let A: Backend, B: Backend, C: Backend, D: Backend;
let proxy: ReloadableProxy;
const listen = `127.0.0.1:${freePort()}`;

/** Pool alpha on these [backend, weight] servers with these settings. */
const alpha = (servers: [Backend, number][], settings: Record<string, Setting> = {}): string =>
  poolYaml(
    "alpha",
    { listen, hash: "fnv1a_64", distribution: "ketama", redis: true, ...settings },
    servers.map(([b, w]) => serverLine(b.address, w)),
  );

/** Applies `next` by SIGUSR1 while RedisTraffic runs, and checks every reply and where the keys
 *  written before and after the reload landed. Returns the reload's log line and the traffic. */
async function reloadUnderTraffic(
  next: string,
  prefix: string,
  opts: TrafficOptions = {},
): Promise<{ line: string; traffic: RedisTraffic }> {
  const previous = proxy.running;
  const oldPlace = placer(previous, "alpha");
  const newPlace = placer(next, "alpha");
  const traffic = new RedisTraffic(proxy.endpoint("alpha"), prefix, opts);
  await traffic.warmUp();
  traffic.signalled((k) => oldPlace(k) !== newPlace(k));
  const [line] = await proxy.signalReload(next);
  traffic.reloaded();
  await traffic.finish();
  expect(traffic.problems).toEqual([]);
  expect(line).toStartWith("reloaded");
  const found = await holders(backends, prefix);
  expect(misplaced(traffic.before, oldPlace, found)).toEqual([]);
  expect(misplaced(traffic.after, newPlace, found)).toEqual([]);
  return { line: line!, traffic };
}

const generation = async (): Promise<number> => (await proxy.healthz()).body.config!.generation;

beforeAll(async () => {
  backends = await Promise.all([startRedis(), startRedis(), startRedis(), startRedis()]);
  [A, B, C, D] = backends as [Backend, Backend, Backend, Backend];
  proxy = await ReloadableProxy.start(alpha([[A, 1], [B, 1], [C, 1]]));
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll(backends);
});

describe.skipIf(TARGET !== "buncracker")("hot reload of a pool's servers", () => {
  test("add a server: keys re-route as ketama on the new servers predicts; connections and counters of the others carry over", async () => {
    // Enough requests before the reload that counters reset by it could not climb back.
    await pipelineGets(proxy.endpoint("alpha"), "pre.", 6000);
    const kept = [A, B, C];
    const before = await proxy.statsWhere("A, B and C preloaded", (doc) =>
      kept.every((b) => (serverStats(doc, "alpha", b.address)?.requests ?? 0) >= 1000),
    );
    const connectionsBefore = await Promise.all(kept.map(clientIds));
    expect(connectionsBefore.map((ids) => ids.length)).toEqual([1, 1, 1]);
    const health = await proxy.healthz();
    const gen = health.body.config!.generation;
    const loadedAt = Date.parse(health.body.config!.loaded_at);

    const next = alpha([[A, 1], [B, 1], [C, 1], [D, 1]]);
    const { line } = await reloadUnderTraffic(next, "add.");
    expect(line).toContain(`(generation ${gen + 1})`);
    expect(line).toContain(`+server ${D.address}:1`);

    // Some keys written after the reload went to the new server.
    const onD = [...(await holders([D], "add."))].length;
    expect(onD).toBeGreaterThan(0);
    // The servers that stayed kept their connections...
    const connectionsAfter = await Promise.all(kept.map(clientIds));
    connectionsBefore.forEach((ids, i) => expect(connectionsAfter[i]).toContain(ids[0]!));
    // ...and their counters.
    // D counted (aggregated) requests: the document is from after the reload.
    const after = await proxy.statsWhere("requests on D", (doc) => (serverStats(doc, "alpha", D.address)?.requests ?? 0) > 0);
    for (const b of kept) {
      expect(serverStats(after, "alpha", b.address)!.requests).toBeGreaterThanOrEqual(serverStats(before, "alpha", b.address)!.requests!);
    }
    // The reload is visible: generation and time in /healthz, generation in /metrics.
    const healthAfter = await proxy.healthz();
    expect(healthAfter.status).toBe(200);
    expect(healthAfter.body.config!.generation).toBe(gen + 1);
    expect(Date.parse(healthAfter.body.config!.loaded_at)).toBeGreaterThanOrEqual(loadedAt);
    expect(healthAfter.body.pools[0]!.live).toEqual(expect.arrayContaining([A, B, C, D].map((b) => b.address)));
    expect(await proxy.metric("buncracker_config_generation")).toBe(gen + 1);
  });

  test("change a weight: keys re-route as ketama on the new weights predicts", async () => {
    await proxy.signalReload(alpha([[A, 1], [B, 1], [C, 1], [D, 1]]));
    const next = alpha([[A, 1], [B, 3], [C, 1], [D, 1]]);
    const { line } = await reloadUnderTraffic(next, "weight.");
    expect(line).toContain(`~server ${B.address}:3`);
  });

  test("remove a server: requests in flight on it finish there, then its connection closes", async () => {
    const running = alpha([[A, 1], [B, 1], [C, 1], [D, 1]]);
    await proxy.signalReload(running);
    const place = placer(running, "alpha");
    const onC = Array.from({ length: 200 }, (_, i) => `held.${spread(i)}`).filter((k) => place(k) === C.address).slice(0, 5);
    expect(onC.length).toBe(5);

    // Writes on C are held until unpause: these stay in flight on C's connection.
    await pauseWrites(C);
    const held = await RawClient.connect(proxy.endpoint("alpha"));
    await held.send(pipeline(onC.map((k) => ["SET", k, `v-${k}`])));
    const queued = (doc: StatsDoc) => serverStats(doc, "alpha", C.address)?.out_queue ?? 0;
    await proxy.statsWhere("5 requests in flight on C", (doc) => queued(doc) >= 5);
    // Traffic whose batches get stuck on C too, and are in flight across the reload.
    const traffic = new RedisTraffic(proxy.endpoint("alpha"), "remove.");
    await proxy.statsWhere("traffic in flight on C", (doc) => queued(doc) > 5);

    const next = alpha([[A, 1], [B, 1], [D, 1]]);
    const newPlace = placer(next, "alpha");
    traffic.signalled((k) => place(k) !== newPlace(k));
    const [line] = await proxy.signalReload(next);
    traffic.reloaded();
    expect(line).toContain(`-server ${C.address}:1`);
    await unpause(C);

    expect((await held.readReplies(onC.length, respFrame)).map(String)).toEqual(onC.map(() => String(OK)));
    held.close();
    await traffic.finish();
    expect(traffic.problems).toEqual([]);
    // The held writes were executed by C, the server they were sent to.
    for (const k of onC) expect(await redisCall(C, "GET", k)).toEqual(Buffer.from(`v-${k}`));
    // C's connection from the proxy closes once it has answered everything.
    await proxy.statsWhere("C gone from the stats", (doc) => serverStats(doc, "alpha", C.address) === undefined);
    await eventually("the proxy's connection to C to close", async () => ((await clientIds(C)).length === 0 ? true : undefined));
    const found = await holders(backends, "remove.");
    expect(misplaced(traffic.after, newPlace, found)).toEqual([]);
    expect(traffic.after.some((k) => found.get(k)?.includes(C.address))).toBe(false);
  });

  test("change hash_tag: keys re-route by their tag", async () => {
    await proxy.signalReload(alpha([[A, 1], [B, 1], [D, 1]]));
    const tagged = (c: number, b: number, i: number) => `tag.{g${(c * 7 + b * 3 + i) % 11}}.${c}.${b}.${i}`;
    const next = alpha([[A, 1], [B, 1], [D, 1]], { hash_tag: "{}" });
    const { line, traffic } = await reloadUnderTraffic(next, "tag.", { key: tagged });
    expect(line).toContain("hash_tag");
    // Independently of any router: keys written after the reload sit with the others of their tag.
    const found = await holders(backends, "tag.");
    const where = new Map<string, Set<string>>();
    for (const key of traffic.after) {
      const tag = /\{(g\d+)\}/.exec(key)![1]!;
      for (const at of found.get(key) ?? []) where.set(tag, (where.get(tag) ?? new Set<string>()).add(at));
    }
    expect(where.size).toBe(11);
    expect([...where.values()].every((servers) => servers.size === 1)).toBe(true);
  });

  test("an invalid file changes nothing: the reason is logged, POST /reload answers 500, traffic and routing go on", async () => {
    const running = alpha([[A, 1], [B, 1], [D, 1]]);
    await proxy.signalReload(running);
    const gen = await generation();
    const place = placer(running, "alpha");
    const unknownKey = running.replace("  redis: true\n", '  redis: true\n  hash_tagz: "{}"\n');
    const zeroWeight = alpha([[A, 1], [B, 0], [D, 1]]);
    const brokenYaml = `${running}  servers: [\n`;

    const traffic = new RedisTraffic(proxy.endpoint("alpha"), "invalid.");
    await traffic.warmUp();
    traffic.signalled();
    const [line] = await proxy.signalReload(unknownKey);
    traffic.reloaded();
    await traffic.finish();
    expect(traffic.problems).toEqual([]);
    expect(line).toStartWith("reload rejected, the running configuration is unchanged: ");
    expect(line).toContain("hash_tagz");
    const found = await holders(backends, "invalid.");
    expect(misplaced(traffic.after, place, found)).toEqual([]);

    for (const invalid of [unknownKey, zeroWeight, brokenYaml]) {
      const res = await proxy.postReload(invalid);
      expect(res.status).toBe(500);
      const reason = String(res.body.error);
      expect(reason).toContain(proxy.proxy.configPath);
      expect(res.logged).toEqual([`reload rejected, the running configuration is unchanged: ${reason}`]);
    }
    expect(await generation()).toBe(gen);
    expect(await proxy.metric("buncracker_config_generation")).toBe(gen);

    // The same file made valid again is applied (it is what runs already: no changes).
    const res = await proxy.postReload(running);
    expect(res.status).toBe(200);
    expect(await generation()).toBe(gen + 1);
    expect(res.logged).toEqual([expect.stringMatching(new RegExp(`\\(generation ${gen + 1}\\): no changes$`))]);
  });

  test("add and drop redis_auth: clients connected before keep working, new ones must AUTH", async () => {
    const servers: [Backend, number][] = [[A, 1], [B, 1], [D, 1]];
    await proxy.signalReload(alpha(servers));
    const { line } = await reloadUnderTraffic(alpha(servers, { redis_auth: "pw" }), "auth.");
    expect(line).toContain("redis_auth");
    const late = await RawClient.connect(proxy.endpoint("alpha"));
    await late.send(pipeline([["GET", "auth.x"], ["AUTH", "pw"], ["SET", "auth.x", "1"], ["GET", "auth.x"]]));
    expect((await late.readReplies(4, respFrame)).map(String)).toEqual(
      [error("NOAUTH Authentication required"), OK, OK, bulk("1")].map(String),
    );
    const unauthed = await RawClient.connect(proxy.endpoint("alpha"));
    await unauthed.send(command("GET", "auth.x"));
    expect(String(await unauthed.readReply(respFrame))).toBe(String(error("NOAUTH Authentication required")));

    await reloadUnderTraffic(alpha(servers), "noauth.", { password: "pw" });
    // Without redis_auth nobody needs to authenticate, including a client that never did.
    await unauthed.send(command("GET", "auth.x"));
    expect(String(await unauthed.readReply(respFrame))).toBe(String(bulk("1")));
    unauthed.close();
    late.close();
  });

  test("change redis_db: requests after the reload use the new database", async () => {
    const servers: [Backend, number][] = [[A, 1], [B, 1], [D, 1]];
    await proxy.signalReload(alpha(servers));
    const next = alpha(servers, { redis_db: 3 });
    const place = placer(next, "alpha");
    const traffic = new RedisTraffic(proxy.endpoint("alpha"), "db.");
    await traffic.warmUp();
    // Every key moves: to the same server's other database.
    traffic.signalled(() => true);
    const [line] = await proxy.signalReload(next);
    traffic.reloaded();
    await traffic.finish();
    expect(traffic.problems).toEqual([]);
    expect(line).toContain("redis_db");
    expect(misplaced(traffic.after, place, await holders(backends, "db.", 3))).toEqual([]);
    const in0 = await holders(backends, "db.", 0);
    expect(traffic.after.filter((k) => in0.has(k))).toEqual([]);
    expect(traffic.before.filter((k) => !in0.has(k))).toEqual([]);
  });

  test("change server_connections: servers that stay and servers that join use the new count", async () => {
    await proxy.signalReload(alpha([[A, 1], [B, 1], [D, 1]]));
    const counts = () => Promise.all([A, B, C, D].map(async (b) => (await clientIds(b)).length));
    // GETs only: with two connections per server a GET may overtake the SET before it.
    const gets = () => pipelineGets(proxy.endpoint("alpha"), "conns.", 200);
    const [line] = await proxy.signalReload(alpha([[A, 1], [B, 1], [C, 1], [D, 1]], { server_connections: 2 }));
    expect(line).toContain("server_connections");
    await gets();
    expect(await counts()).toEqual([2, 2, 2, 2]);
    // Back to one: the extra connections close (they have nothing in flight).
    await proxy.signalReload(alpha([[A, 1], [B, 1], [C, 1], [D, 1]]));
    await gets();
    await eventually("one connection per server", async () => ((await counts()).every((n) => n === 1) ? true : undefined));
  });

  test("change hash, distribution and a server's name: keys re-route as a fresh build of the new config does", async () => {
    await proxy.signalReload(alpha([[A, 1], [B, 1], [D, 1]]));
    const next = poolYaml("alpha", { listen, hash: "md5", distribution: "modula", redis: true }, [
      serverLine(A.address, 1),
      serverLine(B.address, 1, "bravo"),
      serverLine(D.address, 1),
    ]);
    const { line } = await reloadUnderTraffic(next, "hash.");
    expect(line.split(/[:,;] /)).toEqual(expect.arrayContaining(["hash", "distribution"]));
    // A new name is a new server (its ring points change): the old one left.
    expect(line).toContain(`-server ${B.address}:1`);
    expect(line).toContain(`+server ${B.address}:1`);
  });

  test("with preconnect, a server that joins is connected at once", async () => {
    await proxy.signalReload(alpha([[A, 1], [B, 1]], { preconnect: true }));
    await eventually("no connection to D", async () => ((await clientIds(D)).length === 0 ? true : undefined));
    await proxy.signalReload(alpha([[A, 1], [B, 1], [D, 1]], { preconnect: true }));
    await eventually("a connection to D", async () => ((await clientIds(D)).length === 1 ? true : undefined));
  });
});
