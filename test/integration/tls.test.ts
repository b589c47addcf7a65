// TLS on both sides of the proxy, with certificates openssl makes for this run: clients through
// TLS listeners (redis-cli --tls, node's own TLS client, ioredis) to redis-server --tls-port and
// memcached -Z, beside plaintext pools in the same process; mutual TLS accepted and refused on
// both sides; servers with an untrusted CA, an expired certificate or a wrong name refused (the
// request gets an error, the log names the server, the count goes up); plaintext on a TLS port
// refused without disturbing the TLS clients on it.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import Redis from "ioredis";
import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import { makeCerts, pem, type CertSet } from "../helpers/certs.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { stopAll } from "../helpers/direct.ts";
import { memcacheFrame } from "../helpers/memcache.ts";
import { freePort } from "../helpers/ports.ts";
import { runToEnd } from "../helpers/process.ts";
import { connectionOwner } from "../helpers/procfs.ts";
import { TARGET } from "../helpers/proxy.ts";
import { eventually, ReloadableProxy } from "../helpers/reload.ts";
import { command, decode, pipeline, respFrame, RespError } from "../helpers/resp.ts";
import { startWorkers } from "../helpers/workers.ts";

setDefaultTimeout(60_000);

let certs: CertSet;
let plainRedis: Backend, tlsRedis: Backend, mtlsRedis: Backend, expiredRedis: Backend, tlsMc: Backend;
let proxy: ReloadableProxy;
const port = {
  plain: freePort(),
  tls: freePort(),
  mtls: freePort(),
  mc: freePort(),
  badCa: freePort(),
  badName: freePort(),
  expired: freePort(),
  noVerify: freePort(),
};
const at = (p: number) => ({ host: "127.0.0.1", port: p });

beforeAll(async () => {
  if (TARGET !== "buncracker") return;
  certs = await makeCerts();
  const server = { cert: certs.server.cert, key: certs.server.key };
  [plainRedis, tlsRedis, mtlsRedis, expiredRedis, tlsMc] = await Promise.all([
    startRedis(),
    startRedis({ tls: server }),
    startRedis({ tls: { ...server, ca: certs.ca, requireClientCert: true } }),
    startRedis({ tls: { cert: certs.expired.cert, key: certs.expired.key } }),
    startMemcached({ tls: server }),
  ]);
  const listenTls = { cert: certs.server.cert, key: certs.server.key };
  const trust = { ca: certs.ca };
  const redisPool = (name: string, p: number, backend: Backend, settings: Record<string, Record<string, string | boolean>>) =>
    poolYaml(name, { listen: `127.0.0.1:${p}`, redis: true, timeout: 3000, ...settings }, [serverLine(backend.address)]);
  const yaml = [
    redisPool("plain", port.plain, plainRedis, {}),
    redisPool("tls", port.tls, tlsRedis, { tls: listenTls, server_tls: trust }),
    redisPool("mtls", port.mtls, mtlsRedis, {
      tls: { ...listenTls, ca: certs.ca },
      server_tls: { ...trust, cert: certs.client.cert, key: certs.client.key },
    }),
    poolYaml("mc", { listen: `127.0.0.1:${port.mc}`, tls: listenTls, server_tls: trust }, [serverLine(tlsMc.address)]),
    redisPool("bad_ca", port.badCa, tlsRedis, { server_tls: { ca: certs.otherCa } }),
    redisPool("bad_name", port.badName, tlsRedis, { server_tls: { ...trust, server_name: "redis.internal" } }),
    redisPool("expired", port.expired, expiredRedis, { server_tls: trust }),
    redisPool("no_verify", port.noVerify, tlsRedis, { server_tls: { ca: certs.otherCa, verify: false } }),
  ].join("");
  proxy = await ReloadableProxy.start(yaml);
});

afterAll(async () => {
  if (TARGET !== "buncracker") return;
  await proxy?.stop();
  await stopAll([plainRedis, tlsRedis, mtlsRedis, expiredRedis, tlsMc].filter((b) => b !== undefined));
  certs?.remove();
});

/** Waits for a log line matching `pattern` that was not in the log before `from` (its length). */
function logged(pattern: RegExp, from: number): Promise<string> {
  return eventually(`a log line matching ${pattern}`, () => {
    const text = proxy.proxy.stderr().slice(from);
    return pattern.exec(text)?.[0];
  });
}

const redisCli = (p: number, ...args: string[]) =>
  runToEnd(["redis-cli", "-h", "127.0.0.1", "-p", String(p), "--tls", "--cacert", certs.ca, ...args]);

/** node's own TLS client (node:tls, in a node process): sends `payload`, prints what comes back
 *  once it ends with `until`. */
async function nodeTls(p: number, payload: string, until: string): Promise<string> {
  const script = `
    const tls = require("node:tls"), fs = require("node:fs");
    const s = tls.connect({ host: "127.0.0.1", port: ${p}, ca: fs.readFileSync(${JSON.stringify(certs.ca)}), servername: "localhost" },
      () => s.write(${JSON.stringify(payload)}));
    let got = "";
    s.on("data", (d) => { got += d.toString("latin1"); if (got.endsWith(${JSON.stringify(until)})) { process.stdout.write(JSON.stringify([s.getProtocol(), got])); s.end(); } });
    s.on("error", (e) => { process.stdout.write(JSON.stringify(["error", e.message])); process.exit(1); });`;
  const { code, stdout, stderr } = await runToEnd(["node", "-e", script], 20_000);
  if (code !== 0) throw new Error(`node TLS client failed (${code}): ${stdout} ${stderr}`);
  const [protocol, text] = JSON.parse(stdout) as [string, string];
  expect(protocol).toMatch(/^TLSv1\.[23]$/);
  return text;
}

describe.skipIf(TARGET !== "buncracker")("TLS listeners and TLS servers", () => {
  test("redis-cli --tls through a TLS pool to redis --tls-port; a plaintext pool beside it", async () => {
    const set = await redisCli(port.tls, "SET", "tls:cli", "over-tls");
    expect(set.stdout.trim()).toBe("OK");
    expect((await redisCli(port.tls, "GET", "tls:cli")).stdout.trim()).toBe("over-tls");
    // It is on the TLS redis itself.
    expect((await redisCli(tlsRedis.port, "GET", "tls:cli")).stdout.trim()).toBe("over-tls");
    const plain = await runToEnd(["redis-cli", "-h", "127.0.0.1", "-p", String(port.plain), "SET", "plain:cli", "x"]);
    expect(plain.stdout.trim()).toBe("OK");
  });

  test("node's TLS client to redis and to memcached -Z", async () => {
    const redisReplies = await nodeTls(
      port.tls,
      pipeline([["SET", "tls:node", "n1"], ["GET", "tls:node"]]).toString("latin1"),
      "n1\r\n",
    );
    expect(redisReplies).toBe("+OK\r\n$2\r\nn1\r\n");
    const mcReplies = await nodeTls(port.mc, "set tls:node 5 0 2\r\nm1\r\nget tls:node\r\n", "END\r\n");
    expect(mcReplies).toBe("STORED\r\nVALUE tls:node 5 2\r\nm1\r\nEND\r\n");
    // And memcached holds it.
    const direct = await RawClient.connectTls(tlsMc, { ca: pem(certs.ca) });
    await direct.send("get tls:node\r\n");
    expect((await direct.readReply(memcacheFrame)).toString()).toBe("VALUE tls:node 5 2\r\nm1\r\nEND\r\n");
    direct.close();
  });

  test("mutual TLS: ioredis with a client certificate is served (and the proxy presents its own to redis)", async () => {
    const client = new Redis({
      host: "127.0.0.1",
      port: port.mtls,
      tls: { ca: pem(certs.ca), cert: pem(certs.client.cert), key: pem(certs.client.key), servername: "localhost" },
      // RESP2: HELLO is not this suite's business.
      protocol: 2,
      enableReadyCheck: false, // INFO: not a proxied command
      maxRetriesPerRequest: 0,
      lazyConnect: true,
    });
    try {
      await client.connect();
      expect(await client.set("mtls:k", "v")).toBe("OK");
      expect(await client.get("mtls:k")).toBe("v");
    } finally {
      client.disconnect();
    }
  });

  test("mutual TLS: a client without a certificate, with one of another CA, or an expired one is refused and counted", async () => {
    const failed = `buncracker_pool_client_tls_failed_total{pool="mtls"}`;
    const before = await proxy.metric(failed);
    const from = proxy.proxy.stderr().length;
    const identities = [
      {},
      { cert: pem(certs.otherClient.cert), key: pem(certs.otherClient.key) },
      { cert: pem(certs.expiredClient.cert), key: pem(certs.expiredClient.key) },
    ];
    for (const identity of identities) {
      // TLS 1.3 finishes the client's side of the handshake before the server checks its
      // certificate: refused means closed without a reply.
      const client = await RawClient.connectTls(at(port.mtls), { ca: pem(certs.ca), ...identity }).catch((e: Error) => e);
      if (client instanceof RawClient) {
        await client.send(command("PING")).catch(() => {});
        expect((await client.readUntilClose()).length).toBe(0);
      }
    }
    const line = await logged(/client 127\.0\.0\.1:\d+ of pool 'mtls' refused: TLS handshake failed: [^\n]*/, from);
    expect(line).toContain("no client certificate");
    await logged(/client 127\.0\.0\.1:\d+ of pool 'mtls' refused: TLS handshake failed: [^\n]*expired/i, from);
    await eventually("three refusals counted", async () => ((await proxy.metric(failed)) >= before + 3 ? true : undefined));
    // In the stats JSON too (a pool configured with `tls`), after twemproxy's fields.
    const doc = await proxy.statsWhere("the refusals", (d) => Number((d.mtls as Record<string, unknown>).client_tls_failed) >= before + 3);
    const keys = Object.keys(doc.mtls as object);
    expect(keys.indexOf("client_tls_failed")).toBeGreaterThan(keys.indexOf("fragments"));
    expect(Object.keys(doc.plain as object)).not.toContain("client_tls_failed");
    // The pool still serves a client with the right certificate.
    const ok = await RawClient.connectTls(at(port.mtls), {
      ca: pem(certs.ca),
      cert: pem(certs.client.cert),
      key: pem(certs.client.key),
    });
    await ok.send(command("PING"));
    expect(decode(await ok.readReply(respFrame))).toBe("PONG");
    ok.close();
  });

  test("clients refuse a proxy they cannot verify (another CA, another name); the proxy logs it and counts it", async () => {
    const failed = `buncracker_pool_client_tls_failed_total{pool="tls"}`;
    const before = await proxy.metric(failed);
    const from = proxy.proxy.stderr().length;
    await expect(RawClient.connectTls(at(port.tls), { ca: pem(certs.otherCa) })).rejects.toThrow(/verify|self.signed/);
    await logged(/client 127\.0\.0\.1:\d+ of pool 'tls' refused: TLS handshake failed: [^\n]*/, from);
    await expect(RawClient.connectTls(at(port.tls), { ca: pem(certs.ca), serverName: "wrong.example" })).rejects.toThrow(
      "altnames",
    );
    await eventually("both refusals counted", async () => ((await proxy.metric(failed)) >= before + 2 ? true : undefined));
  });

  test("plaintext on a TLS port is refused, logged and counted; a TLS client on the same port is not disturbed", async () => {
    const tlsClient = await RawClient.connectTls(at(port.tls), { ca: pem(certs.ca) });
    const failed = `buncracker_pool_client_tls_failed_total{pool="tls"}`;
    const before = await proxy.metric(failed);
    const from = proxy.proxy.stderr().length;
    const plain = await RawClient.connect(at(port.tls));
    await plain.send(command("PING"));
    const answer = await plain.readUntilClose();
    // At most a TLS alert record, never a redis reply.
    expect(answer.toString("latin1")).not.toContain("PONG");
    const line = await logged(/client 127\.0\.0\.1:\d+ of pool 'tls' refused: TLS handshake failed: [^\n]*/, from);
    expect(line).toContain("plaintext");
    await eventually("the refusal counted", async () => ((await proxy.metric(failed)) > before ? true : undefined));
    await tlsClient.send(command("PING"));
    expect(decode(await tlsClient.readReply(respFrame))).toBe("PONG");
    tlsClient.close();
  });

  for (const { pool, p, reason } of [
    { pool: "bad_ca", p: () => port.badCa, reason: /certificate/ },
    { pool: "bad_name", p: () => port.badName, reason: /redis\.internal/ },
    { pool: "expired", p: () => port.expired, reason: /expired/ },
  ]) {
    test(`a server the proxy cannot verify (${pool}): an error reply, a log line naming it, a count`, async () => {
      const backend = pool === "expired" ? expiredRedis : tlsRedis;
      const sample = `buncracker_server_tls_failed_total{pool="${pool}",server="${backend.address}"}`;
      const before = await proxy.metric(sample);
      const from = proxy.proxy.stderr().length;
      const client = await RawClient.connect(at(p()));
      await client.send(command("GET", "k"));
      const reply = decode(await client.readReply(respFrame));
      expect(reply).toBeInstanceOf(RespError);
      expect((reply as RespError).message).toMatch(/^ERR TLS handshake with server \S+ failed: /);
      expect((reply as RespError).message).toMatch(reason);
      const line = await logged(new RegExp(`server ${backend.address}:1 of pool '${pool}': TLS handshake failed: [^\\n]*`), from);
      expect(line).toMatch(reason);
      await eventually("the failure counted", async () => ((await proxy.metric(sample)) > before ? true : undefined));
      // The client's connection is still good for the next request.
      await client.send(command("PING"));
      expect(decode(await client.readReply(respFrame))).toBe("PONG");
      client.close();
    });
  }

  test("SNI and ALPN: a client that names the server and offers ALPN protocols is served, none selected", async () => {
    const { promise, resolve, reject } = Promise.withResolvers<{ alpn: unknown; reply: string }>();
    await Bun.connect({
      hostname: "127.0.0.1",
      port: port.tls,
      // ALPN in the wire format Bun takes: length-prefixed names.
      tls: { ca: pem(certs.ca), serverName: "localhost", ALPNProtocols: "\x05redis\x08http/1.1" },
      socket: {
        handshake(s, ok, error) {
          if (!ok) reject(error);
          else s.write(command("PING"));
        },
        data: (s, chunk) => {
          resolve({ alpn: (s as unknown as { alpnProtocol: unknown }).alpnProtocol, reply: Buffer.from(chunk).toString("latin1") });
          s.end();
        },
        error: (_s, error) => reject(error),
      },
    });
    const { alpn, reply } = await promise;
    expect(reply).toBe("+PONG\r\n");
    // The proxy offers no protocol of its own (redis and memcached define none).
    expect(alpn === false || alpn === null || alpn === undefined).toBe(true);
  });

  test("TLS 1.2 and 1.3 are accepted, 1.1 is refused (openssl s_client)", async () => {
    const sClient = (version: string) =>
      runToEnd(["openssl", "s_client", "-connect", `127.0.0.1:${port.tls}`, version, "-cipher", "DEFAULT@SECLEVEL=0", "-CAfile", certs.ca], 10_000);
    const old = await sClient("-tls1_1");
    expect(old.stdout + old.stderr).toContain("alert protocol version");
    // The refusal is logged; its line may reach this process after s_client has exited.
    await eventually("the TLS 1.1 refusal logged", () => (proxy.proxy.stderr().includes("of pool 'tls' refused") ? true : undefined));
    const from = proxy.proxy.stderr().length;
    for (const [flag, name] of [["-tls1_2", "TLSv1.2"], ["-tls1_3", "TLSv1.3"]] as const) {
      const ok = await sClient(flag);
      expect(ok.stdout).toContain(`New, ${name}`);
      expect(ok.stdout).toContain("Verify return code: 0 (ok)");
    }
    expect(proxy.proxy.stderr().slice(from)).not.toContain("of pool 'tls' refused");
  });

  test("verify: false connects to a server whose CA it does not know", async () => {
    const client = await RawClient.connect(at(port.noVerify));
    await client.send(pipeline([["SET", "nv:k", "v"], ["GET", "nv:k"]]));
    expect((await client.readReplies(2, respFrame)).map((r) => decode(r))).toEqual(["OK", Buffer.from("v")]);
    client.close();
    expect(proxy.proxy.stderr()).toContain("server_tls verify is false");
  });
});

describe.skipIf(TARGET !== "buncracker")("TLS with --workers 2", () => {
  test("both workers accept TLS clients and reach the TLS redis", async () => {
    const p = freePort();
    const { proxy, workers } = await startWorkers(
      poolYaml("w", { listen: `127.0.0.1:${p}`, redis: true, tls: { cert: certs.server.cert, key: certs.server.key }, server_tls: { ca: certs.ca } }, [
        serverLine(tlsRedis.address),
      ]),
      2,
    );
    try {
      // Connections spread over the workers by the kernel: enough of them that both serve some.
      const clients = await Promise.all(Array.from({ length: 16 }, () => RawClient.connectTls(at(p), { ca: pem(certs.ca) })));
      const pids = await workers();
      const owners = new Set(clients.map((c) => connectionOwner(p, c.localPort, pids)));
      expect([...owners].sort()).toEqual([...pids].sort());
      await Promise.all(
        clients.map(async (c, i) => {
          await c.send(pipeline([["SET", `w:${i}`, `v${i}`], ["GET", `w:${i}`]]));
          expect((await c.readReplies(2, respFrame)).map((r) => decode(r))).toEqual(["OK", Buffer.from(`v${i}`)]);
          c.close();
        }),
      );
      expect((await redisCli(tlsRedis.port, "GET", "w:7")).stdout.trim()).toBe("v7");
    } finally {
      await proxy.stop();
    }
  });
});
