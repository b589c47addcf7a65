// Certificate rotation: the PEM files of a TLS pool are replaced and the proxy reloaded (SIGUSR1,
// then POST /reload) while TLS clients pipeline through it and others connect and disconnect
// all along. New connections get the new certificate, connected ones keep theirs and lose
// nothing; a broken PEM file is rejected like a bad config and the running certificate stays.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { X509Certificate } from "node:crypto";
import { copyFileSync, writeFileSync } from "node:fs";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { makeCerts, pem, type CertSet } from "../helpers/certs.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { freePort } from "../helpers/ports.ts";
import { TARGET } from "../helpers/proxy.ts";
import { eventually, ReloadableProxy } from "../helpers/reload.ts";
import { command, decode, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

let certs: CertSet;
let redis: Backend;
let proxy: ReloadableProxy;
let yaml: string;
const endpoint = { host: "127.0.0.1", port: freePort() };
/** The files the pool's `tls` names; the test copies other certificates over them. */
let live: { cert: string; key: string };

beforeAll(async () => {
  if (TARGET !== "buncracker") return;
  certs = await makeCerts();
  redis = await startRedis();
  live = { cert: certs.dir.file("live.crt"), key: certs.dir.file("live.key") };
  install(certs.server);
  yaml = poolYaml("rot", { listen: `127.0.0.1:${endpoint.port}`, redis: true, tls: live }, [serverLine(redis.address)]);
  proxy = await ReloadableProxy.start(yaml);
});

afterAll(async () => {
  if (TARGET !== "buncracker") return;
  await proxy?.stop();
  await redis?.stop();
  certs?.remove();
});

function install(files: { cert: string; key: string }): void {
  copyFileSync(files.cert, live.cert);
  copyFileSync(files.key, live.key);
}

const serialOf = (file: string): string => new X509Certificate(pem(file)).serialNumber;

/** Pipelines SET/GET pairs on one TLS connection until stopped, checking every reply. */
class Pipeliner {
  readonly problems: string[] = [];
  batches = 0;
  private stopping = false;
  readonly done: Promise<void>;

  constructor(private readonly id: number) {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    const client = await RawClient.connectTls(endpoint, { ca: pem(certs.ca) });
    try {
      for (let b = 0; !this.stopping; b++) {
        const key = `rot:${this.id}:${b}`;
        const requests: Buffer[] = [];
        for (let i = 0; i < 8; i++) requests.push(command("SET", `${key}:${i}`, `v${b}.${i}`), command("GET", `${key}:${i}`));
        await client.send(Buffer.concat(requests));
        const replies = (await client.readReplies(requests.length, respFrame)).map((r) => decode(r));
        for (let i = 0; i < 8; i++) {
          if (replies[2 * i] !== "OK" || String(replies[2 * i + 1]) !== `v${b}.${i}`) {
            this.problems.push(`connection ${this.id} batch ${b}: ${JSON.stringify(replies.slice(2 * i, 2 * i + 2).map(String))}`);
          }
        }
        this.batches++;
      }
    } catch (error) {
      this.problems.push(`connection ${this.id}: ${(error as Error).message}`);
    } finally {
      client.close();
    }
  }

  stop(): Promise<void> {
    this.stopping = true;
    return this.done;
  }
}

/** Connects, PINGs and disconnects in a loop until stopped; records the serials it saw. */
class Churner {
  readonly problems: string[] = [];
  readonly serials: string[] = [];
  private stopping = false;
  readonly done: Promise<void>;

  constructor() {
    this.done = this.run();
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        const client = await RawClient.connectTls(endpoint, { ca: pem(certs.ca) });
        this.serials.push(client.peerCertificate()!.serialNumber);
        await client.send(command("PING"));
        const reply = decode(await client.readReply(respFrame));
        if (reply !== "PONG") this.problems.push(`PING gave ${String(reply)}`);
        client.close();
      } catch (error) {
        this.problems.push((error as Error).message);
      }
    }
  }

  stop(): Promise<void> {
    this.stopping = true;
    return this.done;
  }
}

async function newSerial(): Promise<string> {
  const client = await RawClient.connectTls(endpoint, { ca: pem(certs.ca) });
  const serial = client.peerCertificate()!.serialNumber;
  client.close();
  return serial;
}

describe.skipIf(TARGET !== "buncracker")("TLS certificate rotation", () => {
  test("under load: new connections get the new certificate, none is dropped; a bad file is rejected", async () => {
    const first = serialOf(certs.server.cert);
    const second = serialOf(certs.server2.cert);
    expect(await newSerial()).toBe(first);
    const held = await RawClient.connectTls(endpoint, { ca: pem(certs.ca) });
    const pipeliners = [0, 1, 2, 3].map((i) => new Pipeliner(i));
    const churner = new Churner();
    await eventually("traffic before the rotation", () =>
      pipeliners.every((p) => p.batches >= 3) && churner.serials.length >= 3 ? true : undefined,
    );

    install(certs.server2);
    const [outcome] = await proxy.signalReload(yaml);
    expect(outcome).toContain("pool rot: tls");
    expect(await newSerial()).toBe(second);
    const seen = churner.serials.length;
    await eventually("connections after the rotation", () => (churner.serials.length >= seen + 3 ? true : undefined));

    // A broken certificate file: rejected, the running one stays.
    writeFileSync(live.cert, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    const rejected = await proxy.postReload(yaml);
    expect(rejected.status).toBe(500);
    expect(rejected.logged[0]).toContain("reload rejected");
    expect(rejected.logged[0]).toContain(live.cert);
    expect(await newSerial()).toBe(second);

    await Promise.all([...pipeliners.map((p) => p.stop()), churner.stop()]);
    expect(pipeliners.flatMap((p) => p.problems)).toEqual([]);
    expect(churner.problems).toEqual([]);
    // Every connection saw one of the two, switching once.
    const switched = churner.serials.findIndex((s) => s === second);
    expect(switched).toBeGreaterThan(0);
    expect(churner.serials.slice(0, switched).every((s) => s === first)).toBe(true);
    expect(churner.serials.slice(switched).every((s) => s === second)).toBe(true);
    // The connection made before the rotation keeps its certificate and still works.
    expect(held.peerCertificate()!.serialNumber).toBe(first);
    await held.send(command("PING"));
    expect(decode(await held.readReply(respFrame))).toBe("PONG");
    held.close();
  });

  test("a reload turns TLS off and on again for the next clients; connected ones keep theirs", async () => {
    install(certs.server);
    const tlsClient = await RawClient.connectTls(endpoint, { ca: pem(certs.ca) });
    const plainYaml = poolYaml("rot", { listen: `127.0.0.1:${endpoint.port}`, redis: true }, [serverLine(redis.address)]);
    expect((await proxy.signalReload(plainYaml))[0]).toContain("pool rot: tls");
    const plain = await RawClient.connect(endpoint);
    await plain.send(command("PING"));
    expect(decode(await plain.readReply(respFrame))).toBe("PONG");
    await expect(RawClient.connectTls(endpoint, { ca: pem(certs.ca) }, 2000)).rejects.toThrow();
    // The TLS client from before still works.
    await tlsClient.send(command("PING"));
    expect(decode(await tlsClient.readReply(respFrame))).toBe("PONG");
    expect((await proxy.signalReload(yaml))[0]).toContain("pool rot: tls");
    expect(await newSerial()).toBe(serialOf(certs.server.cert));
    await plain.send(command("PING"));
    expect(decode(await plain.readReply(respFrame))).toBe("PONG");
    plain.close();
    tlsClient.close();
  });
});
