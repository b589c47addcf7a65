// Memory no client can exhaust, against real redis and memcached: a request over
// client_max_request is refused with an error before its bytes are gathered; idle clients are
// closed after client_idle_timeout (subscribed ones are not); a subscriber that does not read
// its messages is closed past 32 MB of them; under --buffer-budget, ten
// clients sending large SET values at once each get a reply or a clear error while another
// client is served, and fifty clients that pipeline GETs of a 10 KB value and never read keep
// the proxy's RSS under the budget.
//
// The budget cases run at a tenth of the sizes (10 x 24 MB values under a 64 MB budget)
// to stay light on a shared machine; BC_HOSTILE_FULL=1 runs 10 x 300 MB under a 1 GB budget:
//   BC_HOSTILE_FULL=1 node_modules/.bin/bun test --timeout 300000 test/integration/limits.test.ts

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { once } from "node:events";
import { createConnection } from "node:net";
import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { redisCall, stopAll } from "../helpers/direct.ts";
import { RssWatch, residentBytes, sendHugeSet, silentReader, tricklers } from "../helpers/hostile.ts";
import { memcacheFrame } from "../helpers/memcache.ts";
import { freePort } from "../helpers/ports.ts";
import { TARGET } from "../helpers/proxy.ts";
import { eventually, ReloadableProxy } from "../helpers/reload.ts";
import { bulk, command, decode, pipeline, respFrame, RespError } from "../helpers/resp.ts";

setDefaultTimeout(120_000);

const FULL = process.env.BC_HOSTILE_FULL === "1";
const MB = 1024 * 1024;
/** Resident memory the collector has not reclaimed yet (chunks read and copied, outgrown
 *  buffers): the proxy collects often while over half its budget, not after every read. */
const COLLECTOR_SLACK = 64 * MB;

let redis: Backend;
let mc: Backend;
beforeAll(async () => {
  if (TARGET !== "buncracker") return;
  // Values up to 1 GB, for the full-size case.
  [redis, mc] = await Promise.all([startRedis({ args: ["--proto-max-bulk-len", "1gb"] }), startMemcached({ maxItemSize: "4m" })]);
});
afterAll(async () => {
  if (TARGET !== "buncracker") return;
  await stopAll([redis, mc].filter((b) => b !== undefined));
});

const at = (port: number) => ({ host: "127.0.0.1", port });

describe.skipIf(TARGET !== "buncracker")("client_max_request and client_idle_timeout", () => {
  let proxy: ReloadableProxy;
  const port = { redis: freePort(), mc: freePort(), idle: freePort() };

  beforeAll(async () => {
    proxy = await ReloadableProxy.start(
      poolYaml("capped", { listen: `127.0.0.1:${port.redis}`, redis: true, client_max_request: "1mb" }, [serverLine(redis.address)]) +
        poolYaml("mccapped", { listen: `127.0.0.1:${port.mc}`, client_max_request: "1mb" }, [serverLine(mc.address)]) +
        poolYaml("idle", { listen: `127.0.0.1:${port.idle}`, redis: true, client_idle_timeout: 300 }, [serverLine(redis.address)]),
    );
  });
  afterAll(() => proxy?.stop());

  test("redis: a request over the cap gets an error as soon as its size is known, and the client is closed", async () => {
    const other = await RawClient.connect(at(port.redis));
    const client = await RawClient.connect(at(port.redis));
    await client.send(pipeline([["SET", "cap:small", "x".repeat(600 * 1024)], ["GET", "cap:none"]]));
    expect((await client.readReplies(2, respFrame)).map((r) => decode(r))).toEqual(["OK", null]);
    // Only the header of a 2 MB value: the cap applies before the value arrives.
    const header = `*3\r\n$3\r\nSET\r\n$7\r\ncap:big\r\n$${2 * MB}\r\n`;
    await client.send(`${header}xxxx`);
    const refused = decode(await client.readReply(respFrame));
    expect(refused).toBeInstanceOf(RespError);
    // The size through the value's CRLF.
    const size = header.length + 2 * MB + 2;
    expect((refused as RespError).message).toBe(`ERR request of ${size} bytes or more is over client_max_request (${MB})`);
    expect(await client.closesWithin(5000)).toBe(true);
    await other.send(command("GET", "cap:small"));
    expect((decode(await other.readReply(respFrame)) as Buffer).length).toBe(600 * 1024);
    other.close();
    await eventually("the refusal counted", async () =>
      (await proxy.metric(`buncracker_pool_requests_refused_total{pool="capped"}`)) === 1 ? true : undefined,
    );
    expect(proxy.proxy.stderr()).toMatch(/client 127\.0\.0\.1:\d+ of pool 'capped': request of \d+ bytes or more is over client_max_request \(1048576\); closing it/);
    // In the stats JSON too: the pool uses a key of ours, so its document adds our counts.
    await proxy.statsWhere("the refusal", (doc) => (doc.capped as Record<string, unknown>).requests_refused === 1);
  });

  test("memcached: the same, in memcached's words", async () => {
    const client = await RawClient.connect(at(port.mc));
    await client.send(`set cap:big 0 0 ${2 * MB}\r\nxxxx`);
    expect((await client.readReply(memcacheFrame)).toString()).toStartWith("SERVER_ERROR request of ");
    expect(await client.closesWithin(5000)).toBe(true);
  });

  test("an idle client is closed after client_idle_timeout; one that keeps talking is not", async () => {
    const idle = await RawClient.connect(at(port.idle));
    const busy = await RawClient.connect(at(port.idle));
    for (let i = 0; i < 10; i++) {
      await busy.send(command("PING"));
      expect(decode(await busy.readReply(respFrame))).toBe("PONG");
      await Bun.sleep(100);
    }
    expect(busy.closed).toBe(false);
    expect(await idle.closesWithin(5000)).toBe(true);
    busy.close();
    await eventually("the idle client counted", async () =>
      (await proxy.metric(`buncracker_pool_client_idle_closed_total{pool="idle"}`)) >= 1 ? true : undefined,
    );
    expect(proxy.proxy.stderr()).toMatch(/pool 'idle': \d+ client\(s\) idle for 300 ms closed \(client_idle_timeout\), 127\.0\.0\.1:\d+ first/);
  });

  test("a subscriber that does not read its messages is closed past 32 MB of them, as redis closes its own; others are served", async () => {
    const subscriber = createConnection({ host: "127.0.0.1", port: port.redis });
    await once(subscriber, "connect");
    subscriber.write(command("SUBSCRIBE", "flood"));
    await once(subscriber, "data");
    subscriber.pause();
    // Closed with a reset (terminate): the reset is the expected end.
    subscriber.on("error", () => {});
    const closed = new Promise((resolve) => subscriber.on("close", resolve));
    const message = "m".repeat(MB);
    const closedLog = /subscriber 127\.0\.0\.1:\d+ of pool 'capped': \d+ bytes of messages unread, over 33554432; closing it/;
    // One message at a time, each once redis has handed the last one to the proxy: redis never
    // holds a backlog for the proxy's subscriber connection (past its pubsub output limit, 32 MB,
    // redis would close that connection itself, as it could under load when published at once),
    // so the backlog is the proxy's, and the proxy must close the subscriber. 64 MB is twice
    // the limit: the kernel's socket buffers cannot absorb the rest.
    for (let i = 0; i < 64 && !closedLog.test(proxy.proxy.stderr()); i++) {
      await redisCall(redis, "PUBLISH", "flood", message);
      await eventually("redis handed the message to the proxy", async () => {
        const list = String(await redisCall(redis, "CLIENT", "LIST", "TYPE", "pubsub"));
        return list.split("\n").every((l) => l.trim() === "" || / obl=0 oll=0 /.test(l)) ? true : undefined;
      });
    }
    await eventually("the subscriber closed by the proxy", () => (closedLog.test(proxy.proxy.stderr()) ? true : undefined));
    // Its subscriber connection closed with it.
    await eventually("no subscriber left on redis", async () => {
      const numsub = (await redisCall(redis, "PUBSUB", "NUMSUB", "flood")) as unknown[];
      return numsub[1] === 0 ? true : undefined;
    });
    await eventually("the slow subscriber counted", async () =>
      (await proxy.metric(`buncracker_pool_client_slow_closed_total{pool="capped"}`)) === 1 ? true : undefined,
    );
    subscriber.resume();
    await closed;
    const other = await RawClient.connect(at(port.redis));
    await other.send(command("PING"));
    expect(decode(await other.readReply(respFrame))).toBe("PONG");
    other.close();
  });

  test("a subscribed client is never idle (as with redis's timeout): it stays and gets its messages", async () => {
    const subscriber = await RawClient.connect(at(port.idle));
    const idle = await RawClient.connect(at(port.idle));
    await subscriber.send(command("SUBSCRIBE", "idle:channel"));
    expect(decode(await subscriber.readReply(respFrame))).toEqual([Buffer.from("subscribe"), Buffer.from("idle:channel"), 1]);
    // The client connected with it and idle since is closed: the timeout has passed.
    expect(await idle.closesWithin(5000)).toBe(true);
    const publisher = await RawClient.connect(at(port.idle));
    try {
      await publisher.send(command("PUBLISH", "idle:channel", "still here"));
      expect(decode(await publisher.readReply(respFrame))).toBe(1);
      expect(decode(await subscriber.readReply(respFrame))).toEqual([Buffer.from("message"), Buffer.from("idle:channel"), Buffer.from("still here")]);
      expect(subscriber.closed).toBe(false);
    } finally {
      publisher.close();
      subscriber.close();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("the buffer budget", () => {
  test(`${FULL ? "10 x 300 MB" : "10 x 24 MB"} SET values at once: each a reply or a clear error, RSS bounded, others served`, async () => {
    const budget = FULL ? 1024 * MB : 64 * MB;
    const size = FULL ? 300 * MB : 24 * MB;
    const port = freePort();
    const proxy = await ReloadableProxy.start(poolYaml("p", { listen: `127.0.0.1:${port}`, redis: true }, [serverLine(redis.address)]), {
      args: ["--buffer-budget", String(budget)],
    });
    try {
      const floor = residentBytes(proxy.proxy.pid);
      const watch = new RssWatch(proxy.proxy.pid);
      const small = await RawClient.connect(at(port));
      let served = 0;
      let sending = true;
      const smallLoop = (async () => {
        while (sending) {
          await small.send(pipeline([["SET", "small", `v${served}`], ["GET", "small"]]));
          const replies = (await small.readReplies(2, respFrame)).map((r) => decode(r));
          expect(replies).toEqual(["OK", Buffer.from(`v${served}`)]);
          served++;
        }
      })();
      const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => sendHugeSet(port, `huge${i}`, size)));
      sending = false;
      await smallLoop;
      const peak = await watch.stop();
      small.close();
      const budgetError = "-ERR request larger than the proxy's buffer budget allows";
      for (const outcome of outcomes) expect(["+OK", budgetError]).toContain(outcome);
      expect(outcomes.filter((o) => o === "+OK").length).toBeGreaterThanOrEqual(1);
      expect(outcomes.filter((o) => o === budgetError).length).toBeGreaterThanOrEqual(1);
      expect(served).toBeGreaterThan(0);
      // Within the budget over the runtime's floor, with the collector's slack; without a
      // budget this load holds every value at once (10 x size).
      expect(peak).toBeLessThan(floor + budget + COLLECTOR_SLACK);
      expect(proxy.proxy.stderr()).toContain("request larger than the proxy's buffer budget allows; closing it");
      // Every client gone: the pool's gauge of what the budget holds is back to 0 (refusals
      // happen inside another client's report: each client's share is counted once).
      await eventually("the buffered bytes back to 0", async () =>
        (await proxy.metric(`buncracker_pool_client_buffered_bytes{pool="p"}`)) === 0 ? true : undefined,
      );
    } finally {
      await proxy.stop();
    }
  });

  test("a transaction whose commands the proxy holds (keyless, before its server is known) counts in the budget: refused past it, others served", async () => {
    // Half the budget is what incomplete requests (and held transactions) may hold together.
    const budget = 32 * MB;
    const port = freePort();
    const proxy = await ReloadableProxy.start(poolYaml("p", { listen: `127.0.0.1:${port}`, redis: true }, [serverLine(redis.address)]), {
      args: ["--buffer-budget", String(budget)],
    });
    try {
      const other = await RawClient.connect(at(port));
      // Within the budget, a held transaction runs as usual.
      await other.send(pipeline([["MULTI"], ["ECHO", "x".repeat(MB)], ["SET", "tx:held", "1"], ["EXEC"]]));
      const small = (await other.readReplies(4, respFrame)).map((r) => decode(r));
      expect(small.slice(0, 3)).toEqual(["OK", "QUEUED", "QUEUED"]);
      expect((small[3] as unknown[]).length).toBe(2);
      // 40 x 1 MB of ECHO, held by the proxy until a keyed command says where the transaction
      // goes: past half the budget, the client gets the budget's error and is closed.
      const greedy = await RawClient.connect(at(port));
      const chunk = command("ECHO", "y".repeat(MB));
      await greedy.send(command("MULTI"));
      expect(decode(await greedy.readReply(respFrame))).toBe("OK");
      let queued = 0;
      let refusal: unknown = null;
      for (let i = 0; i < 40 && refusal === null; i++) {
        await greedy.send(chunk);
        const reply = decode(await greedy.readReply(respFrame));
        if (reply === "QUEUED") queued++;
        else refusal = reply;
      }
      expect(refusal).toBeInstanceOf(RespError);
      expect((refusal as RespError).message).toBe("ERR request larger than the proxy's buffer budget allows");
      expect(queued).toBeGreaterThan(0);
      expect(queued * MB).toBeLessThanOrEqual(budget / 2);
      expect(await greedy.closesWithin(5000)).toBe(true);
      // The other client is served, and what the budget holds goes back to 0.
      await other.send(command("GET", "tx:held"));
      expect(decode(await other.readReply(respFrame))).toEqual(Buffer.from("1"));
      other.close();
      await eventually("the buffered bytes back to 0", async () =>
        (await proxy.metric(`buncracker_pool_client_buffered_bytes{pool="p"}`)) === 0 ? true : undefined,
      );
    } finally {
      await proxy.stop();
    }
  });

  test("50 clients pipelining GETs of a 10 KB value and never reading: RSS under the budget over the floor, others served", async () => {
    // Below what the per-client bounds alone would allow (50 x 4 MB), so the budget is what holds.
    const budget = 128 * MB;
    const port = freePort();
    const proxy = await ReloadableProxy.start(poolYaml("p", { listen: `127.0.0.1:${port}`, redis: true }, [serverLine(redis.address)]), {
      args: ["--buffer-budget", String(budget)],
    });
    const readers: { close(): void }[] = [];
    try {
      const good = await RawClient.connect(at(port));
      const value = "v".repeat(10 * 1024);
      await good.send(command("SET", "tenk", value));
      expect(decode(await good.readReply(respFrame))).toBe("OK");
      const floor = residentBytes(proxy.proxy.pid);
      const watch = new RssWatch(proxy.proxy.pid);
      // 50 x 20,000 x 10 KB: 10 GB of replies owed, if the proxy took every request.
      for (let i = 0; i < 50; i++) readers.push(await silentReader(port, "tenk", 20_000));
      // While they wait, another client is served, with the same value.
      for (let i = 0; i < 20; i++) {
        await good.send(command("GET", "tenk"));
        expect(await good.readReply(respFrame)).toEqual(bulk(value));
        await Bun.sleep(100);
      }
      const peak = await watch.stop();
      // As above: the budget over the floor, with the collector's slack.
      expect(peak).toBeLessThan(floor + budget + COLLECTOR_SLACK);
      expect(proxy.proxy.stderr()).toContain("buffer budget reached");
      await eventually("clients paused by the budget counted", async () =>
        (await proxy.metric(`buncracker_pool_client_budget_paused_total{pool="p"}`)) > 0 ? true : undefined,
      );
      // What the budget holds, in /metrics: some clients not read now, bytes held near the budget.
      expect(await proxy.metric(`buncracker_pool_client_budget_held{pool="p"}`)).toBeGreaterThan(0);
      expect(await proxy.metric(`buncracker_pool_client_buffered_bytes{pool="p"}`)).toBeGreaterThan(budget / 2);
      expect(await proxy.metric("buncracker_buffer_budget_bytes")).toBe(budget);
      good.close();
      for (const r of readers) r.close();
      // Once they are gone, nothing is held.
      await eventually("the budget gauges back to 0", async () =>
        (await proxy.metric(`buncracker_pool_client_budget_held{pool="p"}`)) === 0 &&
        (await proxy.metric(`buncracker_pool_client_buffered_bytes{pool="p"}`)) === 0
          ? true
          : undefined,
      );
    } finally {
      for (const r of readers) r.close();
      await proxy.stop();
    }
  });

  test("1,000 clients sending one byte at a time: each holds only its bytes, everyone else is served", async () => {
    const port = freePort();
    const proxy = await ReloadableProxy.start(poolYaml("p", { listen: `127.0.0.1:${port}`, redis: true }, [serverLine(redis.address)]));
    try {
      const good = await RawClient.connect(at(port));
      await good.send(command("SET", "trickle", "t"));
      expect(decode(await good.readReply(respFrame))).toBe("OK");
      const floor = residentBytes(proxy.proxy.pid);
      const watch = new RssWatch(proxy.proxy.pid);
      // A 27-byte GET, one byte every 100 ms from each of 1,000 clients: about 3 s.
      const slow = tricklers(port, 1000, command("GET", "trickle"), 100, respFrame);
      let rounds = 0;
      let finished = false;
      void slow.finally(() => (finished = true));
      while (!finished) {
        await good.send(pipeline([["SET", "fast", `f${rounds}`], ["GET", "fast"]]));
        expect((await good.readReplies(2, respFrame)).map((r) => decode(r))).toEqual(["OK", Buffer.from(`f${rounds}`)]);
        rounds++;
        await Bun.sleep(10);
      }
      const replies = await slow;
      expect(replies.every((r) => r.equals(bulk("t")))).toBe(true);
      // The good client went on all along: many round trips while the others trickled.
      expect(rounds).toBeGreaterThan(20);
      expect((await watch.stop()) - floor).toBeLessThan(64 * MB);
      good.close();
    } finally {
      await proxy.stop();
    }
  });
});
