// Blocking commands through a redis pool of three real redis-servers (issue 17): they wait on
// connections of their own, so 50 clients blocked in BLPOP do not hold up 50 others running GET
// on the same pool; each blocked client then gets exactly the one element pushed for it; the
// pool's request timeout does not cut a blocking command short of its own timeout; a client
// that disconnects while blocked leaves no upstream connection behind (CLIENT LIST); a server
// that stops answering fails what waits on a client's own connections once the timeouts pass.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { spread } from "../helpers/random.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { blocked, clientList } from "../helpers/client-list.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { stopAll } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { parseExposition } from "../helpers/prometheus.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { eventually, placer } from "../helpers/reload.ts";
import { bulk, command, decode, pipeline, RespError, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

let backends: Backend[] = [];
let proxy: RunningProxy;
let pool: Endpoint;
let bounded: Endpoint;
let serverOf: (key: string) => string;
const metricsPort = freePort();

/** The blocking pool's dedicated connections per server, from /metrics. */
async function dedicatedMetric(): Promise<number[]> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const family = parseExposition(text).get("buncracker_server_dedicated_connections");
  if (family === undefined) throw new Error("no buncracker_server_dedicated_connections in /metrics");
  return backends.map((b) => family.samples.find((x) => x.labels["pool"] === "blocking" && x.labels["server"] === b.address)?.value ?? NaN);
}

beforeAll(async () => {
  backends = await Promise.all([startRedis(), startRedis(), startRedis()]);
  const servers = backends.map((b) => serverLine(b.address));
  const yaml = [
    poolYaml("blocking", { listen: `127.0.0.1:${freePort()}`, redis: true, timeout: 400 }, servers),
    poolYaml("bounded", { listen: `127.0.0.1:${freePort()}`, redis: true, hash_tag: "{}", redis_dedicated_connections: 2 }, servers),
  ].join("");
  proxy = await startProxy(TARGET, yaml, TARGET === "buncracker" ? { args: ["--metrics-port", String(metricsPort)] } : {});
  pool = proxy.pools.blocking!;
  bounded = proxy.pools.bounded!;
  serverOf = placer(yaml, "blocking");
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll(backends);
});

const blockedUpstream = async (): Promise<number> =>
  (await Promise.all(backends.map(async (b) => blocked(await clientList(b)).length))).reduce((a, b) => a + b, 0);

describe.skipIf(TARGET !== "buncracker")("blocking commands", () => {
  test("50 clients blocked in BLPOP, 50 others GET at full speed; then each blocked client gets exactly its element", async () => {
    const queues = Array.from({ length: 50 }, (_, i) => `queue:${spread(i)}`);
    expect(new Set(queues.map(serverOf)).size).toBe(3);
    const waiters = await Promise.all(queues.map(() => RawClient.connect(pool)));
    await Promise.all(waiters.map((w, i) => w.send(command("BLPOP", queues[i]!, "0"))));
    await eventually("50 clients blocked on the servers", async () => ((await blockedUpstream()) === 50 ? true : undefined));

    // 50 clients, each 20 rounds of a 10-GET pipeline, while the 50 wait.
    const readers = await Promise.all(Array.from({ length: 50 }, () => RawClient.connect(pool)));
    await Promise.all(
      readers.map(async (r, i) => {
        for (let round = 0; round < 20; round++) {
          await r.send(pipeline(Array.from({ length: 10 }, (_, k) => ["GET", `g:${i}:${k}`])));
          const replies = await r.readReplies(10, respFrame);
          for (const reply of replies) expect(reply.toString()).toBe("$-1\r\n");
        }
      }),
    );
    // Nobody was answered while the lists were empty.
    for (const w of waiters) expect(w.buffered.length).toBe(0);

    const pusher = await RawClient.connect(pool);
    await pusher.send(pipeline(queues.map((q) => ["RPUSH", q, `item-${q}`])));
    expect((await pusher.readReplies(50, respFrame)).map(String)).toEqual(queues.map(() => ":1\r\n"));
    const got = await Promise.all(waiters.map(async (w) => (await w.readReplies(1, respFrame))[0]!.toString()));
    expect(got).toEqual(queues.map((q) => `*2\r\n${bulk(q)}${bulk(`item-${q}`)}`));
    // Exactly one each: the lists are empty, and nothing more arrives.
    await pusher.send(pipeline(queues.map((q) => ["LLEN", q])));
    expect((await pusher.readReplies(50, respFrame)).map(String)).toEqual(queues.map(() => ":0\r\n"));
    for (const w of waiters) {
      await w.send(command("PING"));
      expect((await w.readReplies(1, respFrame))[0]!.toString()).toBe("+PONG\r\n");
    }
    for (const c of [...waiters, ...readers, pusher]) c.close();
  });

  test("the pool's request timeout (400 ms) does not cut a 1 s BLPOP short: it ends with its own nil", async () => {
    const client = await RawClient.connect(pool);
    await client.send(Buffer.concat([command("BRPOP", "empty:a", "empty:a", "1"), command("BLMOVE", "empty:b", "empty:c", "LEFT", "RIGHT", "0.6")]));
    expect((await client.readReplies(2, respFrame)).map(String)).toEqual(["*-1\r\n", "*-1\r\n"]);
    client.close();
  });

  test("after WATCH, a BLPOP on the transaction's connection also waits its own timeout, and the watch holds", async () => {
    const client = await RawClient.connect(pool);
    // WATCH pins the client to the key's server: BLPOP of a key there goes on that connection.
    await client.send(pipeline([["WATCH", "watched:a"], ["BLPOP", "watched:a", "1"], ["MULTI"], ["SET", "watched:a", "1"], ["EXEC"]]));
    expect((await client.readReplies(5, respFrame)).map(String)).toEqual(["+OK\r\n", "*-1\r\n", "+OK\r\n", "+QUEUED\r\n", "*1\r\n+OK\r\n"]);
    client.close();
  });

  test("a server that stops answering: a blocking request fails once the pool's timeout and its own have passed, a transaction once the pool's has, a subscriber is disconnected; a BLPOP with no timeout of its own waits", async () => {
    const redis = await startRedis();
    const frozen = await startProxy(TARGET, poolYaml("frozen", { listen: `127.0.0.1:${freePort()}`, redis: true, timeout: 300 }, [serverLine(redis.address)]));
    try {
      const endpoint = frozen.pools.frozen!;
      const [blocker, forever, subscriber, tx] = await Promise.all([0, 1, 2, 3].map(() => RawClient.connect(endpoint)));
      await redis.process.freeze();
      await blocker.send(command("BLPOP", "frozen:a", "0.5"));
      await forever.send(command("BLPOP", "frozen:b", "0"));
      await subscriber.send(command("SUBSCRIBE", "frozen:c"));
      await tx.send(Buffer.concat([command("MULTI"), command("SET", "frozen:d", "1"), command("EXEC")]));
      const timedOut = "-ERR Connection timed out\r\n";
      expect((await blocker.readReplies(1, respFrame)).map(String)).toEqual([timedOut]);
      // A subscriber whose subscriber connection failed is disconnected (it would wait for ever).
      expect((await subscriber.readRepliesOrClose(1, respFrame)).closed).toBe(true);
      expect((await tx.readReplies(3, respFrame)).map(String)).toEqual(["+OK\r\n", timedOut, timedOut]);
      // The pool's timeout passed many times over by now (0.5 s + 300 ms): BLPOP 0 still waits.
      redis.process.signal("SIGCONT");
      await redis.process.stop(); // the blocked BLPOP's connection closes: now it fails
      expect(String((await forever.readReplies(1, respFrame))[0]).startsWith("-ERR")).toBe(true);
      for (const c of [blocker, forever, subscriber, tx]) c.close();
    } finally {
      await frozen.stop();
      await redis.stop();
    }
  });

  test("a BLPOP that waits where its key went while its server was ejected fails once the server is back; asked again, it waits there", async () => {
    const [x, y] = await Promise.all([startRedis(), startRedis()]);
    const yaml = poolYaml(
      "ejecting",
      { listen: `127.0.0.1:${freePort()}`, redis: true, auto_eject_hosts: true, server_failure_limit: 1, server_retry_timeout: 1000 },
      [x, y].map((b) => serverLine(b.address)),
    );
    const ejecting = await startProxy(TARGET, yaml);
    const [asker, waiter] = await Promise.all([0, 1].map(() => RawClient.connect(ejecting.pools.ejecting!)));
    try {
      const place = placer(yaml, "ejecting");
      const key = Array.from({ length: 100 }, (_, i) => `eject.q.${spread(i)}`).find((k) => place(k) === y.address)!;
      await y.kill();
      // Refused once: ejected, its keys go to x.
      await eventually("y ejected, its key served by x", async () => {
        await asker.send(command("LLEN", key));
        return decode(await asker.readReply(respFrame)) === 0 ? true : undefined;
      });
      await waiter.send(command("BLPOP", key, "0"));
      await eventually("the BLPOP blocked on x", async () => (blocked(await clientList(x)).length === 1 ? true : undefined));
      await y.restart();
      // Back in the pool, y gets the key's pushes: waiting on x, the BLPOP would never be answered.
      const reply = decode(await waiter.readReply(respFrame));
      expect(reply instanceof RespError ? reply.message : reply).toBe(`ERR its keys moved off server ${x.address}:1`);
      await waiter.send(command("BLPOP", key, "0"));
      await eventually("the BLPOP blocked on y", async () => (blocked(await clientList(y)).length === 1 ? true : undefined));
      await asker.send(command("RPUSH", key, "job"));
      expect(decode(await asker.readReply(respFrame))).toBe(1);
      expect(decode(await waiter.readReply(respFrame))).toEqual([Buffer.from(key), Buffer.from("job")]);
    } finally {
      asker.close();
      waiter.close();
      await ejecting.stop();
      await stopAll([x, y]);
    }
  });

  test("every blocking command of the table is served", async () => {
    const client = await RawClient.connect(pool);
    const requests = [
      ["RPUSH", "bl:list", "a", "b", "c", "d"],
      ["BLPOP", "bl:list", "1"],
      ["BRPOP", "bl:list", "1"],
      ["BRPOPLPUSH", "bl:list", "bl:list", "1"],
      ["BLMPOP", "1", "1", "bl:list", "LEFT"],
      ["ZADD", "bl:z", "1", "x", "2", "y", "3", "z"],
      ["BZPOPMIN", "bl:z", "1"],
      ["BZPOPMAX", "bl:z", "1"],
      ["BZMPOP", "1", "1", "bl:z", "MIN"],
      ["XADD", "bl:s", "1-1", "f", "v"],
      ["XREAD", "BLOCK", "100", "STREAMS", "bl:s", "0"],
    ];
    await client.send(pipeline(requests));
    const replies = (await client.readReplies(requests.length, respFrame)).map(decode);
    expect(replies.map((r) => (r instanceof RespError ? r.message : "ok"))).toEqual(requests.map(() => "ok"));
    client.close();
  });

  test("a client that disconnects while blocked leaves no upstream connection behind", async () => {
    await eventually("nothing blocked", async () => ((await blockedUpstream()) === 0 ? true : undefined));
    const clients = await Promise.all(Array.from({ length: 5 }, () => RawClient.connect(pool)));
    await Promise.all(clients.map((c, i) => c.send(command("BLPOP", `gone:${i}`, "0"))));
    await eventually("5 blocked", async () => ((await blockedUpstream()) === 5 ? true : undefined));
    // Client ids are per server: "server:id".
    const ids = (await Promise.all(backends.map(async (b, s) => blocked(await clientList(b)).map((c) => `${s}:${c["id"]}`)))).flat();
    expect(ids.length).toBe(5);
    // Counted per server in the metrics: at least the blocked ones (idle ones kept for reuse
    // count too), and exactly those fewer once they closed with their clients.
    const counted = await dedicatedMetric();
    const blockedOn = backends.map((_, s) => ids.filter((id) => id.startsWith(`${s}:`)).length);
    for (let s = 0; s < 3; s++) expect(counted[s]!).toBeGreaterThanOrEqual(blockedOn[s]!);
    for (const c of clients) c.close();
    await eventually("the blocked connections closed", async () => {
      const left = (await Promise.all(backends.map(async (b, s) => (await clientList(b)).map((c) => `${s}:${c["id"]}`)))).flat();
      return ids.some((id) => left.includes(id)) ? undefined : true;
    });
    const after = await eventually("the metrics updated", async () => {
      const now = await dedicatedMetric();
      return now.every((n, s) => n === counted[s]! - blockedOn[s]!) ? now : undefined;
    });
    expect(after.reduce((a, b) => a + b, 0)).toBe(counted.reduce((a, b) => a + b, 0) - 5);
  });

  test("dedicated connections are bounded (redis_dedicated_connections) and reused", async () => {
    const tag = "{one}";
    const a = await RawClient.connect(bounded);
    const b = await RawClient.connect(bounded);
    const c = await RawClient.connect(bounded);
    await a.send(command("BLPOP", `${tag}a`, "0"));
    await b.send(command("BLPOP", `${tag}b`, "0"));
    await eventually("2 blocked", async () => ((await blockedUpstream()) === 2 ? true : undefined));
    await c.send(command("BLPOP", `${tag}c`, "0"));
    const [refused] = await c.readReplies(1, respFrame);
    expect(refused!.toString()).toContain("redis_dedicated_connections");
    const pusher = await RawClient.connect(bounded);
    await pusher.send(command("RPUSH", `${tag}a`, "1"));
    await pusher.readReplies(1, respFrame);
    await a.readReplies(1, respFrame);
    // a's connection is free again: c's BLPOP gets it.
    const countBefore = (await Promise.all(backends.map(async (s) => (await clientList(s)).length))).reduce((x, y) => x + y, 0);
    await c.send(command("BLPOP", `${tag}c`, "0"));
    await eventually("c blocked", async () => ((await blockedUpstream()) === 2 ? true : undefined));
    const countAfter = (await Promise.all(backends.map(async (s) => (await clientList(s)).length))).reduce((x, y) => x + y, 0);
    expect(countAfter).toBe(countBefore);
    for (const x of [a, b, c, pusher]) x.close();
  });
});
