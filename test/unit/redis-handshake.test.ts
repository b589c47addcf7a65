// The handshake commands the proxy answers itself (src/proto/redis/handshake.ts), compared with a
// real redis-server: the same sequence of commands goes to a redis connection and through
// answerLocal on one RedisSession, and the replies must be the same, except for what is the
// proxy's own (ids, version) and the deliberate differences (SELECT of another db, READONLY,
// twemproxy's AUTH <password> texts), which are asserted separately.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PoolConfig } from "../../src/conf/types.ts";
import { Req } from "../../src/proto/codec.ts";
import { redisCodec } from "../../src/proto/redis/index.ts";
import { answerLocal, type LocalContext } from "../../src/proto/redis/handshake.ts";
import { ReplyMode, RedisSession } from "../../src/proto/redis/session.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { command, decode3, respFrame, type Resp3 } from "../helpers/resp.ts";

const pool = (redisAuth: string | null, redisDb = 0) => ({ redisAuth, redisDb }) as PoolConfig;
const context = (redisAuth: string | null, redisDb = 0): LocalContext => ({
  pool: pool(redisAuth, redisDb),
  serverVersion: "7.0.15",
  resp3Refusal: null,
  ownConnection: false,
  now: Date.now(),
});

/** answerLocal's reply to `args` (null: none), as latin1. */
function ask(session: RedisSession, ctx: LocalContext, args: string[]): string | null {
  const buf = command(...args);
  const req = new Req();
  expect(redisCodec.parseRequest(buf, 0, buf.length, req)).toBe(buf.length);
  const reply = answerLocal(buf, req, session, ctx);
  return reply === null ? null : Buffer.from(reply).toString("latin1");
}

let open: Backend; // no password
let locked: Backend; // requirepass secret
beforeAll(async () => {
  [open, locked] = await Promise.all([startRedis(), startRedis({ password: "secret" })]);
});
afterAll(async () => {
  await Promise.all([open?.stop(), locked?.stop()]);
});

/** Redis's replies to `sequence` on one connection (null where it sends none: CLIENT REPLY). */
async function redisReplies(backend: Backend, sequence: string[][]): Promise<(string | null)[]> {
  const client = await RawClient.connect({ host: backend.host, port: backend.port });
  try {
    const out: (string | null)[] = [];
    for (const args of sequence) {
      await client.send(command(...args));
      const silent = args[0]!.toLowerCase() === "client" && ["off", "skip"].includes((args[2] ?? "").toLowerCase());
      if (silent) {
        out.push(null);
        continue;
      }
      out.push((await client.readReplies(1, respFrame))[0]!.toString("latin1"));
    }
    return out;
  } finally {
    client.close();
  }
}

/** A reply with the proxy's own values (ids, versions) blanked, for comparison. */
function comparable(reply: string | null): Resp3 | string | null {
  if (reply === null || reply.startsWith("-")) return reply;
  const value = decode3(Buffer.from(reply, "latin1"));
  const blank = (v: Resp3): Resp3 => {
    if (v.t === "map") return { t: "map", v: v.v.map(([k, x]) => [k, k.t === "bulk" && (k.v === "id" || k.v === "version") ? { t: "null" } : blank(x)]) };
    if (v.t === "array" && v.v !== null) {
      // HELLO in RESP2: a flat array of names and values.
      const items = v.v.map((x, i) => (i % 2 === 1 && v.v![i - 1]!.t === "bulk" && ["id", "version"].includes(String((v.v![i - 1] as { v: string }).v)) ? ({ t: "null" } as Resp3) : blank(x)));
      return { t: "array", v: items };
    }
    return v;
  };
  return blank(value);
}

async function expectSameAsRedis(backend: Backend, ctx: LocalContext, sequence: string[][]): Promise<RedisSession> {
  const session = new RedisSession(7, ctx.pool, Date.now());
  const theirs = await redisReplies(backend, sequence);
  for (let i = 0; i < sequence.length; i++) {
    const ours = ask(session, ctx, sequence[i]!);
    expect({ command: sequence[i], reply: comparable(ours) }).toEqual({ command: sequence[i], reply: comparable(theirs[i]!) });
  }
  return session;
}

describe("the same replies as redis-server", () => {
  test("HELLO: versions, options, errors, the map in RESP2 and RESP3", async () => {
    const session = await expectSameAsRedis(open, context(null), [
      ["HELLO"],
      ["HELLO", "4"],
      ["HELLO", "x"],
      ["HELLO", "-1"],
      ["HELLO", "3", "foo"],
      ["HELLO", "3", "AUTH", "a"],
      ["HELLO", "3", "SETNAME"],
      ["HELLO", "3", "SETNAME", "a b"],
      ["HELLO", "2", "SETNAME", "first"],
      ["CLIENT", "GETNAME"],
      ["HELLO", "3"],
      ["HELLO"],
      ["CLIENT", "GETNAME"],
      ["HELLO", "3", "AUTH", "someone", "pw"],
      ["HELLO", "3", "AUTH", "default", "anything", "SETNAME", "second"],
      ["CLIENT", "GETNAME"],
      ["HELLO", "2"],
    ]);
    expect(session.proto).toBe(2);
    expect(session.told.name).toBe("second");
  });

  test("CLIENT: names, library info, flags, REPLY, ids, arity and unknown subcommands", async () => {
    const session = await expectSameAsRedis(open, context(null), [
      ["CLIENT", "GETNAME"],
      ["CLIENT", "SETNAME", "worker-1"],
      ["CLIENT", "GETNAME"],
      ["CLIENT", "SETNAME", "bad name"],
      ["CLIENT", "SETNAME", "tab\tname"],
      ["CLIENT", "SETNAME", ""],
      ["CLIENT", "GETNAME"],
      ["CLIENT", "SETNAME"],
      ["CLIENT", "GETNAME", "x"],
      ["CLIENT", "NO-EVICT", "on"],
      ["CLIENT", "NO-EVICT", "maybe"],
      ["CLIENT", "NO-EVICT"],
      ["CLIENT", "REPLY", "sometimes"],
      ["CLIENT", "REPLY", "OFF"],
      ["CLIENT", "REPLY", "ON"],
      ["CLIENT", "REPLY", "SKIP"],
      ["CLIENT", "REPLY", "ON"],
      ["CLIENT", "ID", "x"],
      ["CLIENT", "INFO", "x"],
      ["CLIENT", "FOO"],
      ["ECHO", "hello\r\nworld"],
      ["HELLO", "3"],
      ["CLIENT", "GETNAME"],
      ["ECHO", ""],
      ["RESET"],
      ["CLIENT", "GETNAME"],
    ]);
    expect(session.proto).toBe(2);
    expect(session.told.noEvict).toBe(false); // RESET cleared it
    expect(session.reply).toBe(ReplyMode.On);
  });

  test("AUTH username password and HELLO AUTH against a password", async () => {
    const session = await expectSameAsRedis(locked, context("secret"), [
      ["HELLO", "3"],
      ["AUTH", "someone", "secret"],
      ["AUTH", "default", "wrong"],
      ["HELLO", "3", "AUTH", "default", "wrong"],
      ["AUTH", "a", "b", "c"],
      ["HELLO", "3", "AUTH", "default", "secret", "SETNAME", "app"],
      ["CLIENT", "GETNAME"],
      ["RESET"],
      ["HELLO", "2"],
      ["AUTH", "default", "secret"],
      ["HELLO", "2"],
    ]);
    expect(session.authed).toBe(true);
  });
});

describe("the proxy's own answers", () => {
  test("CLIENT ID, CLIENT INFO and HELLO carry the session's id, name, library and protocol", () => {
    const session = new RedisSession(42, pool(null), Date.now() - 5000);
    const ctx = context(null);
    expect(ask(session, ctx, ["CLIENT", "ID"])).toBe(":42\r\n");
    expect(ask(session, ctx, ["CLIENT", "SETINFO", "LIB-NAME", "redis-py"])).toBe("+OK\r\n");
    expect(ask(session, ctx, ["CLIENT", "SETINFO", "lib-ver", "5.0.1"])).toBe("+OK\r\n");
    expect(ask(session, ctx, ["CLIENT", "SETINFO", "LIB-NAME", "a b"])).toBe("-ERR LIB-NAME cannot contain spaces, newlines or special characters.\r\n");
    expect(ask(session, ctx, ["CLIENT", "SETINFO", "other", "x"])).toBe("-ERR Unrecognized option 'other'\r\n");
    ask(session, ctx, ["CLIENT", "SETNAME", "svc"]);
    ask(session, ctx, ["CLIENT", "NO-TOUCH", "on"]);
    const info2 = decode3(Buffer.from(ask(session, ctx, ["CLIENT", "INFO"])!, "latin1"));
    expect(info2.t).toBe("bulk");
    const line = (info2 as { v: string }).v;
    expect(line).toMatch(/^id=42 addr= laddr= .*name=svc age=5 .*flags=T .*resp=2 lib-name=redis-py lib-ver=5\.0\.1\n$/);
    ask(session, ctx, ["HELLO", "3"]);
    const info3 = decode3(Buffer.from(ask(session, ctx, ["CLIENT", "INFO"])!, "latin1"));
    expect(info3.t).toBe("verbatim");
    expect((info3 as { v: string }).v).toContain(" resp=3 ");
    const hello = decode3(Buffer.from(ask(session, ctx, ["HELLO"])!, "latin1"));
    expect(hello).toEqual({
      t: "map",
      v: [
        [{ t: "bulk", v: "server" }, { t: "bulk", v: "redis" }],
        [{ t: "bulk", v: "version" }, { t: "bulk", v: "7.0.15" }],
        [{ t: "bulk", v: "proto" }, { t: "int", v: 3n }],
        [{ t: "bulk", v: "id" }, { t: "int", v: 42n }],
        [{ t: "bulk", v: "mode" }, { t: "bulk", v: "standalone" }],
        [{ t: "bulk", v: "role" }, { t: "bulk", v: "master" }],
        [{ t: "bulk", v: "modules" }, { t: "array", v: [] }],
      ],
    });
    // A redis_cluster pool's mode is cluster.
    const clusterCtx = { ...ctx, pool: { ...ctx.pool, distribution: "redis_cluster" } as PoolConfig };
    const clusterHello = decode3(Buffer.from(ask(session, clusterCtx, ["HELLO"])!, "latin1")) as { v: [unknown, unknown][] };
    expect(clusterHello.v[4]).toEqual([{ t: "bulk", v: "mode" }, { t: "bulk", v: "cluster" }]);
    expect(ask(session, ctx, ["CLIENT", "GETNAME"])).toBe("$3\r\nsvc\r\n");
    ask(session, ctx, ["CLIENT", "SETNAME", ""]);
    expect(ask(session, ctx, ["CLIENT", "GETNAME"])).toBe("_\r\n"); // RESP3's null
  });

  test("HELLO 3 gets -NOPROTO when a server of the pool cannot speak RESP3; HELLO 2 still works", () => {
    const session = new RedisSession(1, pool(null), 0);
    const ctx = { ...context(null), resp3Refusal: "server 127.0.0.1:6379 does not know HELLO" };
    expect(ask(session, ctx, ["HELLO", "3"])).toBe("-NOPROTO unsupported protocol version: server 127.0.0.1:6379 does not know HELLO\r\n");
    expect(session.proto).toBe(2);
    expect(ask(session, ctx, ["HELLO", "2"])).toStartWith("*14\r\n");
  });

  test("a HELLO that would change the protocol is refused while a connection of the client's own carries its requests, and changes nothing; one that keeps it is answered", () => {
    const session = new RedisSession(1, pool("secret"), 0);
    const ctx = context("secret");
    expect(ask(session, ctx, ["HELLO", "3", "AUTH", "default", "secret"])).toStartWith("%7\r\n");
    session.reset();
    const held = { ...ctx, ownConnection: true };
    const refused = "-ERR HELLO changing the protocol is not served through the proxy while a blocking command or transaction of this client holds a connection (retry after it)\r\n";
    expect(ask(session, held, ["HELLO", "3", "AUTH", "default", "secret", "SETNAME", "x"])).toBe(refused);
    expect([session.proto, session.authed, session.told.name]).toEqual([2, false, ""]);
    // Errors that say something else about the request come first, as before.
    expect(ask(session, held, ["HELLO", "3"])).toStartWith("-NOAUTH ");
    expect(ask(session, held, ["HELLO", "3", "AUTH", "default", "wrong"])).toStartWith("-WRONGPASS ");
    expect(ask(session, held, ["HELLO", "4"])).toBe("-NOPROTO unsupported protocol version\r\n");
    expect(ask(session, held, ["HELLO", "2", "AUTH", "default", "secret", "SETNAME", "y"])).toStartWith("*14\r\n");
    expect([session.proto, session.authed, session.told.name]).toEqual([2, true, "y"]);
    expect(ask(session, held, ["HELLO"])).toStartWith("*14\r\n");
    expect(ask(session, held, ["HELLO", "3"])).toBe(refused);
    expect(session.proto).toBe(2);
  });

  test("CLIENT REPLY OFF and SKIP answer nothing, and set the mode the core applies", () => {
    const session = new RedisSession(1, pool(null), 0);
    const ctx = context(null);
    expect(ask(session, ctx, ["CLIENT", "REPLY", "OFF"])).toBeNull();
    expect(session.reply).toBe(ReplyMode.Off);
    expect(ask(session, ctx, ["CLIENT", "REPLY", "SKIP"])).toBeNull();
    expect(session.reply).toBe(ReplyMode.Skip);
    expect(ask(session, ctx, ["CLIENT", "REPLY", "ON"])).toBe("+OK\r\n");
  });

  test("SELECT: db 0 is OK, another db is an error naming redis_db; READONLY and READWRITE are OK", () => {
    const session = new RedisSession(1, pool(null), 0);
    const ctx = context(null, 3);
    expect(ask(session, ctx, ["SELECT", "0"])).toBe("+OK\r\n");
    expect(ask(session, ctx, ["SELECT", "3"])).toContain("redis_db");
    expect(ask(session, ctx, ["SELECT", "x"])).toBe("-ERR value is not an integer or out of range\r\n");
    expect(ask(session, ctx, ["READONLY"])).toBe("+OK\r\n");
    expect(session.readonly).toBe(true);
    expect(ask(session, ctx, ["READWRITE"])).toBe("+OK\r\n");
    expect(session.readonly).toBe(false);
  });

  test("AUTH <password> keeps twemproxy's texts; RESET asks for the password again", () => {
    const session = new RedisSession(1, pool("secret"), 0);
    expect(ask(session, context(null), ["AUTH", "x"])).toBe("-ERR Client sent AUTH, but no password is set\r\n");
    const ctx = context("secret");
    expect(ask(session, ctx, ["AUTH", "wrong"])).toBe("-ERR invalid password\r\n");
    expect(session.authed).toBe(false);
    expect(ask(session, ctx, ["AUTH", "secret"])).toBe("+OK\r\n");
    expect(session.authed).toBe(true);
    expect(ask(session, ctx, ["RESET"])).toBe("+RESET\r\n");
    expect(session.authed).toBe(false);
    expect(ask(session, ctx, ["HELLO", "3"])).toStartWith("-NOAUTH HELLO must be called");
    expect(session.proto).toBe(2);
  });
});
