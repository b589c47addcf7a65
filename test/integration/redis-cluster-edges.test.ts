// A redis_cluster pool at the edges of a real cluster's life (3 masters, a replica each): a
// slot left half-migrated (redis answers a multi-key request there ASK, then TRYAGAIN after
// ASKING, for as long as the migration stays open). The client must never see a redirection.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { KeySlots } from "../../src/route/key-slot.ts";
import type { Backend } from "../helpers/backends.ts";
import { exchange, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { startRedisCluster, untilRouting, type NodeLine, type RedisCluster } from "../helpers/redis-cluster.ts";
import { command, respFrame, type Bytes } from "../helpers/resp.ts";

setDefaultTimeout(120_000);

const slots = new KeySlots();
const slotOf = (key: string): number => slots.slot(Buffer.from(key, "latin1"), 0, key.length);

describe.skipIf(TARGET !== "buncracker")("redis_cluster at the edges", () => {
  let cluster: RedisCluster;
  let proxy: RunningProxy;
  let endpoint: Endpoint;

  const nodeAt = (address: string): Backend => cluster.nodes.find((n) => n.address === address)!;

  async function viaProxy(...commands: Bytes[][]): Promise<string[]> {
    try {
      const replies = await exchange(endpoint, Buffer.concat(commands.map((c) => command(...c))), commands.length, respFrame);
      return replies.map((r) => r.toString("latin1"));
    } catch (err) {
      throw new Error(`${(err as Error).message}; the proxy's log:\n${proxy.stderr()}`);
    }
  }

  async function masters(): Promise<NodeLine[]> {
    const lines = await cluster.nodeLines(cluster.nodes.find((n) => n.process.running)!);
    return lines.filter((l) => l.masterId === "-" && l.slots.length > 0);
  }

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 1000 });
    proxy = await startProxy(
      TARGET,
      // A timeout long enough that the request's time never ends a retry first.
      poolYaml("edge", { listen: `127.0.0.1:${freePort()}`, redis: true, distribution: "redis_cluster", timeout: 8000 }, [serverLine(cluster.seeds[0]!)]),
    );
    endpoint = proxy.pools.edge!;
    await untilRouting(endpoint);
  });

  afterAll(async () => {
    await proxy?.stop();
    await cluster?.stop();
  });

  test("a multi-key request in a slot left mid-migration never gets ASK or MOVED", async () => {
    const [a, absent] = ["{mig}a", "{mig}absent"];
    const slot = slotOf(a);
    const source = await cluster.ownerOf(slot);
    const lines = await masters();
    const sourceLine = lines.find((l) => l.address === source.address)!;
    const destLine = lines.find((l) => l.address !== source.address)!;
    const dest = nodeAt(destLine.address);
    expect(await viaProxy(["SET", a, "1"])).toEqual(["+OK\r\n"]);
    await cluster.call(dest, "CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceLine.id);
    await cluster.call(source, "CLUSTER", "SETSLOT", String(slot), "MIGRATING", destLine.id);
    await cluster.call(source, "MIGRATE", dest.host, String(dest.port), a, "0", "5000");
    try {
      // The source has neither key (ASK); the destination, asked, lacks one of them (TRYAGAIN).
      const [mget, after] = await viaProxy(["MGET", a, absent], ["GET", a]);
      expect(mget).not.toMatch(/^-(ASK|MOVED) /);
      expect(mget).toMatch(/^-(TRYAGAIN |ERR too many cluster redirections)/);
      // The single-key read is served through ASK.
      expect(after).toBe("$1\r\n1\r\n");
    } finally {
      // Close the migration: the slot is the destination's now.
      for (const line of lines) await cluster.call(nodeAt(line.address), "CLUSTER", "SETSLOT", String(slot), "NODE", destLine.id);
    }
  });
});
