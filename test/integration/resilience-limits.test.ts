// Limits and bad neighbours: client_connections, the process's open-file limit, slow consumers
// (a client that pipelines without reading, a backend that stops reading: memory stays bounded
// and nothing is lost once things resume), and garbage on one client never reaching the replies
// of another client multiplexed on the same server connection.

import { describe, expect, test } from "bun:test";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { mutate as mutateMemcache, validRequest as memcacheRequest } from "../fuzz/memcache.fuzz.ts";
import { mutate as mutateRedis, randomRequest as redisRequest, Rng } from "../fuzz/redis.fuzz.ts";
import { expectReplies, latin1 } from "../helpers/assertions.ts";
import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint, type Framer } from "../helpers/client.ts";
import { poolYaml, serverLine, type Setting } from "../helpers/config.ts";
import { testDeliberate } from "../helpers/deliberate.ts";
import { redisCall } from "../helpers/direct.ts";
import { rssBytes, startLimitedProxy } from "../helpers/fault.ts";
import { Flood } from "../helpers/fault-flood.ts";
import { memcacheFrame } from "../helpers/memcache.ts";
import { memcacheWorkload } from "../helpers/memcache-workload.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET } from "../helpers/proxy.ts";
import { makeRng } from "../helpers/random.ts";
import { redisWorkload } from "../helpers/redis-workload.ts";
import { bulk, command, OK, respFrame } from "../helpers/resp.ts";
import { stopAfterEach } from "../helpers/track.ts";

const track = stopAfterEach();

const listen = (): string => `127.0.0.1:${freePort()}`;
const pool = (name: string, redis: boolean, servers: Backend[], settings: Record<string, Setting> = {}): string =>
  poolYaml(name, { listen: listen(), redis, ...settings }, servers.map((s) => serverLine(s.address)));
const MB = 1 << 20;

describe("client_connections", () => {
  const full = {
    redis: Buffer.from("-ERR max client connections reached\r\n"),
    memcache: Buffer.from("SERVER_ERROR max client connections reached\r\n"),
  };

  let refusals = 0;

  /** `n` clients the proxy accepted (each got a reply). A client that closed just before may not
   *  have been noticed yet (the proxy's own startup probe, say): a refused one is retried. */
  async function fill(endpoint: Endpoint, n: number, ping: Buffer, framer: Framer, refused: Buffer): Promise<RawClient[]> {
    const clients: RawClient[] = [];
    for (let attempt = 0; clients.length < n; attempt++) {
      if (attempt > 100) throw new Error(`only ${clients.length} of ${n} clients accepted`);
      const c = await RawClient.connect(endpoint);
      await c.send(ping).catch(() => {});
      const [reply] = (await c.readRepliesOrClose(1, framer)).replies;
      if (reply !== undefined && !reply.equals(refused)) clients.push(c);
      else {
        refusals++;
        c.close();
        await Bun.sleep(20);
      }
    }
    return clients;
  }

  testDeliberate("over the limit: an error reply, then closed; a slot that frees up is reusable", {
    buncracker: async () => {
      const [r, m] = await Promise.all([track(startRedis()), track(startMemcached())]);
      const metricsPort = freePort();
      const yaml = pool("r", true, [r], { client_connections: 3 }) + pool("m", false, [m], { client_connections: 2 });
      const proxy = await track(startProxy(TARGET, yaml, { args: ["--metrics-port", String(metricsPort)] }));
      const cases = [
        { endpoint: proxy.pools.r!, limit: 3, ping: command("PING"), framer: respFrame, refused: full.redis },
        { endpoint: proxy.pools.m!, limit: 2, ping: Buffer.from("version\r\n"), framer: memcacheFrame, refused: full.memcache },
      ];
      for (const [name, { endpoint, limit, ping, framer, refused }] of cases.entries()) {
        refusals = 0;
        const clients = await fill(endpoint, limit, ping, framer, refused);
        const extra = await RawClient.connect(endpoint);
        expect(await extra.readUntilClose()).toEqual(refused);
        refusals++;
        clients.pop()!.close();
        // The proxy sees the close a moment later; until then a newcomer may still be refused.
        let again: RawClient;
        for (let attempt = 0; ; attempt++) {
          if (attempt > 250) throw new Error("a freed slot was never reusable (refused for 5 s)");
          again = await RawClient.connect(endpoint);
          await again.send(ping).catch(() => {});
          const [reply] = (await again.readRepliesOrClose(1, framer)).replies;
          if (reply !== undefined && !reply.equals(refused)) break;
          expect(await again.closesWithin(5000)).toBe(true);
          refusals++;
          await Bun.sleep(20);
        }
        for (const c of [...clients, again]) {
          await c.send(ping);
          await c.readReply(framer);
          c.close();
        }
        // Counted (in the Prometheus metrics: twemproxy's stats JSON has no such counter).
        const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        const counted = new RegExp(`^buncracker_pool_client_refused_total\\{pool="${["r", "m"][name]}"\\} (\\d+)$`, "m").exec(metrics);
        expect(Number(counted?.[1])).toBe(refusals);
      }
    },
    nutcracker: async () => {
      // nutcracker 0.5.0 parses client_connections and ignores it.
      const r = await track(startRedis());
      const proxy = await track(startProxy(TARGET, pool("r", true, [r], { client_connections: 3 })));
      const clients = await fill(proxy.pools.r!, 5, command("PING"), respFrame, full.redis);
      for (const c of clients) c.close();
    },
  }, 30_000);

  test("past the open-file limit: clients are refused, none hangs, the proxy keeps serving", async () => {
    const r = await track(startRedis());
    // 256 descriptors: the proxy can hold some clients, not 400.
    const proxy = await track(startLimitedProxy(TARGET, pool("r", true, [r]), 256));
    const endpoint = proxy.pools.r!;
    const clients = await Promise.all(Array.from({ length: 400 }, () => RawClient.connect(endpoint)));
    const outcomes = await Promise.all(
      clients.map(async (c, i) => {
        await c.send(command("SET", `fd:${i}`, "v")).catch(() => {});
        const { replies, closed } = await c.readRepliesOrClose(1, respFrame);
        // Refused: ours says why, then closes; nutcracker closes without a word.
        if (TARGET === "nutcracker" && closed && replies.length === 0) return "refused";
        if (replies.length === 1 && latin1(replies[0]!) === "-ERR max client connections reached\r\n") {
          return (await c.closesWithin(5000)) ? "refused" : "refused, left open";
        }
        if (!closed && replies[0]!.equals(OK)) return "ok";
        return `${closed ? "closed after" : "got"} ${JSON.stringify(replies.map(latin1))}`;
      }),
    );
    const count = (what: string) => outcomes.filter((o) => o === what).length;
    expect(outcomes.filter((o) => o !== "ok" && o !== "refused")).toEqual([]);
    expect(count("ok")).toBeGreaterThan(100);
    expect(count("refused")).toBeGreaterThan(0);
    for (const c of clients) c.close();
    expect(proxy.process.running).toBe(true);
    // Once they are gone, their descriptors are back: 100 new clients are all served.
    for (let attempt = 0; ; attempt++) {
      const again = await Promise.all(Array.from({ length: 100 }, () => RawClient.connect(endpoint)));
      const replies = await Promise.all(
        again.map(async (c) => {
          await c.send(command("GET", "fd:0")).catch(() => {});
          return (await c.readRepliesOrClose(1, respFrame)).replies[0];
        }),
      );
      for (const c of again) c.close();
      if (replies.every((rep) => rep !== undefined && rep[0] === 0x24)) break;
      if (attempt === 20) throw new Error("the proxy did not get its descriptors back");
      await Bun.sleep(100);
    }
  }, 60_000);
});

describe("slow consumers", () => {
  const REPLY_BOUND = 128 * MB;

  testDeliberate("a client that pipelines without reading: the proxy stops reading it, memory stays bounded, every reply arrives", {
    buncracker: async () => {
      const r = await track(startRedis());
      const proxy = await track(startProxy(TARGET, pool("r", true, [r])));
      const value = Buffer.alloc(1024, "x");
      await redisCall(r, "SET", "big", value);
      const batch = Buffer.concat(Array.from({ length: 100 }, () => command("GET", "big")));
      const flood = await Flood.connect(proxy.pools.r!, bulk(value));
      const base = rssBytes(proxy.pid);
      flood.stopReading();
      // Far more replies than the bound would hold, if the proxy kept reading.
      const stalled = await flood.pushUntilStalled(() => batch, 1000, 64 * MB);
      expect(stalled).toBe(true);
      const owed = flood.requests * 100 * bulk(value).length;
      const growth = rssBytes(proxy.pid) - base;
      expect(owed).toBeGreaterThan(REPLY_BOUND);
      expect(growth).toBeLessThan(REPLY_BOUND / 2);
      flood.startReading();
      await flood.finish();
      await flood.readReplies(flood.requests * 100, 60_000);
      expect(flood.replies).toBe(flood.requests * 100);
      flood.close();
    },
  }, 90_000);

  testDeliberate("a backend that stops reading: the proxy stops reading the client, memory stays bounded, nothing is lost", {
    buncracker: async () => {
      const r = await track(startRedis());
      const proxy = await track(startProxy(TARGET, pool("r", true, [r])));
      const value = Buffer.alloc(64 * 1024, "y");
      let n = 0;
      const flood = await Flood.connect(proxy.pools.r!, OK);
      await redisCall(r, "PING");
      const base = rssBytes(proxy.pid);
      await r.process.freeze();
      try {
        // The proxy stops taking requests long before 512 MB: it holds what it forwarded.
        expect(await flood.pushUntilStalled(() => command("SET", `slow:${n++}`, value), 1000, 512 * MB)).toBe(true);
        expect(flood.bytesSent).toBeLessThan(128 * MB);
        expect(rssBytes(proxy.pid) - base).toBeLessThan(128 * MB);
      } finally {
        r.process.signal("SIGCONT");
      }
      await flood.finish();
      await flood.readReplies(flood.requests, 60_000);
      expect(flood.replies).toBe(flood.requests);
      expect(await redisCall(r, "DBSIZE")).toBe(flood.requests);
      expect(await redisCall(r, "GET", `slow:${flood.requests - 1}`)).toEqual(value);
      flood.close();
    },
  }, 60_000);
});

describe("garbage on one client never reaches another on the same server connection", () => {
  /** Keeps sending `make()` garbage on fresh connections (the proxy closes some) until stop(). */
  async function garbage(endpoint: Endpoint, make: () => Uint8Array, stop: () => boolean): Promise<number> {
    let sent = 0;
    while (!stop()) {
      const c = await RawClient.connect(endpoint);
      for (let i = 0; i < 20 && !c.closed && !stop(); i++) {
        await c.send(make()).catch(() => {});
        sent++;
        await Bun.sleep(1);
      }
      c.close();
    }
    return sent;
  }

  async function victim(endpoint: Endpoint, requests: Buffer[], expected: Buffer[], labels: string[], framer: Framer, replies: (r: Buffer) => number): Promise<void> {
    const c = await RawClient.connect(endpoint);
    const got: Buffer[] = [];
    for (let at = 0; at < requests.length; at += 50) {
      const batch = requests.slice(at, at + 50);
      await c.send(Buffer.concat(batch));
      got.push(...(await c.readReplies(batch.reduce((n, r) => n + replies(r), 0), framer)));
    }
    c.close();
    expectReplies(got, expected, labels);
  }

  test("redis", async () => {
    const r = await track(startRedis());
    const proxy = await track(startProxy(TARGET, pool("g", true, [r], { server_connections: 1 })));
    const work = redisWorkload(81, 3000, "victim:");
    const rng = new Rng(82);
    const w = new ByteWriter(1024);
    const make = (): Uint8Array => {
      w.reset();
      for (let n = 1 + rng.int(3); n > 0; n--) {
        const from = w.len;
        redisRequest(rng, w);
        if (rng.chance(0.5)) {
          const damaged = mutateRedis(rng, w.buf.slice(from, w.len));
          w.len = from;
          w.bytes(damaged);
        }
      }
      return w.buf.slice(0, w.len);
    };
    let done = false;
    const noise = [0, 1, 2].map(() => garbage(proxy.pools.g!, make, () => done));
    try {
      await victim(proxy.pools.g!, work.requests, work.expected, work.labels, respFrame, () => 1);
    } finally {
      done = true;
    }
    expect((await Promise.all(noise)).reduce((a, b) => a + b)).toBeGreaterThan(50);
    expect(proxy.process.running).toBe(true);
  }, 60_000);

  test("memcached", async () => {
    const m = await track(startMemcached());
    const proxy = await track(startProxy(TARGET, pool("g", false, [m], { server_connections: 1 })));
    const work = memcacheWorkload(91, 3000, "victim:");
    const rng = makeRng(92);
    const make = (): Uint8Array => {
      const parts: Uint8Array[] = [];
      for (let n = 1 + rng.int(3); n > 0; n--) {
        const kind = rng.int(10);
        if (kind < 3) parts.push(memcacheRequest(rng));
        else if (kind < 9) parts.push(mutateMemcache(rng, memcacheRequest(rng)));
        else parts.push(rng.bytes(rng.int(64)));
      }
      return Buffer.concat(parts);
    };
    const hasReply = (req: Buffer): number => (/ noreply\r\n/.test(req.toString("latin1", 0, req.indexOf("\r\n") + 2)) ? 0 : 1);
    let done = false;
    const noise = [0, 1, 2].map(() => garbage(proxy.pools.g!, make, () => done));
    try {
      await victim(proxy.pools.g!, work.requests, work.expected, work.labels, memcacheFrame, hasReply);
    } finally {
      done = true;
    }
    expect((await Promise.all(noise)).reduce((a, b) => a + b)).toBeGreaterThan(50);
    expect(proxy.process.running).toBe(true);
  }, 60_000);
});
