// Requests the multi-key planner carries out (a transaction on its pinned connection, a blocking
// pop on a connection lent to its client, PUBLISH) across a Sentinel failover, with real
// redis-sentinels and one shard of a master and a replica. The replica is frozen right after
// the failover is announced, so the promotion waits while the requests arrive: sent during the
// failover, they wait in the proxy and run on the new master (nothing of it on the old one, which
// sentinel then turns into a replica that drops what it took); a transaction queued and a pop
// blocked on the old master before it get errors, and the same clients then work on the new one.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { RawClient } from "../helpers/client.ts";
import { redisCall } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET } from "../helpers/proxy.ts";
import { eventually } from "../helpers/reload.ts";
import { command, pipeline, plain } from "../helpers/resp.ts";
import { forceFailover, readPlain, startSentinels, type SentinelDeployment } from "../helpers/sentinel.ts";

setDefaultTimeout(120_000);

describe.skipIf(TARGET !== "buncracker")("planned requests across a sentinel failover", () => {
  let d: SentinelDeployment;

  beforeAll(async () => {
    d = await startSentinels({ shards: ["shard1"] });
  });

  afterAll(async () => {
    d?.shards[0]!.replica.process.signal("SIGCONT");
    await d?.stop();
  });

  test("MULTI/EXEC, BLPOP/LPUSH and PUBLISH sent during SENTINEL FAILOVER run on the new master", async () => {
    const shard = d.shards[0]!;
    const yaml =
      [
        "ha:",
        `  listen: 127.0.0.1:${freePort()}`,
        "  redis: true",
        // Longer than the failover, so that nothing held times out.
        "  timeout: 15000",
        "  sentinels:",
        ...d.sentinels.map((s) => `   - ${s.address}`),
        "  servers:",
        `   - ${shard.master.address}:1 ${shard.name}`,
      ].join("\n") + "\n";
    const proxy = await startProxy(TARGET, yaml, { args: ["-i", "100"], verbosity: 6 });
    const clients: RawClient[] = [];
    const open = async (endpoint = proxy.pools.ha!): Promise<RawClient> => {
      const c = await RawClient.connect(endpoint);
      clients.push(c);
      return c;
    };
    try {
      const [tx, pop, push, pub, preTx, prePop] = await Promise.all([open(), open(), open(), open(), open(), open()]);
      // Before the failover: a transaction queued on the old master, a pop blocked there.
      await preTx.send(pipeline([["MULTI"], ["INCR", "pre:tx"]]));
      expect(await readPlain(preTx, 2)).toEqual(["OK", "QUEUED"]);
      await prePop.send(command("BLPOP", "pre:list", "0"));
      await eventually("the pop blocked on the old master", async () =>
        /^blocked_clients:1\r?$/m.test(String(await redisCall(shard.master, "INFO", "clients"))) ? true : undefined,
      );
      // A subscriber straight on the old master: a PUBLISH that reached it would count it.
      const sub = await open({ host: shard.master.host, port: shard.master.port });
      await sub.send(command("SUBSCRIBE", "news"));
      expect(await readPlain(sub, 1)).toEqual([["subscribe", "news", 1]]);

      await forceFailover(d.sentinels[0]!, shard.name);
      await eventually("the proxy holding the writes", () => (proxy.stderr().includes(`${shard.name} failover started`) ? true : undefined));
      // The promotion cannot complete while the replica is frozen: these arrive during the failover.
      await shard.replica.process.freeze();
      try {
        await tx.send(pipeline([["MULTI"], ["INCR", "tx:n"], ["INCR", "tx:n"], ["EXEC"]]));
        await pop.send(command("BLPOP", "list", "0"));
        await push.send(command("LPUSH", "list", "a", "b"));
        await pub.send(command("PUBLISH", "news", "hello"));
        await preTx.send(command("EXEC"));
        // MULTI is answered by the proxy; the rest waits.
        expect(await readPlain(tx, 1)).toEqual(["OK"]);
        await Bun.sleep(300);
      } finally {
        shard.replica.process.signal("SIGCONT");
      }

      expect(await readPlain(tx, 3)).toEqual(["QUEUED", "QUEUED", [1, 2]]);
      const [popped] = await readPlain(pop, 1);
      expect([["list", "a"], ["list", "b"]]).toContainEqual(popped as string[]);
      expect(await readPlain(push, 1)).toEqual([2]);
      // Published on the new master (sentinel disconnected the replica's clients when it promoted
      // it), not on the old one, whose subscriber would count.
      expect(await readPlain(pub, 1)).toEqual([0]);
      // The transaction queued on the old master cannot finish anywhere; the pop blocked there
      // is told, not left waiting.
      const [exec] = await readPlain(preTx, 1);
      expect(String(exec)).toStartWith("-");
      const [blocked] = await readPlain(prePop, 1);
      expect(String(blocked)).toStartWith("-");

      // Sentinel has turned the old master into a replica of the new one: what it took is gone.
      await d.awaitMaster(shard.name, shard.replica.address, 40000);
      expect(plain(await redisCall(shard.replica, "GET", "tx:n"))).toBe("2");
      expect(plain(await redisCall(shard.replica, "LLEN", "list"))).toBe(1);
      expect(plain(await redisCall(shard.replica, "GET", "pre:tx"))).toBe(null);

      // The same clients again, on the new master.
      await prePop.send(command("BLPOP", "pre:list", "10"));
      await eventually("the pop blocked on the new master", async () =>
        /^blocked_clients:1\r?$/m.test(String(await redisCall(shard.replica, "INFO", "clients"))) ? true : undefined,
      );
      await push.send(command("LPUSH", "pre:list", "c"));
      expect(await readPlain(push, 1)).toEqual([1]);
      expect(await readPlain(prePop, 1)).toEqual([["pre:list", "c"]]);
      await preTx.send(pipeline([["MULTI"], ["INCR", "pre:tx"], ["EXEC"]]));
      expect(await readPlain(preTx, 3)).toEqual(["OK", "QUEUED", [1]]);
      expect(plain(await redisCall(shard.replica, "GET", "pre:tx"))).toBe("1");
    } finally {
      for (const c of clients) c.close();
      shard.replica.process.signal("SIGCONT");
      await proxy.stop();
    }
  });
});
