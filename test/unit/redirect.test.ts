// Redirections and refusals read from cluster error replies. The MOVED, ASK, TRYAGAIN and
// CLUSTERDOWN replies come from a real cluster (a key asked of a node that does not own it, a
// slot being migrated, a multi-key request during the migration, a slot nobody serves).

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Redirect, redirectOf, redirectTarget } from "../../src/proto/redis/redirect.ts";
import { KeySlots } from "../../src/route/key-slot.ts";
import type { Backend } from "../helpers/backends.ts";
import { exchange } from "../helpers/client.ts";
import { endpointOf } from "../helpers/direct.ts";
import { startRedisCluster, type RedisCluster } from "../helpers/redis-cluster.ts";
import { command, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

const of = (text: string): Redirect => {
  const b = Buffer.from(text);
  return redirectOf(b, 0, b.length);
};
const target = (text: string) => {
  const b = Buffer.from(text);
  return redirectTarget(b, 0, b.length);
};

test("kinds by the first bytes; every other reply is None", () => {
  expect(of("-MOVED 1 h:1\r\n")).toBe(Redirect.Moved);
  expect(of("-ASK 1 h:1\r\n")).toBe(Redirect.Ask);
  expect(of("-TRYAGAIN Multiple keys request during rehashing of slot\r\n")).toBe(Redirect.TryAgain);
  expect(of("-CLUSTERDOWN The cluster is down\r\n")).toBe(Redirect.ClusterDown);
  for (const other of ["+MOVED 1 h:1\r\n", "-ERR MOVED\r\n", "-MOVEDX\r\n", "-ASKING\r\n", "$5\r\nMOVED\r\n", "-MOV", ":1\r\n", "-\r\n"]) {
    expect(of(other)).toBe(Redirect.None);
  }
});

test("targets: IPv4, IPv6 bare and bracketed, hostnames, an unknown endpoint", () => {
  expect(target("-MOVED 3999 127.0.0.1:6381\r\n")).toEqual({ slot: 3999, host: "127.0.0.1", port: 6381 });
  expect(target("-ASK 0 ::1:7000\r\n")).toEqual({ slot: 0, host: "::1", port: 7000 });
  expect(target("-ASK 16383 [fe80::1]:7000\r\n")).toEqual({ slot: 16383, host: "fe80::1", port: 7000 });
  expect(target("-MOVED 12 node-3.cache.internal:6379\r\n")).toEqual({ slot: 12, host: "node-3.cache.internal", port: 6379 });
  expect(target("-MOVED 12 :6379\r\n")).toEqual({ slot: 12, host: null, port: 6379 });
  expect(target("-MOVED 12 ?:6379\r\n")).toEqual({ slot: 12, host: null, port: 6379 });
});

test("malformed targets are null, not guesses", () => {
  for (const bad of ["-MOVED 16384 h:1\r\n", "-MOVED x h:1\r\n", "-MOVED 1 h\r\n", "-MOVED 1 h:0\r\n", "-MOVED 1 h:70000\r\n", "-ASK 1\r\n"]) {
    expect(target(bad)).toBeNull();
  }
});

describe("replies from a real cluster", () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 0 });
  });
  afterAll(() => cluster.stop());

  const slots = new KeySlots();
  const slotOf = (key: string): number => slots.slot(Buffer.from(key), 0, key.length);

  async function ask(node: Backend, ...args: string[]): Promise<Buffer> {
    const [reply] = await exchange(endpointOf(node), command(...args), 1, respFrame);
    return reply!;
  }

  test("MOVED from a node that does not own the key names the owner", async () => {
    const owner = await cluster.ownerOf(slotOf("foo"));
    const other = cluster.nodes.find((n) => n !== owner)!;
    const reply = await ask(other, "GET", "foo");
    expect(redirectOf(reply, 0, reply.length)).toBe(Redirect.Moved);
    expect(redirectTarget(reply, 0, reply.length)).toEqual({ slot: slotOf("foo"), host: owner.host, port: owner.port });
  });

  test("ASK and TRYAGAIN while a slot migrates; CLUSTERDOWN for a slot nobody serves", async () => {
    const slot = slotOf("{m}a");
    const source = await cluster.ownerOf(slot);
    const dest = cluster.nodes.find((n) => n !== source)!;
    const idOf = async (n: Backend) => String(await cluster.call(n, "CLUSTER", "MYID"));
    await cluster.call(source, "SET", "{m}a", "1");
    await cluster.call(dest, "CLUSTER", "SETSLOT", String(slot), "IMPORTING", await idOf(source));
    await cluster.call(source, "CLUSTER", "SETSLOT", String(slot), "MIGRATING", await idOf(dest));
    try {
      const asked = await ask(source, "GET", "{m}b"); // absent on the source: ask the destination
      expect(redirectOf(asked, 0, asked.length)).toBe(Redirect.Ask);
      expect(redirectTarget(asked, 0, asked.length)).toEqual({ slot, host: dest.host, port: dest.port });
      const retry = await ask(source, "MGET", "{m}a", "{m}b"); // one key here, one not
      expect(redirectOf(retry, 0, retry.length)).toBe(Redirect.TryAgain);
      await cluster.call(source, "CLUSTER", "SETSLOT", String(slot), "STABLE");
      await cluster.call(dest, "CLUSTER", "SETSLOT", String(slot), "STABLE");
      // Remove the slot from its owner: nobody serves it.
      await cluster.call(source, "CLUSTER", "DELSLOTS", String(slot));
      const down = await ask(source, "GET", "{m}a");
      expect(redirectOf(down, 0, down.length)).toBe(Redirect.ClusterDown);
    } finally {
      await cluster.call(source, "CLUSTER", "ADDSLOTS", String(slot)).catch(() => {});
    }
  });
});
