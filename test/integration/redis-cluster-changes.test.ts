// A redis_cluster pool while the cluster changes under load: `redis-cli --cluster reshard` of
// 2,000 slots, a fourth master added and `--cluster rebalance`d (to a quarter share), a coordinated failover
// (CLUSTER FAILOVER) and a master killed. Checker lanes (test/checker/lane.ts with
// cluster-traffic.ts) pipeline through the proxy and predict every reply; afterwards every
// acknowledged write is read back from the node that owns it. Another reshard runs under
// transactions (MULTI/EXEC, and WATCH ones that retry) and blocking pops, each reply known. The
// slot moves and the failovers each run on a cluster of their own.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { ClusterTraffic, verifyOnNodes } from "../checker/cluster-traffic.ts";
import { Lane } from "../checker/lane.ts";
import { Report } from "../checker/report.ts";
import { KeySlots } from "../../src/route/key-slot.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { makeRng } from "../helpers/random.ts";
import { startRedisCluster, untilRouting, type NodeLine, type RedisCluster } from "../helpers/redis-cluster.ts";
import { command, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(300_000);

const slots = new KeySlots();
const slotOf = (key: string): number => slots.slot(Buffer.from(key, "latin1"), 0, key.length);

interface Load {
  readonly report: Report;
  readonly traffic: ClusterTraffic[];
  readonly lanes: Lane[];
}

let seed = 1;

describe.skipIf(TARGET !== "buncracker")("redis_cluster while the cluster changes", () => {
  let cluster: RedisCluster;
  let proxy: RunningProxy;
  let metricsPort = 0;

  /** The pool's redirection counts, from /healthz. */
  async function followed(): Promise<{ moved: number; asked: number; retried: number; resentLost: number }> {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    return (await res.json()).pools[0].cluster;
  }

  /** A fresh cluster (3 masters, a replica each) and the proxy pool in front of it. */
  async function setUp(): Promise<void> {
    metricsPort = freePort();
    cluster = await startRedisCluster({ nodeTimeoutMs: 2000 });
    proxy = await startProxy(
      TARGET,
      poolYaml("big", { listen: `127.0.0.1:${freePort()}`, redis: true, distribution: "redis_cluster", timeout: 8000 }, cluster.seeds.slice(0, 2).map((s) => serverLine(s))),
      { args: ["--metrics-port", String(metricsPort)] },
    );
    await untilRouting(proxy.pools.big!);
  }

  async function tearDown(): Promise<void> {
    await proxy?.stop();
    await cluster?.stop();
  }

  async function startLoad(lanes = 4, window = 8): Promise<Load> {
    const report = new Report();
    const traffic = Array.from({ length: lanes }, (_, i) => new ClusterTraffic(seed * 100 + i, makeRng(seed * 1000 + i)));
    seed++;
    const running = traffic.map((t) => new Lane(proxy.pools.big!, t, window, report));
    await Promise.all(running.map((l) => l.start()));
    return { report, traffic, lanes: running };
  }

  async function stopLoad(load: Load): Promise<void> {
    for (const l of load.lanes) l.stop();
    await Promise.all(load.lanes.map((l) => l.drain(Date.now() + 15_000)));
    for (const l of load.lanes) l.close();
  }

  /** Where a key lives now, by the cluster's own view (CLUSTER NODES of a running master). */
  async function ownerFinder(): Promise<(key: string) => Promise<import("../helpers/backends.ts").Backend>> {
    const view = cluster.nodes.find((n) => n.process.running)!;
    const lines = await cluster.nodeLines(view);
    return async (key) => {
      const slot = slotOf(key);
      const line = lines.find((l) => l.masterId === "-" && l.slots.some(([a, b]) => slot >= a && slot <= b))!;
      return cluster.nodes.find((n) => n.address === line.address)!;
    };
  }

  async function masters(): Promise<NodeLine[]> {
    const lines = await cluster.nodeLines(cluster.nodes.find((n) => n.process.running)!);
    return lines.filter((l) => l.masterId === "-" && !l.flags.includes("fail"));
  }

  /** Everything in the report is fine and every acknowledged write is on its node. */
  async function expectNothingLost(load: Load): Promise<void> {
    const { report } = load;
    expect(report.samples).toEqual([]);
    expect(report.clean).toBe(true);
    expect(report.errors).toEqual({});
    expect(report.ok).toBe(report.requests);
    expect(await verifyOnNodes(load.traffic, await ownerFinder())).toEqual([]);
  }

  // Slots moving and failovers each start from a fresh cluster: neither starts from the other's
  // aftermath (a fourth master without a replica, epochs moved by the slot moves), and a cluster
  // that one of them leaves unhealthy fails that block only.
  describe("slots move", () => {
    beforeAll(setUp);
    afterAll(tearDown);

    test("reshard 2,000 slots under load: nothing lost, misordered or duplicated, no redirection seen", async () => {
      const [from, to] = await masters();
      const before = await followed();
      const load = await startLoad();
      await Bun.sleep(500);
      const output = await cluster.cli(
        ["reshard", cluster.seeds[0]!, "--cluster-from", from!.id, "--cluster-to", to!.id, "--cluster-slots", "2000", "--cluster-yes", "--cluster-pipeline", "50"],
        240_000,
      );
      expect(output).toContain("Moving slot");
      await Bun.sleep(500);
      await stopLoad(load);
      const moved = (await masters()).find((m) => m.id === to!.id)!;
      expect(moved.slots.reduce((n, [a, b]) => n + b - a + 1, 0)).toBeGreaterThanOrEqual(5000 + 2000);
      expect(load.report.requests).toBeGreaterThan(1000);
      await expectNothingLost(load);
      // Clients saw none of it, but the nodes did redirect requests while slots moved.
      const after = await followed();
      expect(after.moved + after.asked + after.retried).toBeGreaterThan(before.moved + before.asked + before.retried);
    });

    test("reshard under transactions and blocking pops: each transaction runs once, WATCH ones fail or run, every element popped once; no redirection seen", async () => {
      const lines = await masters();
      const total = (l: NodeLine): number => l.slots.reduce((n, [a, b]) => n + b - a + 1, 0);
      const from = lines.reduce((a, b) => (total(a) >= total(b) ? a : b));
      const to = lines.find((l) => l.id !== from.id)!;
      const endpoint = proxy.pools.big!;
      const problems: string[] = [];
      let running = true;
      let transactions = 0;
      let watchedRuns = 0;
      let watchedFailures = 0;
      // MULTI INCR INCR EXEC on 40 keys each (spread over the slots), pipelined: the replies are
      // known in advance.
      const plain = async (lane: number): Promise<void> => {
        const client = await RawClient.connect(endpoint);
        const counts = new Array<number>(40).fill(0);
        try {
          for (let i = 0; running; i++) {
            const j = i % 40;
            const key = `{tx${lane}.${j}}n`;
            await client.send(Buffer.concat([command("MULTI"), command("INCR", key), command("INCR", key), command("EXEC")]));
            const got = (await client.readReplies(4, respFrame)).map((r) => r.toString("latin1"));
            const want = ["+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n", `*2\r\n:${counts[j]! + 1}\r\n:${counts[j]! + 2}\r\n`];
            if (got.join("") !== want.join("")) {
              problems.push(`${key}: ${JSON.stringify(got)} for ${JSON.stringify(want)}`);
              return;
            }
            counts[j]! += 2;
            transactions++;
          }
        } finally {
          client.close();
        }
      };
      // WATCH, GET, MULTI, SET value+1, EXEC: runs (an array) or fails (null), never an error.
      const watched = async (lane: number): Promise<void> => {
        const client = await RawClient.connect(endpoint);
        const key = `{txw${lane}}n`;
        let value = 0;
        try {
          while (running) {
            await client.send(Buffer.concat([command("WATCH", key), command("GET", key)]));
            const [watch, read] = (await client.readReplies(2, respFrame)).map((r) => r.toString("latin1"));
            const seen = read === "$-1\r\n" ? 0 : Number(/^\$\d+\r\n(\d+)\r\n$/.exec(read!)?.[1] ?? NaN);
            await client.send(Buffer.concat([command("MULTI"), command("SET", key, String(seen + 1)), command("EXEC")]));
            const [multi, queued, exec] = (await client.readReplies(3, respFrame)).map((r) => r.toString("latin1"));
            if (watch !== "+OK\r\n" || seen !== value || multi !== "+OK\r\n" || queued !== "+QUEUED\r\n" || (exec !== "*1\r\n+OK\r\n" && exec !== "*-1\r\n")) {
              problems.push(`${key} at ${value}: ${JSON.stringify([watch, read, multi, queued, exec])}`);
              return;
            }
            if (exec === "*-1\r\n") watchedFailures++;
            else {
              value++;
              watchedRuns++;
            }
          }
        } finally {
          client.close();
        }
      };
      // A BLPOP waits on its list while another client pushes the next element.
      let popped = 0;
      const popper = async (lane: number): Promise<void> => {
        const client = await RawClient.connect(endpoint);
        const pusher = await RawClient.connect(endpoint);
        const list = `{bq${lane}}l`;
        try {
          for (let i = 0; running; i++) {
            await client.send(command("BLPOP", list, "0"));
            // Mostly blocked by the time the push comes (either order gives the same reply).
            await Bun.sleep(2);
            await pusher.send(command("RPUSH", list, String(i)));
            const pushed = (await pusher.readReplies(1, respFrame))[0]!.toString("latin1");
            const got = (await client.readReplies(1, respFrame))[0]!.toString("latin1");
            const want = `*2\r\n$${list.length}\r\n${list}\r\n$${String(i).length}\r\n${i}\r\n`;
            if (pushed !== ":1\r\n" || got !== want) {
              problems.push(`${list}: ${JSON.stringify([pushed, got])} for ${JSON.stringify(want)}`);
              return;
            }
            popped++;
          }
        } finally {
          client.close();
          pusher.close();
        }
      };
      const before = await followed();
      const lanes = [...[0, 1, 2, 3].map(plain), ...[0, 1].map(watched), ...[0, 1, 2, 3].map(popper)];
      await Bun.sleep(300);
      const output = await cluster.cli(
        ["reshard", cluster.seeds[0]!, "--cluster-from", from.id, "--cluster-to", to.id, "--cluster-slots", "3000", "--cluster-yes", "--cluster-pipeline", "50"],
        240_000,
      );
      expect(output).toContain("Moving slot");
      await Bun.sleep(300);
      running = false;
      await Promise.all(lanes);
      expect(problems).toEqual([]);
      expect(transactions).toBeGreaterThan(100);
      expect(watchedRuns).toBeGreaterThan(10);
      expect(popped).toBeGreaterThan(10);
      const after = await followed();
      expect(after.moved + after.asked).toBeGreaterThan(before.moved + before.asked);
      console.log(`transactions ${transactions}, WATCH ones run ${watchedRuns} failed ${watchedFailures}, popped ${popped}, MOVED ${after.moved - before.moved} ASK ${after.asked - before.asked}`);
    });

    test("a fourth master added and rebalanced under load", async () => {
      const fresh = await cluster.startNode();
      await cluster.cli(["add-node", fresh.address, cluster.seeds[0]!]);
      await cluster.waitHealthy();
      const load = await startLoad();
      await Bun.sleep(300);
      // Weighted to take about 1,260 slots rather than an equal 4,096: the moves are the same
      // kind, a third of the suite's time.
      const freshId = (await cluster.nodeLines(fresh)).find((l) => l.address === fresh.address)!.id;
      await cluster.cli(
        ["rebalance", cluster.seeds[0]!, "--cluster-use-empty-masters", "--cluster-weight", `${freshId}=0.25`, "--cluster-pipeline", "50"],
        240_000,
      );
      await Bun.sleep(500);
      await stopLoad(load);
      const added = (await masters()).find((m) => m.address === fresh.address)!;
      expect(added.slots.length).toBeGreaterThan(0);
      await expectNothingLost(load);
    });
  });

  describe("failovers", () => {
    beforeAll(setUp);
    afterAll(tearDown);

    test("CLUSTER FAILOVER under load: the replica takes over, no request fails or is lost", async () => {
      const lines = await cluster.nodeLines(cluster.nodes[0]!);
      const master = lines.find((l) => l.masterId === "-" && lines.some((r) => r.masterId === l.id))!;
      const replica = cluster.nodes.find((n) => n.address === lines.find((r) => r.masterId === master.id)!.address)!;
      const load = await startLoad();
      await Bun.sleep(500);
      await cluster.call(replica, "CLUSTER", "FAILOVER");
      for (let i = 0; i < 200 && !(await cluster.nodeLines(replica)).find((l) => l.flags.includes("myself"))!.flags.includes("master"); i++) {
        await Bun.sleep(50);
      }
      await cluster.waitHealthy();
      await Bun.sleep(1000);
      await stopLoad(load);
      expect((await masters()).map((m) => m.address)).toContain(replica.address);
      await expectNothingLost(load);
    });

    test("a master killed under load: only writes in flight on it fail, the rest waits for the failover; then full service", async () => {
      const lines = await cluster.nodeLines(cluster.nodes[0]!);
      const master = lines.find((l) => l.masterId === "-" && lines.some((r) => r.masterId === l.id && !r.flags.includes("fail")))!;
      const victim = cluster.nodes.find((n) => n.address === master.address)!;
      const lanes = 4;
      const window = 8;
      const during = await startLoad(lanes, window);
      await Bun.sleep(500);
      await victim.kill();
      await cluster.waitHealthy(30_000); // a replica promoted (cluster-node-timeout 2 s)
      await Bun.sleep(1500); // the proxy's next map (it reloads on connection errors and periodically)
      const after = await startLoad();
      await Bun.sleep(2000);
      await Promise.all([stopLoad(during), stopLoad(after)]);
      // No reply ever goes to the wrong request and no connection is dropped. Requests the dead
      // master may have run (writes sent before it died) fail; reads and requests that never
      // reached it wait for the failover's map (the pool's timeout leaves them time): at most
      // the lanes' windows' worth of errors, where every request to the dead master's slots
      // failed (thousands) while the cluster took seconds to fail over.
      const r = during.report;
      expect([r.misordered, r.foreign, r.duplicated, r.desyncs, r.abandoned, r.disconnects, r.lost]).toEqual([0, 0, 0, 0, 0, 0, 0]);
      expect(r.errorCount).toBeLessThanOrEqual(lanes * window);
      expect(r.ok).toBeGreaterThan(1000);
      expect((await followed()).resentLost).toBeGreaterThan(0);
      // Then everything works again.
      await expectNothingLost(after);
    });
  });
});
