// Hot reload of the core without a network (test/helpers/fake-net.ts): connections whose
// preamble changed are retired once they have answered, sessions follow the new config, and a
// reload that cannot be prepared changes nothing.

import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/conf/load.ts";
import type { Pool } from "../../src/core/pool.ts";
import { client, fakeProxy, turn, until } from "../helpers/fake-net.ts";
import { bulk, command, error, OK } from "../helpers/resp.ts";

const text = (b: Uint8Array): string => Buffer.from(b).toString("latin1");

const yaml = (settings: string, listen = "127.0.0.1:1"): string =>
  `p:\n  listen: ${listen}\n  redis: true\n${settings}  servers:\n   - 127.0.0.1:7001:1 a\n`;

const config = (text: string) => parseConfig(text, "reload.yml", () => {});

describe("reload", () => {
  test("a new redis_db: open connections answer what they carry, then close; new requests go to connections that SELECT it", async () => {
    const { proxy, net } = fakeProxy(yaml(""));
    const p: Pool = proxy.pools[0]!;
    const c = client(p);
    c.receive(command("GET", "k"));
    await turn();
    const old = net.to(7001)[0]!;
    expect(old.take()).toBe(text(command("GET", "k")));
    expect(proxy.reload(config(yaml("  redis_db: 3\n")), 1000)).toContain("redis_db");
    expect(proxy.pools[0]).toBe(p);
    c.receive(command("GET", "k"));
    await turn();
    const fresh = net.to(7001)[1]!;
    expect(fresh.take()).toBe(text(Buffer.concat([command("SELECT", "3"), command("GET", "k")])));
    fresh.receive(Buffer.concat([OK, bulk("db3")]));
    old.receive(bulk("db0"));
    await until(() => c.writes > 0);
    expect(c.take()).toBe(text(Buffer.concat([bulk("db0"), bulk("db3")])));
    expect(old.terminated).toBe(true);
    expect(fresh.terminated).toBe(false);
  });

  test("redis_auth removed: a client that never authenticated is served", async () => {
    const { proxy, net } = fakeProxy(yaml("  redis_auth: pw\n"));
    const p = proxy.pools[0]!;
    const c = client(p);
    c.receive(command("GET", "k"));
    await until(() => c.writes > 0);
    expect(c.take()).toBe(text(error("NOAUTH Authentication required")));
    proxy.reload(config(yaml("")), 1000);
    c.receive(command("GET", "k"));
    await turn();
    const s = net.to(7001).at(-1)!;
    expect(s.take()).toBe(text(command("GET", "k")));
  });

  test("a listen address that cannot be bound: the reload throws and nothing changes", async () => {
    const { proxy } = fakeProxy(yaml(""));
    const p = proxy.pools[0]!;
    const [cfg, servers, router] = [p.cfg, p.servers, p.router];
    expect(() => proxy.reload(config(yaml("  redis_db: 5\n", "127.0.0.1:2")), 1000)).toThrow("cannot listen on 127.0.0.1:2");
    expect(p.cfg).toBe(cfg);
    expect(p.servers).toBe(servers);
    expect(p.router).toBe(router);
    expect(proxy.generation).toBe(1);
  });
});
