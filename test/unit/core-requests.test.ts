// The core driven without a network (test/helpers/fake-net.ts): real Proxy, Pool, dispatcher,
// codecs and connections; the servers are fake sockets answered by hand. Reply order whatever
// order servers answer in, split requests and their merged replies, local replies, preambles,
// memcached joined lines, and the errors a failed connection leaves.

import { describe, expect, test } from "bun:test";
import type { Pool } from "../../src/core/pool.ts";
import { P, S } from "../../src/stats/table.ts";
import { client, fakeProxy, turn, until, type FakeNet } from "../helpers/fake-net.ts";
import { line, retrieval, valueBlock } from "../helpers/memcache.ts";
import { array, bulk, command, error, integer, OK, pipeline } from "../helpers/resp.ts";

const text = (b: Uint8Array): string => Buffer.from(b).toString("latin1");

function pool(settings: string, protocol: "redis" | "memcache" = "redis"): { pool: Pool; net: FakeNet } {
  const yaml =
    `p:\n  listen: 127.0.0.1:1\n${protocol === "redis" ? "  redis: true\n" : ""}${settings}` +
    "  servers:\n   - 127.0.0.1:7001:1 a\n   - 127.0.0.1:7002:1 b\n   - 127.0.0.1:7003:1 c\n";
  const { proxy, net } = fakeProxy(yaml);
  return { pool: proxy.pools[0]!, net };
}

/** A key the pool routes to server `index`. */
function keyOn(p: Pool, index: number, not: string[] = []): string {
  for (let i = 0; ; i++) {
    const key = `k${i}`;
    const bytes = new TextEncoder().encode(key);
    if (p.router!.route(bytes, 0, bytes.length) === index && !not.includes(key)) return key;
  }
}

const portOf = (p: Pool, index: number): number => p.servers[index]!.cfg.addr.port;

describe("redis", () => {
  test("replies go out in request order, whatever order the servers answer in", async () => {
    const { pool: p, net } = pool("");
    const [k0, k1] = [keyOn(p, 0), keyOn(p, 1)];
    const c = client(p);
    c.receive(pipeline([["GET", k0], ["GET", k1], ["PING"]]));
    await turn();
    const [s0, s1] = [net.to(portOf(p, 0))[0]!, net.to(portOf(p, 1))[0]!];
    expect([s0.take(), s1.take()]).toEqual([text(command("GET", k0)), text(command("GET", k1))]);
    s1.receive(bulk("second"));
    await turn();
    expect(c.take()).toBe("");
    s0.receive(bulk("first"));
    await until(() => c.writes > 0);
    expect(c.take()).toBe(text(Buffer.concat([bulk("first"), bulk("second"), Buffer.from("+PONG\r\n")])));
    expect(p.stats.counters[P.requests_local]).toBe(1);
  });

  test("a multi-key request is split by server and its replies merged in key order", async () => {
    const { pool: p, net } = pool("");
    const [a, b, c2] = [keyOn(p, 0), keyOn(p, 1), keyOn(p, 0, [keyOn(p, 0)])];
    const c = client(p);
    c.receive(command("MGET", a, b, c2));
    await turn();
    const [s0, s1] = [net.to(portOf(p, 0))[0]!, net.to(portOf(p, 1))[0]!];
    expect(s0.take()).toBe(text(command("MGET", a, c2)));
    expect(s1.take()).toBe(text(command("MGET", b)));
    s1.receive(array([bulk("B")]));
    s0.receive(array([bulk("A"), bulk(null)]));
    await until(() => c.writes > 0);
    expect(c.take()).toBe(text(array([bulk("A"), bulk("B"), bulk(null)])));
    expect(p.stats.counters[P.fragments]).toBe(2);
    // DEL sums, MSET answers OK.
    c.receive(pipeline([["DEL", a, b], ["MSET", a, "1", b, "2"]]));
    await turn();
    s0.receive(Buffer.concat([integer(1), OK]));
    s1.receive(Buffer.concat([integer(0), OK]));
    await until(() => c.writes > 0);
    expect(c.take()).toBe(text(Buffer.concat([integer(1), OK])));
  });

  test("split requests whose fragments are all in before an earlier reply wait their turn, then merge", async () => {
    const { pool: p, net } = pool("");
    const [a, b, k2] = [keyOn(p, 0), keyOn(p, 1), keyOn(p, 2)];
    const c = client(p);
    c.receive(pipeline([["GET", k2], ["MGET", a, b], ["MSET", a, "1", b, "2"], ["DEL", a, b], ["MGET", b, a]]));
    await turn();
    const [s0, s1, s2] = [0, 1, 2].map((i) => net.to(portOf(p, i))[0]!);
    s0.receive(Buffer.concat([array([bulk("A")]), OK, integer(1), array([bulk(null)])]));
    s1.receive(Buffer.concat([array([bulk(null)]), OK, integer(1), array([bulk("B")])]));
    await turn();
    expect(c.take()).toBe("");
    s2.receive(bulk("first"));
    await until(() => c.writes > 0);
    const merged = [bulk("first"), array([bulk("A"), bulk(null)]), OK, integer(2), array([bulk("B"), bulk(null)])];
    expect(c.take()).toBe(text(Buffer.concat(merged)));
    expect(p.stats.counters[P.fragments]).toBe(8);
  });

  test("AUTH and NOAUTH are the proxy's; the servers get AUTH and SELECT first, and their replies are swallowed", async () => {
    const { pool: p, net } = pool("  redis_auth: pw\n  redis_db: 2\n");
    const k = keyOn(p, 0);
    const c = client(p);
    c.receive(pipeline([["GET", k], ["AUTH", "wrong"], ["AUTH", "pw"], ["GET", k]]));
    await turn();
    const s0 = net.to(portOf(p, 0))[0]!;
    expect(s0.take()).toBe(text(Buffer.concat([command("AUTH", "pw"), command("SELECT", "2"), command("GET", k)])));
    s0.receive(Buffer.concat([OK, OK, bulk("v")]));
    await until(() => c.writes > 0);
    expect(c.take()).toBe(
      text(Buffer.concat([error("NOAUTH Authentication required"), error("ERR invalid password"), OK, bulk("v")])),
    );
  });

  test("a connection that fails fails every request on it, in order, and counts toward the server's health", async () => {
    const { pool: p, net } = pool("");
    const [k0, k1] = [keyOn(p, 0), keyOn(p, 1)];
    const c = client(p);
    c.receive(pipeline([["GET", k0], ["GET", k1], ["GET", k0]]));
    await turn();
    const s0 = net.to(portOf(p, 0))[0]!;
    net.to(portOf(p, 1))[0]!.receive(bulk("one"));
    s0.close(Object.assign(new Error("reset"), { code: "ECONNRESET" }));
    await until(() => c.writes > 0);
    const refused = text(error("ERR Connection reset by peer"));
    expect(c.take()).toBe(refused + text(bulk("one")) + refused);
    expect(p.servers[0]!.stats.counters[S.server_err]).toBe(1);
    expect(p.stats.counters[P.forward_error]).toBe(2);
    // The next request opens a new connection.
    c.receive(command("GET", k0));
    await turn();
    expect(net.to(portOf(p, 0)).length).toBe(2);
  });

  test("a reply nobody asked for closes the connection; QUIT closes the client after earlier replies", async () => {
    const { pool: p, net } = pool("");
    const k = keyOn(p, 0);
    const c = client(p);
    c.receive(pipeline([["GET", k], ["QUIT"], ["GET", k]]));
    await turn();
    const s0 = net.to(portOf(p, 0))[0]!;
    expect(s0.take()).toBe(text(command("GET", k)));
    s0.receive(Buffer.concat([bulk("v"), bulk("extra")]));
    await until(() => c.ended);
    expect(c.take()).toBe(text(bulk("v")));
    expect(s0.terminated).toBe(true);
    expect(p.servers[0]!.stats.counters[S.server_err]).toBe(1);
  });
});

describe("memcached", () => {
  test("gets to one server in one turn share a line; the line's reply is divided by key", async () => {
    const { pool: p, net } = pool("", "memcache");
    const [a, b] = [keyOn(p, 0), keyOn(p, 0, [keyOn(p, 0)])];
    const c = client(p);
    c.receive(Buffer.concat([line("get", a), line("get", b), line("get", a)]));
    await turn();
    const s0 = net.to(portOf(p, 0))[0]!;
    // A key goes on a line once: the third get starts a new line.
    expect(s0.take()).toBe(text(Buffer.concat([line("get", a, b), line("get", a)])));
    s0.receive(Buffer.concat([retrieval([valueBlock(a, "A"), valueBlock(b, "B")]), retrieval([valueBlock(a, "A")])]));
    await until(() => c.writes > 0);
    const expected = [retrieval([valueBlock(a, "A")]), retrieval([valueBlock(b, "B")]), retrieval([valueBlock(a, "A")])];
    expect(c.take()).toBe(text(Buffer.concat(expected)));
    // The queue stats of a line's requests add up to its length.
    expect(p.servers[0]!.stats.counters[S.request_bytes]).toBe(line("get", a, b).length + line("get", a).length);
  });

  test("a noreply request goes upstream without noreply; its reply is dropped", async () => {
    const { pool: p, net } = pool("", "memcache");
    const k = keyOn(p, 1);
    const c = client(p);
    c.receive(Buffer.concat([Buffer.from(`set ${k} 0 0 1 noreply\r\nx\r\n`), line("get", k)]));
    await turn();
    const s1 = net.to(portOf(p, 1))[0]!;
    expect(s1.take()).toBe(`set ${k} 0 0 1\r\nx\r\n` + text(line("get", k)));
    s1.receive(Buffer.concat([Buffer.from("STORED\r\n"), retrieval([valueBlock(k, "x")])]));
    await until(() => c.writes > 0);
    expect(c.take()).toBe(text(retrieval([valueBlock(k, "x")])));
  });
});
