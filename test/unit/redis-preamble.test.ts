// What a new server connection sends first (src/proto/redis/preamble.ts), sent to real
// redis-servers: RESP2 and RESP3 connections, with and without redis_auth and redis_db, get one
// non-error reply per command, and a RESP3 connection speaks RESP3 afterwards; a server without
// HELLO (as redis before 6; here one with HELLO renamed away) is recognised and named as such.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { PoolConfig } from "../../src/conf/types.ts";
import { helloVersion, preamble, preambleRefusal } from "../../src/proto/redis/preamble.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { exchange } from "../helpers/client.ts";
import { endpointOf } from "../helpers/direct.ts";
import { command, respFrame } from "../helpers/resp.ts";

const pool = (redisAuth: string | null, redisDb: number) => ({ redisAuth, redisDb }) as PoolConfig;

let open: Backend;
let locked: Backend;
let old: Backend; // no HELLO, as redis before 6
beforeAll(async () => {
  [open, locked, old] = await Promise.all([
    startRedis(),
    startRedis({ password: "s3cret" }),
    startRedis({ args: ["--rename-command", "HELLO", ""] }),
  ]);
});
afterAll(async () => {
  await Promise.all([open, locked, old].map((b) => b?.stop()));
});

/** The preamble's replies and the reply to a GET after it. */
async function run(backend: Backend, cfg: PoolConfig, proto: 2 | 3): Promise<{ replies: Buffer[]; get: Buffer }> {
  const p = preamble(cfg, proto);
  const count = p?.replies ?? 0;
  const bytes = Buffer.concat([p?.bytes ?? new Uint8Array(0), command("GET", "missing")]);
  const all = await exchange(endpointOf(backend), bytes, count + 1, respFrame);
  return { replies: all.slice(0, count), get: all[count]! };
}

describe("connection preambles", () => {
  test("RESP2: nothing, AUTH, SELECT, as twemproxy", async () => {
    expect(preamble(pool(null, 0), 2)).toBeNull();
    const { replies, get } = await run(locked, pool("s3cret", 2), 2);
    expect(replies.map(String)).toEqual(["+OK\r\n", "+OK\r\n"]);
    expect(String(get)).toBe("$-1\r\n");
  });

  test("RESP3: HELLO 3 (with AUTH default), then SELECT; the connection speaks RESP3", async () => {
    for (const [backend, cfg] of [
      [open, pool(null, 0)],
      [open, pool(null, 5)],
      [locked, pool("s3cret", 0)],
      [locked, pool("s3cret", 3)],
    ] as const) {
      const { replies, get } = await run(backend, cfg, 3);
      expect(replies.length).toBe(cfg.redisDb === 0 ? 1 : 2);
      for (const r of replies) expect(preambleRefusal(r, 0, r.length, 3)).toBeNull();
      expect(helloVersion(replies[0]!, 0, replies[0]!.length)).toMatch(/^\d+\.\d+\.\d+$/);
      expect(String(get)).toBe("_\r\n"); // RESP3's null
    }
  });

  test("a wrong password and a server without HELLO are refusals, each named for the log", async () => {
    const wrong = await run(locked, pool("nope", 0), 3);
    expect(preambleRefusal(wrong.replies[0]!, 0, wrong.replies[0]!.length, 3)).toStartWith("refused the connection handshake: WRONGPASS");
    const noHello = await run(old, pool(null, 0), 3);
    expect(preambleRefusal(noHello.replies[0]!, 0, noHello.replies[0]!.length, 3)).toStartWith("does not know HELLO (redis before 6)");
    expect(helloVersion(noHello.replies[0]!, 0, noHello.replies[0]!.length)).toBeNull();
  });
});
