// Redis pool settings seen end to end: redis_auth (against a redis-server with requirepass),
// redis_db (SELECT upstream), and a unix-socket listener with its perm.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { statSync } from "node:fs";
import { expectReplies, latin1 } from "../helpers/assertions.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { redisKeys, stopAll } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { bulk, command, error, integer, OK, pipeline, respFrame, simple } from "../helpers/resp.ts";
import { makeTempDir } from "../helpers/tmp.ts";

// Real processes and large payloads: allow more than bun's 5 s default per test and hook.
setDefaultTimeout(60_000);

const PASSWORD = "s3cret pass";
const socketDir = makeTempDir("bct-sock-");
let plain: Backend[] = [];
let guarded: Backend[] = [];
let proxy: RunningProxy;

beforeAll(async () => {
  [plain, guarded] = await Promise.all([
    Promise.all([startRedis(), startRedis()]),
    Promise.all([startRedis({ password: PASSWORD }), startRedis({ password: PASSWORD })]),
  ]);
  const servers = (bs: Backend[]) => bs.map((b) => serverLine(b.address));
  const yaml = [
    poolYaml("auth", { listen: `127.0.0.1:${freePort()}`, redis: true, redis_auth: PASSWORD }, servers(guarded)),
    poolYaml("noauth", { listen: `127.0.0.1:${freePort()}`, redis: true }, servers(plain)),
    poolYaml("db3", { listen: `127.0.0.1:${freePort()}`, redis: true, redis_db: 3, server_connections: 2 }, servers(plain)),
    poolYaml("sock600", { listen: `${socketDir.file("p600.sock")} 0600`, redis: true }, servers(plain)),
    poolYaml("sock666", { listen: `${socketDir.file("p666.sock")} 0666`, redis: true }, servers(plain)),
  ].join("");
  proxy = await startProxy(TARGET, yaml);
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll([...plain, ...guarded]);
  socketDir.remove();
});

async function session(endpoint: Endpoint, requests: Buffer[]): Promise<Buffer[]> {
  const client = await RawClient.connect(endpoint);
  try {
    await client.send(Buffer.concat(requests));
    return await client.readReplies(requests.length, respFrame);
  } finally {
    client.close();
  }
}

describe("redis_auth", () => {
  test("commands before AUTH get NOAUTH, PING included, and the connection stays open", async () => {
    const replies = await session(proxy.pools.auth!, [command("GET", "a"), command("PING"), command("SET", "a", "1")]);
    const noauth = error("NOAUTH Authentication required");
    expectReplies(replies, [noauth, noauth, noauth]);
  });

  test("a wrong password is refused and the client stays unauthenticated", async () => {
    const replies = await session(proxy.pools.auth!, [command("AUTH", "wrong"), command("GET", "a")]);
    expectReplies(replies, [error("ERR invalid password"), error("NOAUTH Authentication required")]);
  });

  test("the right password: +OK, then traffic reaches the password-protected backends", async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `auth:${i}`);
    const replies = await session(proxy.pools.auth!, [
      command("AUTH", PASSWORD),
      ...keys.map((k) => command("SET", k, k)),
      command("MGET", ...keys),
      command("PING"),
    ]);
    expectReplies(replies, [OK, ...keys.map(() => OK), Buffer.concat([Buffer.from(`*${keys.length}\r\n`), ...keys.map((k) => bulk(k))]), simple("PONG")]);
    const stored = (await Promise.all(guarded.map((b) => redisKeys(b, 0, PASSWORD)))).flat().map(latin1).sort();
    expect(stored).toEqual([...keys].sort());
  });

  test("AUTH on a pool without redis_auth", async () => {
    const replies = await session(proxy.pools.noauth!, [command("AUTH", "x"), command("PING")]);
    expectReplies(replies, [error("ERR Client sent AUTH, but no password is set"), simple("PONG")]);
  });

  test("QUIT before AUTH closes the connection without a reply", async () => {
    const client = await RawClient.connect(proxy.pools.auth!);
    await client.send(pipeline([["QUIT"]]));
    expect(latin1(await client.readUntilClose())).toBe("");
  });
});

describe("redis_db", () => {
  // server_connections: 2, so both upstream connections must have sent SELECT. (With two
  // connections per server, a pipelined GET may overtake the SET before it: read after the writes.)
  test("keys written through the pool land in that database on the backend, reads come from it", async () => {
    const keys = Array.from({ length: 30 }, (_, i) => `db3:${i}`);
    expectReplies(await session(proxy.pools.db3!, keys.map((k) => command("SET", k, `v-${k}`))), keys.map(() => OK));
    const replies = await session(proxy.pools.db3!, [command("GET", keys[7]!), command("DEL", ...keys.slice(0, 5))]);
    expectReplies(replies, [bulk("v-db3:7"), integer(5)]);
    const inDb3 = (await Promise.all(plain.map((b) => redisKeys(b, 3)))).flat().map(latin1).sort();
    expect(inDb3).toEqual(keys.slice(5).sort());
    const inDb0 = (await Promise.all(plain.map((b) => redisKeys(b, 0)))).flat().map(latin1);
    expect(inDb0.filter((k) => k.startsWith("db3:"))).toEqual([]);
  });

  test("a pool without redis_db on the same backends does not see those keys", async () => {
    expectReplies(await session(proxy.pools.db3!, [command("SET", "db3:only", "x")]), [OK]);
    expectReplies(await session(proxy.pools.noauth!, [command("GET", "db3:only")]), [bulk(null)]);
  });
});

describe("unix-socket listener", () => {
  test.each([
    ["sock600", 0o600],
    ["sock666", 0o666],
  ] as const)("%s: the socket file has the configured perm and serves requests", async (name, perm) => {
    const endpoint = proxy.pools[name]!;
    expect("path" in endpoint).toBe(true);
    if (!("path" in endpoint)) return;
    const st = statSync(endpoint.path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(perm);
    const replies = await session(endpoint, [command("SET", `${name}:k`, "v"), command("GET", `${name}:k`), command("PING")]);
    expectReplies(replies, [OK, bulk("v"), simple("PONG")]);
  });

  test("one byte at a time over the unix socket", async () => {
    const client = await RawClient.connect(proxy.pools.sock600!);
    await client.send(pipeline([["SET", "u1", "abc"], ["MGET", "u1", "u2"]]), { chunks: 1, gapMs: 1 });
    expectReplies(await client.readReplies(2, respFrame), [OK, Buffer.from("*2\r\n$3\r\nabc\r\n$-1\r\n")]);
    client.close();
  });
});
