// WAIT through a redis pool of two real masters, each with a replica the test starts
// (replicaof): the proxy asks only the servers the client wrote to since its last WAIT and
// answers the smallest count, as one redis would answer for all of them; a stopped replica makes
// WAIT time out with 0 without holding up other clients; a client with no writes gets what a
// redis answers a client that never wrote.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { endpointOf, redisCall, stopAll } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { spread } from "../helpers/random.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { eventually, placer } from "../helpers/reload.ts";
import { command, decode, respFrame, type RespValue } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

let masters: Backend[] = [];
let replicas: Backend[] = [];
let proxy: RunningProxy;
let pool: Endpoint;
/** A key on each master (by position). */
const keyOn: string[] = [];

beforeAll(async () => {
  masters = await Promise.all([startRedis(), startRedis()]);
  replicas = await Promise.all(masters.map((m) => startRedis({ args: ["--replicaof", m.host, String(m.port)] })));
  for (const m of masters) {
    await eventually(`${m.address}'s replica online`, async () => {
      const info = (await redisCall(m, "INFO", "replication")) as Buffer;
      return /slave0:.*state=online/.test(info.toString()) ? true : undefined;
    });
  }
  const yaml = poolYaml("wait", { listen: `127.0.0.1:${freePort()}`, redis: true, timeout: 2000 }, masters.map((m) => serverLine(m.address)));
  proxy = await startProxy(TARGET, yaml);
  pool = proxy.pools.wait!;
  const serverOf = placer(yaml, "wait");
  // Spread keys: fnv1a_64 places keys that differ only in their last digits close together, so
  // k0..k199 could all land on one master for some pairs of ports.
  const candidates = Array.from({ length: 200 }, (_, i) => `k${spread(i)}`);
  for (const m of masters) {
    const key = candidates.find((k) => serverOf(k) === m.address);
    if (key === undefined) throw new Error(`no key of 200 lands on ${m.address}`);
    keyOn.push(key);
  }
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll([...replicas, ...masters]);
});

async function session(client: RawClient, ...requests: string[][]): Promise<RespValue[]> {
  await client.send(Buffer.concat(requests.map((r) => command(...r))));
  return (await client.readReplies(requests.length, respFrame)).map(decode);
}

/** Runs `body` with replica `i` stopped (SIGSTOP: connected, acknowledging nothing). */
async function withReplicaStopped<T>(i: number, body: () => Promise<T>): Promise<T> {
  await replicas[i]!.process.freeze();
  try {
    return await body();
  } finally {
    replicas[i]!.process.signal("SIGCONT");
  }
}

describe.skipIf(TARGET !== "buncracker")("WAIT", () => {
  test("after writes to one server: that server's replicas, and a stopped replica elsewhere does not matter", async () => {
    const client = await RawClient.connect(pool);
    try {
      expect(await session(client, ["SET", keyOn[0]!, "1"], ["WAIT", "1", "2000"])).toEqual(["OK", 1]);
      // Master 1's replica is stopped: a client that wrote to master 0 only is not held by it.
      const replies = await withReplicaStopped(1, () => session(client, ["SET", keyOn[0]!, "2"], ["WAIT", "1", "2000"]));
      expect(replies).toEqual(["OK", 1]);
    } finally {
      client.close();
    }
  });

  test("a stopped replica: WAIT times out with 0 while other clients go on; once it runs again, the write is acknowledged", async () => {
    const client = await RawClient.connect(pool);
    const other = await RawClient.connect(pool);
    try {
      await withReplicaStopped(0, async () => {
        await client.send(Buffer.concat([command("SET", keyOn[0]!, "x"), command("WAIT", "1", "1500")]));
        expect(decode(await client.readReply(respFrame))).toBe("OK");
        // Meanwhile the shared connection to master 0 serves another client: every GET is
        // answered while WAIT still waits (its reply has not come).
        for (let i = 0; i < 20; i++) expect(await session(other, ["GET", keyOn[0]!])).toEqual([Buffer.from("x")]);
        expect(client.buffered.length).toBe(0);
        expect(decode(await client.readReply(respFrame))).toBe(0);
      });
      expect(await session(client, ["WAIT", "1", "5000"])).toEqual([1]);
    } finally {
      client.close();
      other.close();
    }
  });

  test("after writes to both servers: the smallest count (one replica stopped: 0)", async () => {
    const client = await RawClient.connect(pool);
    try {
      expect(await session(client, ["SET", keyOn[0]!, "a"], ["SET", keyOn[1]!, "b"], ["WAIT", "1", "2000"])).toEqual(["OK", "OK", 1]);
      const replies = await withReplicaStopped(1, () => session(client, ["SET", keyOn[0]!, "c"], ["MSET", keyOn[1]!, "d", keyOn[0]!, "e"], ["WAIT", "1", "300"]));
      expect(replies).toEqual(["OK", "OK", 0]);
    } finally {
      client.close();
    }
  });

  test("a transaction's writes count; WAIT queued in MULTI runs in EXEC without blocking, as in redis", async () => {
    const client = await RawClient.connect(pool);
    try {
      const replies = await session(client, ["MULTI"], ["INCR", keyOn[1]!], ["WAIT", "5", "0"], ["EXEC"], ["WAIT", "1", "2000"]);
      expect(replies.slice(0, 3)).toEqual(["OK", "QUEUED", "QUEUED"]);
      expect((replies[3] as RespValue[])[1]).toBe(0);
      expect(replies[4]).toBe(1);
    } finally {
      client.close();
    }
  });

  test("no writes: what redis answers a client that never wrote (its replicas at once; fewer than asked: after the timeout)", async () => {
    const direct = await RawClient.connect(endpointOf(masters[0]!));
    const client = await RawClient.connect(pool);
    try {
      const expected = await session(direct, ["WAIT", "1", "100"], ["WAIT", "2", "100"]);
      expect(expected).toEqual([1, 1]);
      expect(await session(client, ["WAIT", "1", "100"], ["WAIT", "2", "100"])).toEqual(expected);
      // Arguments redis refuses get its own error.
      const [bad] = await session(client, ["WAIT", "x", "100"]);
      expect(String((bad as Error).message)).toContain("not an integer");
    } finally {
      direct.close();
      client.close();
    }
  });
});
