// A reload under --workers 2 applies in every worker or in none: a reload that moves the
// unix-socket pool (served by worker 0 alone) to a path it cannot bind and adds a TCP pool is
// rejected by worker 0, so worker 1 must not apply it either (before, worker 1 served the new
// pool and the workers ran different configs). POST /reload says so (500), and a good reload
// afterwards applies in both. A worker that does not answer (SIGSTOP) makes the reload given up
// in all, POST /reload answers 500 (it hung, until its connection idled out), and the worker
// gives it up too once it runs again.
// Two POST /reload at once run one after the other; both workers end on the last file.

import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { freePort } from "../helpers/ports.ts";
import { childPids, listenerCount } from "../helpers/procfs.ts";
import { TARGET } from "../helpers/proxy.ts";
import { waitForLines } from "../helpers/ops.ts";
import { eventually, ReloadableProxy } from "../helpers/reload.ts";
import { bulk, OK, pipeline, respFrame } from "../helpers/resp.ts";
import { makeTempDir, type TempDir } from "../helpers/tmp.ts";
import { waitForListeners } from "../helpers/workers.ts";

setDefaultTimeout(60_000);

let redis: Backend;
let dir: TempDir;
let proxy: ReloadableProxy;
const alphaPort = freePort();

const alpha = () => poolYaml("alpha", { listen: `127.0.0.1:${alphaPort}`, redis: true }, [serverLine(redis.address)]);
const sock = (path: string) => poolYaml("sock", { listen: path, redis: true }, [serverLine(redis.address)]);
const beta = (port: number) => poolYaml("beta", { listen: `127.0.0.1:${port}`, redis: true }, [serverLine(redis.address)]);

beforeAll(async () => {
  redis = await startRedis();
  dir = makeTempDir("bct-rww-");
  proxy = await ReloadableProxy.start(alpha() + sock(dir.file("a.sock")), { args: ["--workers", "2"] });
  await waitForListeners(alphaPort, 2);
  // Every worker listens: the tests count their log lines from here.
  await waitForLines(proxy.proxy.stderr, /all 2 workers listening/);
});

afterAll(async () => {
  await proxy?.stop();
  await redis?.stop();
  dir?.remove();
});

describe.skipIf(TARGET !== "buncracker")("a reload one worker cannot apply", () => {
  test("SIGUSR1: neither worker applies it", async () => {
    const betaPort = freePort();
    const lines = await proxy.signalReload(alpha() + sock(dir.file("missing/dir/b.sock")) + beta(betaPort), 2);
    expect(lines).toEqual([0, 1].map(() => expect.stringMatching(/^reload rejected, the running configuration is unchanged: /)));
    expect(listenerCount(betaPort)).toBe(0);
    expect(await proxy.metric("buncracker_config_generation")).toBe(1);
  });

  test("POST /reload: 500, neither worker applies it", async () => {
    const betaPort = freePort();
    const res = await proxy.postReload(alpha() + sock(dir.file("missing/dir/b.sock")) + beta(betaPort), 2);
    expect(res.status).toBe(500);
    expect(String(res.body.error)).toContain("b.sock");
    expect(listenerCount(betaPort)).toBe(0);
  });

  test("a good reload afterwards applies in both", async () => {
    const betaPort = freePort();
    const lines = await proxy.signalReload(alpha() + sock(dir.file("a.sock")) + beta(betaPort), 2);
    expect(lines).toEqual([0, 1].map(() => expect.stringMatching(/^reloaded '.*' \(generation \d+\): \+pool beta$/)));
    await waitForListeners(betaPort, 2);
    const client = await RawClient.connect({ host: "127.0.0.1", port: betaPort });
    await client.send(pipeline([["SET", "whole", "1"], ["GET", "whole"]]));
    expect((await client.readReplies(2, respFrame)).map(String)).toEqual([String(OK), String(bulk("1"))]);
    client.close();
  });
});

describe.skipIf(TARGET !== "buncracker")("a reload one worker does not answer", () => {
  test("a stopped worker: the reload is given up in all (POST /reload answers 500), and in it too once it runs again", async () => {
    const workers = childPids(proxy.proxy.pid);
    expect(workers).toHaveLength(2);
    const stopped = workers[1]!;
    const betaPort = freePort();
    const before = proxy.outcomes().length;
    process.kill(stopped, "SIGSTOP");
    try {
      const res = await proxy.postReload(alpha() + sock(dir.file("a.sock")) + beta(betaPort), 1);
      expect(res.status).toBe(500);
      expect(String(res.body.error)).toMatch(/no answer from worker/);
      expect(listenerCount(betaPort)).toBe(0);
    } finally {
      process.kill(stopped, "SIGCONT");
    }
    // The stopped worker stages it late, is told to give it up, and says so.
    await eventually("both workers' rejections", () => (proxy.outcomes().length >= before + 2 ? true : undefined));
    expect(proxy.outcomes().slice(before).every((l) => l.startsWith("reload rejected"))).toBe(true);
    expect(listenerCount(betaPort)).toBe(0);
    // Nothing is left staged: the next reload applies in both.
    const lines = await proxy.signalReload(alpha() + sock(dir.file("a.sock")) + beta(betaPort), 2);
    expect(lines).toEqual([0, 1].map(() => expect.stringMatching(/^reloaded '/)));
    await waitForListeners(betaPort, 2);
  });
});

describe.skipIf(TARGET !== "buncracker")("two reloads in quick succession", () => {
  test("they run one after the other and both workers end on the last file", async () => {
    const gammaPort = freePort();
    const deltaPort = freePort();
    const base = alpha() + sock(dir.file("a.sock"));
    const post = () => fetch(`http://127.0.0.1:${proxy.metricsPort}/reload`, { method: "POST" });
    writeFileSync(proxy.proxy.configPath, base + poolYaml("gamma", { listen: `127.0.0.1:${gammaPort}`, redis: true }, [serverLine(redis.address)]));
    const first = post();
    writeFileSync(proxy.proxy.configPath, base + poolYaml("delta", { listen: `127.0.0.1:${deltaPort}`, redis: true }, [serverLine(redis.address)]));
    const second = post();
    expect([(await first).status, (await second).status]).toEqual([200, 200]);
    await waitForListeners(deltaPort, 2);
    expect(listenerCount(gammaPort)).toBe(0);
    proxy.running = base + poolYaml("delta", { listen: `127.0.0.1:${deltaPort}`, redis: true }, [serverLine(redis.address)]);
  });
});
