// RESP3 and the connection handshake through the proxy, byte for byte, against a lone
// redis-server doing the same (the oracle): after HELLO 3 the replies are RESP3 (maps, doubles,
// nulls inside a merged MGET), CLIENT REPLY silences what redis silences, RESET returns to RESP2;
// INFO is the pool's, in RESP3 a verbatim string, and a dead server is left out of it; a pool
// with a server that does not know HELLO (redis before 6; here HELLO renamed away) says so in
// the log and answers later HELLO 3 with -NOPROTO, so clients stay on RESP2; a HELLO that would
// change the protocol of a client whose blocking command or transaction holds a connection of
// its own (which speaks the protocol it was opened in) is refused, and the client keeps its
// protocol. buncracker only.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { latin1 } from "../helpers/assertions.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { endpointOf, redisHolders, stopAll } from "../helpers/direct.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { spread } from "../helpers/random.ts";
import { command, respFrame } from "../helpers/resp.ts";

setDefaultTimeout(60_000);

const ours = TARGET === "buncracker";
let backends: Backend[] = [];
let old: Backend; // no HELLO
let oracle: Backend;
let proxy: RunningProxy;
let pool: Endpoint;
let oldPool: Endpoint;
let tagged: Endpoint; // the same servers, with hash tags: {k}q and {k}h share a server

beforeAll(async () => {
  if (!ours) return;
  [backends, old, oracle] = await Promise.all([
    Promise.all([startRedis(), startRedis(), startRedis()]),
    startRedis({ args: ["--rename-command", "HELLO", ""] }),
    startRedis(),
  ]);
  const yaml =
    poolYaml("main", { listen: `127.0.0.1:${freePort()}`, redis: true }, backends.map((b) => serverLine(b.address))) +
    poolYaml("old", { listen: `127.0.0.1:${freePort()}`, redis: true }, [serverLine(old.address)]) +
    poolYaml("tagged", { listen: `127.0.0.1:${freePort()}`, redis: true, hash_tag: "{}" }, backends.map((b) => serverLine(b.address)));
  proxy = await startProxy("buncracker", yaml);
  pool = proxy.pools.main!;
  oldPool = proxy.pools.old!;
  tagged = proxy.pools.tagged!;
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll([...backends, ...(old ? [old] : []), ...(oracle ? [oracle] : [])]);
});

/** Sends `requests` one at a time on one connection; `silent` of them get no reply. */
async function session(endpoint: Endpoint, requests: Buffer[], silent: ReadonlySet<number> = new Set()): Promise<string[]> {
  const client = await RawClient.connect(endpoint);
  try {
    const replies: string[] = [];
    for (let i = 0; i < requests.length; i++) {
      await client.send(requests[i]!);
      if (!silent.has(i)) replies.push(latin1((await client.readReplies(1, respFrame))[0]!));
    }
    // Nothing more arrives for the silenced ones: a PING's PONG is the next reply.
    await client.send(command("PING"));
    replies.push(latin1((await client.readReplies(1, respFrame))[0]!));
    return replies;
  } finally {
    client.close();
  }
}

/** At least 12 keys, set through the pool, that together are on every server of the pool (the
 *  servers' ports, and so the placement, change from run to run), found through the servers
 *  themselves. */
async function spreadKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  const on = new Set<number>();
  const client = await RawClient.connect(pool);
  try {
    for (let i = 0; i < 200 && (keys.length < 12 || on.size < backends.length); i++) {
      const key = `${spread(i)}:${prefix}`;
      await client.send(command("SET", key, "v"));
      await client.readReplies(1, respFrame);
      keys.push(key);
      for (const h of await redisHolders(backends, key)) on.add(h);
    }
  } finally {
    client.close();
  }
  expect(on.size).toBe(backends.length);
  return keys;
}

describe.skipIf(!ours)("RESP3 through the proxy", () => {
  test("after HELLO 3: maps, doubles, sets, and RESP3 nulls in a merged MGET, as redis answers them", async () => {
    const keys = await spreadKeys("r3");
    const sets = keys.map((k) => command("SET", k, "v"));
    const requests = [
      command("HELLO", "3"),
      ...sets,
      command("HSET", "{h}", "a", "1", "b", "2"),
      command("HGETALL", "{h}"),
      command("ZADD", "{z}", "1.5", "m"),
      command("ZSCORE", "{z}", "m"),
      command("SADD", "{s}", "x"),
      command("SMEMBERS", "{s}"),
      command("MGET", ...keys.slice(0, 6), "none:1", ...keys.slice(6), "none:2"),
      command("EXISTS", ...keys, "none:3"),
      command("DEL", ...keys.slice(0, 4), "none:4"),
      command("GET", "none:5"),
      command("CLIENT", "GETNAME"),
      command("RESET"),
      command("MGET", keys[0]!, "none:6", keys[11]!),
    ];
    const theirs = await session(endpointOf(oracle), requests);
    const through = await session(pool, requests);
    // HELLO's map differs in id and version only; everything after it is redis's byte for byte.
    expect(through[0]).toStartWith("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n");
    expect(through.slice(1)).toEqual(theirs.slice(1));
    const mget = through[1 + sets.length + 6]!;
    expect(mget).toContain("_\r\n");
    expect(through[1 + sets.length + 1]).toStartWith("%2\r\n");
    expect(through[1 + sets.length + 3]).toBe(",1.5\r\n");
    expect(through.at(-2)).toContain("$-1\r\n"); // RESET: RESP2 again
  });

  test("CLIENT REPLY OFF, ON and SKIP silence what redis silences", async () => {
    const requests = [
      command("SET", "{cr}a", "1"),
      command("CLIENT", "REPLY", "OFF"),
      command("SET", "{cr}a", "2"),
      command("GET", "{cr}a"),
      command("NOSUCHCOMMAND"),
      command("MGET", "{cr}a", "{cq}b"),
      command("CLIENT", "REPLY", "ON"),
      command("GET", "{cr}a"),
      command("CLIENT", "REPLY", "SKIP"),
      command("GET", "{cr}a"),
      command("ECHO", "after skip"),
    ];
    const silent = new Set([1, 2, 3, 4, 5, 8, 9]);
    const theirs = await session(endpointOf(oracle), requests, silent);
    const through = await session(pool, requests, silent);
    expect(through).toEqual(theirs);
    expect(through).toEqual(["+OK\r\n", "+OK\r\n", "$1\r\n2\r\n", "$10\r\nafter skip\r\n", "+PONG\r\n"]);
  });

  test("INFO: the pool's, a verbatim string in RESP3; a dead server is left out", async () => {
    const [info2, info3] = await session(pool, [command("INFO", "keyspace", "server"), command("HELLO", "3"), command("INFO")]).then((r) => [r[0]!, r[2]!]);
    expect(info2).toMatch(/^\$\d+\r\n# Server\r\nredis_version:/);
    expect(info2).toContain("# Keyspace\r\ndb0:keys=");
    expect(info3).toMatch(/^=\d+\r\ntxt:# Server\r\n/);
    expect(info3).toContain("\r\nloading:0\r\n");
    await backends[2]!.stop();
    try {
      const [info] = await session(pool, [command("INFO", "server")]);
      expect(info).toMatch(/^\$\d+\r\n# Server\r\nredis_version:\d/);
    } finally {
      await backends[2]!.restart();
    }
  });
});

describe.skipIf(!ours)("a server without HELLO (redis before 6)", () => {
  test("is reported in the log; HELLO 3 then gets -NOPROTO and clients stay on RESP2", async () => {
    // The first RESP3 client opens the server's RESP3 connection, whose HELLO 3 is refused.
    const [hello, get] = await session(oldPool, [command("HELLO", "3"), command("GET", "k")]);
    expect(hello).toStartWith("%7\r\n");
    expect(get).toBe("$-1\r\n");
    for (let i = 0; i < 50 && !proxy.stderr().includes("does not know HELLO"); i++) await Bun.sleep(20);
    expect(proxy.stderr()).toContain("does not know HELLO (redis before 6)");
    const [refused, get2, hello2] = await session(oldPool, [command("HELLO", "3"), command("GET", "k"), command("HELLO", "2")]);
    expect(refused).toStartWith("-NOPROTO unsupported protocol version");
    expect(get2).toBe("$-1\r\n");
    expect(hello2).toStartWith("*14\r\n");
  });
});

describe.skipIf(!ours)("HELLO's version", () => {
  test("is the servers' once the proxy has heard it (a HELLO 3 preamble reply or an INFO)", async () => {
    const [info, hello] = await session(pool, [command("INFO", "server"), command("HELLO")]);
    const version = /redis_version:([\d.]+)/.exec(info!)![1]!;
    expect(hello).toContain(`$7\r\nversion\r\n$${version.length}\r\n${version}\r\n`);
  });
});

const HELD = "-ERR HELLO changing the protocol is not served through the proxy while a blocking command or transaction of this client holds a connection (retry after it)\r\n";

/** `requests` in one write on a new connection of the tagged pool, then their `count` replies. */
async function oneWrite(requests: Buffer[], count = requests.length): Promise<string[]> {
  const client = await RawClient.connect(tagged);
  try {
    await client.send(Buffer.concat(requests));
    return (await client.readReplies(count, respFrame)).map(latin1);
  } finally {
    client.close();
  }
}

describe.skipIf(!ours)("HELLO while a connection of the client's own carries its requests", () => {
  test("HELLO 2 behind a RESP3 client's BLPOP still waiting is refused; its HGETALL there is answered in RESP3, and HELLO 2 once the BLPOP is answered", async () => {
    const client = await RawClient.connect(tagged);
    try {
      await client.send(
        Buffer.concat([command("HSET", "{b3}h", "f", "v"), command("HELLO", "3"), command("BLPOP", "{b3}q", "1"), command("HELLO", "2"), command("HGETALL", "{b3}h")]),
      );
      const replies = (await client.readReplies(5, respFrame)).map(latin1);
      expect(replies[1]).toStartWith("%7\r\n");
      expect(replies.slice(2)).toEqual(["_\r\n", HELD, "%1\r\n$1\r\nf\r\n$1\r\nv\r\n"]);
      // The BLPOP is answered: nothing holds a connection of the client's any more.
      await client.send(Buffer.concat([command("HELLO", "2"), command("HGETALL", "{b3}h")]));
      const [hello, hgetall] = (await client.readReplies(2, respFrame)).map(latin1);
      expect(hello).toStartWith("*14\r\n");
      expect(hgetall).toBe("*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    } finally {
      client.close();
    }
  });

  test("HELLO 3 behind a RESP2 client's BLPOP still waiting is refused; its HGETALL there is answered in RESP2", async () => {
    const replies = await oneWrite([
      command("HSET", "{b2}h", "f", "v"),
      command("BLPOP", "{b2}q", "1"),
      command("HELLO", "3"),
      command("HGETALL", "{b2}h"),
    ]);
    expect(replies.slice(1)).toEqual(["*-1\r\n", HELD, "*2\r\n$1\r\nf\r\n$1\r\nv\r\n"]);
  });

  test("HELLO 3 behind a WAIT still waiting (on connections lent to the client) is refused; the HGETALL after it is answered in RESP2", async () => {
    expect(await oneWrite([command("HSET", "{wt}h", "f", "v")])).toEqual([":1\r\n"]);
    // No replica: WAIT 1 300 waits its 300 ms, then says 0. (First in its client's queue, it
    // borrows its connections at once; behind other requests, once they are answered.)
    const replies = await oneWrite([command("WAIT", "1", "300"), command("HELLO", "3"), command("HGETALL", "{wt}h")]);
    expect(replies).toEqual([":0\r\n", HELD, "*2\r\n$1\r\nf\r\n$1\r\nv\r\n"]);
  });

  test("HELLO 2 between a RESP3 client's WATCH and UNWATCH is refused; its HGETALL on the watching connection is answered in RESP3; HELLO 3 in RESP2 likewise", async () => {
    const client = await RawClient.connect(tagged);
    try {
      const ask = async (...args: string[]): Promise<string> => {
        await client.send(command(...args));
        return latin1(await client.readReply(respFrame));
      };
      expect(await ask("HSET", "{w}h", "f", "v")).toBe(":1\r\n");
      expect(await ask("HELLO", "3")).toStartWith("%7\r\n");
      expect(await ask("WATCH", "{w}w")).toBe("+OK\r\n");
      expect(await ask("HELLO", "2")).toBe(HELD);
      expect(await ask("HGETALL", "{w}h")).toBe("%1\r\n$1\r\nf\r\n$1\r\nv\r\n");
      expect(await ask("UNWATCH")).toBe("+OK\r\n");
      expect(await ask("HELLO", "2")).toStartWith("*14\r\n");
      expect(await ask("WATCH", "{w}w")).toBe("+OK\r\n");
      expect(await ask("HELLO", "3")).toBe(HELD);
      expect(await ask("HGETALL", "{w}h")).toBe("*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
      expect(await ask("UNWATCH")).toBe("+OK\r\n");
    } finally {
      client.close();
    }
  });

  test("a HELLO that keeps the protocol is answered as always behind a BLPOP still waiting (HELLO 3 in RESP3, HELLO, HELLO with SETNAME)", async () => {
    const replies = await oneWrite([
      command("HELLO", "3"),
      command("BLPOP", "{k3}q", "1"),
      command("HELLO", "3"),
      command("HELLO"),
      command("HELLO", "3", "SETNAME", "kept"),
      command("CLIENT", "GETNAME"),
      command("HGETALL", "{k3}h"),
    ]);
    expect(replies[1]).toBe("_\r\n");
    for (const hello of replies.slice(2, 5)) expect(hello).toStartWith("%7\r\n");
    expect(replies[2]).toContain("$5\r\nproto\r\n:3\r\n");
    expect(replies.slice(5)).toEqual(["$4\r\nkept\r\n", "%0\r\n"]);
  });
});
