// The redis planner (src/proto/redis/plan.ts) without servers: plain commands keep the usual
// routing and leave the client without any state beyond its keys (the hot path); commands with
// a role get the plan their role says. End to end: test/integration/redis-*.test.ts.

import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/conf/load.ts";
import { PlanKind, Req, type Plan, type PoolView } from "../../src/proto/codec.ts";
import { planRequest, type HasMultiKey } from "../../src/proto/redis/plan.ts";
import { parseRequest } from "../../src/proto/redis/request.ts";
import { createRouter } from "../../src/route/router.ts";
import { command } from "../helpers/resp.ts";

const yaml = (extra: string) =>
  `p:\n  listen: 127.0.0.1:22121\n  redis: true\n${extra}  servers:\n   - 127.0.0.1:7001:1 a\n   - 127.0.0.1:7002:1 b\n   - 127.0.0.1:7003:1 c\n`;

function view(extra = "", live = [true, true, true], subscribers = 0): PoolView {
  const cfg = parseConfig(yaml(extra), "t.yml", () => {}).pools[0]!;
  const router = createRouter(cfg);
  return { cfg, route: (b, s, e) => router.route(b, s, e), live: (i) => live[i]!, subscribers: () => subscribers };
}

function plan(pool: PoolView, holder: HasMultiKey, ...args: string[]): Plan | null {
  const buf = command(...args);
  const req = new Req();
  expect(parseRequest(buf, 0, buf.length, req)).toBe(buf.length);
  return planRequest(buf, req, holder, pool, false);
}

const text = (p: Plan | null) => (p !== null && p.kind === PlanKind.Local ? Buffer.from(p.reply).toString() : "");

describe("the hot path", () => {
  test("plain commands, refused ones too, keep the usual routing and make no state", () => {
    const pool = view();
    const holder: HasMultiKey = { multikey: null };
    for (const args of [["GET", "a"], ["SET", "a", "1"], ["MGET", "a", "b"], ["PING"], ["NOSUCH"], ["GET"], ["RENAME", "a", "b"]]) {
      expect(plan(pool, holder, ...args)).toBeNull();
    }
    expect(holder.multikey).toBeNull();
  });
});

describe("roles", () => {
  test("KEYS and FLUSHDB refused unless enabled, then sent to every live server", () => {
    const holder: HasMultiKey = { multikey: null };
    expect(text(plan(view(), holder, "KEYS", "*"))).toContain("redis_allow_keys");
    expect(text(plan(view(), holder, "FLUSHDB"))).toContain("redis_allow_flush");
    const open = view("  redis_allow_keys: true\n  redis_allow_flush: true\n", [true, false, true]);
    for (const args of [["KEYS", "*"], ["FLUSHDB"], ["DBSIZE"], ["RANDOMKEY"]]) {
      const p = plan(open, holder, ...args);
      expect(p?.kind).toBe(PlanKind.Fanout);
      if (p?.kind === PlanKind.Fanout) expect(p.targets.map((t) => t.server)).toEqual([0, 2]);
    }
  });

  test("SCAN goes to the cursor's server, skipping ejected ones; a bad cursor is redis's error", () => {
    const holder: HasMultiKey = { multikey: null };
    const p = plan(view("", [false, true, true]), holder, "SCAN", "0");
    expect(p?.kind === PlanKind.Fanout && p.targets.map((t) => t.server)).toEqual([1]);
    expect(text(plan(view(), holder, "SCAN", "x"))).toBe("-ERR invalid cursor\r\n");
  });

  test("PUBLISH goes to its channel's server, as SUBSCRIBE's subscription does", () => {
    const pool = view();
    const holder: HasMultiKey = { multikey: null };
    const channel = Buffer.from("news");
    const p = plan(pool, holder, "PUBLISH", "news", "x");
    expect(p).toEqual({ kind: PlanKind.Server, server: pool.route(channel, 0, channel.length) });
    const sub = plan(pool, holder, "SUBSCRIBE", "news");
    expect(sub?.kind === PlanKind.Fanout && sub.targets.map((t) => t.server)).toEqual([pool.route(channel, 0, channel.length)]);
  });

  test("the subscriber limit", () => {
    const holder: HasMultiKey = { multikey: null };
    expect(text(plan(view("  redis_max_subscribers: 2\n", [true, true, true], 2), holder, "SUBSCRIBE", "x"))).toContain("redis_max_subscribers: 2");
    expect(plan(view("  redis_max_subscribers: 2\n", [true, true, true], 1), holder, "SUBSCRIBE", "x")?.kind).toBe(PlanKind.Fanout);
  });

  test("blocking commands: a lent connection with their own timeout; keys on two servers refused", () => {
    const pool = view();
    const holder: HasMultiKey = { multikey: null };
    expect(plan(pool, holder, "BLPOP", "q", "2.5")).toMatchObject({ kind: PlanKind.Blocking, waitMs: 2500 });
    expect(plan(pool, holder, "BRPOP", "q", "0")).toMatchObject({ kind: PlanKind.Blocking, waitMs: Infinity });
    expect(plan(pool, holder, "XREAD", "STREAMS", "s", "0")?.kind).toBe(PlanKind.Server);
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    expect(text(plan(pool, holder, "BLPOP", ...keys, "1"))).toStartWith("-CROSSSLOT ");
  });
});
