// A worker restarted by the supervisor runs the config the other workers run, not whatever the
// file holds now: an edit not reloaded yet (valid or not) must not reach one worker alone.
// Then a reload of the edit applies in both, and the restarted worker follows.
// The config generation is the supervisor's count of reloads, whatever worker restarted; and a
// reload while no worker listens (both restarting) is checked by the supervisor itself, so an
// invalid file is rejected rather than given to every worker to restart on. A reload committed
// while worker 0 was away (it died during the round) with a unix socket only worker 0 binds and
// cannot: its restart serves the rest of the config, not a restart loop, /healthz and /metrics
// say the pool does not listen, and a reload once the path can be bound makes it listen.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { metricsRequest, waitFor, waitForLines } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { listenerCount, unixListenerOwner } from "../helpers/procfs.ts";
import { parseExposition, value } from "../helpers/prometheus.ts";
import { TARGET } from "../helpers/proxy.ts";
import { bulk, OK, pipeline, respFrame } from "../helpers/resp.ts";
import { makeTempDir, type TempDir } from "../helpers/tmp.ts";
import { startWorkers, waitForListeners, type Supervised } from "../helpers/workers.ts";

setDefaultTimeout(90_000);

let redis: Backend;
let dir: TempDir;

beforeAll(async () => {
  redis = await startRedis();
  dir = makeTempDir("bct-wrc-");
});

afterAll(async () => {
  await redis?.stop();
  dir?.remove();
});

/** Kills worker `index` and waits for its replacement to listen on `port`. */
async function restart(sup: Supervised, index: number, port: number): Promise<void> {
  const victim = (await sup.workers())[index]!;
  process.kill(victim, "SIGKILL");
  await waitFor(`a new worker ${index}`, async () => ((await sup.workers())[index] !== victim ? true : undefined), 20_000);
  await waitForListeners(port, 2);
}

describe.skipIf(TARGET !== "buncracker")("a restarted worker", () => {
  test("runs the workers' config, not an edit that was not reloaded", async () => {
    const alphaPort = freePort();
    const betaPort = freePort();
    const alpha = poolYaml("alpha", { listen: `127.0.0.1:${alphaPort}`, redis: true }, [serverLine(redis.address)]);
    const withBeta = alpha + poolYaml("beta", { listen: `127.0.0.1:${betaPort}`, redis: true }, [serverLine(redis.address)]);
    const sup = await startWorkers(alpha, 2);
    const proxy = sup.proxy;
    try {
      await waitForLines(proxy.stderr, /all 2 workers listening/);

      // A valid edit, not reloaded: the restarted worker does not serve beta.
      writeFileSync(proxy.configPath, withBeta);
      await restart(sup, 1, alphaPort);
      expect(listenerCount(betaPort)).toBe(0);

      // An invalid edit, not reloaded: the restarted worker still starts.
      writeFileSync(proxy.configPath, `${withBeta}  bogus: 1\n`);
      await restart(sup, 1, alphaPort);
      expect(proxy.stderr()).not.toContain("bogus");

      // Reloaded: both serve beta, the restarted one too.
      writeFileSync(proxy.configPath, withBeta);
      proxy.signal("SIGUSR1");
      await waitForLines(proxy.stderr, /reloaded '.*' \(generation \d+\): \+pool beta\n/, 2);
      await waitForListeners(betaPort, 2);
      const client = await RawClient.connect({ host: "127.0.0.1", port: betaPort });
      await client.send(pipeline([["SET", "restart", "1"], ["GET", "restart"]]));
      expect((await client.readReplies(2, respFrame)).map(String)).toEqual([String(OK), String(bulk("1"))]);
      client.close();
    } finally {
      await proxy.stop();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("the config generation under --workers", () => {
  test("stays what the reloads made it when every worker has been restarted", async () => {
    const alphaPort = freePort();
    const metricsPort = freePort();
    const alpha = poolYaml("alpha", { listen: `127.0.0.1:${alphaPort}`, redis: true }, [serverLine(redis.address)]);
    const sup = await startWorkers(alpha, 2, { args: ["--metrics-port", String(metricsPort)] });
    const generation = async (): Promise<number> => {
      const body = (await (await metricsRequest(metricsPort, "/healthz")).json()) as { config: { generation: number } };
      return body.config.generation;
    };
    try {
      await waitForLines(sup.proxy.stderr, /all 2 workers listening/);
      sup.proxy.signal("SIGUSR1");
      await waitForLines(sup.proxy.stderr, /reloaded '.*' \(generation 2\)/, 2);
      await waitFor("generation 2 in /healthz", async () => (await generation()) === 2);
      const before = await sup.workers();
      for (const pid of before) process.kill(pid, "SIGKILL");
      await waitFor("two new workers", async () => ((await sup.workers()).every((pid) => !before.includes(pid)) ? true : undefined), 20_000);
      await waitForListeners(alphaPort, 2);
      await waitFor("/healthz 200 again", async () => (await metricsRequest(metricsPort, "/healthz")).status === 200);
      expect(await generation()).toBe(2);
    } finally {
      await sup.proxy.stop();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("a reload while no worker listens", () => {
  test("an invalid file is rejected (no worker could check it) and the workers come back on the running config", async () => {
    const alphaPort = freePort();
    const metricsPort = freePort();
    const alpha = poolYaml("alpha", { listen: `127.0.0.1:${alphaPort}`, redis: true }, [serverLine(redis.address)]);
    const sup = await startWorkers(alpha, 2, { args: ["--metrics-port", String(metricsPort)] });
    try {
      await waitForLines(sup.proxy.stderr, /all 2 workers listening/);
      const before = await sup.workers();
      for (const pid of before) process.kill(pid, "SIGKILL");
      // Both are waiting for their restart (a backoff of 500 ms): none listens now.
      await waitForLines(sup.proxy.stderr, /worker \d exited \(SIGKILL\); restarting it in 500 ms/, 2);
      writeFileSync(sup.proxy.configPath, `${alpha}  bogus: 1\n`);
      const res = await metricsRequest(metricsPort, "/reload", "POST");
      expect(res.status).toBe(500);
      await waitFor("two new workers", async () => ((await sup.workers()).every((pid) => !before.includes(pid)) ? true : undefined), 20_000);
      await waitForListeners(alphaPort, 2);
      expect(sup.proxy.stderr()).not.toContain("could not start");
    } finally {
      await sup.proxy.stop();
    }
  });
});

describe.skipIf(TARGET !== "buncracker")("a reload committed while worker 0 was away, with a unix socket it cannot bind", () => {
  test("its restart serves the rest (no restart loop), /healthz says the pool does not listen, a later reload binds it", async () => {
    const alphaPort = freePort();
    const metricsPort = freePort();
    const alpha = poolYaml("alpha", { listen: `127.0.0.1:${alphaPort}`, redis: true }, [serverLine(redis.address)]);
    const sock = (path: string) => poolYaml("sock", { listen: path, redis: true }, [serverLine(redis.address)]);
    const unbindable = dir.file("missing/dir/b.sock");
    const sup = await startWorkers(alpha + sock(dir.file("a.sock")), 2, { args: ["--metrics-port", String(metricsPort)] });
    const health = async () => {
      const res = await metricsRequest(metricsPort, "/healthz");
      const body = (await res.json()) as { pools: { name: string; listening: boolean }[] };
      return { status: res.status, pools: body.pools.map((p) => [p.name, p.listening]) };
    };
    try {
      await waitForLines(sup.proxy.stderr, /all 2 workers listening/);
      const [first] = await sup.workers();
      // Worker 0 (the only one that binds unix sockets) is stopped while the round stages and
      // killed before it answers: worker 1 alone stages and commits the move.
      writeFileSync(sup.proxy.configPath, alpha + sock(unbindable));
      process.kill(first!, "SIGSTOP");
      const reloaded = metricsRequest(metricsPort, "/reload", "POST");
      await Bun.sleep(300);
      process.kill(first!, "SIGKILL");
      expect((await reloaded).status).toBe(200);
      await waitForLines(sup.proxy.stderr, /reload applied by 1 workers/);

      // The new worker 0 runs and reports, serving alpha beside worker 1.
      const restarted = await waitFor("a new worker 0", async () => {
        const now = await sup.workers();
        return now[0] !== first ? now : undefined;
      }, 20_000);
      await waitFor("the new worker 0's report", async () => {
        const f = parseExposition(await (await metricsRequest(metricsPort, "/metrics")).text());
        return value(f, "buncracker_worker_cpu_seconds_total", { worker: "0" }) !== undefined;
      }, 20_000, () => sup.proxy.stderr().slice(-1500));
      await waitForListeners(alphaPort, 2);
      await waitForLines(sup.proxy.stderr, new RegExp(`pool 'sock': cannot listen on ${unbindable}.*; serving the other pools`));
      expect([...sup.proxy.stderr().matchAll(/worker 0 exited/g)]).toHaveLength(1);
      expect((await sup.workers())[0]).toBe(restarted[0]!);
      expect(await health()).toEqual({ status: 503, pools: [["alpha", true], ["sock", false]] });
      const listening = async (pool: string) =>
        value(parseExposition(await (await metricsRequest(metricsPort, "/metrics")).text()), "buncracker_pool_listening", { pool });
      expect([await listening("alpha"), await listening("sock")]).toEqual([1, 0]);
      const client = await RawClient.connect({ host: "127.0.0.1", port: alphaPort });
      await client.send(pipeline([["SET", "away", "1"], ["GET", "away"]]));
      expect((await client.readReplies(2, respFrame)).map(String)).toEqual([String(OK), String(bulk("1"))]);
      client.close();

      // Once the path can be bound, a reload of the same file makes worker 0 listen on it.
      mkdirSync(dir.file("missing/dir"), { recursive: true });
      expect((await metricsRequest(metricsPort, "/reload", "POST")).status).toBe(200);
      await waitFor("worker 0 on the unix socket", () => unixListenerOwner(unbindable, restarted) === restarted[0]);
      await waitFor("/healthz 200", async () => ((await health()).status === 200 ? true : undefined));
      expect(await listening("sock")).toBe(1);
      const viaSocket = await RawClient.connect({ path: unbindable });
      await viaSocket.send(pipeline([["GET", "away"]]));
      expect((await viaSocket.readReplies(1, respFrame)).map(String)).toEqual([String(bulk("1"))]);
      viaSocket.close();
    } finally {
      await sup.proxy.stop();
    }
  });
});
