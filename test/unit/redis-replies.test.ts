// The replies the proxy makes itself, byte for byte as nutcracker 0.5.0 makes them (run in front
// of real redis-servers), and the AUTH/SELECT handshake, checked against a real redis-server.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import type { PoolConfig } from "../../src/conf/types.ts";
import { Req, Route } from "../../src/proto/codec.ts";
import { redisCodec } from "../../src/proto/redis/index.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { endpointOf } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, type RunningProxy } from "../helpers/proxy.ts";
import { command, respFrame, type Bytes } from "../helpers/resp.ts";
import { describeNeeding, NO_NUTCRACKER } from "../helpers/needs.ts";

const PASSWORD = "sekret";
const text = (b: Uint8Array): string => Buffer.from(b).toString("latin1");

/** What the codec answers itself to each request, in order, on one client session of a pool
 *  with this redis_auth (null: a request the proxy would forward). */
function ours(redisAuth: string | null, requests: Bytes[][]): (string | null)[] {
  const pool = { ...({} as PoolConfig), redisAuth, redisDb: 0 };
  const session = redisCodec.newSession(pool);
  return requests.map((args) => {
    const buf = command(...args);
    const req = new Req();
    expect(redisCodec.parseRequest(buf, 0, buf.length, req)).toBe(buf.length);
    const local = redisCodec.admit(req, session) ?? (req.command!.route === Route.Local ? redisCodec.local(buf, req, session, pool, false) : null);
    return local?.reply == null ? null : text(local.reply);
  });
}

/** Sends each request on one connection and returns each reply. */
async function replies(endpoint: Endpoint, requests: Bytes[][]): Promise<string[]> {
  const client = await RawClient.connect(endpoint);
  try {
    const out: string[] = [];
    for (const args of requests) {
      await client.send(command(...args));
      out.push(text(await client.readReply(respFrame)));
    }
    return out;
  } finally {
    client.close();
  }
}

describeNeeding(existsSync("/usr/sbin/nutcracker"), NO_NUTCRACKER)("local replies, as nutcracker 0.5.0 sends them", () => {
  let locked: Backend;
  let open: Backend;
  let nutcracker: RunningProxy;

  beforeAll(async () => {
    [locked, open] = await Promise.all([startRedis({ password: PASSWORD }), startRedis()]);
    const listen = () => `127.0.0.1:${freePort()}`;
    nutcracker = await startProxy(
      "nutcracker",
      poolYaml("locked", { listen: listen(), redis: true, redis_auth: PASSWORD }, [serverLine(locked.address)]) +
        poolYaml("open", { listen: listen(), redis: true }, [serverLine(open.address)]) +
        poolYaml("refused", { listen: listen(), redis: true }, [serverLine(`127.0.0.1:${freePort()}`)]),
    );
  }, 30_000);

  afterAll(async () => {
    await Promise.all([nutcracker?.stop(), locked?.stop(), open?.stop()]);
  });

  test("PING, NOAUTH, AUTH with a wrong and a right password", async () => {
    const requests: Bytes[][] = [["PING"], ["GET", "k"], ["AUTH", "wrong"], ["AUTH", PASSWORD], ["PING"]];
    const got = await replies(nutcracker.pools["locked"]!, requests);
    expect(ours(PASSWORD, requests)).toEqual(got);
  });

  test("PING, and AUTH on a pool without a password", async () => {
    const requests: Bytes[][] = [["PING"], ["AUTH", "x"]];
    const got = await replies(nutcracker.pools["open"]!, requests);
    expect(ours(null, requests)).toEqual(got);
  });

  test("a proxy-made error", async () => {
    const [got] = await replies(nutcracker.pools["refused"]!, [["GET", "k"]]);
    expect(got).toBe(text(redisCodec.errorReply("Connection refused")));
  });
});

describe("the server handshake", () => {
  let redis: Backend;
  beforeAll(async () => {
    redis = await startRedis({ password: PASSWORD });
  });
  afterAll(async () => {
    await redis?.stop();
  });

  const pool = (redisAuth: string | null, redisDb: number): PoolConfig => ({ ...({} as PoolConfig), redisAuth, redisDb });

  test("nothing to send without a password or a database", () => {
    expect(redisCodec.preamble(pool(null, 0), 0)).toBeNull();
  });

  test("AUTH and SELECT are accepted, and requests then land in that database", async () => {
    const hs = redisCodec.preamble(pool(PASSWORD, 3), 0)!;
    expect(hs.replies).toBe(2);
    const client = await RawClient.connect(endpointOf(redis));
    try {
      await client.send(Buffer.concat([hs.bytes, command("SET", "handshake", "db3")]));
      expect((await client.readReplies(3, respFrame)).map(text)).toEqual(["+OK\r\n", "+OK\r\n", "+OK\r\n"]);
    } finally {
      client.close();
    }
    const check = await replies(endpointOf(redis), [["AUTH", PASSWORD], ["GET", "handshake"], ["SELECT", "3"], ["GET", "handshake"]]);
    expect(check).toEqual(["+OK\r\n", "$-1\r\n", "+OK\r\n", "$3\r\ndb3\r\n"]);
  });

  test("a password with non-ASCII characters is sent as UTF-8", async () => {
    const hs = redisCodec.preamble(pool("pässwörd", 0), 0)!;
    expect(hs.replies).toBe(1);
    expect(text(hs.bytes)).toBe(text(command("AUTH", Buffer.from("pässwörd"))));
  });
});
