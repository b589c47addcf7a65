// Loading a real cluster's slot map (src/redis-cluster/topology-loader.ts): from any node, past
// seeds that are down, with an error naming every node when none answers, and a map that
// follows a reshard; ClusterTopology (topology.ts) keeping it current.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { ClusterTopology } from "../../src/redis-cluster/topology.ts";
import { loadFrom, loadFromAny } from "../../src/redis-cluster/topology-loader.ts";
import { SLOT_COUNT } from "../../src/route/key-slot.ts";
import { nodeAddress, type SlotMap } from "../../src/redis-cluster/slot-map.ts";
import { freePort } from "../helpers/ports.ts";
import { startRedisCluster, type NodeLine, type RedisCluster } from "../helpers/redis-cluster.ts";

setDefaultTimeout(120_000);

const OPTS = { auth: null, timeoutMs: 2000 };

/** Slot -> master address, from CLUSTER NODES (the test helper's parser). */
function owners(lines: readonly NodeLine[]): string[] {
  const owner = new Array<string>(SLOT_COUNT).fill("");
  for (const l of lines) for (const [a, b] of l.slots) for (let s = a; s <= b; s++) owner[s] = l.address;
  return owner;
}
const mastersOf = (map: SlotMap): string[] =>
  Array.from({ length: SLOT_COUNT }, (_, s) => (map.master(s) === null ? "" : nodeAddress(map.master(s)!)));

describe("slot map from a real cluster", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster();
  });
  afterAll(() => cluster.stop());

  test("every node, master or replica, gives the map CLUSTER NODES shows, with the epoch", async () => {
    const lines = await cluster.nodeLines(cluster.nodes[0]!);
    const expected = owners(lines);
    for (const node of cluster.nodes) {
      const map = await loadFrom(node, OPTS);
      expect(mastersOf(map)).toEqual(expected);
      expect(map.uncovered()).toBe(0);
      expect(map.epoch).toBeGreaterThanOrEqual(Math.max(...lines.map((l) => l.configEpoch)));
      // A replica is listed once it reports a replication offset (redis: health "online").
      for (const shard of map.shards) {
        const master = lines.find((l) => l.address === nodeAddress(shard.master!))!;
        for (const r of shard.replicas) expect(lines.find((l) => l.address === nodeAddress(r))!.masterId).toBe(master.id);
      }
    }
  });

  test("seeds that refuse connections are skipped; none answering is an error naming each", async () => {
    const dead = { host: "127.0.0.1", port: freePort() };
    const { map, from } = await loadFromAny([dead, cluster.nodes[2]!], OPTS);
    expect(from.port).toBe(cluster.nodes[2]!.port);
    expect(map.uncovered()).toBe(0);
    const dead2 = { host: "127.0.0.1", port: freePort() };
    const failure = await loadFromAny([dead, dead2], OPTS).catch((e: Error) => e.message);
    expect(failure).toContain(`no cluster node gave its slot map (127.0.0.1:${dead.port}: `);
    expect(failure).toContain(`127.0.0.1:${dead2.port}: `);
  });

  test("a node that is not in cluster mode is an error, not an empty map", async () => {
    const { startRedis } = await import("../helpers/backends.ts");
    const plain = await startRedis();
    try {
      const failure = await loadFrom(plain, OPTS).catch((e: Error) => e.message);
      expect(failure).toMatch(/cluster support disabled/);
    } finally {
      await plain.stop();
    }
  });

  test("after a reshard the map follows", async () => {
    const lines = await cluster.nodeLines(cluster.nodes[0]!);
    const masters = lines.filter((l) => l.masterId === "-").sort((a, b) => a.slots[0]![0] - b.slots[0]![0]);
    await cluster.cli([
      "reshard", cluster.nodes[0]!.address, "--cluster-from", masters[0]!.id, "--cluster-to", masters[1]!.id,
      "--cluster-slots", "10", "--cluster-yes",
    ]);
    await cluster.waitHealthy();
    const map = await loadFrom(cluster.nodes[1]!, OPTS);
    expect(mastersOf(map)).toEqual(owners(await cluster.nodeLines(cluster.nodes[1]!)));
    expect(nodeAddress(map.master(0)!)).toBe(masters[1]!.address);
  });
});

describe("ClusterTopology keeps the map current", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 0 });
  });
  afterAll(() => cluster.stop());

  /** Resolves with the next map the topology hands over. */
  function nextMap(maps: SlotMap[], after: number): Promise<SlotMap> {
    return (async () => {
      const deadline = Date.now() + 10_000;
      while (maps.length <= after) {
        if (Date.now() > deadline) throw new Error("no new map within 10 s");
        await Bun.sleep(10);
      }
      return maps[after]!;
    })();
  }

  test("starts once a seed answers, reloads on request, coalesces bursts, stops", async () => {
    const seed = cluster.nodes[0]!;
    await seed.process.freeze(); // connections are accepted, nothing is answered
    const maps: SlotMap[] = [];
    const topology = new ClusterTopology({ pool: "t", seeds: [seed], auth: null, timeoutMs: 300, periodicMs: 60_000 }, (m) => maps.push(m));
    try {
      await Bun.sleep(1000);
      expect(topology.map).toBeNull();
      expect(topology.refreshFailures).toBeGreaterThan(0);
      seed.process.signal("SIGCONT");
      const first = await nextMap(maps, 0);
      expect(first.uncovered()).toBe(0);

      const lines = await cluster.nodeLines(cluster.nodes[0]!);
      const masters = lines.filter((l) => l.masterId === "-").sort((a, b) => a.slots[0]![0] - b.slots[0]![0]);
      await cluster.cli(["reshard", cluster.nodes[0]!.address, "--cluster-from", masters[2]!.id, "--cluster-to", masters[0]!.id, "--cluster-slots", "5", "--cluster-yes"]);
      const before = topology.refreshes;
      for (let i = 0; i < 50; i++) topology.refresh();
      const after = await nextMap(maps, maps.length);
      expect(mastersOf(after)).toEqual(owners(await cluster.nodeLines(cluster.nodes[0]!)));
      await Bun.sleep(400);
      // 50 requests for a reload: one load at once, one more for those that came while it ran.
      expect(topology.refreshes - before).toBeLessThanOrEqual(2);
    } finally {
      topology.stop();
    }
    const count = maps.length;
    await Bun.sleep(300);
    topology.refresh();
    await Bun.sleep(300);
    expect(maps.length).toBe(count);
  });
});
