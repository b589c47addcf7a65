// The cluster topology parsers and the slot map, on replies recorded from a real cluster
// (test/vectors/cluster, scripts/record-cluster-replies.ts) in three states: created, after a
// reshard of 100 slots, after a replica took over its master. CLUSTER SHARDS and CLUSTER SLOTS
// must give the same map, and both must agree with CLUSTER NODES (read by the test helper's own
// parser, an independent source).

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import {
  parseCurrentEpoch,
  parseShards,
  parseSlots,
  TopologyError,
  type Topology,
} from "../../src/proto/redis/cluster-topology.ts";
import { decodeReply, ReplyError, type RespValue } from "../../src/proto/redis/value.ts";
import { SLOT_COUNT } from "../../src/route/key-slot.ts";
import { nodeAddress, SlotMap } from "../../src/redis-cluster/slot-map.ts";
import { parseClusterNodes, type NodeLine } from "../helpers/redis-cluster.ts";

const STATES = ["created", "resharded", "failed-over"] as const;

function recorded(state: string, command: string): RespValue {
  const bytes = readFileSync(new URL(`../vectors/cluster/${state}.${command}.resp`, import.meta.url));
  return decodeReply(bytes, 0, bytes.length);
}

function nodeLines(state: string): NodeLine[] {
  return parseClusterNodes(Buffer.from(recorded(state, "nodes") as Uint8Array).toString("latin1"));
}

/** Slot -> "host:port" of its master, from CLUSTER NODES. */
function mastersByNodes(lines: readonly NodeLine[]): string[] {
  const owner = new Array<string>(SLOT_COUNT).fill("");
  for (const line of lines) for (const [a, b] of line.slots) for (let s = a; s <= b; s++) owner[s] = line.address;
  return owner;
}

const mastersOf = (map: SlotMap): string[] =>
  Array.from({ length: SLOT_COUNT }, (_, slot) => {
    const master = map.master(slot);
    return master === null ? "" : nodeAddress(master);
  });

describe.each(STATES)("recorded state %s", (state) => {
  const lines = nodeLines(state);
  const shards = parseShards(recorded(state, "shards"), "127.0.0.1");
  const slots = parseSlots(recorded(state, "slots"), "127.0.0.1");
  const epoch = parseCurrentEpoch(recorded(state, "info"));

  test("CLUSTER SHARDS and CLUSTER SLOTS give the masters CLUSTER NODES shows, every slot covered", () => {
    const expected = mastersByNodes(lines);
    expect(expected.filter((a) => a === "").length).toBe(0);
    const fromShards = new SlotMap(shards, epoch);
    const fromSlots = new SlotMap(slots, epoch);
    expect(mastersOf(fromShards)).toEqual(expected);
    expect(mastersOf(fromSlots)).toEqual(expected);
    expect(fromShards.uncovered()).toBe(0);
    expect(fromShards.shards.length).toBe(3);
  });

  test("node ids and replicas are CLUSTER NODES' own", () => {
    const byAddress = new Map(lines.map((l) => [l.address, l]));
    for (const shard of [...shards.shards, ...slots.shards]) {
      const master = byAddress.get(nodeAddress(shard.master!))!;
      expect(shard.master!.id).toBe(master.id);
      expect(master.masterId).toBe("-");
      for (const replica of shard.replicas) {
        expect(byAddress.get(nodeAddress(replica))!.masterId).toBe(master.id);
        expect(replica.id).toBe(byAddress.get(nodeAddress(replica))!.id);
      }
    }
  });

  test("the epoch is at least every node's config epoch", () => {
    expect(epoch).toBeGreaterThanOrEqual(Math.max(...lines.map((l) => l.configEpoch)));
  });
});

test("the reshard left one master with two ranges, and SHARDS lists them in one shard", () => {
  const topology = parseShards(recorded("resharded", "shards"), "127.0.0.1");
  expect(topology.shards.map((s) => s.ranges.length).sort()).toEqual([1, 1, 2]);
  const fromSlots = parseSlots(recorded("resharded", "slots"), "127.0.0.1");
  expect(fromSlots.shards.map((s) => s.ranges.length).sort()).toEqual([1, 1, 2]);
});

test("after the failover the epoch grew and the old master serves as a replica", () => {
  const before = parseCurrentEpoch(recorded("created", "info"));
  const after = parseCurrentEpoch(recorded("failed-over", "info"));
  expect(after).toBeGreaterThan(before);
  const created = new SlotMap(parseShards(recorded("created", "shards"), "127.0.0.1"), before);
  const failed = new SlotMap(parseShards(recorded("failed-over", "shards"), "127.0.0.1"), after);
  const now = mastersOf(failed);
  const changed = mastersOf(created).filter((m, slot) => m !== now[slot]);
  expect(changed.length).toBeGreaterThan(5000);
  const oldMaster = created.master(0)!;
  const lines = nodeLines("failed-over");
  expect(lines.find((l) => l.address === nodeAddress(oldMaster))!.flags).toContain("slave");
});

// Replies made here for what a healthy cluster never shows.
const node = (fields: [string, RespValue][]): RespValue => fields.flat();
const shard = (ranges: number[], nodes: RespValue[]): RespValue => ["slots", ranges, "nodes", nodes];

describe("parsing edge cases", () => {
  test("an unknown endpoint (\"?\" or empty) is the address the reply came from", () => {
    const reply = [
      shard([0, 16383], [
        node([["id", "a"], ["port", 7000], ["ip", "10.0.0.1"], ["endpoint", "?"], ["role", "master"], ["health", "online"]]),
        node([["id", "b"], ["port", 7001], ["endpoint", ""], ["role", "replica"], ["health", "online"]]),
      ]),
    ];
    const topology = parseShards(reply, "192.0.2.9");
    expect(topology.shards[0]!.master).toEqual({ id: "a", host: "10.0.0.1", port: 7000 });
    expect(topology.shards[0]!.replicas).toEqual([{ id: "b", host: "192.0.2.9", port: 7001 }]);
    const slots = parseSlots([[0, 16383, ["", 7000, "a"], [null, 7001, "b"]]], "192.0.2.9");
    expect(slots.shards[0]!.master).toEqual({ id: "a", host: "192.0.2.9", port: 7000 });
    expect(slots.shards[0]!.replicas[0]!.host).toBe("192.0.2.9");
  });

  test("replicas that are not online serve no reads; a failed master yields to a live one", () => {
    const reply = [
      shard([0, 100], [
        node([["id", "old"], ["port", 7000], ["ip", "h"], ["role", "master"], ["health", "fail"]]),
        node([["id", "r1"], ["port", 7001], ["ip", "h"], ["role", "replica"], ["health", "loading"]]),
        node([["id", "new"], ["port", 7002], ["ip", "h"], ["role", "master"], ["health", "online"]]),
      ]),
    ];
    const topology = parseShards(reply, "x");
    expect(topology.shards[0]!.master!.id).toBe("new");
    expect(topology.shards[0]!.replicas).toEqual([]);
    const map = new SlotMap(topology, 3);
    expect(map.uncovered()).toBe(SLOT_COUNT - 101);
    expect(map.shardOf(100)).toBe(0);
    expect(map.shardOf(101)).toBe(-1);
    expect(map.master(101)).toBeNull();
  });

  test("a failed master without slots (its replica took them over) is no shard's master", () => {
    const reply = [
      shard([], [node([["id", "dead"], ["port", 7000], ["ip", "h"], ["role", "master"], ["health", "fail"]])]),
      shard([0, 16383], [node([["id", "promoted"], ["port", 7001], ["ip", "h"], ["role", "master"], ["health", "online"]])]),
      shard([], [node([["id", "empty"], ["port", 7002], ["ip", "h"], ["role", "master"], ["health", "online"]])]),
    ];
    const map = new SlotMap(parseShards(reply, "x"), 3);
    // A live master without slots (just added) stays: it may be importing keys.
    expect(map.shards.map((s) => s.master!.id)).toEqual(["promoted", "empty"]);
    expect(map.nodes().map((n) => n.id)).not.toContain("dead");
  });

  const bad: [string, () => Topology, RegExp][] = [
    ["an error reply", () => parseShards(new ReplyError("ERR unknown subcommand 'shards'"), "h"), /replied -ERR unknown/],
    ["not an array", () => parseSlots("OK", "h"), /expected an array/],
    ["a slot out of range", () => parseSlots([[0, 16384, ["h", 1, "a"]]], "h"), /bad slot range 0-16384/],
    ["a reversed range", () => parseShards([shard([9, 3], [])], "h"), /bad slot range 9-3/],
    ["a bad port", () => parseSlots([[0, 1, ["h", 0, "a"]]], "h"), /bad port 0/],
    ["a range without a master", () => parseSlots([[0, 1]], "h"), /no master/],
    ["odd map items", () => parseShards([["slots"]], "h"), /odd number of map items/],
    ["odd slot bounds", () => parseShards([shard([1], [])], "h"), /odd number of slot bounds/],
  ];
  test.each(bad)("%s is a TopologyError that says what is wrong", (_, parse, message) => {
    expect(parse).toThrow(TopologyError);
    expect(parse).toThrow(message);
  });

  test("two shards claiming one slot cannot make a map", () => {
    const topology = parseSlots([[0, 10, ["h", 1, "a"]], [10, 20, ["h", 2, "b"]]], "h");
    expect(() => new SlotMap(topology, 1)).toThrow("slot 10 is claimed by h:1 and h:2");
  });

  test("CLUSTER INFO without an epoch gives -1; not a string is an error", () => {
    expect(parseCurrentEpoch("cluster_state:ok\r\n")).toBe(-1);
    expect(() => parseCurrentEpoch(5)).toThrow(TopologyError);
  });
});

describe("SlotMap.moved", () => {
  const map = () => new SlotMap(parseShards(recorded("created", "shards"), "127.0.0.1"), 1);

  test("re-points one slot to a known master, and only that slot", () => {
    const m = map();
    const before = mastersOf(m);
    const target = m.master(SLOT_COUNT - 1)!;
    expect(m.moved(0, target.host, target.port)).toBe(m.shardOf(SLOT_COUNT - 1));
    const after = mastersOf(m);
    expect(after[0]).toBe(nodeAddress(target));
    expect(after.filter((a, slot) => a !== before[slot]).length).toBe(1);
    expect(m.shards.length).toBe(3);
  });

  test("a master the map does not know becomes a shard of its own", () => {
    const m = map();
    const index = m.moved(42, "127.0.0.2", 9999);
    expect(index).toBe(3);
    expect(nodeAddress(m.master(42)!)).toBe("127.0.0.2:9999");
    expect(m.nodes().map(nodeAddress)).toContain("127.0.0.2:9999");
  });
});

test("nodes() lists every master and online replica once", () => {
  const m = new SlotMap(parseShards(recorded("failed-over", "shards"), "127.0.0.1"), 1);
  const addresses = m.nodes().map(nodeAddress);
  expect(new Set(addresses).size).toBe(addresses.length);
  expect(addresses.slice(0, 3).sort()).toEqual(m.shards.map((s) => nodeAddress(s.master!)).sort());
});
