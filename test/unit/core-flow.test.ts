// The core's flow control driven without a network (test/helpers/fake-net.ts): large replies
// streamed to their client as they arrive, a client or server socket that stops taking bytes,
// a client paused when too much waits for it, requests written once per loop turn (and sooner
// once 4 KB wait), ejection after failures and the return, request timeouts, and a server whose
// address moves (also as Proxy.health() reports it).

import { describe, expect, test } from "bun:test";
import { CLIENT_MAX_QUEUED, type ClientConn } from "../../src/core/client.ts";
import { checkTimeouts } from "../../src/core/health.ts";
import type { Pool } from "../../src/core/pool.ts";
import type { ServerConn } from "../../src/core/server-conn.ts";
import { P, S } from "../../src/stats/table.ts";
import { client, fakeProxy, turn, until, type FakeNet, type FakeSocket } from "../helpers/fake-net.ts";
import { bulk, command, error, pipeline } from "../helpers/resp.ts";

const text = (b: Uint8Array): string => Buffer.from(b).toString("latin1");

function pool(settings: string): { pool: Pool; net: FakeNet } {
  const yaml =
    `p:\n  listen: 127.0.0.1:1\n  redis: true\n${settings}` +
    "  servers:\n   - 127.0.0.1:7001:1 a\n   - 127.0.0.1:7002:1 b\n";
  const { proxy, net } = fakeProxy(yaml);
  return { pool: proxy.pools[0]!, net };
}

function keyOn(p: Pool, index: number): string {
  for (let i = 0; ; i++) {
    const bytes = new TextEncoder().encode(`k${i}`);
    if (p.router!.route(bytes, 0, bytes.length) === index) return `k${i}`;
  }
}

const portOf = (p: Pool, index: number): number => p.servers[index]!.cfg.addr.port;

/** A pool, a key on its first server, and a client whose GET there has opened that server's
 *  connection: sent (and taken from the server socket), not answered. */
async function connected(): Promise<{ p: Pool; net: FakeNet; k: string; c: FakeSocket<ClientConn>; s: FakeSocket<ServerConn> }> {
  const { pool: p, net } = pool("");
  const k = keyOn(p, 0);
  const c = client(p);
  c.receive(command("GET", k));
  await turn();
  const s = net.to(portOf(p, 0))[0]!;
  s.take();
  return { p, net, k, c, s };
}

describe("streaming", () => {
  test("a large reply reaches its client before it is complete; a small one after it waits whole", async () => {
    const { pool: p, net } = pool("");
    const k = keyOn(p, 0);
    const c = client(p);
    c.receive(pipeline([["GET", k], ["GET", k]]));
    await turn();
    const s = net.to(portOf(p, 0))[0]!;
    const big = bulk("x".repeat(200_000));
    s.receive(big.subarray(0, 70_000));
    await until(() => c.writes > 0);
    const first = c.take();
    expect(first.length).toBeGreaterThan(32_768);
    expect(big.subarray(0, first.length).toString("latin1")).toBe(first);
    s.receive(big.subarray(70_000));
    s.receive(bulk("small"));
    const all = text(Buffer.concat([big, bulk("small")]));
    let got = first;
    await until(() => (got += c.take()).length >= all.length);
    expect(got).toBe(all);
    expect(p.servers[0]!.stats.counters[S.response_bytes]).toBe(big.length + bulk("small").length);
  });

  test("a server that fails mid-stream cuts the client it was streaming to", async () => {
    const { pool: p, net } = pool("");
    const c = client(p);
    c.receive(command("GET", keyOn(p, 0)));
    await turn();
    const s = net.to(portOf(p, 0))[0]!;
    s.receive(bulk("y".repeat(100_000)).subarray(0, 50_000));
    s.close();
    expect(c.terminated).toBe(true);
    expect(p.clients.size).toBe(0);
    expect(p.stats.counters[P.client_err]).toBe(1);
  });
});

describe("backpressure", () => {
  test("replies a client socket does not take wait for its drain, in order", async () => {
    const { pool: p, net } = pool("");
    const k = keyOn(p, 0);
    const c = client(p);
    c.room = 5;
    c.receive(pipeline([["GET", k], ["GET", k]]));
    await turn();
    const s = net.to(portOf(p, 0))[0]!;
    const large = bulk("z".repeat(20_000)); // past the size that is written through
    s.receive(Buffer.concat([large, bulk("after")]));
    await until(() => c.writes > 0);
    expect(c.take()).toBe(large.subarray(0, 5).toString("latin1"));
    expect(c.data.pendingOut).toBe(large.length - 5 + bulk("after").length);
    c.drain();
    expect(c.take()).toBe(large.subarray(5).toString("latin1") + text(bulk("after")));
  });

  test("a server socket that does not take requests keeps them, and sends them on drain", async () => {
    const { p, k, c, s } = await connected();
    s.room = 0;
    c.receive(pipeline([["GET", k], ["SET", k, "v"]]));
    await turn();
    expect(s.take()).toBe("");
    expect(p.servers[0]!.stats.counters[S.in_queue]).toBe(2);
    s.drain();
    expect(s.take()).toBe(text(pipeline([["GET", k], ["SET", k, "v"]])));
    expect(p.servers[0]!.stats.counters[S.in_queue]).toBe(0);
    expect(p.servers[0]!.stats.counters[S.out_queue]).toBe(3);
  });

  test("a pipeline that would owe too much is stopped mid-read: the client is paused, and resumed as replies go out", async () => {
    const { pool: p, net } = pool("");
    const k = keyOn(p, 0);
    const c = client(p);
    const n = CLIENT_MAX_QUEUED + 1;
    c.receive(pipeline(Array.from({ length: n }, () => ["GET", k])));
    expect(c.paused).toBe(true);
    const one = text(command("GET", k)).length;
    const batches: number[] = [];
    let replies = "";
    for (let answered = 0; answered < n; ) {
      await turn();
      const s = net.to(portOf(p, 0))[0]!;
      // The requests forwarded since the last batch was answered.
      const got = s.take().length / one;
      expect(got).toBeGreaterThan(0);
      s.receive(Buffer.concat(Array.from({ length: got }, () => bulk("v"))));
      batches.push(got);
      answered += got;
      replies += c.take();
    }
    // Not all at once: the rest of the read waited until replies went out (the first batch is
    // what an mbuf-sized estimate per reply allows; then the estimate has learnt the size).
    expect(batches.length).toBeGreaterThan(1);
    expect(batches[0]).toBeLessThan(n);
    await until(() => {
      replies += c.take();
      return replies.length === n * bulk("v").length;
    });
    expect(c.paused).toBe(false);
  });
});

describe("write coalescing", () => {
  test("a server's requests go out in one write per loop turn, and at once when 4 KB wait: in order, each answered", async () => {
    const { k, c, s } = await connected();
    s.receive(bulk("v"));
    await until(() => c.writes > 0);
    c.take();

    // A few requests: nothing is written before the turn ends, then one write.
    const few = pipeline(Array.from({ length: 10 }, () => ["GET", k]));
    c.receive(few);
    expect(s.writes).toBe(0);
    await turn();
    expect(s.writes).toBe(1);
    expect(s.take()).toBe(text(few));
    s.receive(Buffer.concat(Array.from({ length: 10 }, () => bulk("v"))));
    let replies = "";
    await until(() => (replies += c.take()).length === 10 * bulk("v").length);

    // One read of more than 12 KB of requests: written while the read is parsed, each time 4 KB
    // wait, the rest at the turn's end; the server gets them all, in order.
    const many = pipeline(Array.from({ length: 400 }, (_, i) => ["SET", k, `value-${i}`]));
    expect(many.length).toBeGreaterThan(12 * 1024);
    c.receive(many);
    const early = s.writes;
    expect(early).toBeGreaterThanOrEqual(3);
    await turn();
    expect(s.writes).toBe(early + 1);
    expect(s.take()).toBe(text(many));
    s.receive(Buffer.concat(Array.from({ length: 400 }, () => bulk("OK"))));
    replies = "";
    await until(() => (replies += c.take()).length === 400 * bulk("OK").length);
    expect(replies).toBe(text(Buffer.concat(Array.from({ length: 400 }, () => bulk("OK")))));
  });
});

describe("health", () => {
  test("server_failure_limit failures eject a server; its keys move; it returns after server_retry_timeout", async () => {
    const { pool: p, net } = pool("  auto_eject_hosts: true\n  server_failure_limit: 2\n  server_retry_timeout: 30\n");
    const k = keyOn(p, 0);
    const c = client(p);
    for (let i = 0; i < 2; i++) {
      c.receive(command("GET", k));
      await turn();
      net.to(portOf(p, 0)).at(-1)!.close(new Error("boom"));
    }
    // The second failure ejected it at once (no await since): a request now goes elsewhere.
    expect(p.servers[0]!.ejected).toBe(true);
    c.receive(command("GET", k));
    expect(p.stats.counters[P.server_ejects]).toBe(1);
    expect(p.servers[0]!.stats.counters[S.server_ejected_at]).toBeGreaterThan(0);
    await turn();
    const other = net.to(portOf(p, 1))[0]!;
    expect(other.take()).toBe(text(command("GET", k)));
    other.receive(bulk("elsewhere"));
    const replies = text(error("ERR boom")).repeat(2) + text(bulk("elsewhere"));
    let got = "";
    await until(() => (got += c.take()).length >= replies.length);
    expect(got).toBe(replies);
    await until(() => !p.servers[0]!.ejected, 1000);
    const bytes = new TextEncoder().encode(k);
    expect(p.router!.route(bytes, 0, bytes.length)).toBe(0);
  });

  test("Proxy.health(): each server's consecutive failures, and the address it connects to now", async () => {
    const { proxy, net } = fakeProxy(
      "p:\n  listen: 127.0.0.1:1\n  redis: true\n  auto_eject_hosts: true\n  server_failure_limit: 3\n" +
        "  servers:\n   - 127.0.0.1:7001:1 a\n   - 127.0.0.1:7002:1 b\n",
    );
    const p = proxy.pools[0]!;
    const servers = () => proxy.health()[0]!.servers;
    const c = client(p);
    c.receive(command("GET", keyOn(p, 0)));
    await turn();
    net.to(portOf(p, 0))[0]!.close(new Error("boom"));
    expect(servers()).toEqual([
      { name: "a", ejected: false, address: "127.0.0.1:7001", failures: 1 },
      { name: "b", ejected: false, address: "127.0.0.1:7002", failures: 0 },
    ]);
    p.servers[1]!.moveTo({ ...p.servers[1]!.cfg.addr, port: 7009, spec: "127.0.0.1:7009" });
    expect(servers()[1]).toEqual({ name: "b", ejected: false, address: "127.0.0.1:7009", failures: 0 });
  });

  test("a request with no reply after `timeout` closes its connection with a timeout error", async () => {
    const { pool: p, net } = pool("  timeout: 5000\n");
    const c = client(p);
    c.receive(command("GET", keyOn(p, 1)));
    await turn();
    checkTimeouts(p, performance.now());
    expect(c.writes).toBe(0);
    checkTimeouts(p, performance.now() + 10_000);
    await until(() => c.writes > 0);
    expect(c.take()).toBe(text(error("ERR Connection timed out")));
    expect(net.to(portOf(p, 1))[0]!.terminated).toBe(true);
    expect(p.servers[1]!.stats.counters[S.server_timedout]).toBe(1);
  });

  test("a server that moves: in-flight requests finish on the old address, new ones go to the new", async () => {
    const { p, net, k, c, s: old } = await connected();
    p.servers[0]!.moveTo({ ...p.servers[0]!.cfg.addr, port: 7009, spec: "127.0.0.1:7009" });
    c.receive(command("GET", k));
    await turn();
    const moved = net.to(7009)[0]!;
    expect(moved.take()).toBe(text(command("GET", k)));
    moved.receive(bulk("new"));
    old.receive(bulk("old"));
    await until(() => c.writes > 0);
    expect(c.take()).toBe(text(Buffer.concat([bulk("old"), bulk("new")])));
    expect(old.terminated).toBe(true);
  });
});
