// The config keys of TLS (`tls`, `server_tls`: PEM files read and checked at load, errors on the
// line of the setting at fault) and of client limits (`client_max_request`,
// `client_idle_timeout`), on certificates made by openssl for this run.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { ConfigError, parseConfig } from "../../src/conf/load.ts";
import type { PoolConfig } from "../../src/conf/types.ts";
import { makeCerts, type CertSet } from "../helpers/certs.ts";

let certs: CertSet;
beforeAll(async () => {
  certs = await makeCerts();
});
afterAll(() => certs.remove());

const yaml = (...lines: string[]): string => lines.join("\n") + "\n";
/** Pool "p" with these settings (line 3 on) and one server. */
const pool = (...settings: string[]): string =>
  yaml("p:", "  listen: 127.0.0.1:22121", ...settings, "  redis: true", "  servers:", "   - 127.0.0.1:6379:1");

function load(text: string): { pool: PoolConfig; warnings: string[] } {
  const warnings: string[] = [];
  const config = parseConfig(text, "t.yml", (w) => warnings.push(w));
  return { pool: config.pools[0]!, warnings };
}

function error(text: string): string {
  try {
    parseConfig(text, "t.yml", () => {});
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("the config was accepted");
}

describe("tls", () => {
  test("cert and key: read, checked and kept with their paths", () => {
    const { pool: p, warnings } = load(pool("  tls:", `    cert: ${certs.server.cert}`, `    key: ${certs.server.key}`));
    expect(p.tls!.cert.path).toBe(certs.server.cert);
    expect(p.tls!.cert.text).toContain("-----BEGIN CERTIFICATE-----");
    expect(p.tls!.key.text).toContain("PRIVATE KEY-----");
    expect(p.tls!.ca).toBeNull();
    expect(p.serverTls).toBeNull();
    expect(warnings).toEqual([]);
  });

  test("ca: clients must present a certificate it signed", () => {
    const { pool: p } = load(
      pool("  tls:", `    cert: ${certs.server.cert}`, `    key: ${certs.server.key}`, `    ca: ${certs.ca}`),
    );
    expect(p.tls!.ca!.path).toBe(certs.ca);
  });

  test("a missing file names the file, on the setting's line", () => {
    const missing = `${certs.dir.path}/nope.crt`;
    const message = error(pool("  tls:", `    cert: ${missing}`, `    key: ${certs.server.key}`));
    expect(message).toBe(`t.yml:4: pool "p", key "tls", setting "cert": cannot read "${missing}" (ENOENT)`);
  });

  test("a file that is not a certificate, a key that is not a key", () => {
    const garbage = certs.dir.file("garbage.pem");
    writeFileSync(garbage, "hello\n");
    expect(error(pool("  tls:", `    cert: ${garbage}`, `    key: ${certs.server.key}`))).toContain(
      `t.yml:4: pool "p", key "tls", setting "cert": "${garbage}" holds no PEM certificate`,
    );
    expect(error(pool("  tls:", `    cert: ${certs.server.cert}`, `    key: ${certs.server.cert}`))).toContain(
      `t.yml:5: pool "p", key "tls", setting "key": "${certs.server.cert}" holds no PEM private key`,
    );
    const broken = certs.dir.file("broken.crt");
    writeFileSync(broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    expect(error(pool("  tls:", `    cert: ${broken}`, `    key: ${certs.server.key}`))).toContain(
      `setting "cert": "${broken}": certificate 1 does not parse`,
    );
  });

  test("a key that belongs to another certificate", () => {
    const message = error(pool("  tls:", `    cert: ${certs.server.cert}`, `    key: ${certs.client.key}`));
    expect(message).toBe(
      `t.yml:5: pool "p", key "tls", setting "key": the key in "${certs.client.key}" does not belong to the certificate in "${certs.server.cert}"`,
    );
  });

  test("missing, unknown and duplicate settings; a scalar instead of settings", () => {
    expect(error(pool("  tls:", `    cert: ${certs.server.cert}`))).toBe(`t.yml:4: pool "p", key "tls": setting "key" is missing`);
    expect(
      error(pool("  tls:", `    cert: ${certs.server.cert}`, `    key: ${certs.server.key}`, "    verify: false")),
    ).toBe(`t.yml:6: pool "p", key "tls", setting "verify": unknown setting (known: cert, key, ca)`);
    expect(
      error(pool("  tls:", `    cert: ${certs.server.cert}`, `    cert: ${certs.server.cert}`, `    key: ${certs.server.key}`)),
    ).toBe(`t.yml:5: pool "p", key "tls": "cert" is a duplicate`);
    expect(error(pool("  tls: true"))).toBe(
      `t.yml:3: pool "p", key "tls": expected its settings indented below it, one "name: value" per line`,
    );
  });

  test("an expired certificate loads, with a warning", () => {
    const { warnings } = load(pool("  tls:", `    cert: ${certs.expired.cert}`, `    key: ${certs.expired.key}`));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`t.yml:3: pool "p": the certificate in "${certs.expired.cert}" expired on `);
  });
});

describe("server_tls", () => {
  test("every setting", () => {
    const { pool: p, warnings } = load(
      pool(
        "  server_tls:",
        `    ca: ${certs.ca}`,
        `    cert: ${certs.client.cert}`,
        `    key: ${certs.client.key}`,
        "    server_name: redis.internal",
      ),
    );
    expect(p.serverTls).toMatchObject({ serverName: "redis.internal", verify: true });
    expect(p.serverTls!.ca!.path).toBe(certs.ca);
    expect(p.serverTls!.cert!.path).toBe(certs.client.cert);
    expect(warnings).toEqual([]);
  });

  test("nothing but a CA; and verify: false, which warns", () => {
    expect(load(pool("  server_tls:", `    ca: ${certs.ca}`)).pool.serverTls).toMatchObject({
      cert: null,
      key: null,
      serverName: null,
      verify: true,
    });
    const { pool: p, warnings } = load(pool("  server_tls:", "    verify: false"));
    expect(p.serverTls).toEqual({ ca: null, cert: null, key: null, serverName: null, verify: false });
    expect(warnings).toEqual([
      `t.yml:3: pool "p": server_tls verify is false: the servers' certificates are NOT checked (anyone in the path can read and change the traffic)`,
    ]);
  });

  test("cert without key, a bad verify, a bad CA file", () => {
    expect(error(pool("  server_tls:", `    cert: ${certs.client.cert}`))).toBe(
      `t.yml:4: pool "p", key "server_tls", setting "cert": "cert" and "key" go together (a client certificate and its key)`,
    );
    expect(error(pool("  server_tls:", "    verify: no"))).toBe(
      `t.yml:4: pool "p", key "server_tls", setting "verify": "no" is not "true" or "false"`,
    );
    expect(error(pool("  server_tls:", `    ca: ${certs.client.key}`))).toContain(`setting "ca": "${certs.client.key}" holds no PEM certificate`);
  });
});

describe("client limits", () => {
  test("client_max_request: bytes, with kb/mb/gb", () => {
    expect(load(pool("  client_max_request: 512mb")).pool.clientMaxRequest).toBe(512 * 1024 * 1024);
    expect(load(pool("  client_max_request: 1000")).pool.clientMaxRequest).toBe(1000);
    expect(load(pool("  client_max_request: 2KB")).pool.clientMaxRequest).toBe(2048);
    expect(error(pool("  client_max_request: 1.5mb"))).toBe(
      `t.yml:3: pool "p", key "client_max_request": value "1.5mb" is not a size (digits, optionally followed by kb, mb or gb)`,
    );
  });

  test("client_idle_timeout: ms, 0 for never", () => {
    expect(load(pool("  client_idle_timeout: 30000")).pool.clientIdleTimeout).toBe(30000);
    expect(load(pool("  client_idle_timeout: 0")).pool.clientIdleTimeout).toBeNull();
  });
});
