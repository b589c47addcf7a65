// A reload during the SIGTERM drain (SIGUSR1, alone and with --workers 2): the draining proxy
// rejects it, so no pool the reload adds (or moves) starts listening while the proxy is on its
// way out, and the drain still ends with the request in flight answered and exit 0.

import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { redisCall, stopAll } from "../helpers/direct.ts";
import { readStats, serverOf, waitFor, waitForLines } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { listenerCount } from "../helpers/procfs.ts";
import { TARGET } from "../helpers/proxy.ts";
import { ReloadableProxy } from "../helpers/reload.ts";
import { bulk, command, respFrame } from "../helpers/resp.ts";
import { waitForListeners } from "../helpers/workers.ts";

setDefaultTimeout(60_000);

let slow: Backend;
let other: Backend;

beforeAll(async () => {
  [slow, other] = await Promise.all([startRedis(), startRedis()]);
  await redisCall(slow, "SET", "k", "v");
});

afterAll(async () => {
  slow?.process.signal("SIGCONT");
  await stopAll([slow, other].filter(Boolean));
});

describe.skipIf(TARGET !== "buncracker")("a reload during the SIGTERM drain", () => {
  for (const workers of [1, 2]) {
    test(`is rejected: nothing new listens, the drain completes (${workers === 1 ? "one process" : "--workers 2"})`, async () => {
      const alphaPort = freePort();
      const alpha = poolYaml("alpha", { listen: `127.0.0.1:${alphaPort}`, redis: true }, [serverLine(slow.address)]);
      const args = ["--drain-timeout", "60000", ...(workers > 1 ? ["--workers", String(workers)] : [])];
      const proxy = await ReloadableProxy.start(alpha, { args });
      const clients: RawClient[] = [];
      try {
        await waitForListeners(alphaPort, workers);
        await slow.process.freeze();
        // A request in flight on every worker keeps each of them draining.
        for (let i = 0; i < 4 * workers; i++) {
          const c = await RawClient.connect(proxy.endpoint("alpha"));
          await c.send(command("GET", "k"));
          clients.push(c);
        }
        await waitFor("every GET forwarded", async () => serverOf(await readStats(proxy.proxy.statsPort), "alpha", slow.address).requests === clients.length);
        proxy.proxy.signal("SIGTERM");
        await waitForLines(proxy.proxy.stderr, /signal 15 \(SIGTERM\) received, draining/, workers);
        await waitFor("alpha to stop accepting", () => listenerCount(alphaPort) === 0);

        const betaPort = freePort();
        writeFileSync(proxy.proxy.configPath, alpha + poolYaml("beta", { listen: `127.0.0.1:${betaPort}`, redis: true }, [serverLine(other.address)]));
        proxy.proxy.signal("SIGUSR1");
        // The proxy's line; the supervisor's under --workers (it asks no worker).
        await waitForLines(proxy.proxy.stderr, /(reload rejected, the running configuration is unchanged|reload applied by no worker): the proxy is draining/);
        expect(proxy.proxy.stderr()).not.toMatch(/reloaded '/);
        expect(listenerCount(betaPort)).toBe(0);

        slow.process.signal("SIGCONT");
        for (const c of clients) expect((await c.readReply(respFrame)).toString()).toBe(bulk("v").toString());
        expect(await proxy.proxy.process.exited).toBe(0);
      } finally {
        slow.process.signal("SIGCONT");
        for (const c of clients) c.close();
        await proxy.stop();
      }
    });
  }
});
