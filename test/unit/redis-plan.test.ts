// The redis planner (src/proto/redis/plan.ts) without servers: plain commands keep the usual
// routing and leave the client without any state beyond its keys (the hot path); commands with
// a role get the plan their role says. End to end: test/integration/redis-*.test.ts.

import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/conf/load.ts";
import { PlanKind, Req, type Plan, type PoolView } from "../../src/proto/codec.ts";
import { planRequest, watchRedirected, type HasMultiKey } from "../../src/proto/redis/plan.ts";
import { parseRequest } from "../../src/proto/redis/request.ts";
import { createRouter } from "../../src/route/router.ts";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { KeySlots } from "../../src/route/key-slot.ts";
import { command } from "../helpers/resp.ts";

const yaml = (extra: string) =>
  `p:\n  listen: 127.0.0.1:22121\n  redis: true\n${extra}  servers:\n   - 127.0.0.1:7001:1 a\n   - 127.0.0.1:7002:1 b\n   - 127.0.0.1:7003:1 c\n`;

function view(extra = "", live = [true, true, true], subscribers = 0): PoolView {
  const cfg = parseConfig(yaml(extra), "t.yml", () => {}).pools[0]!;
  const router = createRouter(cfg);
  return {
    cfg,
    positions: live.length,
    cluster: false,
    route: (b, s, e) => router.route(b, s, e),
    live: (i) => live[i]!,
    everyServer: () => live.flatMap((l, i) => (l ? [i] : [])),
    subscribers: () => subscribers,
  };
}

function planIn(resp3: boolean, pool: PoolView, holder: HasMultiKey, ...args: string[]): Plan | null {
  const buf = command(...args);
  const req = new Req();
  expect(parseRequest(buf, 0, buf.length, req)).toBe(buf.length);
  return planRequest(buf, req, holder, pool, resp3);
}

const plan = (pool: PoolView, holder: HasMultiKey, ...args: string[]): Plan | null => planIn(false, pool, holder, ...args);

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
  test("KEYS and FLUSHDB refused unless enabled; whole-pool commands go to every live server (Route.All's fan-out)", () => {
    const holder: HasMultiKey = { multikey: null };
    expect(text(plan(view(), holder, "KEYS", "*"))).toContain("redis_allow_keys");
    expect(text(plan(view(), holder, "FLUSHDB"))).toContain("redis_allow_flush");
    const open = view("  redis_allow_keys: true\n  redis_allow_flush: true\n", [true, false, true]);
    for (const args of [["KEYS", "*"], ["FLUSHDB"], ["DBSIZE"], ["RANDOMKEY"], ["PUBSUB", "NUMPAT"]]) expect(plan(open, holder, ...args)?.kind).toBe(PlanKind.All);
    expect(text(plan(view("", [false, false, false]), holder, "DBSIZE"))).toBe("-ERR Connection refused\r\n");
  });

  test("SCRIPT LOAD / EXISTS / FLUSH go to every live server; other subcommands are refused by name", () => {
    const holder: HasMultiKey = { multikey: null };
    const pool = view("", [true, false, true]);
    for (const args of [["SCRIPT", "LOAD", "return 1"], ["script", "exists", "abc"], ["SCRIPT", "Flush", "ASYNC"]]) expect(plan(pool, holder, ...args)?.kind).toBe(PlanKind.All);
    expect(text(plan(pool, holder, "SCRIPT", "KILL"))).toBe("-ERR 'script kill' is not served through the proxy (served: script load, script exists, script flush)\r\n");
    expect(text(plan(pool, holder, "SCRIPT", "debug", "yes"))).toStartWith("-ERR 'script debug' is not served");
    expect(text(plan(pool, holder, "SCRIPT", "x\r\ny"))).toStartWith("-ERR 'script x  y' is not served");
    expect(text(plan(view("", [false, false, false]), holder, "SCRIPT", "LOAD", "return 1"))).toBe("-ERR Connection refused\r\n");
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

describe("the client's protocol and the commands the proxy answers itself", () => {
  test("a RESP3 subscriber runs any command and gets push confirmations; a RESP2 one is held to redis's rules", () => {
    const pool = view();
    const r3: HasMultiKey = { multikey: null };
    const sub = planIn(true, pool, r3, "SUBSCRIBE", "news");
    expect(sub?.kind).toBe(PlanKind.Fanout);
    if (sub?.kind === PlanKind.Fanout) {
      const w = new ByteWriter(64);
      const reply = sub.merge({ nfrags: 1, fragBuf: [Buffer.from(">3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n")], fragPos: new Int32Array([0, 36]) }, w);
      expect(Buffer.from(reply!).toString()).toStartWith(">3\r\n");
    }
    expect(planIn(true, pool, r3, "GET", "a")).toBeNull();
    const r2: HasMultiKey = { multikey: null };
    planIn(false, pool, r2, "SUBSCRIBE", "news");
    expect(text(planIn(false, pool, r2, "GET", "a"))).toStartWith("-ERR Can't execute 'get'");
  });

  test("RESET while subscribed or in a transaction releases the client's connections and forgets its state; HELLO 2 while subscribed in RESP3 and handshake commands in a transaction: refused", () => {
    const pool = view();
    const plain: HasMultiKey = { multikey: null };
    expect(planIn(false, pool, plain, "RESET")).toBeNull();
    const r3: HasMultiKey = { multikey: null };
    planIn(true, pool, r3, "SUBSCRIBE", "news");
    expect(text(planIn(true, pool, r3, "HELLO", "2"))).toContain("'hello 2'");
    expect(planIn(true, pool, r3, "HELLO", "3")).toBeNull();
    expect(planIn(true, pool, r3, "RESET")?.kind).toBe(PlanKind.Release);
    expect(r3.multikey).toBeNull();
    expect(planIn(true, pool, r3, "HELLO", "2")).toBeNull();
    const inMulti: HasMultiKey = { multikey: null };
    planIn(false, pool, inMulti, "MULTI");
    planIn(false, pool, inMulti, "SET", "a", "1");
    // A RESET with arguments is refused inside the transaction, as redis queues nothing wrong.
    expect(text(planIn(false, pool, inMulti, "RESET", "x"))).toContain("wrong number of arguments");
    expect(planIn(false, pool, inMulti, "RESET")?.kind).toBe(PlanKind.Release);
    expect(plan(pool, inMulti, "EXEC")).toEqual({ kind: PlanKind.Local, reply: Buffer.from("-ERR EXEC without MULTI\r\n") } as unknown as Plan);
    const tx: HasMultiKey = { multikey: null };
    expect(planIn(false, pool, tx, "MULTI")?.kind).toBe(PlanKind.Local);
    for (const args of [["CLIENT", "SETNAME", "x"], ["SELECT", "0"], ["HELLO", "3"]]) expect(text(planIn(false, pool, tx, ...args))).toContain("not allowed in a transaction");
    // ECHO is queued like any keyless command (held until the server is known).
    expect(text(planIn(false, pool, tx, "ECHO", "x"))).toBe("+QUEUED\r\n");
  });
});

describe("WAIT", () => {
  test("waits on the servers written to (the core knows them), the replies' smallest; arguments redis refuses go to one server", () => {
    const pool = view("", [false, true, true]);
    const holder: HasMultiKey = { multikey: null };
    const p = plan(pool, holder, "WAIT", "2", "150");
    expect(p?.kind).toBe(PlanKind.Wait);
    if (p?.kind !== PlanKind.Wait) return;
    expect(Buffer.from(p.request).toString()).toBe("*3\r\n$4\r\nWAIT\r\n$1\r\n2\r\n$3\r\n150\r\n");
    expect(Buffer.from(p.probe).toString()).toContain("PUBLISH");
    expect(p.waitMs).toBe(150);
    const w = new ByteWriter(16);
    const replies = [":2\r\n", ":1\r\n", ":3\r\n"].map((r) => Buffer.from(r));
    const fragPos = new Int32Array(6);
    replies.forEach((r, i) => (fragPos[2 * i + 1] = r.length));
    expect(p.merge({ nfrags: 3, fragBuf: replies, fragPos }, w)).toBeNull();
    expect(Buffer.from(w.take()).toString()).toBe(":1\r\n");
    const forever = plan(pool, holder, "WAIT", "1", "0");
    expect(forever?.kind === PlanKind.Wait && forever.waitMs).toBe(Infinity);
    for (const args of [["WAIT", "x", "10"], ["WAIT", "1", "-1"], ["WAIT", "1", "1.5"]]) expect(plan(pool, holder, ...args)).toEqual({ kind: PlanKind.Server, server: 1 });
    expect(holder.multikey).not.toBeNull();
    expect(holder.multikey!.busy).toBe(false);
  });
});

describe("a redis_cluster pool: positions are slots, a master at the lowest slot it serves", () => {
  const slots = new KeySlots();
  const MASTERS = [0, 5461, 10923];
  function clusterView(): PoolView {
    const cfg = parseConfig(yaml("  distribution: redis_cluster\n"), "t.yml", () => {}).pools[0]!;
    return {
      cfg,
      positions: 16384,
      cluster: true,
      route: (b, s, e) => slots.slot(b, s, e),
      live: () => true,
      everyServer: () => [...MASTERS],
      subscribers: () => 0,
    };
  }
  const slotOf = (key: string) => slots.slot(Buffer.from(key), 0, key.length);

  test("a transaction's keys must share a slot: redis's own CROSSSLOT, then EXECABORT; a blocking command or a script likewise", () => {
    const pool = clusterView();
    const holder: HasMultiKey = { multikey: null };
    expect(text(plan(pool, holder, "MULTI"))).toBe("+OK\r\n");
    // Held until EXEC: nothing of it went up.
    expect(text(plan(pool, holder, "SET", "{a}x", "1"))).toBe("+QUEUED\r\n");
    expect(text(plan(pool, holder, "SET", "{b}y", "1"))).toBe("-CROSSSLOT Keys in request don't hash to the same slot\r\n");
    expect(text(plan(pool, holder, "EXEC"))).toStartWith("-EXECABORT");
    expect(text(plan(pool, holder, "BLPOP", "{a}1", "{b}2", "0"))).toBe("-CROSSSLOT Keys in request don't hash to the same slot\r\n");
    expect(text(plan(pool, holder, "EVAL", "return 1", "2", "{a}1", "{b}2"))).toBe("-CROSSSLOT Keys in request don't hash to the same slot\r\n");
    expect(plan(pool, holder, "EVAL", "return 1", "2", "{a}1", "{a}2")).toBeNull();
    expect(text(plan(pool, holder, "WAIT", "1", "0"))).toContain("redis_cluster");
  });

  test("a transaction goes up whole at EXEC (a node that redirects it has run none of it); one that watches keys says so", () => {
    const pool = clusterView();
    const holder: HasMultiKey = { multikey: null };
    expect(text(plan(pool, holder, "MULTI"))).toBe("+OK\r\n");
    expect(text(plan(pool, holder, "PING"))).toBe("+QUEUED\r\n");
    expect(text(plan(pool, holder, "SET", "{a}x", "1"))).toBe("+QUEUED\r\n");
    const exec = plan(pool, holder, "EXEC");
    expect(exec?.kind === PlanKind.Pinned && [exec.server, Buffer.from(exec.before!).toString(), exec.silent, exec.release, exec.watched]).toEqual([
      slotOf("a"),
      [["MULTI"], ["PING"], ["SET", "{a}x", "1"]].map((c) => command(...c).toString()).join(""),
      3,
      true,
      false,
    ]);
    const watch = plan(pool, holder, "WATCH", "{a}x");
    expect(watch?.kind === PlanKind.Pinned && [watch.server, watch.before, watch.reply, watch.release]).toEqual([slotOf("a"), null, null, false]);
    expect(text(plan(pool, holder, "MULTI"))).toBe("+OK\r\n");
    expect(text(plan(pool, holder, "INCR", "{a}x"))).toBe("+QUEUED\r\n");
    const watchedExec = plan(pool, holder, "EXEC");
    expect(watchedExec?.kind === PlanKind.Pinned && [Buffer.from(watchedExec.before!).toString(), watchedExec.silent, watchedExec.release, watchedExec.watched]).toEqual([
      [["MULTI"], ["INCR", "{a}x"]].map((c) => command(...c).toString()).join(""),
      2,
      true,
      true,
    ]);
    // DISCARD of a watching transaction: its watches end upstream.
    plan(pool, holder, "WATCH", "{a}x");
    plan(pool, holder, "MULTI");
    const discard = plan(pool, holder, "DISCARD");
    expect(discard?.kind === PlanKind.Pinned && [Buffer.from(discard.before!).toString(), Buffer.from(discard.reply!).toString(), discard.release]).toEqual([
      command("UNWATCH").toString(),
      "+OK\r\n",
      true,
    ]);
  });

  test("a redirected request of a transaction that watches keys: EXEC fails as after a watched key changed, in the client's protocol; WATCH gets OK and marks it failed", () => {
    const pool = clusterView();
    const bundle = Buffer.concat([command("MULTI"), command("SET", "{a}x", "1"), command("EXEC")]);
    const holder: HasMultiKey = { multikey: null };
    expect(Buffer.from(watchRedirected(bundle, 0, bundle.length, holder, false)!).toString()).toBe("*-1\r\n");
    expect(Buffer.from(watchRedirected(bundle, 0, bundle.length, holder, true)!).toString()).toBe("_\r\n");
    for (const resp3 of [false, true]) {
      const client: HasMultiKey = { multikey: null };
      planIn(resp3, pool, client, "WATCH", "{a}x");
      const watch = command("WATCH", "{a}x");
      expect(Buffer.from(watchRedirected(watch, 0, watch.length, client, resp3)!).toString()).toBe("+OK\r\n");
      // A read between WATCH and MULTI is sent again to the node named.
      const get = command("GET", "{a}x");
      expect(watchRedirected(get, 0, get.length, client, resp3)).toBeNull();
      expect(text(planIn(resp3, pool, client, "MULTI"))).toBe("+OK\r\n");
      expect(text(planIn(resp3, pool, client, "SET", "{a}x", "1"))).toBe("+QUEUED\r\n");
      // Answered by the proxy, the watches ended upstream.
      const exec = planIn(resp3, pool, client, "EXEC");
      expect(exec?.kind === PlanKind.Pinned && [Buffer.from(exec.reply!).toString(), Buffer.from(exec.before!).toString(), exec.release]).toEqual([
        resp3 ? "_\r\n" : "*-1\r\n",
        command("UNWATCH").toString(),
        true,
      ]);
      // The next transaction starts clean, and a redirection that comes late, for the one that
      // has ended (no holder), leaves it alone.
      planIn(resp3, pool, client, "WATCH", "{a}x");
      expect(Buffer.from(watchRedirected(watch, 0, watch.length, null, resp3)!).toString()).toBe("+OK\r\n");
      planIn(resp3, pool, client, "MULTI");
      const next = planIn(resp3, pool, client, "EXEC");
      expect(next?.kind === PlanKind.Pinned && [next.reply, next.watched]).toEqual([null, true]);
    }
  });

  test("SCAN walks the masters by their lowest slots; a pattern goes to one master, a channel to its slot's", () => {
    const pool = clusterView();
    const holder: HasMultiKey = { multikey: null };
    const first = plan(pool, holder, "SCAN", "0");
    expect(first?.kind === PlanKind.Fanout && first.targets.map((t) => t.server)).toEqual([0]);
    if (first?.kind !== PlanKind.Fanout) return;
    const w = new ByteWriter(64);
    const done = Buffer.from("*2\r\n$1\r\n0\r\n*0\r\n");
    expect(first.merge({ nfrags: 1, fragBuf: [done], fragPos: new Int32Array([0, done.length]) }, w)).toBeNull();
    const next = scanCursor(w.take());
    expect(next).toBe("1");
    const second = plan(pool, holder, "SCAN", next);
    expect(second?.kind === PlanKind.Fanout && second.targets.map((t) => t.server)).toEqual([5461]);
    const pattern = plan(pool, holder, "PSUBSCRIBE", "p*");
    expect(pattern?.kind === PlanKind.Fanout && pattern.targets.map((t) => t.server)).toEqual([0]);
    const channel = plan(pool, holder, "SUBSCRIBE", "news");
    expect(channel?.kind === PlanKind.Fanout && channel.targets.map((t) => t.server)).toEqual([slotOf("news")]);
    expect(plan(pool, { multikey: null }, "PUBLISH", "news", "x")).toEqual({ kind: PlanKind.Server, server: slotOf("news") });
  });
});

/** The cursor of a SCAN reply. */
function scanCursor(reply: Uint8Array): string {
  const lines = Buffer.from(reply).toString().split("\r\n");
  return lines[2]!;
}
