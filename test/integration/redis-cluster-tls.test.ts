// server_tls in a redis_cluster pool, on a real cluster whose nodes, bus and replication speak
// TLS (certificates made by the test): the slot map is read over TLS and gives the nodes' TLS
// ports, requests (reads from replicas included, READONLY) go over TLS, as each node's CLIENT
// LIST shows (the proxy's connections arrive on its TLS port); a CA that did not sign the
// nodes' certificates gets no map, and says so.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { makeCerts, type CertSet } from "../helpers/certs.ts";
import { exchange } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { startRedisCluster, untilRouting, type RedisCluster } from "../helpers/redis-cluster.ts";
import { command, decode, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(120_000);

describe.skipIf(TARGET !== "buncracker")("redis_cluster with server_tls", () => {
  let certs: CertSet;
  let cluster: RedisCluster;
  let proxy: RunningProxy;

  beforeAll(async () => {
    certs = await makeCerts();
    cluster = await startRedisCluster({ masters: 3, replicas: 1, tls: { ...certs.server, ca: certs.ca, client: certs.client } });
    const seeds = [serverLine(cluster.tlsAddress(cluster.nodes[0]!)!)];
    const settings = { redis: true, distribution: "redis_cluster", timeout: 4000 };
    proxy = await startProxy(
      TARGET,
      poolYaml("big", { listen: `127.0.0.1:${freePort()}`, ...settings, read_from: "replica", server_tls: { ca: certs.ca } }, seeds) +
        poolYaml("untrusted", { listen: `127.0.0.1:${freePort()}`, ...settings, server_tls: { ca: certs.otherCa } }, seeds),
    );
    await untilRouting(proxy.pools.big!);
  });

  afterAll(async () => {
    await proxy?.stop();
    await cluster?.stop();
    certs?.remove();
  });

  test("the map and every request over TLS: writes to the masters, reads from the replicas", async () => {
    const keys = Array.from({ length: 100 }, (_, i) => `t:${i}`);
    const endpoint = proxy.pools.big!;
    const acks = await exchange(endpoint, Buffer.concat(keys.map((k) => command("SET", k, `v${k}`))), keys.length, respFrame);
    expect(acks.map(String)).toEqual(keys.map(() => "+OK\r\n"));
    for (const node of cluster.nodes) {
      const role = String(await cluster.call(node, "ROLE")).startsWith("master");
      if (role) expect(decode((await exchange({ host: "127.0.0.1", port: node.port }, command("WAIT", "1", "5000"), 1, respFrame))[0]!)).toBe(1);
    }
    const gets = await exchange(endpoint, Buffer.concat([...keys.map((k) => command("GET", k)), command("MGET", ...keys)]), keys.length + 1, respFrame);
    expect(gets.slice(0, keys.length).map((r) => String(decode(r)))).toEqual(keys.map((k) => `v${k}`));
    expect((decode(gets[keys.length]!) as Buffer[]).map(String)).toEqual(keys.map((k) => `v${k}`));
    // Every node, master or replica, has the proxy's connections on its TLS port, none on its
    // plaintext one but this CLIENT LIST's own.
    for (const node of cluster.nodes) {
      const clients = String(await cluster.call(node, "CLIENT", "LIST")).trim().split("\n").filter((l) => !/ flags=[^ ]*[SM]/.test(l));
      const tls = cluster.tlsAddress(node)!;
      expect(clients.filter((l) => l.includes(` laddr=${tls} `)).length).toBeGreaterThan(0);
      expect(clients.filter((l) => l.includes(` laddr=${node.address} `)).length).toBe(1);
    }
  });

  test("a CA that did not sign the nodes: no map, and the error says why", async () => {
    const [reply] = await exchange(proxy.pools.untrusted!, command("GET", "t:1"), 1, respFrame);
    expect(String(reply)).toBe("-ERR cluster slot map not loaded yet\r\n");
    expect(proxy.stderr() + proxy.stdout()).toMatch(/pool 'untrusted': no cluster node gave its slot map \(127\.0\.0\.1:\d+: .*TLS/);
  });
});
