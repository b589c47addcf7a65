// The nothing-lost checker catches what it claims to: a deliberately broken proxy (helpers/
// broken-proxy.ts) in front of real redis servers, one flaw at a time, must fail the check with
// the counter that names the flaw, and the same fake without a flaw must pass it. The helpers'
// reply readers fail on a reply nobody asked for. Then the fault callback: a backend killed
// behind buncracker inside ctx.fault() is forgiven (errors explained, nothing missing), and the
// same kill left undeclared fails the check.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { check, type CheckOptions } from "../checker/check.ts";
import type { Report } from "../checker/report.ts";
import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import { startBrokenProxy, type Flaw } from "../helpers/broken-proxy.ts";
import { exchange, RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy } from "../helpers/proxy.ts";
import { eventually } from "../helpers/reload.ts";
import { command, OK, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

let redis: Backend[] = [];
let memcached: Backend[] = [];
beforeAll(async () => {
  [redis, memcached] = await Promise.all([Promise.all([startRedis(), startRedis()]), Promise.all([startMemcached(), startMemcached()])]);
});
afterAll(async () => {
  await Promise.all([...redis, ...memcached].map((b) => b.stop()));
});

/** The checker's verdict on the fake with `flaw`, after about 2 s of traffic on 4 lanes, and at
 *  least `minOk` replies judged ok (however slow the machine). */
async function checkFake(flaw: Flaw, minOk = 0): Promise<{ report: Report; flawed: number }> {
  const fake = await startBrokenProxy(redis, flaw);
  // Once the traffic stopped, twice-idle repeats each client's last reply; the checker closes
  // only once it has counted every one (else the test fails here), not after a time by chance.
  const whenQuiet = async (report: Report): Promise<void> => {
    const [seen, sent] = [report.duplicated, fake.flawed];
    fake.repeatLast();
    const repeated = fake.flawed - sent;
    await eventually(`${repeated} repeated replies counted duplicated`, () => (report.duplicated >= seen + repeated ? true : undefined));
  };
  try {
    const { report } = await check({ pools: [{ endpoint: fake.endpoint, protocol: "redis", lanes: 4 }], durationMs: 2000, seed: 3, whenQuiet, inject: (ctx) => ctx.traffic(minOk) });
    return { report, flawed: fake.flawed };
  } finally {
    fake.stop();
  }
}

/** The problem counters other than `named`, which must all be 0 when only the flaw shows. */
function expectOnly(report: Report, ...named: string[]): void {
  const all = report.toJSON();
  const counts = ["lost", "misordered", "foreign", "missing", "wrong", "duplicated", "unexpected", "abandoned", "disconnects", "desyncs"];
  const rest = counts.filter((c) => !named.includes(c));
  expect(Object.fromEntries(rest.map((c) => [c, all[c]]))).toEqual(Object.fromEntries(rest.map((c) => [c, 0])));
}

describe("the checker fails a broken proxy", () => {
  test("a correct fake passes (the control)", async () => {
    const { report } = await checkFake("none", 5000);
    expect(report.samples).toEqual([]);
    expect(report.clean).toBe(true);
    expect(report.ok).toBeGreaterThan(1000);
    expect(report.certain).toBeGreaterThan(1000);
  });

  test("a write acknowledged and dropped: nil for the written key is missing", async () => {
    const { report, flawed } = await checkFake("drop-write");
    expect(flawed).toBeGreaterThan(0);
    expect(report.missing).toBeGreaterThan(0);
    expect(report.clean).toBe(false);
    expectOnly(report, "missing", "wrong");
  });

  test("two replies swapped: misordered", async () => {
    const { report, flawed } = await checkFake("swap");
    expect(flawed).toBeGreaterThan(0);
    expect(report.misordered).toBeGreaterThan(0);
    expect(report.clean).toBe(false);
  });

  test("a reply sent twice mid-run: duplicated (the shifted replies after it are misordered)", async () => {
    const { report, flawed } = await checkFake("twice");
    expect(flawed).toBe(1);
    expect(report.duplicated).toBeGreaterThan(0);
    expect(report.clean).toBe(false);
  });

  test("a reply sent again after the last request: duplicated", async () => {
    const { report, flawed } = await checkFake("twice-idle");
    expect(flawed).toBeGreaterThan(0);
    expect(report.duplicated).toBe(flawed);
    expect(report.clean).toBe(false);
    // Nothing else is wrong: only the trailing replies give the flaw away.
    expectOnly(report, "duplicated");
  });

  test("reads from another server than the writes: missing", async () => {
    const { report } = await checkFake("wrong-server");
    expect(report.missing).toBeGreaterThan(0);
    expect(report.clean).toBe(false);
  });

  test("proxy errors while no fault is under way: unexplained", async () => {
    const { report, flawed } = await checkFake("error-some");
    expect(report.errors["Connection refused"]).toBe(flawed);
    expect(report.unexplained["Connection refused"]).toBe(flawed);
    expect(report.clean).toBe(false);
  });

  test("every request answered with an error: no request succeeded", async () => {
    const { report } = await checkFake("error-all");
    expect(report.ok).toBe(0);
    expect(report.clean).toBe(false);
    expect(report.summary(1)).toContain("NO REQUEST SUCCEEDED");
  });
});

describe("the helpers' reply readers", () => {
  test("fail on a reply beyond the ones asked for", async () => {
    // A server that answers every request twice.
    const twice = Bun.listen({
      hostname: "127.0.0.1",
      port: freePort(),
      socket: { data: (s) => void s.write("+OK\r\n+OK\r\n") },
    });
    try {
      const endpoint = { host: "127.0.0.1", port: twice.port };
      await expect(exchange(endpoint, command("SET", "k", "v"), 1, respFrame)).rejects.toThrow("bytes after the 1 expected replies");
      // Read as a pipeline in parts (`more`), the same bytes are two replies.
      const c = await RawClient.connect(endpoint);
      await c.send(command("SET", "k", "v"));
      expect(await c.readReply(respFrame, { more: true })).toEqual(OK);
      expect(await c.readReply(respFrame)).toEqual(OK);
      c.close();
    } finally {
      twice.stop(true);
    }
  });
});

describe("faults injected by a callback", () => {
  /** buncracker over two backends of `protocol`; the check kills and restarts the first under traffic. */
  async function killUnderTraffic(protocol: "redis" | "memcache", declared: boolean | "for another pool"): Promise<Report> {
    const backends = protocol === "redis" ? redis : memcached;
    const listen = `127.0.0.1:${freePort()}`;
    const yaml = poolYaml("alpha", { listen, redis: protocol === "redis", timeout: 1000 }, backends.map((b) => serverLine(b.address)));
    const proxy = await startProxy("buncracker", yaml);
    const kill = async (): Promise<void> => {
      await backends[0]!.kill();
      await backends[0]!.restart();
    };
    const opts: CheckOptions = {
      pools: [{ name: "alpha", endpoint: proxy.pools.alpha!, protocol, lanes: 4 }],
      seed: 5,
      settleMs: 300,
      inject: async (ctx) => {
        await ctx.traffic(2000);
        if (declared === true) await ctx.fault("kill", kill);
        else if (declared === "for another pool") await ctx.fault("kill", kill, { pools: ["beta"] });
        else await kill();
        await ctx.traffic(2000);
      },
    };
    try {
      return (await check(opts)).report;
    } finally {
      await proxy.stop();
    }
  }

  for (const protocol of ["redis", "memcache"] as const) {
    test(`${protocol}: a kill inside ctx.fault is forgiven: errors explained, nothing missing`, async () => {
      const report = await killUnderTraffic(protocol, true);
      expect(report.samples).toEqual([]);
      expect(report.faults).toEqual({ kill: 1 });
      expect(report.clean).toBe(true);
    });

    test(`${protocol}: the same kill, undeclared, fails the check (data the lanes wrote is gone)`, async () => {
      const report = await killUnderTraffic(protocol, false);
      expect(report.missing + report.unexplainedCount).toBeGreaterThan(0);
      expect(report.clean).toBe(false);
    });
  }

  test("a fault declared for another pool forgives nothing in this one", async () => {
    const report = await killUnderTraffic("redis", "for another pool");
    expect(report.faults).toEqual({ kill: 1 });
    expect(report.missing + report.unexplainedCount).toBeGreaterThan(0);
    expect(report.clean).toBe(false);
  });
});
