// SCAN across servers (src/proto/redis/scan.ts): proxy cursors, the server an iteration goes to
// while servers are ejected, the request sent upstream and the reply's cursor rewritten; then a
// whole iteration against three real redis-servers driven through these functions alone.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { ByteWriter } from "../../src/lib/bytes.ts";
import { Req } from "../../src/proto/codec.ts";
import { parseRequest } from "../../src/proto/redis/request.ts";
import {
  buildScan,
  decodeCursor,
  encodeCursor,
  nextCursor,
  scanTarget,
  writeScanEnd,
  writeScanReply,
} from "../../src/proto/redis/scan.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { stopAll } from "../helpers/direct.ts";
import { command, decode, pipeline, respFrame, type RespValue } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => Buffer.from(b).toString("latin1");
const cursorOf = (s: string, servers: number) => decodeCursor(bytes(s), 0, s.length, servers);

describe("proxy cursors", () => {
  test("0 is server 0 from its start, and the end", () => {
    expect(cursorOf("0", 3)).toEqual({ server: 0, cursor: 0n });
    expect(nextCursor(2, 0n, 3)).toBe(0n);
  });

  test("encode and decode are inverse, up to a server cursor of 2^64 - 1", () => {
    for (const servers of [1, 2, 3, 7, 1000]) {
      for (const cursor of [0n, 1n, 17n, 1n << 40n, (1n << 64n) - 1n]) {
        for (const server of [0, servers - 1, Math.floor(servers / 2)]) {
          const encoded = encodeCursor({ server, cursor }, servers).toString();
          expect(cursorOf(encoded, servers)).toEqual({ server, cursor });
        }
      }
    }
  });

  test("one server: the proxy cursor is the server's own", () => {
    expect(encodeCursor({ server: 0, cursor: 12345n }, 1)).toBe(12345n);
    expect(cursorOf("12345", 1)).toEqual({ server: 0, cursor: 12345n });
  });

  test("a finished server hands over to the next one from 0", () => {
    const c = nextCursor(0, 0n, 3);
    expect(cursorOf(c.toString(), 3)).toEqual({ server: 1, cursor: 0n });
    expect(nextCursor(1, 0n, 3)).toBe(2n);
    expect(cursorOf(nextCursor(1, 96n, 3).toString(), 3)).toEqual({ server: 1, cursor: 96n });
  });

  test("what is not a cursor", () => {
    for (const bad of ["", "-1", "+1", "1.5", "abc", " 1", "1".repeat(27)]) expect(cursorOf(bad, 3)).toBeNull();
    // Over 2^64 - 1 on its server.
    expect(cursorOf(((1n << 64n) * 3n).toString(), 3)).toBeNull();
  });
});

describe("ejected servers", () => {
  const live = (up: number[]) => (s: number) => up.includes(s);

  test("a live position is kept", () => {
    expect(scanTarget({ server: 1, cursor: 40n }, 3, live([0, 1, 2]))).toEqual({ server: 1, cursor: 40n });
  });

  test("an ejected server is skipped to the next live one from 0, by position, not by live index", () => {
    expect(scanTarget({ server: 1, cursor: 40n }, 4, live([0, 3]))).toEqual({ server: 3, cursor: 0n });
    expect(scanTarget({ server: 0, cursor: 0n }, 3, live([2]))).toEqual({ server: 2, cursor: 0n });
  });

  test("nothing live at or after the position: the iteration is over", () => {
    expect(scanTarget({ server: 2, cursor: 5n }, 3, live([0, 1]))).toBeNull();
    const w = new ByteWriter(16);
    writeScanEnd(w);
    expect(decode(w.take())).toEqual([Buffer.from("0"), []]);
  });
});

describe("the request and the reply", () => {
  test("the cursor argument is replaced, every other argument kept", () => {
    const request = command("SCAN", "7", "MATCH", "user:*", "COUNT", "100", "TYPE", "string");
    const req = new Req();
    expect(parseRequest(request, 0, request.length, req)).toBe(request.length);
    const w = new ByteWriter(16);
    buildScan(request, req, 2n, w);
    expect(text(w.take())).toBe(text(command("SCAN", "2", "MATCH", "user:*", "COUNT", "100", "TYPE", "string")));
  });

  test("the reply's cursor becomes the proxy cursor; the keys are kept byte for byte", () => {
    const reply = Buffer.concat([Buffer.from("junk"), Buffer.from("*2\r\n$2\r\n12\r\n*2\r\n$1\r\na\r\n$3\r\nb\r\n\r\n"), Buffer.from("junk")]);
    const w = new ByteWriter(16);
    expect(writeScanReply(reply, 4, reply.length - 4, 1, 3, w)).toBe(true);
    const [cursor, keys] = decode(w.take()) as [Buffer, Buffer[]];
    expect(cursorOf(cursor.toString(), 3)).toEqual({ server: 1, cursor: 12n });
    expect(keys.map((k) => k.toString("latin1"))).toEqual(["a", "b\r\n"]);
  });

  test("not a SCAN reply: false, the output untouched", () => {
    for (const bad of [":1\r\n", "*3\r\n$1\r\n0\r\n*0\r\n:1\r\n", "*2\r\n$1\r\nx\r\n*0\r\n", "*2\r\n:0\r\n*0\r\n"]) {
      const w = new ByteWriter(16);
      w.text("earlier");
      expect(writeScanReply(bytes(bad), 0, bad.length, 0, 3, w)).toBe(false);
      expect(text(w.take())).toBe("earlier");
    }
  });
});

describe("a whole iteration over three real servers, one ejected and returned on the way", () => {
  let servers: Backend[] = [];
  let clients: RawClient[] = [];
  const KEYS = 3000;

  beforeAll(async () => {
    servers = await Promise.all([startRedis(), startRedis(), startRedis()]);
    clients = await Promise.all(servers.map((s) => RawClient.connect({ host: s.host, port: s.port })));
    // Keys spread over the servers by their number.
    for (let s = 0; s < 3; s++) {
      const sets = [];
      for (let i = s; i < KEYS; i += 3) sets.push(["SET", `k:${i}`, "v"]);
      await clients[s]!.send(pipeline(sets));
      await clients[s]!.readReplies(sets.length, respFrame);
    }
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await stopAll(servers);
  });

  test("every key exactly once, COUNT 100", async () => {
    const seen = new Map<string, number>();
    let cursor = "0";
    let calls = 0;
    const up = [true, true, true];
    do {
      // Server 1 is ejected for a few calls in the middle (before the iteration reaches it),
      // and returns before it does.
      up[1] = !(calls >= 3 && calls < 6);
      const position = cursorOf(cursor, 3)!;
      const target = scanTarget(position, 3, (s) => up[s]!);
      if (target === null) break;
      const request = command("SCAN", "0", "COUNT", "100");
      const req = new Req();
      parseRequest(request, 0, request.length, req);
      const w = new ByteWriter(64);
      buildScan(request, req, target.cursor, w);
      const client = clients[target.server]!;
      await client.send(Buffer.from(w.take()));
      const [reply] = await client.readReplies(1, respFrame);
      const out = new ByteWriter(64);
      expect(writeScanReply(reply!, 0, reply!.length, target.server, 3, out)).toBe(true);
      const [next, keys] = decode(out.take()) as [Buffer, RespValue[]];
      for (const k of keys) seen.set(String(k), (seen.get(String(k)) ?? 0) + 1);
      cursor = next.toString();
      calls++;
    } while (cursor !== "0" && calls < 10_000);
    expect(seen.size).toBe(KEYS);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
  });
});
