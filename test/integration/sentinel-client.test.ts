// The sentinel client (src/sentinel) against real redis-sentinel processes watching two shards
// of a master and a replica: the topology at start, a SENTINEL FAILOVER seen as a failover
// announcement and then the move of the master, a sentinel killed and restarted, every
// sentinel killed (the last known topology stays), and a first answer applied only after a
// failover (asked before it, it must not move the master back).

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import type { Address } from "../../src/conf/types.ts";
import { plainSockets } from "../../src/core/sockets.ts";
import { redisCodec } from "../../src/proto/redis/index.ts";
import { SentinelClient, type TopologyChange } from "../../src/sentinel/client.ts";
import { instanceText } from "../../src/sentinel/events.ts";
import { forceFailover, startSentinels, type SentinelDeployment } from "../helpers/sentinel.ts";

setDefaultTimeout(90_000);

const address = (host: string, port: number): Address => ({ spec: `${host}:${port}`, host, port, unix: false, perm: null });

async function eventually(what: string, check: () => boolean, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await Bun.sleep(50);
  }
}

describe("sentinel client against real sentinels", () => {
  let deployment: SentinelDeployment;
  let client: SentinelClient;
  const changes: TopologyChange[] = [];
  const masterOf = (name: string) => {
    const m = client.topology(name)?.master;
    return m ? instanceText(m) : null;
  };
  const replicasOf = (name: string) => client.topology(name)!.replicas.map(instanceText);

  beforeAll(async () => {
    deployment = await startSentinels();
    client = new SentinelClient({
      sentinels: deployment.sentinels.map((s) => address(s.host, s.port)),
      auth: null,
      names: ["shard1", "shard2"],
      label: "test",
      onChange: (change) => changes.push(change),
      framer: redisCodec,
      sockets: plainSockets,
    });
    client.start();
  });

  afterAll(async () => {
    client?.stop();
    await deployment?.stop();
  });

  test("learns every master and its replica at start", async () => {
    await eventually("topology", () => masterOf("shard1") !== null && masterOf("shard2") !== null && client.reachable === 3);
    for (const shard of deployment.shards) {
      expect(masterOf(shard.name)).toBe(shard.master.address);
      await eventually(`${shard.name} replica`, () => replicasOf(shard.name).length === 1);
      expect(replicasOf(shard.name)).toEqual([shard.replica.address]);
    }
    expect(client.topology("shard3")).toBeNull();
    expect(changes.filter((c) => c.kind === "master-moved").map((c) => c.name).sort()).toEqual(["shard1", "shard2"]);
  });

  test("SENTINEL FAILOVER: the failover is announced, then the master moves to the replica", async () => {
    const shard = deployment.shards[0]!;
    const before = changes.length;
    // Sent to the last sentinel: it leads the failover; the client hears it announce it.
    await forceFailover(deployment.sentinels[2]!, shard.name);
    await eventually("master moved", () => masterOf(shard.name) === shard.replica.address);
    const mine = changes.slice(before).filter((c) => c.name === shard.name);
    const kinds = mine.map((c) => c.kind);
    const started = kinds.indexOf("failover-started");
    const moved = kinds.indexOf("master-moved");
    expect(started).toBeGreaterThanOrEqual(0);
    expect(moved).toBeGreaterThan(started);
    expect(mine[moved]).toMatchObject({ from: { port: shard.master.port }, to: { port: shard.replica.port } });
    expect(mine.filter((c) => c.kind === "master-moved")).toHaveLength(1);
    expect(kinds).not.toContain("failover-ended");
    expect(client.topology(shard.name)!.failingOver).toBe(false);
    // The old master becomes a replica of the new one (sentinel converts it after a while) and
    // is read from again only then.
    await deployment.awaitMaster(shard.name, shard.replica.address, 40000);
    await eventually("old master as replica", () => replicasOf(shard.name).includes(shard.master.address), 30000);
    expect(masterOf("shard2")).toBe(deployment.shards[1]!.master.address);
  });

  test("a sentinel killed and restarted: events still arrive, the subscription comes back", async () => {
    const killed = deployment.sentinels[0]!;
    await killed.kill();
    await eventually("two sentinels followed", () => client.reachable === 2);
    const shard = deployment.shards[1]!;
    await forceFailover(deployment.sentinels[1]!, shard.name);
    await eventually("shard2 master moved", () => masterOf(shard.name) === shard.replica.address);
    await killed.restart();
    await eventually("three sentinels followed", () => client.reachable === 3);
    await deployment.awaitMaster(shard.name, shard.replica.address, 40000);
    // The restarted sentinel learns the new configuration; asking it again moves nothing back.
    client.requery("test");
    await Bun.sleep(500);
    expect(masterOf(shard.name)).toBe(shard.replica.address);
  });

  test("every sentinel killed: the last known topology stays, and comes back with them", async () => {
    const known = { shard1: masterOf("shard1"), shard2: masterOf("shard2") };
    const movesBefore = changes.filter((c) => c.kind === "master-moved").length;
    await Promise.all(deployment.sentinels.map((s) => s.kill()));
    await eventually("no sentinel followed", () => client.reachable === 0);
    client.requery("test, no sentinel up");
    await Bun.sleep(1500);
    expect({ shard1: masterOf("shard1"), shard2: masterOf("shard2") }).toEqual(known);
    for (const s of deployment.sentinels) await s.restart();
    await eventually("three sentinels followed again", () => client.reachable === 3);
    client.requery("test, sentinels back");
    await Bun.sleep(500);
    expect({ shard1: masterOf("shard1"), shard2: masterOf("shard2") }).toEqual(known);
    expect(changes.filter((c) => c.kind === "master-moved").length).toBe(movesBefore);
  });
});

describe("sentinel client with sentinel_auth", () => {
  let deployment: SentinelDeployment;

  beforeAll(async () => {
    deployment = await startSentinels({ shards: ["shard1"], sentinelPassword: "s3cret" });
  });

  afterAll(async () => {
    await deployment?.stop();
  });

  const follow = (auth: string | null, names = ["shard1"]) => {
    const changes: TopologyChange[] = [];
    const client = new SentinelClient({
      sentinels: deployment.sentinels.map((s) => address(s.host, s.port)),
      auth,
      names,
      label: "auth test",
      onChange: (change) => changes.push(change),
      framer: redisCodec,
      sockets: plainSockets,
    });
    client.start();
    return { client, changes };
  };

  test("the password opens the subscription and the queries", async () => {
    const { client } = follow("s3cret");
    try {
      await eventually("topology", () => client.topology("shard1")?.master != null && client.reachable === 3);
      expect(instanceText(client.topology("shard1")!.master!)).toBe(deployment.shards[0]!.master.address);
    } finally {
      client.stop();
    }
  });

  test("a wrong password or none: nothing is learned, nothing is made up", async () => {
    for (const auth of ["wrong", null]) {
      const { client, changes } = follow(auth);
      try {
        await Bun.sleep(1500);
        expect([auth, client.reachable, client.topology("shard1")!.master, changes]).toEqual([auth, 0, null, []]);
      } finally {
        client.stop();
      }
    }
  });

  test("a master name no sentinel monitors stays unknown; the others are followed", async () => {
    const { client } = follow("s3cret", ["shard1", "nosuch"]);
    try {
      await eventually("topology", () => client.topology("shard1")?.master != null);
      expect(client.topology("nosuch")!.master).toBeNull();
    } finally {
      client.stop();
    }
  });
});

describe("sentinel client whose first answer is applied after a failover", () => {
  let deployment: SentinelDeployment;
  // The first query waits for every sentinel's answer (or this long): with one sentinel frozen,
  // the answers the others gave before the failover are applied only after it.
  const QUERY_WAIT_MS = 12000;

  beforeAll(async () => {
    deployment = await startSentinels({ shards: ["shard1"] });
  });

  afterAll(async () => {
    deployment?.sentinels[2]?.process.signal("SIGCONT");
    await deployment?.stop();
  });

  test("answers asked before the +switch-master never move the master back", async () => {
    const shard = deployment.shards[0]!;
    const frozen = deployment.sentinels[2]!;
    await frozen.process.freeze();
    const changes: TopologyChange[] = [];
    const client = new SentinelClient({
      sentinels: deployment.sentinels.map((s) => address(s.host, s.port)),
      auth: null,
      names: ["shard1"],
      label: "late answer test",
      onChange: (change) => changes.push(change),
      framer: redisCodec,
      sockets: plainSockets,
      timeoutMs: QUERY_WAIT_MS,
    });
    const started = Date.now();
    client.start();
    try {
      await eventually("two sentinels followed", () => client.reachable === 2);
      await forceFailover(deployment.sentinels[0]!, shard.name);
      await eventually("the +switch-master", () => changes.some((c) => c.kind === "master-moved"), QUERY_WAIT_MS);
      // The first move is the event's, from the old master: no answer had been applied yet (an
      // answer's move would come first, from no known master).
      expect(changes.find((c) => c.kind === "master-moved")).toMatchObject({ from: { port: shard.master.port }, to: { port: shard.replica.port } });
      // The first query settles once the frozen sentinel's wait is over, with the other two's
      // answers, given before the failover: the old master at the old epoch.
      await Bun.sleep(Math.max(0, started + QUERY_WAIT_MS - Date.now()) + 1000);
      expect(instanceText(client.topology(shard.name)!.master!)).toBe(shard.replica.address);
      expect(changes.filter((c) => c.kind === "master-moved")).toHaveLength(1);
    } finally {
      client.stop();
      frozen.process.signal("SIGCONT");
    }
  });
});
