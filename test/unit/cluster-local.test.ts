// The proxy's own CLUSTER answers (a one-node cluster at the proxy's address, serving every
// slot): read back with the proxy's topology parsers and the test helper's CLUSTER NODES parser,
// compared in shape with the replies recorded from a real cluster (test/vectors/cluster), and
// errors compared byte for byte with a real cluster-enabled redis-server.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { clusterReply, selfId, type SelfNode } from "../../src/proto/redis/cluster-local.ts";
import { parseCurrentEpoch, parseShards, parseSlots } from "../../src/proto/redis/cluster-topology.ts";
import { decodeReply, textOf, type RespValue } from "../../src/proto/redis/value.ts";
import { KeySlots } from "../../src/route/key-slot.ts";
import { SlotMap } from "../../src/redis-cluster/slot-map.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { exchange } from "../helpers/client.ts";
import { endpointOf } from "../helpers/direct.ts";
import { parseClusterNodes } from "../helpers/redis-cluster.ts";
import { command, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(30_000);

const self: SelfNode = { id: selfId("big", "127.0.0.1", 22121), host: "127.0.0.1", port: 22121, epoch: 7, uncovered: 0 };
const keySlots = new KeySlots();
const slotOf = (buf: Uint8Array, start: number, end: number): number => keySlots.slot(buf, start, end);

/** The arguments laid out in one buffer, as a parsed request gives them. */
function answer(...args: string[]): Buffer {
  const buf = Buffer.from(args.join(""), "latin1");
  const argStart = new Int32Array(args.length);
  const argEnd = new Int32Array(args.length);
  let at = 0;
  args.forEach((a, i) => {
    argStart[i] = at;
    at += a.length;
    argEnd[i] = at;
  });
  return Buffer.from(clusterReply(buf, argStart, argEnd, args.length, self, slotOf));
}

const decoded = (bytes: Uint8Array): RespValue => decodeReply(bytes, 0, bytes.length);

function recorded(command: string): RespValue {
  const bytes = readFileSync(new URL(`../vectors/cluster/created.${command}.resp`, import.meta.url));
  return decodeReply(bytes, 0, bytes.length);
}

test("the id is 40 hex characters, the same for one pool at one address, another elsewhere", () => {
  expect(self.id).toMatch(/^[0-9a-f]{40}$/);
  expect(selfId("big", "127.0.0.1", 22121)).toBe(self.id);
  expect(selfId("big", "127.0.0.1", 22122)).not.toBe(self.id);
  expect(selfId("other", "127.0.0.1", 22121)).not.toBe(self.id);
});

test("CLUSTER SLOTS and SHARDS: one master at the proxy's address serving every slot", () => {
  for (const topology of [parseSlots(decoded(answer("CLUSTER", "SLOTS")), "x"), parseShards(decoded(answer("cluster", "shards")), "x")]) {
    const map = new SlotMap(topology, self.epoch);
    expect(map.uncovered()).toBe(0);
    expect(map.shards).toEqual([{ master: { id: self.id, host: "127.0.0.1", port: 22121 }, replicas: [] }]);
  }
});

test("SLOTS and SHARDS have a real node's shapes (the same field names and element counts)", () => {
  const ours = decoded(answer("CLUSTER", "SHARDS")) as RespValue[][];
  const real = recorded("shards") as RespValue[][];
  const names = (map: RespValue[]): (string | null)[] => map.filter((_, i) => i % 2 === 0).map(textOf);
  expect(names(ours[0]!)).toEqual(names(real[0]!));
  const nodeOf = (shard: RespValue[]): RespValue[] => (shard[3] as RespValue[][])[0]!;
  expect(names(nodeOf(ours[0]!))).toEqual(names(nodeOf(real[0]!)));
  const slotsOurs = decoded(answer("CLUSTER", "SLOTS")) as RespValue[][];
  const slotsReal = recorded("slots") as RespValue[][];
  expect(slotsOurs[0]!.length).toBe(slotsReal[0]!.length);
  expect((slotsOurs[0]![2] as RespValue[]).length).toBe((slotsReal[0]![2] as RespValue[]).length);
});

test("CLUSTER NODES: one line, myself and master, every slot", () => {
  const text = textOf(decoded(answer("CLUSTER", "NODES")))!;
  const lines = parseClusterNodes(text);
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatchObject({ id: self.id, address: "127.0.0.1:22121", masterId: "-", configEpoch: 7, connected: true, slots: [[0, 16383]] });
  expect(lines[0]!.flags).toEqual(["myself", "master"]);
});

test("CLUSTER INFO: a real node's keys, ok while every slot is covered, fail with the count otherwise", () => {
  const fields = (value: RespValue): Map<string, string> =>
    new Map(textOf(value)!.split("\r\n").filter((l) => l !== "").map((l) => l.split(":") as [string, string]));
  const ours = fields(decoded(answer("CLUSTER", "INFO")));
  const real = fields(recorded("info"));
  for (const key of ours.keys()) expect(real.has(key)).toBe(true);
  expect(ours.get("cluster_state")).toBe("ok");
  expect(parseCurrentEpoch(decoded(answer("CLUSTER", "INFO")))).toBe(7);
  const broken = { ...self, uncovered: 100 };
  const buf = Buffer.from("CLUSTERINFO");
  const failing = fields(decoded(clusterReply(buf, Int32Array.of(0, 7), Int32Array.of(7, 11), 2, broken, slotOf)));
  expect(failing.get("cluster_state")).toBe("fail");
  expect(failing.get("cluster_slots_fail")).toBe("100");
  expect(failing.get("cluster_slots_ok")).toBe("16284");
});

test("CLUSTER MYID and KEYSLOT", () => {
  expect(textOf(decoded(answer("CLUSTER", "MYID")))).toBe(self.id);
  expect(decoded(answer("CLUSTER", "KEYSLOT", "foo"))).toBe(12182);
  expect(decoded(answer("cluster", "KeySlot", "{foo}bar"))).toBe(12182);
});

test("an unsupported subcommand is an error naming it and what is answered", () => {
  expect(answer("CLUSTER", "SETSLOT", "1", "NODE", "x").toString()).toBe(
    "-ERR unsupported command 'cluster|setslot' (the proxy answers CLUSTER SLOTS, SHARDS, NODES, INFO, MYID and KEYSLOT)\r\n",
  );
  expect(answer("CLUSTER", "\r\n").toString()).toStartWith("-ERR unsupported command 'cluster|??'");
});

describe("compared with a real cluster-enabled redis-server", () => {
  let redis: Backend;
  beforeAll(async () => {
    redis = await startRedis({ args: ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"] });
  });
  afterAll(() => redis.stop());

  const wrong = [
    ["CLUSTER", "KEYSLOT"],
    ["CLUSTER", "KEYSLOT", "a", "b"],
    ["CLUSTER", "MYID", "x"],
    ["CLUSTER", "INFO", "x"],
    ["CLUSTER", "SLOTS", "x"],
    ["CLUSTER", "NODES", "x"],
    ["CLUSTER", "SHARDS", "x"],
  ];
  test("wrong argument counts get redis's own errors, byte for byte", async () => {
    const replies = await exchange(endpointOf(redis), Buffer.concat(wrong.map((args) => command(...args))), wrong.length, respFrame);
    expect(wrong.map((args) => answer(...args).toString())).toEqual(replies.map((r) => r.toString()));
  });

  test("KEYSLOT agrees with the real node on tagged and binary keys", async () => {
    const keys = ["", "{", "{}", "a{b}c", "\xff\x00{\x01}", "user:{42}:x"];
    const replies = await exchange(endpointOf(redis), Buffer.concat(keys.map((k) => command("CLUSTER", "KEYSLOT", k))), keys.length, respFrame);
    expect(keys.map((k) => answer("CLUSTER", "KEYSLOT", k).toString())).toEqual(replies.map((r) => r.toString()));
  });
});
