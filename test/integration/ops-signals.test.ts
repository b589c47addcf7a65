// Signals sent to the real proxy process, with real redis backends: SIGHUP re-creates a rotated
// log file, SIGTTIN/SIGTTOU move the level (and the new level takes effect), SIGPIPE is ignored,
// SIGINT exits 1, and SIGTERM drains: a request in flight (to a SIGSTOPped redis) completes with
// its real reply before the process exits 0 (nutcracker exits 1 at once; a deliberate difference).
// Runs against BC_TARGET: the shared behaviour is asserted on nutcracker too.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, renameSync } from "node:fs";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { testDeliberate } from "../helpers/deliberate.ts";
import { redisCall, stopAll } from "../helpers/direct.ts";
import { metricsRequest, readStats, serverOf, waitFor, waitForLines } from "../helpers/ops.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { bulk, command, OK, respFrame } from "../helpers/resp.ts";
import { makeTempDir, type TempDir } from "../helpers/tmp.ts";

setDefaultTimeout(60_000);

let redis: Backend;
let other: Backend;
let dir: TempDir;

beforeAll(async () => {
  [redis, other] = await Promise.all([startRedis(), startRedis()]);
  dir = makeTempDir("bct-sig-");
  await redisCall(redis, "SET", "slow-key", "the-real-value");
});

afterAll(async () => {
  // A test that failed half-way may leave redis stopped: let it go.
  redis?.process.signal("SIGCONT");
  await stopAll([redis, other].filter(Boolean));
  dir?.remove();
});

const fileText = (path: string): string => (existsSync(path) ? readFileSync(path, "utf8") : "");

function twoPools(): string {
  return (
    poolYaml("alpha", { listen: `127.0.0.1:${freePort()}`, redis: true }, [serverLine(redis.address)]) +
    poolYaml("beta", { listen: `127.0.0.1:${freePort()}`, redis: true }, [serverLine(other.address)])
  );
}

let logs = 0;
/** The proxy under test, logging to a file of its own (nutcracker's default log is not stderr). */
async function startLogged(args: string[] = [], verbosity?: number): Promise<{ proxy: RunningProxy; log: () => string }> {
  const logPath = dir.file(`proxy-${++logs}.log`);
  const proxy = await startProxy(TARGET, twoPools(), { args: ["-o", logPath, ...args], verbosity });
  return { proxy, log: () => fileText(logPath) };
}

/** One request through `pool`; returns the reply. */
async function roundTrip(proxy: RunningProxy, pool: string, args: string[]): Promise<string> {
  const client = await RawClient.connect(proxy.pools[pool]!);
  await client.send(command(...args));
  const reply = (await client.readReply(respFrame)).toString();
  client.close();
  return reply;
}

describe("log file and level", () => {
  test("SIGHUP re-creates the log file after rotation moved it; later lines go to the new file", async () => {
    const logPath = dir.file(`rotate-${TARGET}.log`);
    const proxy = await startProxy(TARGET, twoPools(), { args: ["-o", logPath] });
    try {
      await waitForLines(() => fileText(logPath), /./);
      renameSync(logPath, `${logPath}.1`);
      proxy.signal("SIGHUP");
      await waitFor("the log file to be re-created", () => existsSync(logPath));
      // The signal's own line went to the file that was open when it arrived (as nutcracker).
      await waitForLines(() => fileText(`${logPath}.1`), /signal 1 \(SIGHUP\) received, reopening log file/);
      proxy.signal("SIGTTIN");
      await waitForLines(() => fileText(logPath), /up log level to 6/);
      expect(fileText(`${logPath}.1`)).not.toContain("up log level to 6");
      expect(await roundTrip(proxy, "alpha", ["PING"])).toBe("+PONG\r\n");
    } finally {
      await proxy.stop();
    }
  });

  test("SIGTTIN / SIGTTOU raise and lower the level, log the new level, and it takes effect", async () => {
    const { proxy, log } = await startLogged([], 5);
    // Signals of one kind do not queue: wait for each one's line before the next.
    const step = async (signal: "SIGTTIN" | "SIGTTOU", line: RegExp, count = 1) => {
      proxy.signal(signal);
      await waitForLines(log, line, count);
    };
    try {
      await step("SIGTTIN", /up log level to 6/);
      await step("SIGTTOU", /down log level to 5/);
      await step("SIGTTOU", /down log level to 4/);
      if (TARGET !== "buncracker") return; // nutcracker's info lines need a debug build
      // At 6 (info) a new server connection is logged; at 5 (notice) it is not.
      await step("SIGTTIN", /up log level to 5/);
      await step("SIGTTIN", /up log level to 6/, 2);
      expect(await roundTrip(proxy, "alpha", ["GET", "slow-key"])).toBe(bulk("the-real-value").toString());
      await waitForLines(log, new RegExp(`info connected to server ${redis.address}`));
      await step("SIGTTOU", /down log level to 5/, 2);
      expect(await roundTrip(proxy, "beta", ["SET", "k", "v"])).toBe(OK.toString());
      await step("SIGTTIN", /up log level to 6/, 3); // a line after the request: all before it is out
      expect(log()).not.toContain(`connected to server ${other.address}`);
    } finally {
      await proxy.stop();
    }
  });
});

describe("SIGPIPE and SIGINT", () => {
  test("SIGPIPE is ignored: the proxy keeps serving", async () => {
    const { proxy } = await startLogged();
    try {
      proxy.signal("SIGPIPE");
      expect(await roundTrip(proxy, "alpha", ["GET", "slow-key"])).toBe(bulk("the-real-value").toString());
      expect(proxy.process.running).toBe(true);
    } finally {
      await proxy.stop();
    }
  });

  test("SIGINT exits 1 and says so", async () => {
    const { proxy, log } = await startLogged();
    proxy.signal("SIGINT");
    expect(await proxy.process.exited).toBe(1);
    expect(log()).toContain("signal 2 (SIGINT) received, exiting");
    await proxy.stop();
  });
});

describe("SIGTERM", () => {
  interface InFlight {
    proxy: RunningProxy;
    client: RawClient;
    log: () => string;
  }

  /** Runs `body` with a proxy that has a GET in flight to the stopped `redis` (forwarded, the
   *  stats say so, and unanswered); afterwards redis runs again and the proxy is stopped. */
  async function withRequestInFlight(args: string[], body: (t: InFlight) => Promise<void>): Promise<void> {
    const { proxy, log } = await startLogged(["-i", "50", ...args]);
    await redis.process.freeze();
    const client = await RawClient.connect(proxy.pools.alpha!);
    try {
      await client.send(command("GET", "slow-key"));
      await waitFor("the GET to be forwarded", async () => {
        const stats = await readStats(proxy.statsPort);
        return serverOf(stats, "alpha", redis.address).requests === 1;
      });
      await body({ proxy, client, log });
    } finally {
      redis.process.signal("SIGCONT");
      client.close();
      await proxy.stop();
    }
  }

  /** The request in flight got no reply and the connection closed. */
  async function expectDropped(client: RawClient): Promise<void> {
    const { replies, closed } = await client.readRepliesOrClose(1, respFrame);
    expect({ replies: replies.length, closed }).toEqual({ replies: 0, closed: true });
  }

  testDeliberate("with a request in flight: it completes with its real reply, then the proxy exits 0", {
    async buncracker() {
      const metricsPort = freePort();
      await withRequestInFlight(["--metrics-port", String(metricsPort), "--drain-timeout", "60000"], async ({ proxy, client, log }) => {
        proxy.signal("SIGTERM");
        await waitForLines(log, /signal 15 \(SIGTERM\) received, draining/);
        // Draining: no longer accepting, and /healthz says so.
        const health = await metricsRequest(metricsPort, "/healthz");
        expect(health.status).toBe(503);
        await expect(RawClient.connect(proxy.pools.alpha!, 2000)).rejects.toThrow();
        expect(proxy.process.running).toBe(true);
        redis.process.signal("SIGCONT");
        expect((await client.readReply(respFrame)).toString()).toBe(bulk("the-real-value").toString());
        expect(await proxy.process.exited).toBe(0);
        expect(await client.closesWithin(5000)).toBe(true);
      });
    },
    async nutcracker() {
      await withRequestInFlight([], async ({ proxy, client }) => {
        proxy.signal("SIGTERM");
        // nutcracker 0.5.0 does not handle SIGTERM: the default action kills it.
        expect(await proxy.process.exited).toBe(128 + 15);
        await expectDropped(client);
      });
    },
  });

  testDeliberate("a second SIGTERM exits 1 at once, dropping the request in flight", {
    async buncracker() {
      await withRequestInFlight(["--drain-timeout", "60000"], async ({ proxy, client, log }) => {
        proxy.signal("SIGTERM");
        await waitForLines(log, /signal 15 \(SIGTERM\) received, draining/);
        proxy.signal("SIGTERM");
        expect(await proxy.process.exited).toBe(1);
        expect(log()).toContain("signal 15 (SIGTERM) received again, exiting now");
        await expectDropped(client);
      });
    },
  });

  testDeliberate("a drain that runs out of time answers what is left with an error, closes the client and still exits 0", {
    async buncracker() {
      await withRequestInFlight(["--drain-timeout", "300"], async ({ proxy, client, log }) => {
        proxy.signal("SIGTERM");
        expect(await proxy.process.exited).toBe(0);
        expect(log()).toContain("drain timed out with 1 requests in flight");
        const { replies, closed } = await client.readRepliesOrClose(2, respFrame);
        expect({ replies: replies.map(String), closed }).toEqual({ replies: ["-ERR Connection closed by proxy\r\n"], closed: true });
      });
    },
  });
});

