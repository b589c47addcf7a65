// server_tls applies to a pool's sentinels as to its servers: a real redis-sentinel on a
// TLS-only port that asks for client certificates, monitoring a TLS redis-server. The pool's
// configured server address is a port where nothing listens, so the proxy serves only if it
// learned the master from the sentinel over TLS. A CA that did not sign the sentinel's
// certificate, and no client certificate, leave the sentinel unreachable (logged, the server
// stays where it was configured).

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { makeCerts, type CertSet } from "../helpers/certs.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { readStats, serverOf, waitFor, waitForLines } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { bulk, command, OK, respFrame } from "../helpers/resp.ts";
import { startTlsSentinel } from "../helpers/sentinel.ts";

setDefaultTimeout(120_000);

describe.skipIf(TARGET !== "buncracker")("server_tls to sentinels", () => {
  let certs: CertSet;
  let master: Backend;
  let sentinel: Awaited<ReturnType<typeof startTlsSentinel>>;
  let proxy: RunningProxy;
  /** Each pool's configured server address: a free port nothing listens on. */
  const configured = { ha: `127.0.0.1:${freePort()}`, wrong_ca: `127.0.0.1:${freePort()}`, no_cert: `127.0.0.1:${freePort()}` };

  beforeAll(async () => {
    certs = await makeCerts();
    const server = { cert: certs.server.cert, key: certs.server.key, ca: certs.ca };
    master = await startRedis({ tls: server });
    sentinel = await startTlsSentinel([{ name: "shard1", backend: master }], { ...server, requireClientCert: true });
    const client = { cert: certs.client.cert, key: certs.client.key };
    const pool = (name: keyof typeof configured, serverTls: Record<string, string>) =>
      poolYaml(
        name,
        { listen: `127.0.0.1:${freePort()}`, redis: true, timeout: 3000, server_tls: serverTls, sentinels: [sentinel.address] },
        [serverLine(configured[name], 1, "shard1")],
      );
    const yaml = [
      pool("ha", { ca: certs.ca, ...client }),
      pool("wrong_ca", { ca: certs.otherCa, ...client }),
      pool("no_cert", { ca: certs.ca }),
    ].join("");
    proxy = await startProxy(TARGET, yaml, { args: ["-i", "100"] });
  });

  afterAll(async () => {
    await proxy?.stop();
    await sentinel?.stop();
    await master?.stop();
    certs?.remove();
  });

  test("the master is learned from the TLS sentinel and served over TLS", async () => {
    const moved = await waitFor("the server moved to the sentinel's master", async () => {
      const doc = await readStats(proxy.statsPort);
      const address = serverOf(doc, "ha", "shard1").server_address;
      return address === master.address ? address : undefined;
    });
    expect(moved).toBe(master.address);
    const c = await RawClient.connect(proxy.pools.ha!);
    try {
      await c.send(Buffer.concat([command("SET", "tls-sentinel", "v1"), command("GET", "tls-sentinel")]));
      expect(await c.readReplies(2, respFrame)).toEqual([OK, bulk("v1")]);
    } finally {
      c.close();
    }
  });

  test("an untrusted sentinel certificate, or no client certificate, leave the sentinel unreachable", async () => {
    const text = () => proxy.stderr();
    const [wrongCa] = await waitForLines(text, new RegExp(`pool 'wrong_ca': sentinel ${sentinel.address} unreachable: (.*)`));
    expect(wrongCa![1]).toMatch(/^TLS handshake failed: /);
    await waitForLines(text, new RegExp(`pool 'no_cert': sentinel ${sentinel.address} unreachable`));
    const doc = await readStats(proxy.statsPort);
    expect(serverOf(doc, "wrong_ca", "shard1").server_address).toBe(configured.wrong_ca);
    expect(serverOf(doc, "no_cert", "shard1").server_address).toBe(configured.no_cert);
  });
});
