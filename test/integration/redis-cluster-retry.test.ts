// A redis_cluster pool's TRYAGAIN and CLUSTERDOWN on a client's own connections (a blocking
// command, a transaction sent whole at EXEC), on a real cluster (3 masters): the proxy sends the
// request again after a pause, as it does on the shared connections, within the same bound,
// and the client's later requests do not overtake it. A node answers CLUSTERDOWN on demand when
// it stops serving one of its slots (CLUSTER DELSLOTS: with cluster-require-full-coverage, its
// default, its cluster_state turns fail and it refuses every keyed command), TRYAGAIN when a
// transaction's keys are split between the two nodes of a slot being moved.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { KeySlots } from "../../src/route/key-slot.ts";
import type { Backend } from "../helpers/backends.ts";
import { blocked, clientList } from "../helpers/client-list.ts";
import { RawClient, exchange, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { poolOf, readStats } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { eventually } from "../helpers/reload.ts";
import { startRedisCluster, untilRouting, type RedisCluster } from "../helpers/redis-cluster.ts";
import { command, respFrame, type Bytes } from "../helpers/resp.ts";

setDefaultTimeout(120_000);

const slots = new KeySlots();
const slotOf = (key: string): number => slots.slot(Buffer.from(key, "latin1"), 0, key.length);

describe.skipIf(TARGET !== "buncracker")("redis_cluster: TRYAGAIN and CLUSTERDOWN on a client's own connections", () => {
  let cluster: RedisCluster;
  let proxy: RunningProxy;
  let endpoint: Endpoint;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, replicas: 0 });
    proxy = await startProxy(
      TARGET,
      // A timeout longer than the retries take: the bound they meet is the count (16). FLUSHALL
      // allowed, for the keyless request that must wait.
      poolYaml("retry", { listen: `127.0.0.1:${freePort()}`, redis: true, distribution: "redis_cluster", timeout: 8000, redis_allow_flush: true }, [serverLine(cluster.seeds[0]!)]),
    );
    endpoint = proxy.pools.retry!;
    await untilRouting(endpoint);
  });

  afterAll(async () => {
    await proxy?.stop();
    await cluster?.stop();
  });

  async function viaProxy(...commands: Bytes[][]): Promise<string[]> {
    const replies = await exchange(endpoint, Buffer.concat(commands.map((c) => command(...c))), commands.length, respFrame);
    return replies.map(String);
  }

  /** How many replies of error `code` the node gave (INFO errorstats). */
  async function errors(node: Backend, code: string): Promise<number> {
    const info = String(await cluster.call(node, "INFO", "errorstats"));
    return Number(new RegExp(`errorstat_${code}:count=(\\d+)`).exec(info)?.[1] ?? 0);
  }

  const clusterState = async (node: Backend): Promise<string> => /cluster_state:(\w+)/.exec(String(await cluster.call(node, "CLUSTER", "INFO")))![1]!;

  /** The master of `key`'s slot stops serving another slot of its own: its cluster state turns
   *  fail and it answers CLUSTERDOWN to every keyed command (the other nodes still list the slot
   *  as its: the proxy keeps routing there). Returns the node and how to undo it. */
  async function takeDown(key: string): Promise<{ node: Backend; restore: () => Promise<void> }> {
    const node = await cluster.ownerOf(slotOf(key));
    const line = (await cluster.nodeLines(node)).find((l) => l.flags.includes("myself"))!;
    const [first, last] = line.slots[0]!;
    const other = first !== slotOf(key) ? first : last;
    await cluster.call(node, "CLUSTER", "DELSLOTS", String(other));
    await eventually("the node's cluster state to turn fail", async () => ((await clusterState(node)) === "fail" ? true : undefined));
    return {
      node,
      restore: async () => {
        await cluster.call(node, "CLUSTER", "ADDSLOTS", String(other));
        await eventually("the node's cluster state to be ok again", async () => ((await clusterState(node)) === "ok" ? true : undefined));
      },
    };
  }

  /** Resolves once `node` has given one more `code` error than `before` (the request met it). */
  const untilMore = (node: Backend, code: string, before: number): Promise<true> =>
    eventually(`the node to answer ${code}`, async () => ((await errors(node, code)) > before ? true : undefined), 5000);

  /** A test's time with `key`'s node down (takeDown): the node, how to bring it back, a client
   *  (closed after), the node's count of CLUSTERDOWN before, and `refused()`, which resolves once
   *  the node has refused one more request since. */
  async function whileDown(
    key: string,
    body: (down: { node: Backend; restore: () => Promise<void>; client: RawClient; before: number; refused: () => Promise<true> }) => Promise<void>,
  ): Promise<void> {
    const { node, restore } = await takeDown(key);
    const client = await RawClient.connect(endpoint);
    try {
      const before = await errors(node, "CLUSTERDOWN");
      await body({ node, restore, client, before, refused: () => untilMore(node, "CLUSTERDOWN", before) });
    } finally {
      client.close();
    }
  }

  test("a transaction that meets CLUSTERDOWN runs once the node serves again; a GET after it comes after it", async () => {
    const key = "{rtx}k";
    await whileDown(key, async ({ restore, client, refused }) => {
      await client.send(Buffer.concat([command("MULTI"), command("SET", key, "v"), command("INCR", `${key}n`), command("EXEC"), command("GET", key)]));
      await refused();
      await restore();
      expect((await client.readReplies(5, respFrame)).map(String)).toEqual(["+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n", "*2\r\n+OK\r\n:1\r\n", "$1\r\nv\r\n"]);
    });
  });

  test("a request sent again after CLUSTERDOWN is answered in the protocol it was sent in, not that of a HELLO 3 the client sent after it", async () => {
    const hash = "{rhl}h";
    expect(await viaProxy(["HSET", hash, "f", "v"])).toEqual([":1\r\n"]);
    await whileDown(hash, async ({ restore, client, refused }) => {
      await client.send(command("HGETALL", hash));
      await refused();
      await client.send(command("HELLO", "3"));
      await restore();
      const [hgetall] = (await client.readReplies(2, respFrame)).map(String);
      expect(hgetall).toBe("*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    });
  });

  test("a request sent again after CLUSTERDOWN keeps its protocol when the client has since borrowed a connection in RESP3 at its node (HELLO 3, WATCH)", async () => {
    const hash = "{rhw}h";
    expect(await viaProxy(["HSET", hash, "f", "v"])).toEqual([":1\r\n"]);
    await whileDown(hash, async ({ restore, client, refused }) => {
      // Sent together, before the HGETALL's refusal is back: the HELLO 3 is answered at once,
      // and the WATCH borrows a connection at the HGETALL's node, opened in RESP3.
      await client.send(Buffer.concat([command("HGETALL", hash), command("HELLO", "3"), command("WATCH", `${hash}w`)]));
      await refused();
      await restore();
      const [hgetall] = (await client.readReplies(3, respFrame)).map(String);
      expect(hgetall).toBe("*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    });
  });

  test("a blocking command sent again after CLUSTERDOWN is answered in the protocol it was sent in, not that of a RESET back to RESP2 sent after it", async () => {
    const queue = "{rbh}q";
    await whileDown(queue, async ({ restore, client, refused }) => {
      await client.send(command("HELLO", "3"));
      expect(String(await client.readReply(respFrame))).toStartWith("%7\r\n");
      // (A HELLO 2 would be refused while the BLPOP waits; RESET lets its connection go.)
      await client.send(Buffer.concat([command("BLPOP", queue, "1"), command("RESET")]));
      await refused();
      await restore();
      expect((await client.readReplies(2, respFrame)).map(String)).toEqual(["_\r\n", "+RESET\r\n"]);
    });
  });

  test("a HELLO 3 sent while a blocking command waits to go again after CLUSTERDOWN waits behind it, and is refused once the command is sent again; the client stays in RESP2", async () => {
    const queue = "{rbp}q";
    const hash = "{rbp}h";
    expect(await viaProxy(["HSET", hash, "f", "v"])).toEqual([":1\r\n"]);
    await whileDown(queue, async ({ restore, client, refused }) => {
      await client.send(command("BLPOP", queue, "1"));
      // Refused by the node: the BLPOP holds no connection while it waits to go again.
      await refused();
      await client.send(Buffer.concat([command("HELLO", "3"), command("HGETALL", hash)]));
      await restore();
      expect((await client.readReplies(3, respFrame)).map(String)).toEqual([
        "*-1\r\n",
        "-ERR HELLO changing the protocol is not served through the proxy while a blocking command or transaction of this client holds a connection (retry after it)\r\n",
        "*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
      ]);
    });
  });

  test("a blocking command sent again in the protocol it was sent in, after a RESET back to RESP2, stops blocking at its node when its client goes", async () => {
    const queue = "{rbc}q";
    const node = await cluster.ownerOf(slotOf(queue));
    await whileDown(queue, async ({ restore, client, refused }) => {
      await client.send(command("HELLO", "3"));
      expect(String(await client.readReply(respFrame))).toStartWith("%7\r\n");
      // Sent again on a connection lent for it alone (RESP3; the client's group is RESP2's now:
      // a HELLO 2 would be refused while the BLPOP waits, a RESET lets its connection go).
      await client.send(Buffer.concat([command("BLPOP", queue, "0"), command("RESET")]));
      await refused();
      await restore();
      await eventually("the BLPOP blocked at its node again", async () => (blocked(await clientList(node)).length > 0 ? true : undefined));
    });
    // Left blocked, it would pop the next value pushed, for no one.
    await eventually("the BLPOP's connection to close with its client", async () => (blocked(await clientList(node)).length === 0 ? true : undefined), 5000);
  });

  test("a transaction sent again after CLUSTERDOWN is answered in the protocol it was sent in, not that of a RESET back to RESP2 sent after it", async () => {
    const hash = "{rth}h";
    expect(await viaProxy(["HSET", hash, "f", "v"])).toEqual([":1\r\n"]);
    await whileDown(hash, async ({ restore, client, refused }) => {
      await client.send(command("HELLO", "3"));
      expect(String(await client.readReply(respFrame))).toStartWith("%7\r\n");
      // (A HELLO 2 would be refused while the EXEC waits; RESET lets its connection go.)
      await client.send(Buffer.concat([command("MULTI"), command("HGETALL", hash), command("EXEC"), command("RESET")]));
      await refused();
      await restore();
      const [, , exec, reset] = (await client.readReplies(4, respFrame)).map(String);
      expect([exec, reset]).toEqual(["*1\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n", "+RESET\r\n"]);
    });
  });

  test("a whole-pool request (FLUSHALL) sent while the client's write waits to go again runs after that write", async () => {
    const key = "{rkl}k";
    await whileDown(key, async ({ restore, client, refused }) => {
      // The SET is refused, and waits to go again; FLUSHALL comes then. In the client's order
      // the SET runs first; FLUSHALL sent at once would leave the key. (One sent with the SET,
      // before its refusal came back, reaches the nodes first: already on its way, as on any
      // connection.)
      await client.send(command("SET", key, "v"));
      await refused();
      await client.send(command("FLUSHALL"));
      await restore();
      expect((await client.readReplies(2, respFrame)).map(String)).toEqual(["+OK\r\n", "+OK\r\n"]);
      expect(await viaProxy(["GET", key])).toEqual(["$-1\r\n"]);
    });
  });

  test("a blocking command that meets CLUSTERDOWN waits again once the node serves; the client's next requests stay behind it", async () => {
    const queue = "{rbl}q";
    await whileDown(queue, async ({ restore, client, refused }) => {
      // In the client's order the BLPOP finds the list empty and times out (1 s), then the push
      // and the pop run; a push that overtook it would be popped by the BLPOP instead.
      await client.send(Buffer.concat([command("BLPOP", queue, "1"), command("RPUSH", queue, "y"), command("LPOP", queue)]));
      await refused();
      await restore();
      expect((await client.readReplies(3, respFrame)).map(String)).toEqual(["*-1\r\n", ":1\r\n", "$1\r\ny\r\n"]);
    });
  });

  test("a transaction sent while the client's blocking command waits to go again runs after it", async () => {
    const queue = "{rbt}q";
    await whileDown(queue, async ({ node, restore, client, before }) => {
      await client.send(command("BLPOP", queue, "1"));
      // Seven refusals: the BLPOP now waits 200 ms between tries. The node serves again, and
      // the transaction comes at once: sent then, its push would reach the node first.
      await eventually("the BLPOP to be refused seven times", async () => ((await errors(node, "CLUSTERDOWN")) >= before + 7 ? true : undefined), 5000);
      await restore();
      await client.send(Buffer.concat([command("MULTI"), command("RPUSH", queue, "y"), command("EXEC"), command("LPOP", queue)]));
      expect((await client.readReplies(5, respFrame)).map(String)).toEqual(["*-1\r\n", "+OK\r\n", "+QUEUED\r\n", "*1\r\n:1\r\n", "$1\r\ny\r\n"]);
    });
  });

  test("a blocking command that waited longer than the pool's timeout, let go with CLUSTERDOWN when its node's cluster fails, waits again", async () => {
    const queue = "{rbw}q";
    const node = await cluster.ownerOf(slotOf(queue));
    // A pool whose timeout the BLPOP outlasts (its own wait is the client's: no limit).
    const short = await startProxy(
      TARGET,
      poolYaml("short", { listen: `127.0.0.1:${freePort()}`, redis: true, distribution: "redis_cluster", timeout: 500 }, [serverLine(cluster.seeds[0]!)]),
    );
    const client = await RawClient.connect(short.pools.short!);
    try {
      await untilRouting(short.pools.short!);
      await client.send(command("BLPOP", queue, "0"));
      await eventually("the BLPOP blocked at its node", async () => (blocked(await clientList(node)).length > 0 ? true : undefined));
      await Bun.sleep(1000);
      const before = await errors(node, "CLUSTERDOWN");
      // redis lets its blocked clients go with CLUSTERDOWN once its cluster state is fail.
      const { restore } = await takeDown(queue);
      await untilMore(node, "CLUSTERDOWN", before);
      await restore();
      // Pushed before or after the BLPOP is back, the value is the BLPOP's.
      expect(await viaProxy(["RPUSH", queue, "w"])).toEqual([":1\r\n"]);
      expect(String(await client.readReply(respFrame))).toBe(`*2\r\n$${queue.length}\r\n${queue}\r\n$1\r\nw\r\n`);
    } finally {
      client.close();
      await short.stop();
    }
  });

  test("a blocking command or a transaction whose node stays down gets CLUSTERDOWN after the shared connections' bound: 16 retries", async () => {
    const queue = "{rbd}q";
    const { node, restore } = await takeDown(queue);
    try {
      const before = await errors(node, "CLUSTERDOWN");
      const [reply] = await viaProxy(["BLMOVE", queue, `${queue}2`, "LEFT", "RIGHT", "0"]);
      expect(reply).toStartWith("-CLUSTERDOWN ");
      expect((await errors(node, "CLUSTERDOWN")) - before).toBe(17);
    } finally {
      await restore();
    }
    // A transaction: each of its commands is refused (the node aborts it at EXEC); the client
    // gets the node's CLUSTERDOWN at EXEC, not the EXECABORT of an error it never saw.
    const again = await takeDown(queue);
    try {
      const before = await errors(again.node, "CLUSTERDOWN");
      expect(await viaProxy(["MULTI"], ["RPUSH", queue, "z"], ["EXEC"])).toEqual(["+OK\r\n", "+QUEUED\r\n", "-CLUSTERDOWN The cluster is down\r\n"]);
      expect((await errors(again.node, "CLUSTERDOWN")) - before).toBe(17);
    } finally {
      await again.restore();
    }
    // A GET the same way, on a shared connection: the same count.
    const down = await takeDown(queue);
    try {
      const before = await errors(down.node, "CLUSTERDOWN");
      expect((await viaProxy(["GET", queue]))[0]).toStartWith("-CLUSTERDOWN ");
      expect((await errors(down.node, "CLUSTERDOWN")) - before).toBe(17);
    } finally {
      await down.restore();
    }
  });

  test("a transaction whose keys a migration split gets TRYAGAIN at EXEC, and runs once the migration ends", async () => {
    const [here, gone] = ["{rtt}here", "{rtt}gone"];
    const move = await cluster.slotMove(slotOf(here));
    const { source, dest } = move;
    expect(await viaProxy(["SET", here, "old"], ["SET", gone, "old"])).toEqual(["+OK\r\n", "+OK\r\n"]);
    await move.begin();
    await cluster.call(source, "MIGRATE", dest.host, String(dest.port), gone, "0", "5000");
    const client = await RawClient.connect(endpoint);
    try {
      const before = await errors(dest, "TRYAGAIN");
      // The source ASKs (it lacks `gone`); the destination, asked, lacks `here`: TRYAGAIN at EXEC.
      // (A request pipelined behind it could run at the source first, as on any connection: it
      // reaches the node before the transaction meets ASK there.)
      await client.send(Buffer.concat([command("MULTI"), command("SET", here, "new"), command("SET", gone, "new"), command("EXEC")]));
      await untilMore(dest, "TRYAGAIN", before);
      await cluster.call(source, "MIGRATE", dest.host, String(dest.port), here, "0", "5000");
      await move.finish();
      expect((await client.readReplies(4, respFrame)).map(String)).toEqual(["+OK\r\n", "+QUEUED\r\n", "+QUEUED\r\n", "*2\r\n+OK\r\n+OK\r\n"]);
    } finally {
      client.close();
    }
    expect(await viaProxy(["GET", here], ["GET", gone])).toEqual(["$3\r\nnew\r\n", "$3\r\nnew\r\n"]);
    const retried = async (): Promise<number> => poolOf(await readStats(proxy.statsPort), "retry").cluster_retried as number;
    await eventually("the pool's count of retries to show it", async () => ((await retried()) > 0 ? true : undefined));
  });
});
