// Records real topology replies for the slot-map unit tests: starts a cluster (3 masters, 1
// replica each; test/helpers/redis-cluster.ts) and saves the raw bytes of CLUSTER SHARDS,
// CLUSTER SLOTS, CLUSTER NODES and CLUSTER INFO as one node answers them, in three states:
// just created, after `redis-cli --cluster reshard` moved 100 slots (a master with two
// ranges), and after a replica took over its master (CLUSTER FAILOVER). Writes
// test/vectors/cluster/<state>.<command>.resp. Run: bun scripts/record-cluster-replies.ts

import { mkdirSync, writeFileSync } from "node:fs";
import type { Backend } from "../test/helpers/backends.ts";
import { exchange } from "../test/helpers/client.ts";
import { endpointOf } from "../test/helpers/direct.ts";
import { startRedisCluster, type RedisCluster } from "../test/helpers/redis-cluster.ts";
import { command, respFrame } from "../test/helpers/resp.ts";

const DIR = new URL("../test/vectors/cluster/", import.meta.url);
const COMMANDS = ["SHARDS", "SLOTS", "NODES", "INFO"];

async function record(node: Backend, state: string): Promise<void> {
  for (const sub of COMMANDS) {
    const [reply] = await exchange(endpointOf(node), command("CLUSTER", sub), 1, respFrame);
    writeFileSync(new URL(`${state}.${sub.toLowerCase()}.resp`, DIR), reply!);
  }
}

async function masterIds(cluster: RedisCluster): Promise<string[]> {
  const lines = await cluster.nodeLines(cluster.nodes[0]!);
  return lines.filter((l) => l.masterId === "-").sort((a, b) => a.slots[0]![0] - b.slots[0]![0]).map((l) => l.id);
}

mkdirSync(DIR, { recursive: true });
const cluster = await startRedisCluster();
try {
  const node = cluster.nodes[0]!;
  await record(node, "created");

  const [first, , third] = await masterIds(cluster);
  await cluster.cli([
    "reshard", node.address, "--cluster-from", third!, "--cluster-to", first!,
    "--cluster-slots", "100", "--cluster-yes",
  ]);
  await cluster.waitHealthy();
  await record(node, "resharded");

  const lines = await cluster.nodeLines(node);
  const replica = lines.find((l) => l.masterId === first)!;
  const replicaNode = cluster.nodes.find((n) => n.address === replica.address)!;
  await cluster.call(replicaNode, "CLUSTER", "FAILOVER");
  for (let i = 0; i < 200; i++) {
    const after = await cluster.nodeLines(node);
    if (after.find((l) => l.id === replica.id)!.flags.includes("master")) break;
    await Bun.sleep(50);
  }
  await cluster.waitHealthy();
  await record(node, "failed-over");
  console.log(`recorded ${COMMANDS.length * 3} replies from ${cluster.seeds.join(" ")} -> ${DIR.pathname}`);
} finally {
  await cluster.stop();
}
