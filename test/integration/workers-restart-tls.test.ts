// A worker restarted under --workers serves the certificate the other workers serve, not the PEM
// files as they are now on disk: a rotation copied in but not reloaded yet reaches no worker
// alone, and a PEM file half-written (or broken) does not keep the restarted worker from
// starting. After a reload, both serve the new certificate.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { copyFileSync, writeFileSync } from "node:fs";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { makeCerts, pem, type CertSet } from "../helpers/certs.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { waitFor, waitForLines } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { TARGET } from "../helpers/proxy.ts";
import { startWorkers, waitForListeners, type Supervised } from "../helpers/workers.ts";

setDefaultTimeout(90_000);

let certs: CertSet;
let redis: Backend;

beforeAll(async () => {
  if (TARGET !== "buncracker") return;
  certs = await makeCerts();
  redis = await startRedis();
});

afterAll(async () => {
  await redis?.stop();
  certs?.remove();
});

const serialOf = (file: string): string => new X509Certificate(pem(file)).serialNumber;

/** The serials the proxy presents over `n` new TLS connections (spread over the workers). */
async function servedSerials(port: number, n: number): Promise<Set<string>> {
  const serials = new Set<string>();
  for (let i = 0; i < n; i++) {
    const client = await RawClient.connectTls({ host: "127.0.0.1", port }, { ca: pem(certs.ca) });
    serials.add(client.peerCertificate()!.serialNumber);
    client.close();
  }
  return serials;
}

/** Kills worker 1 and waits for its replacement to listen. */
async function restartWorker1(sup: Supervised, port: number): Promise<void> {
  const victim = (await sup.workers())[1]!;
  process.kill(victim, "SIGKILL");
  await waitFor("a new worker 1", async () => ((await sup.workers())[1] !== victim ? true : undefined), 20_000);
  await waitForListeners(port, 2);
}

describe.skipIf(TARGET !== "buncracker")("a restarted worker and the PEM files", () => {
  test("it serves the running certificate until a reload, whatever the files hold meanwhile", async () => {
    const port = freePort();
    const live = { cert: certs.dir.file("w.crt"), key: certs.dir.file("w.key") };
    copyFileSync(certs.server.cert, live.cert);
    copyFileSync(certs.server.key, live.key);
    const yaml = poolYaml("tls", { listen: `127.0.0.1:${port}`, redis: true, tls: live }, [serverLine(redis.address)]);
    const sup = await startWorkers(yaml, 2);
    try {
      await waitForLines(sup.proxy.stderr, /all 2 workers listening/);
      const old = serialOf(certs.server.cert);
      expect(await servedSerials(port, 16)).toEqual(new Set([old]));

      // A broken certificate file, not reloaded: the restarted worker still starts.
      writeFileSync(live.cert, "-----BEGIN CERTIFICATE-----\nbroken\n");
      await restartWorker1(sup, port);
      expect(sup.proxy.stderr()).not.toContain("could not start");

      // A rotation copied in, not reloaded: every connection still gets the running certificate.
      copyFileSync(certs.server2.cert, live.cert);
      copyFileSync(certs.server2.key, live.key);
      await restartWorker1(sup, port);
      expect(await servedSerials(port, 24)).toEqual(new Set([old]));

      // Reloaded: every new connection gets the new one.
      sup.proxy.signal("SIGUSR1");
      await waitForLines(sup.proxy.stderr, /reloaded '.*' \(generation \d+\)/, 2);
      expect(await servedSerials(port, 24)).toEqual(new Set([serialOf(certs.server2.cert)]));
    } finally {
      await sup.proxy.stop();
    }
  });
});
