// Hot reload of a redis pool under clients that hold state across requests on connections of
// their own (dedicated.ts): a transaction pinned to a server (WATCH, MULTI), a blocking
// command waiting on a server, and the lent connections kept idle for the next client. A
// reload may renumber the servers, remove the one a client waits on, or change how
// connections open (redis_db): the client's later requests must still reach the server of
// their keys, in the database the pool names, and a request waiting on a server that left
// must be answered.

import { afterAll, beforeAll, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { blocked, clientList } from "../helpers/client-list.ts";
import { poolYaml, serverLine, type Setting } from "../helpers/config.ts";
import { flushBackends, redisCall, redisKeys, stopAll } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { TARGET } from "../helpers/proxy.ts";
import { spread } from "../helpers/random.ts";
import { eventually, placer, ReloadableProxy } from "../helpers/reload.ts";
import { command, decode, RespError, respFrame, type RespValue } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

let backends: Backend[] = [];
/** In the order the pool sorts its servers in (by name: shorter first, then bytewise). */
let A: Backend, B: Backend, C: Backend;
let proxy: ReloadableProxy;
const listen = `127.0.0.1:${freePort()}`;

/** Pool alpha on these servers (ketama: a server's keys stay on it whatever the order). */
const alpha = (servers: Backend[], settings: Record<string, Setting> = {}): string =>
  poolYaml("alpha", { listen, hash: "fnv1a_64", distribution: "ketama", redis: true, ...settings }, servers.map((b) => serverLine(b.address)));

/** A key `prefix...` that pool alpha of [A, B, C] places on `on`. */
function keyOn(on: Backend, prefix: string): string {
  const place = placer(alpha([A, B, C]), "alpha");
  const key = Array.from({ length: 200 }, (_, i) => `${prefix}${spread(i)}`).find((k) => place(k) === on.address);
  if (key === undefined) throw new Error(`no key of 200 on ${on.address}`);
  return key;
}

/** Sends the requests in one write; every reply decoded. */
async function session(client: RawClient, ...requests: string[][]): Promise<RespValue[]> {
  await client.send(Buffer.concat(requests.map((r) => command(...r))));
  return (await client.readReplies(requests.length, respFrame)).map(decode);
}

/** One request on a connection of its own. */
async function once(...request: string[]): Promise<RespValue> {
  const client = await RawClient.connect(proxy.endpoint("alpha"));
  try {
    return (await session(client, request))[0]!;
  } finally {
    client.close();
  }
}

const message = (v: RespValue): string => (v instanceof RespError ? v.message : JSON.stringify(v));

beforeAll(async () => {
  backends = await Promise.all([startRedis(), startRedis(), startRedis()]);
  const name = (b: Backend): string => b.address;
  backends.sort((x, y) => name(x).length - name(y).length || (name(x) < name(y) ? -1 : 1));
  [A, B, C] = backends as [Backend, Backend, Backend];
  proxy = await ReloadableProxy.start(alpha([A, B, C]));
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll(backends);
});

beforeEach(async () => {
  await proxy.signalReload(alpha([A, B, C]));
  await flushBackends(backends);
});

describe.skipIf(TARGET !== "buncracker")("a reload under clients with connections of their own", () => {
  test("a server that sorts before a transaction's leaves: the transaction keeps to its server, other keys to theirs", async () => {
    const onB = keyOn(B, "order.b.");
    const onC = keyOn(C, "order.c.");
    const client = await RawClient.connect(proxy.endpoint("alpha"));
    try {
      // WATCH pins the client to B (position 1).
      expect(await session(client, ["WATCH", onB])).toEqual(["OK"]);
      // ketama: B's and C's keys stay where they are; their positions do not: B is now 0, C 1.
      await proxy.signalReload(alpha([B, C]));
      // A write of C's key between WATCH and MULTI goes to C, not onto the pinned connection.
      expect(await session(client, ["SET", onC, "c"])).toEqual(["OK"]);
      expect(await redisCall(C, "GET", onC)).toEqual(Buffer.from("c"));
      expect(await redisCall(B, "EXISTS", onC)).toBe(0);
      // B's key still belongs to the transaction.
      expect(await session(client, ["MULTI"], ["SET", onB, "b"], ["EXEC"])).toEqual(["OK", "QUEUED", ["OK"]]);
      expect(await redisCall(B, "GET", onB)).toEqual(Buffer.from("b"));
    } finally {
      client.close();
    }
  });

  test("the server of a transaction leaves the pool: EXEC is refused, nothing is written there", async () => {
    const onA = keyOn(A, "left.tx.");
    const client = await RawClient.connect(proxy.endpoint("alpha"));
    try {
      expect(await session(client, ["MULTI"], ["SET", onA, "1"])).toEqual(["OK", "QUEUED"]);
      await proxy.signalReload(alpha([B, C]));
      const [exec] = await session(client, ["EXEC"]);
      expect(message(exec!)).toStartWith("EXECABORT");
      expect(await redisCall(A, "EXISTS", onA)).toBe(0);
      // The client goes on with the servers that remain.
      expect(await session(client, ["MULTI"], ["SET", onA, "2"], ["EXEC"])).toEqual(["OK", "QUEUED", ["OK"]]);
      expect(await once("GET", onA)).toEqual(Buffer.from("2"));
    } finally {
      client.close();
    }
  });

  test("the server a BLPOP waits on leaves the pool: the BLPOP gets an error, the next one waits where its key is now", async () => {
    const onA = keyOn(A, "left.bl.");
    const client = await RawClient.connect(proxy.endpoint("alpha"));
    try {
      await client.send(command("BLPOP", onA, "0"));
      await eventually("the BLPOP blocked on A", async () => (blocked(await clientList(A)).length === 1 ? true : undefined));
      await proxy.signalReload(alpha([B, C]));
      // Pushes to its key go elsewhere now: waiting on A, it would never be answered.
      expect(message(decode(await client.readReply(respFrame)))).toBe(`ERR server ${A.address}:1 left the pool`);
      await eventually("nothing blocked on A", async () => (blocked(await clientList(A)).length === 0 ? true : undefined));
      await client.send(command("BLPOP", onA, "0"));
      const now = placer(alpha([B, C]), "alpha")(onA) === B.address ? B : C;
      await eventually("the BLPOP blocked where its key is now", async () => (blocked(await clientList(now)).length === 1 ? true : undefined));
      expect(await once("RPUSH", onA, "x")).toBe(1);
      expect(decode(await client.readReply(respFrame))).toEqual([Buffer.from(onA), Buffer.from("x")]);
    } finally {
      client.close();
    }
  });

  test("a server joins and takes a BLPOP's key: the BLPOP waiting on the old server gets an error; one whose key stays keeps waiting", async () => {
    const before = alpha([A, C]);
    await proxy.signalReload(before);
    const [was, now] = [placer(before, "alpha"), placer(alpha([A, B, C]), "alpha")];
    const names = Array.from({ length: 200 }, (_, i) => `moved.bl.${spread(i)}`);
    const movedKey = names.find((k) => now(k) === B.address)!;
    const stays = names.find((k) => now(k) === was(k))!;
    const old = was(movedKey) === A.address ? A : C;
    const [mover, stayer] = await Promise.all([0, 1].map(() => RawClient.connect(proxy.endpoint("alpha"))));
    try {
      await mover.send(command("BLPOP", movedKey, "0"));
      await stayer.send(command("BLPOP", stays, "0"));
      const blockedOn = async (b: Backend): Promise<number> => blocked(await clientList(b)).length;
      await eventually("both BLPOPs blocked", async () => ((await blockedOn(A)) + (await blockedOn(C)) === 2 ? true : undefined));
      await proxy.signalReload(alpha([A, B, C]));
      // Pushes to its key go to B from now on: waiting on the old server, it would never be answered.
      expect(message(decode(await mover.readReply(respFrame)))).toBe(`ERR its keys moved off server ${old.address}:1`);
      expect(await once("RPUSH", stays, "x")).toBe(1);
      expect(decode(await stayer.readReply(respFrame))).toEqual([Buffer.from(stays), Buffer.from("x")]);
      // Asked again, it waits where its key is now.
      await mover.send(command("BLPOP", movedKey, "0"));
      await eventually("the BLPOP blocked on B", async () => ((await blockedOn(B)) === 1 ? true : undefined));
      expect(await once("RPUSH", movedKey, "y")).toBe(1);
      expect(decode(await mover.readReply(respFrame))).toEqual([Buffer.from(movedKey), Buffer.from("y")]);
    } finally {
      mover.close();
      stayer.close();
    }
  });

  test("a server joins and takes a transaction's key: EXEC is refused, nothing is written on the old server; a transaction whose keys stay runs", async () => {
    const before = alpha([A, C]);
    await proxy.signalReload(before);
    const [was, now] = [placer(before, "alpha"), placer(alpha([A, B, C]), "alpha")];
    const names = Array.from({ length: 200 }, (_, i) => `moved.tx.${spread(i)}`);
    const movedKey = names.find((k) => now(k) === B.address)!;
    const old = was(movedKey) === A.address ? A : C;
    // Watched, and a second key queued with it, on the same server; only the second moves.
    const watched = names.find((k) => was(k) === old.address && now(k) === old.address)!;
    const stays = names.find((k) => k !== watched && now(k) === was(k))!;
    const [mover, stayer] = await Promise.all([0, 1].map(() => RawClient.connect(proxy.endpoint("alpha"))));
    try {
      expect(await session(mover, ["WATCH", watched], ["MULTI"], ["SET", movedKey, "v"])).toEqual(["OK", "OK", "QUEUED"]);
      expect(await session(stayer, ["WATCH", stays], ["MULTI"], ["SET", stays, "v"])).toEqual(["OK", "OK", "QUEUED"]);
      await proxy.signalReload(alpha([A, B, C]));
      // Run on the old server, the SET would land where its key is no longer read.
      expect(message((await session(mover, ["EXEC"]))[0]!)).toStartWith("EXECABORT");
      expect(await redisCall(old, "EXISTS", movedKey)).toBe(0);
      expect(await session(stayer, ["EXEC"], ["GET", stays])).toEqual([["OK"], Buffer.from("v")]);
      // The client goes on: its next transaction runs where its key is now.
      expect(await session(mover, ["MULTI"], ["SET", movedKey, "w"], ["EXEC"])).toEqual(["OK", "QUEUED", ["OK"]]);
      expect(await redisCall(B, "GET", movedKey)).toEqual(Buffer.from("w"));
    } finally {
      mover.close();
      stayer.close();
    }
  });

  test("a server joins and takes a channel: the subscribers on the old servers, of it and of a pattern, are disconnected to subscribe again; the others stay", async () => {
    const before = alpha([A, C]);
    await proxy.signalReload(before);
    const [was, now] = [placer(before, "alpha"), placer(alpha([A, B, C]), "alpha")];
    const names = Array.from({ length: 200 }, (_, i) => `moved.ch.${spread(i)}`);
    const channel = names.find((k) => now(k) === B.address)!;
    const stays = names.find((k) => now(k) === was(k))!;
    const [subscriber, psubscriber, other] = await Promise.all([0, 1, 2].map(() => RawClient.connect(proxy.endpoint("alpha"))));
    try {
      expect(await session(subscriber, ["SUBSCRIBE", channel])).toEqual([[Buffer.from("subscribe"), Buffer.from(channel), 1]]);
      expect(await session(psubscriber, ["PSUBSCRIBE", "moved.ch.*"])).toEqual([[Buffer.from("psubscribe"), Buffer.from("moved.ch.*"), 1]]);
      expect(await session(other, ["SUBSCRIBE", stays])).toEqual([[Buffer.from("subscribe"), Buffer.from(stays), 1]]);
      await proxy.signalReload(alpha([A, B, C]));
      // The channel is published on B from now on, where neither is subscribed.
      for (const client of [subscriber, psubscriber]) expect((await client.readRepliesOrClose(1, respFrame)).closed).toBe(true);
      // A channel that stays where it was keeps its subscriber.
      expect(await once("PUBLISH", stays, "still")).toBe(1);
      expect(decode(await other.readReply(respFrame))).toEqual([Buffer.from("message"), Buffer.from(stays), Buffer.from("still")]);
    } finally {
      for (const client of [subscriber, psubscriber, other]) client.close();
    }
  });

  test("redis_db changed: a transaction after it runs in the new database, on no connection lent before", async () => {
    const onA = keyOn(A, "db.");
    const acrossKey = keyOn(A, "db.across.");
    // One connection lent across the reload (its transaction began before it), one given back
    // before it and kept idle for the next client: both opened on database 0.
    const across = await RawClient.connect(proxy.endpoint("alpha"));
    const before = await RawClient.connect(proxy.endpoint("alpha"));
    try {
      expect(await session(across, ["MULTI"], ["SET", acrossKey, "old"])).toEqual(["OK", "QUEUED"]);
      expect(await session(before, ["MULTI"], ["SET", onA, "old"], ["EXEC"])).toEqual(["OK", "QUEUED", ["OK"]]);
      await proxy.signalReload(alpha([A, B, C], { redis_db: 1 }));
      // Begun before the reload, it ends where it began.
      expect(await session(across, ["EXEC"])).toEqual([["OK"]]);
      expect(await redisCall(A, "GET", acrossKey)).toEqual(Buffer.from("old"));
      for (const client of [across, before]) {
        expect(await session(client, ["MULTI"], ["SET", onA, "new"], ["EXEC"], ["GET", onA])).toEqual(["OK", "QUEUED", ["OK"], Buffer.from("new")]);
      }
      expect((await redisKeys(A, 1)).map(String)).toEqual([onA]);
      expect(await redisCall(A, "GET", onA)).toEqual(Buffer.from("old"));
    } finally {
      across.close();
      before.close();
    }
  });
});
