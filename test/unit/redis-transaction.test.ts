// The transaction state machine (src/proto/redis/transaction.ts) driven as the proxy drives it,
// against real redis-servers: every action is carried out on one connection per server (the
// pinned one), and the replies the client would see are compared with what one redis-server
// answers to the same requests on a direct connection. Transactions over several servers are
// refused as redis cluster refuses them (-CROSSSLOT, then -EXECABORT).

import { afterAll, beforeAll, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { Req } from "../../src/proto/codec.ts";
import { TxOp } from "../../src/proto/redis/commands.ts";
import { parseRequest } from "../../src/proto/redis/request.ts";
import { CROSS_SERVER, KEYLESS, Transaction, TxDo } from "../../src/proto/redis/transaction.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { stopAll } from "../helpers/direct.ts";
import { command, pipeline, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

let servers: Backend[] = [];
let reference: Backend;
let pinned: RawClient[] = [];
let direct: RawClient | undefined;

const OPS: Record<string, TxOp> = { multi: TxOp.Multi, exec: TxOp.Exec, discard: TxOp.Discard, watch: TxOp.Watch, unwatch: TxOp.Unwatch };
const KNOWN = new Set(["get", "set", "incr", "mset", "ping", "echo", "multi", "exec", "discard", "watch", "unwatch", "del"]);
const ARITY: Record<string, number> = { multi: 1, exec: 1, discard: 1, unwatch: 1 };

/** The server of a key: "{a}..." on server 0, "{b}..." on server 1, anything else on 2. */
const serverOf = (key: string): number => (key.startsWith("{a}") ? 0 : key.startsWith("{b}") ? 1 : 2);

/** The proxy's own reply to a command it refuses (its request parser's). */
function refusal(bytes: Buffer): Buffer {
  const req = new Req();
  parseRequest(bytes, 0, bytes.length, req);
  return Buffer.from(`${req.error}\r\n`);
}

function requestOf(args: string[]) {
  const name = args[0]!.toLowerCase();
  const keys = name === "mset" ? args.slice(1).filter((_, i) => i % 2 === 0) : ["get", "set", "incr", "watch", "del"].includes(name) ? args.slice(1, name === "set" ? 2 : undefined) : [];
  const where = new Set(keys.map(serverOf));
  const bytes = command(...args);
  return {
    op: OPS[name] ?? null,
    server: where.size === 0 ? KEYLESS : where.size > 1 ? CROSS_SERVER : [...where][0]!,
    refused: KNOWN.has(name) && (ARITY[name] === undefined || ARITY[name] === args.length) ? null : refusal(bytes),
    buf: bytes,
    start: 0,
    end: bytes.length,
  };
}

/** The client's replies through the state machine, carried out on the pinned connections. */
async function throughProxy(tx: Transaction, requests: string[][]): Promise<string[]> {
  const replies: string[] = [];
  for (const args of requests) {
    const action = tx.step(requestOf(args), 2);
    if (action.do === TxDo.Pass) {
      // Served as usual: on the shared connection of the key's server (server 2 stands in).
      const req = requestOf(args);
      const conn = pinned[req.server >= 0 ? req.server : 2]!;
      await conn.send(command(...args));
      replies.push(String((await conn.readReplies(1, respFrame))[0]));
      continue;
    }
    const conn = action.server >= 0 ? pinned[action.server]! : null;
    if (action.before !== null) {
      await conn!.send(Buffer.from(action.before));
      await conn!.readReplies(action.silent, respFrame);
    }
    if (action.do === TxDo.Reply) {
      replies.push(Buffer.from(action.reply!).toString());
      continue;
    }
    await conn!.send(command(...args));
    replies.push(String((await conn!.readReplies(1, respFrame))[0]));
  }
  return replies;
}

async function directly(requests: string[][]): Promise<string[]> {
  await direct!.send(pipeline(requests));
  return (await direct!.readReplies(requests.length, respFrame)).map(String);
}

beforeAll(async () => {
  [servers, reference] = await Promise.all([Promise.all([startRedis(), startRedis(), startRedis()]), startRedis()]);
});

// Fresh connections for every test: a test may leave one in MULTI, as a lost connection would.
beforeEach(async () => {
  for (const c of [...pinned, ...(direct === undefined ? [] : [direct])]) c.close();
  pinned = await Promise.all(servers.map((s) => RawClient.connect({ host: s.host, port: s.port })));
  direct = await RawClient.connect({ host: reference.host, port: reference.port });
  for (const c of [...pinned, direct]) {
    await c.send(command("FLUSHALL"));
    await c.readReplies(1, respFrame);
  }
});

afterAll(async () => {
  for (const c of [...pinned, direct!]) c.close();
  await stopAll([...servers, reference]);
});

// Keys of one server: the proxy's replies are a single redis's.
const SAME_AS_REDIS: [string, string[][]][] = [
  ["MULTI, commands, EXEC", [["MULTI"], ["SET", "{a}x", "1"], ["INCR", "{a}x"], ["GET", "{a}x"], ["EXEC"]]],
  ["keyless commands before the first key are held, then sent", [["MULTI"], ["PING"], ["ECHO", "hi"], ["SET", "{a}x", "1"], ["PING"], ["EXEC"]]],
  ["keyless commands only", [["MULTI"], ["PING"], ["ECHO", "hi"], ["EXEC"]]],
  ["an empty transaction", [["MULTI"], ["EXEC"]]],
  ["DISCARD before and after the server is known", [["MULTI"], ["PING"], ["DISCARD"], ["MULTI"], ["SET", "{a}x", "1"], ["DISCARD"], ["GET", "{a}x"]]],
  ["errors outside MULTI", [["EXEC"], ["DISCARD"], ["UNWATCH"]]],
  ["nested MULTI and WATCH inside MULTI, unpinned and pinned", [["MULTI"], ["MULTI"], ["WATCH", "{a}x"], ["SET", "{a}x", "1"], ["MULTI"], ["WATCH", "{a}x"], ["EXEC"]]],
  ["an unknown command aborts EXEC", [["MULTI"], ["SET", "{a}x", "1"], ["NOSUCH"], ["EXEC"], ["GET", "{a}x"]]],
  ["an unknown command before the first key aborts EXEC", [["MULTI"], ["NOSUCH"], ["SET", "{a}x", "1"], ["EXEC"], ["GET", "{a}x"]]],
  ["WATCH, untouched: EXEC runs", [["WATCH", "{a}x"], ["GET", "{a}x"], ["MULTI"], ["SET", "{a}x", "2"], ["EXEC"]]],
  ["WATCH, touched by the client itself: EXEC returns nil", [["WATCH", "{a}x"], ["SET", "{a}x", "1"], ["MULTI"], ["SET", "{a}x", "2"], ["EXEC"], ["GET", "{a}x"]]],
  ["EXEC with arguments aborts the transaction", [["MULTI"], ["SET", "{a}x", "1"], ["EXEC", "now"], ["EXEC"], ["GET", "{a}x"]]],
  ["MULTI with arguments in MULTI flags it", [["MULTI"], ["SET", "{a}x", "1"], ["MULTI", "again"], ["EXEC"], ["GET", "{a}x"]]],
  ["UNWATCH ends the pin", [["WATCH", "{a}x"], ["UNWATCH"], ["SET", "{a}x", "1"], ["MULTI"], ["INCR", "{a}x"], ["EXEC"]]],
];

describe("keys on one server: replies as one redis-server gives them", () => {
  for (const [name, requests] of SAME_AS_REDIS) {
    test(name, async () => {
      const tx = new Transaction();
      expect(await throughProxy(tx, requests)).toEqual(await directly(requests));
      expect(tx.active).toBe(false);
    });
  }
});

describe("keys on several servers", () => {
  test("a queued command on another server: -CROSSSLOT, then -EXECABORT, and nothing ran", async () => {
    const tx = new Transaction();
    const replies = await throughProxy(tx, [["MULTI"], ["SET", "{a}x", "1"], ["SET", "{b}y", "1"], ["EXEC"], ["GET", "{a}x"]]);
    expect(replies[0]).toBe("+OK\r\n");
    expect(replies[1]).toBe("+QUEUED\r\n");
    expect(replies[2]).toStartWith("-CROSSSLOT ");
    expect(replies[3]).toStartWith("-EXECABORT ");
    expect(replies[4]).toBe("$-1\r\n");
    expect(tx.active).toBe(false);
  });

  test("one command over two servers: -CROSSSLOT", async () => {
    const tx = new Transaction();
    const replies = await throughProxy(tx, [["MULTI"], ["MSET", "{a}x", "1", "{b}y", "2"], ["EXEC"]]);
    expect(replies[1]).toStartWith("-CROSSSLOT ");
    expect(replies[2]).toStartWith("-EXECABORT ");
  });

  test("WATCH over two servers, or on another server than the pinned one: -CROSSSLOT, no transaction state", async () => {
    const tx = new Transaction();
    const replies = await throughProxy(tx, [["WATCH", "{a}x", "{b}y"]]);
    expect(replies[0]).toStartWith("-CROSSSLOT ");
    expect(tx.active).toBe(false);
    const more = await throughProxy(tx, [["WATCH", "{a}x"], ["WATCH", "{b}y"], ["MULTI"], ["INCR", "{a}x"], ["EXEC"]]);
    expect(more[0]).toBe("+OK\r\n");
    expect(more[1]).toStartWith("-CROSSSLOT ");
    expect(more.slice(2)).toEqual(["+OK\r\n", "+QUEUED\r\n", "*1\r\n:1\r\n"]);
  });

  test("between WATCH and MULTI, other servers' commands pass", async () => {
    const tx = new Transaction();
    expect(tx.step(requestOf(["WATCH", "{a}x"]), 2).do).toBe(TxDo.Forward);
    expect(tx.step(requestOf(["GET", "{b}y"]), 2).do).toBe(TxDo.Pass);
    expect(tx.step(requestOf(["GET", "{a}y"]), 2)).toMatchObject({ do: TxDo.Forward, server: 0 });
    expect(tx.step(requestOf(["PING"]), 2).do).toBe(TxDo.Pass);
  });
});

describe("the pinned connection lost", () => {
  test("in MULTI: the rest is refused and EXEC aborts", async () => {
    const tx = new Transaction();
    await throughProxy(tx, [["MULTI"], ["SET", "{a}x", "1"]]);
    tx.connectionLost();
    const replies = await throughProxy(tx, [["INCR", "{a}x"], ["EXEC"], ["GET", "{a}x"]]);
    expect(replies[0]).toStartWith("-ERR the connection of this transaction");
    expect(replies[1]).toStartWith("-EXECABORT ");
    expect(tx.active).toBe(false);
  });

  test("while watching: the transaction that follows aborts (the watch is gone)", async () => {
    const tx = new Transaction();
    await throughProxy(tx, [["WATCH", "{a}x"]]);
    tx.connectionLost();
    const replies = await throughProxy(tx, [["MULTI"], ["SET", "{a}x", "1"], ["EXEC"], ["GET", "{a}x"]]);
    expect(replies[0]).toBe("+OK\r\n");
    expect(replies[2]).toStartWith("-EXECABORT ");
    expect(replies[3]).toBe("$-1\r\n");
  });
});
