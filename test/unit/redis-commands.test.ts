// The command table against its sources of truth: a real redis-server's COMMAND (every command
// known, arity, key positions) and the reference nutcracker 0.5.0 binary (every command it
// knows is known here, and served unless REFERENCE.md lists it as unsupported).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { Route } from "../../src/proto/codec.ts";
import { COMMANDS, Flag, lookupCommand, type RedisCommand } from "../../src/proto/redis/commands.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { redisCall } from "../helpers/direct.ts";
import type { RespValue } from "../helpers/resp.ts";
import { testNeeding, NO_NUTCRACKER } from "../helpers/needs.ts";

const NUTCRACKER = "/usr/sbin/nutcracker";

// REFERENCE.md, "Unsupported": what twemproxy does not serve (it closes the connection).
const REFERENCE_UNSUPPORTED = [
  "keys", "scan", "randomkey", "rename", "renamenx", "move", "migrate", "object", "bitop", "msetnx",
  "stralgo", "blpop", "brpop", "brpoplpush", "blmove", "bzpopmin", "bzpopmax", "subscribe",
  "unsubscribe", "psubscribe", "punsubscribe", "publish", "pubsub", "multi", "exec", "discard",
  "watch", "unwatch", "script", "echo", "select", "info", "config", "client", "dbsize", "flushall",
  "flushdb", "monitor", "time",
];

const byName = (name: string): RedisCommand => {
  const bytes = Buffer.from(name);
  const command = lookupCommand(bytes, 0, bytes.length);
  if (command === null) throw new Error(`${name} is not in the table`);
  return command;
};

const text = (v: RespValue): string => (Buffer.isBuffer(v) ? v.toString("latin1") : String(v));

/** A flat [name, value, name, value...] array as an object. */
function fields(v: RespValue): Record<string, RespValue> {
  const list = v as RespValue[];
  const out: Record<string, RespValue> = {};
  for (let i = 0; i + 1 < list.length; i += 2) out[text(list[i]!)] = list[i + 1]!;
  return out;
}

interface RedisCommandInfo {
  name: string;
  /** redis's command flags (readonly, write, ...). */
  flags: string[];
  arity: number;
  first: number;
  last: number;
  step: number;
  /** The argument that holds numkeys, 0 when none; and the offset of the first key after it. */
  numkeysAt: number;
  firstKeyAfterNumkeys: number;
  /** redis's `no_auth` flag: may be called before AUTH. */
  noAuth: boolean;
}

describe("the command table", () => {
  let redis: Backend;
  let info: RedisCommandInfo[];

  beforeAll(async () => {
    redis = await startRedis();
    const reply = (await redisCall(redis, "COMMAND")) as RespValue[][];
    info = reply.map((entry) => {
      let numkeysAt = 0;
      let firstKeyAfterNumkeys = 0;
      for (const spec of entry[8] as RespValue[]) {
        const s = fields(spec);
        const find = fields(s["find_keys"]!);
        if (text(find["type"]!) !== "keynum") continue;
        const begin = fields(fields(s["begin_search"]!)["spec"]!);
        const keynum = fields(find["spec"]!);
        numkeysAt = (begin["index"] as number) + (keynum["keynumidx"] as number);
        firstKeyAfterNumkeys = (keynum["firstkey"] as number) - (keynum["keynumidx"] as number);
      }
      return {
        name: text(entry[0]!),
        flags: (entry[2] as RespValue[]).map(text),
        arity: entry[1] as number,
        first: entry[3] as number,
        last: entry[4] as number,
        step: entry[5] as number,
        numkeysAt,
        firstKeyAfterNumkeys,
        noAuth: (entry[2] as RespValue[]).map(text).includes("no_auth"),
      };
    });
  });

  afterAll(async () => {
    await redis?.stop();
  });

  test("knows every command redis-server knows", () => {
    expect(info.length).toBeGreaterThan(200);
    const missing = info.filter((c) => lookupCommand(Buffer.from(c.name), 0, c.name.length) === null).map((c) => c.name);
    expect(missing).toEqual([]);
  });

  test("has redis-server's arity for every command", () => {
    const differ = info.filter((c) => byName(c.name).arity !== c.arity).map((c) => [c.name, c.arity, byName(c.name).arity]);
    expect(differ).toEqual([]);
  });

  test("has redis-server's key positions for every served command", () => {
    for (const c of info) {
      const ours = byName(c.name);
      if (ours.route === null) continue;
      expect({ name: c.name, first: ours.firstKey, last: ours.lastKey, step: ours.keyStep, numkeysAt: ours.numkeysAt }).toEqual({
        name: c.name,
        first: c.first,
        last: c.last,
        step: c.step,
        numkeysAt: c.numkeysAt,
      });
      // The keys follow numkeys directly, one after another.
      if (c.numkeysAt > 0) expect([c.name, c.firstKeyAfterNumkeys]).toEqual([c.name, 1]);
    }
  });

  test("lets exactly redis's no_auth commands through before AUTH", () => {
    const ours = COMMANDS.filter((c) => c.route !== null && (c.flags & Flag.NoAuth) !== 0).map((c) => c.name);
    const theirs = info.filter((c) => c.noAuth && byName(c.name).route !== null).map((c) => c.name);
    expect(ours.sort()).toEqual(theirs.sort());
    expect(ours).toContain("hello");
  });

  test("marks read-only exactly the commands redis flags readonly", () => {
    const theirs = info.filter((c) => c.flags.includes("readonly")).map((c) => c.name).sort();
    const ours = COMMANDS.filter((c) => c.readOnly).map((c) => c.name).sort();
    expect(theirs.length).toBeGreaterThan(50);
    expect(ours).toEqual(theirs);
    expect(info.filter((c) => c.flags.includes("write") && byName(c.name).readOnly)).toEqual([]);
  });

  test("marks as writes the served commands redis flags write or may_replicate, and the scripts and EXEC (WAIT)", () => {
    const theirs = info
      .filter((c) => byName(c.name).route !== null && (c.flags.includes("write") || c.flags.includes("may_replicate")))
      .map((c) => c.name);
    const ours = COMMANDS.filter((c) => c.route !== null && c.writes).map((c) => c.name);
    expect(theirs.length).toBeGreaterThan(50);
    expect(ours.filter((n) => !theirs.includes(n)).sort()).toEqual(["eval", "evalsha", "exec", "fcall"]);
    expect(theirs.filter((n) => !ours.includes(n))).toEqual([]);
  });

  test("serves no command without a way to route it", () => {
    const keyed: (number | null)[] = [Route.Key, Route.Get, Route.Sum, Route.Set];
    for (const c of COMMANDS) {
      if (!keyed.includes(c.route)) continue;
      expect([c.name, c.firstKey > 0 || c.numkeysAt > 0]).toEqual([c.name, true]);
    }
  });
});

describe("against twemproxy", () => {
  test("refuses what REFERENCE.md lists as unsupported, but the handshake and INFO (issue 16) and what it serves beyond one key (issue 17)", () => {
    const answered = ["echo", "select", "info", "client"];
    for (const name of REFERENCE_UNSUPPORTED) {
      if (answered.includes(name)) continue;
      const c = byName(name);
      // Served only with a role: whole-pool, pub/sub, transaction or blocking.
      expect([name, c.route === null || c.role !== null]).toEqual([name, true]);
    }
    expect(answered.map((name) => byName(name).route)).toEqual([Route.Local, Route.Local, Route.All, Route.Local]);
  });

  test("every command with a role (issue 17) is served", () => {
    for (const c of COMMANDS) if (c.route !== null && c.role !== null) expect(c.arityError).toContain(c.name);
    const withRole = COMMANDS.filter((c) => c.route !== null && c.role !== null).map((c) => c.name);
    expect(withRole).toContain("scan");
    expect(withRole).toContain("subscribe");
    expect(withRole).toContain("multi");
    expect(withRole).toContain("blpop");
  });

  test("splits and merges what REFERENCE.md says, answers PING, QUIT and AUTH itself", () => {
    const routes = Object.fromEntries(["mget", "mset", "del", "unlink", "touch", "exists", "ping", "quit", "auth"].map((n) => [n, byName(n).route]));
    const { Get, Set, Sum, Local } = Route;
    expect(routes).toEqual({ mget: Get, mset: Set, del: Sum, unlink: Sum, touch: Sum, exists: Sum, ping: Local, quit: Local, auth: Local });
  });

  testNeeding(existsSync(NUTCRACKER), NO_NUTCRACKER)("serves every command nutcracker 0.5.0 knows, but those REFERENCE.md excludes", () => {
    const binary = readFileSync(NUTCRACKER).toString("latin1");
    const known = [...new Set(binary.match(/REQ_REDIS_[A-Z_]+/g))].map((t) => t.slice("REQ_REDIS_".length).toLowerCase());
    expect(known.length).toBeGreaterThan(130);
    const refused = known.filter((name) => byName(name).route === null);
    expect(refused.sort()).toEqual(["move"]);
  });
});
