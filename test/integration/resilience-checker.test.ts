// The "nothing lost" checker (test/checker/) for about 20 seconds: pipelined, tagged requests on
// 18 connections over three pools while backends are killed, restarted and frozen and garbage
// arrives on side connections. Every request is answered exactly once, in order, with its own
// value (each lane's acknowledged writes are there while no fault is under way) or a proxy error
// a fault explains. checker-detects.test.ts proves each detection on a broken proxy. (nutcracker 0.5.0 fails this: it closes clients and reorders split
// memcached replies; scripts/checker.sh runs the same for 10 minutes.)

import { expect } from "bun:test";
import { runChecker } from "../checker/run.ts";
import { testDeliberate } from "../helpers/deliberate.ts";

testDeliberate("nothing lost, misordered or duplicated while backends fail and garbage flows", {
  buncracker: async () => {
    const { report, proxyAlive, joined } = await runChecker({ durationMs: 20_000, seed: 7 });
    const counts = report.toJSON();
    expect({ ...counts, samples: undefined }).toMatchObject({
      lost: 0,
      misordered: 0,
      foreign: 0,
      missing: 0,
      wrong: 0,
      duplicated: 0,
      unexpected: 0,
      abandoned: 0,
      disconnects: 0,
      desyncs: 0,
    });
    expect(report.unexplained).toEqual({});
    expect(report.samples).toEqual([]);
    expect(report.clean).toBe(true);
    expect(proxyAlive).toBe(true);
    // Every request is accounted for: answered, or has no reply by design.
    expect(report.replies + report.noreply).toBe(report.requests);
    // The run did what it claims: real traffic, faults that made the proxy answer with errors,
    // and garbage.
    expect(report.ok).toBeGreaterThan(10_000);
    // Reads were held to what their lanes wrote, not only those outside every fault's reach.
    expect(report.certain).toBeGreaterThan(10_000);
    expect(report.errorCount).toBeGreaterThan(0);
    expect(Object.values(report.faults).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(4);
    expect(report.garbage).toBeGreaterThan(100);
    // Joined requests were among them: memcached get lines, and MGET fragments in both redis
    // pools (coalesce_gets, on by default).
    expect(joined!["redis"]).toBeGreaterThan(0);
    expect(joined!["ejecting"]).toBeGreaterThan(0);
    expect(joined!["memcache"]).toBeGreaterThan(0);
  },
}, 90_000);
