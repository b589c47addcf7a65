// Blocking commands (src/proto/redis/blocking.ts): the timeout each one may wait, read from its
// own argument per the command table, and the stream keys of XREAD / XREADGROUP; the refusals
// are compared with a real redis-server's.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Req } from "../../src/proto/codec.ts";
import { BAD_TIMEOUT, blockingTimeout, FOREVER, NO_BLOCK, pushStreamKeys } from "../../src/proto/redis/blocking.ts";
import type { SupportedCommand } from "../../src/proto/redis/commands.ts";
import { parseRequest } from "../../src/proto/redis/request.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { command, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

function parsed(...args: string[]): { buf: Buffer; req: Req } {
  const buf = command(...args);
  const req = new Req();
  expect(parseRequest(buf, 0, buf.length, req)).toBe(buf.length);
  return { buf, req };
}

function timeoutOf(...args: string[]): number {
  const { buf, req } = parsed(...args);
  const role = (req.command as SupportedCommand).role;
  if (role?.kind !== "blocking") throw new Error(`${args[0]} is not blocking`);
  return blockingTimeout(buf, req, role.timeout);
}

describe("timeouts", () => {
  test("seconds in the last argument, fractions included", () => {
    expect(timeoutOf("BLPOP", "a", "b", "2")).toBe(2000);
    expect(timeoutOf("BRPOP", "a", "0.25")).toBe(250);
    expect(timeoutOf("BLMOVE", "a", "b", "LEFT", "RIGHT", "1.5")).toBe(1500);
    expect(timeoutOf("BRPOPLPUSH", "a", "b", "3")).toBe(3000);
    expect(timeoutOf("BZPOPMIN", "z", "0")).toBe(FOREVER);
    expect(timeoutOf("BZPOPMAX", "z", "x")).toBe(BAD_TIMEOUT);
  });

  test("seconds before numkeys: BLMPOP, BZMPOP", () => {
    expect(timeoutOf("BLMPOP", "4", "2", "a", "b", "LEFT")).toBe(4000);
    expect(timeoutOf("BZMPOP", "0", "1", "z", "MIN", "COUNT", "2")).toBe(FOREVER);
  });

  test("XREAD / XREADGROUP: milliseconds after BLOCK, or no blocking at all", () => {
    expect(timeoutOf("XREAD", "COUNT", "2", "BLOCK", "150", "STREAMS", "s", "$")).toBe(150);
    expect(timeoutOf("XREAD", "STREAMS", "s", "0")).toBe(NO_BLOCK);
    expect(timeoutOf("XREADGROUP", "GROUP", "block", "streams", "BLOCK", "0", "NOACK", "STREAMS", "s", ">")).toBe(FOREVER);
    expect(timeoutOf("XREADGROUP", "GROUP", "g", "c", "STREAMS", "s", ">")).toBe(NO_BLOCK);
  });
});

describe("stream keys", () => {
  let redis: Backend;
  let direct: RawClient;

  beforeAll(async () => {
    redis = await startRedis();
    direct = await RawClient.connect({ host: redis.host, port: redis.port });
  });

  afterAll(async () => {
    direct.close();
    await redis.stop();
  });

  const keysOf = (...args: string[]): string[] | string => {
    const { buf, req } = parsed(...args);
    req.nkeys = 0;
    const error = pushStreamKeys(buf, req);
    if (error !== null) return error;
    return Array.from({ length: req.nkeys }, (_, i) => buf.subarray(req.keyStart(i), req.keyEnd(i)).toString());
  };

  test("the first half after STREAMS, options read as redis reads them", () => {
    expect(keysOf("XREAD", "COUNT", "1", "STREAMS", "a", "b", "0", "0")).toEqual(["a", "b"]);
    expect(keysOf("XREADGROUP", "GROUP", "streams", "c", "STREAMS", "k", ">")).toEqual(["k"]);
  });

  test("refusals are redis's", async () => {
    for (const args of [["XREAD", "STREAMS", "a", "b", "0"], ["XREADGROUP", "GROUP", "g", "c", "STREAMS", "a", "b", "0"]]) {
      await direct.send(command(...args));
      const [reply] = await direct.readReplies(1, respFrame);
      expect(keysOf(...args) + "\r\n").toBe(reply!.toString());
    }
  });
});
