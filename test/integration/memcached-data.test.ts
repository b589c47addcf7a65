// The memcached data path, byte for byte: a 4-server ketama pool in front of real memcached
// processes. Expected replies come from memcached's protocol and semantics (or from memcached
// itself), never from the proxy under test. Run against nutcracker with BC_TARGET=nutcracker.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { expectReplies, latin1 } from "../helpers/assertions.ts";
import { startMemcached, type Backend } from "../helpers/backends.ts";
import { exchange, RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { testDeliberate } from "../helpers/deliberate.ts";
import { endpointOf, flushBackends, stopAll } from "../helpers/direct.ts";
import { line, memcacheFrame, parseRetrieval, retrieval, storage, valueBlock } from "../helpers/memcache.ts";
import { memcacheWorkload, type MemcacheWorkload } from "../helpers/memcache-workload.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { makeRng } from "../helpers/random.ts";

// Real processes and large payloads: allow more than bun's 5 s default per test and hook.
setDefaultTimeout(60_000);

const STORED = Buffer.from("STORED\r\n");
const END = Buffer.from("END\r\n");
const reply = (s: string) => Buffer.from(`${s}\r\n`);

let backends: Backend[] = [];
let proxy: RunningProxy;
let pool: Endpoint;

beforeAll(async () => {
  backends = await Promise.all([startMemcached(), startMemcached(), startMemcached(), startMemcached()]);
  const yaml = poolYaml(
    "cache",
    { listen: `127.0.0.1:${freePort()}`, hash: "fnv1a_64", distribution: "ketama" },
    backends.map((b) => serverLine(b.address)),
  );
  proxy = await startProxy(TARGET, yaml);
  pool = proxy.pools.cache!;
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll(backends);
});

async function roundTrip(requests: Buffer[], replies: number, opts: { chunks?: number | number[]; gapMs?: number } = {}): Promise<Buffer[]> {
  const client = await RawClient.connect(pool);
  try {
    await client.send(Buffer.concat(requests), opts);
    return await client.readReplies(replies, memcacheFrame, 60000);
  } finally {
    client.close();
  }
}

/** A retrieval reply with its VALUE blocks sorted: order-insensitive comparison. */
function sortedBlocks(retrievalReply: Buffer): string {
  return parseRetrieval(retrievalReply)
    .map((v) => `${v.key} ${v.flags} ${v.data.toString("hex")}`)
    .sort()
    .join("\n");
}

/**
 * Checks a workload's replies. nutcracker 0.5.0 may reorder the values of a split multi-get
 * (deliberate difference), so against it those replies are compared as sets.
 */
function expectWorkload(actual: Buffer[], work: MemcacheWorkload): void {
  if (TARGET === "buncracker") return expectReplies(actual, work.expected, work.labels);
  const unordered = new Set(work.multiKey);
  const normalize = (replies: Buffer[]) => replies.map((r, i) => (unordered.has(i) ? Buffer.from(sortedBlocks(r)) : r));
  expectReplies(normalize(actual), normalize(work.expected), work.labels);
}

/** Items stored on each backend (from `stats`). */
async function itemCounts(): Promise<number[]> {
  return Promise.all(
    backends.map(async (b) => {
      const [stats] = await exchange(endpointOf(b), "stats\r\n", 1, memcacheFrame);
      return Number(/STAT curr_items (\d+)/.exec(latin1(stats!))![1]);
    }),
  );
}

describe("framing and delivery", () => {
  const session = () => {
    const requests = [
      storage("set", "fr:a", "alpha", { flags: 5 }),
      line("get", "fr:a"),
      storage("set", "fr:b", "b\r\nb", { noreply: true }),
      storage("add", "fr:a", "x"),
      line("get", "fr:a", "fr:b", "fr:none"),
      line("incr", "fr:none", "1"),
      storage("set", "fr:n", "41"),
      line("incr", "fr:n", "1"),
      line("delete", "fr:b"),
      line("touch", "fr:a", "100"),
      line("get", "fr:b"),
    ];
    const expected = [
      STORED,
      retrieval([valueBlock("fr:a", "alpha", 5)]),
      reply("NOT_STORED"),
      retrieval([valueBlock("fr:a", "alpha", 5), valueBlock("fr:b", "b\r\nb")]),
      reply("NOT_FOUND"),
      STORED,
      reply("42"),
      reply("DELETED"),
      reply("TOUCHED"),
      END,
    ];
    return { requests, expected };
  };

  test("a pipeline delivered one byte at a time", async () => {
    await flushBackends(backends);
    const { requests, expected } = session();
    expectReplies(await roundTrip(requests, expected.length, { chunks: 1, gapMs: 1 }), expected);
  });

  test("the same pipeline in odd chunk sizes", async () => {
    await flushBackends(backends);
    const { requests, expected } = session();
    expectReplies(await roundTrip(requests, expected.length, { chunks: [2, 3, 5, 7, 11, 64], gapMs: 1 }), expected);
  });

  test("version is forwarded to a server", async () => {
    const [fromMemcached] = await exchange(endpointOf(backends[0]!), "version\r\n", 1, memcacheFrame);
    expect(latin1(fromMemcached!)).toStartWith("VERSION ");
    expectReplies(await roundTrip([line("version")], 1), [fromMemcached!]);
  });

  test("quit: earlier replies are written, then the connection closes", async () => {
    const client = await RawClient.connect(pool);
    await client.send(Buffer.concat([storage("set", "quit:a", "1"), line("get", "quit:a"), line("quit"), line("get", "quit:a")]));
    expect(latin1(await client.readUntilClose())).toBe("STORED\r\nVALUE quit:a 0 1\r\n1\r\nEND\r\n");
  });

  test("noreply requests produce no reply and do not shift the replies around them", async () => {
    const requests = [
      storage("set", "nr:a", "1", { noreply: true }),
      line("get", "nr:a"),
      line("incr", "nr:a", "5", "noreply"),
      storage("append", "nr:a", "0", { noreply: true }),
      line("get", "nr:a"),
      line("delete", "nr:a", "noreply"),
      line("get", "nr:a"),
      storage("add", "nr:a", "z", { noreply: true }),
      line("touch", "nr:a", "10", "noreply"),
      line("get", "nr:a"),
    ];
    expectReplies(await roundTrip(requests, 4), [
      retrieval([valueBlock("nr:a", "1")]),
      retrieval([valueBlock("nr:a", "60")]),
      END,
      retrieval([valueBlock("nr:a", "z")]),
    ]);
  });
});

describe("keys and values", () => {
  test("binary values: every byte value, CR/LF and END look-alikes inside data blocks", async () => {
    const rng = makeRng(3);
    const values = [Buffer.from(Array.from({ length: 256 }, (_, b) => b)), Buffer.from("\r\nEND\r\nVALUE x 0 1\r\n"), Buffer.alloc(0), rng.bytes(5000)];
    const keys = values.map((_, i) => `bin:${i}`);
    expectReplies(await roundTrip(keys.map((k, i) => storage("set", k, values[i]!, { flags: 4294967295 })), keys.length), keys.map(() => STORED));
    expectReplies(await roundTrip([line("get", ...keys)], 1), [retrieval(keys.map((k, i) => valueBlock(k, values[i]!, 4294967295)))]);
  });

  test("keys with bytes above 0x7f, and of 250 bytes, are carried as they are", async () => {
    const keys = [Buffer.from([0x61, 0xff, 0x80, 0x62]), Buffer.from("k".repeat(250))];
    const requests = keys.flatMap((k, i) => [storage("set", k, `v${i}`), line("get", k)]);
    expectReplies(await roundTrip(requests, requests.length), keys.flatMap((k, i) => [STORED, retrieval([valueBlock(k, `v${i}`)])]));
  });

  test("1 MB values; an item over the backend's limit gets the backend's own error", async () => {
    const rng = makeRng(1);
    const big = rng.bytes(1000 * 1000);
    const tooBig = rng.bytes(2 * 1024 * 1024);
    // What memcached itself answers to the oversized set.
    const [refusal] = await exchange(endpointOf(backends[0]!), storage("set", "huge:direct", tooBig), 1, memcacheFrame);
    expect(latin1(refusal!)).toStartWith("SERVER_ERROR");
    const replies = await roundTrip(
      [storage("set", "huge:a", big), line("get", "huge:a"), storage("set", "huge:b", tooBig), line("get", "huge:b"), line("get", "huge:a", "huge:b")],
      5,
    );
    expectReplies(replies, [STORED, retrieval([valueBlock("huge:a", big)]), refusal!, END, retrieval([valueBlock("huge:a", big)])]);
  });

  test("gets returns a cas token that cas accepts", async () => {
    const [first] = await roundTrip([storage("set", "cas:a", "one"), line("gets", "cas:a")], 2).then((r) => r.slice(1));
    const [item] = parseRetrieval(first!);
    expect(item?.cas).toMatch(/^\d+$/);
    const replies = await roundTrip([storage("cas", "cas:a", "two", { cas: item!.cas! }), storage("cas", "cas:a", "three", { cas: item!.cas! }), line("get", "cas:a")], 3);
    expectReplies(replies, [STORED, reply("EXISTS"), retrieval([valueBlock("cas:a", "two")])]);
  });
});

describe("pipelines and multi-key retrieval", () => {
  test("10,000 mixed commands (with noreply) in one pipeline across 4 servers: every reply matches its request", async () => {
    await flushBackends(backends);
    const work = memcacheWorkload(424242, 10000, "p1:");
    expectWorkload(await roundTrip(work.requests, work.expected.length), work);
    for (const n of await itemCounts()) expect(n).toBeGreaterThan(0);
  });

  test("10,000 mixed commands sent in random chunk sizes", async () => {
    const work = memcacheWorkload(77, 10000, "p2:");
    const rng = makeRng(8);
    const sizes = Array.from({ length: 89 }, () => 1 + rng.int(4096));
    expectWorkload(await roundTrip(work.requests, work.expected.length, { chunks: sizes, gapMs: 0 }), work);
  });

  test("8 clients pipelining 1,000 commands each at the same time", async () => {
    const works = Array.from({ length: 8 }, (_, i) => memcacheWorkload(500 + i, 1000, `cc${i}:`));
    const results = await Promise.all(works.map((w) => roundTrip(w.requests, w.expected.length, { chunks: [512, 4096], gapMs: 0 })));
    results.forEach((replies, i) => expectWorkload(replies, works[i]!));
  });

  const thousandKeys = async () => {
    await flushBackends(backends);
    const rng = makeRng(12);
    const keys = Array.from({ length: 1000 }, (_, i) => `mg:${i}:${rng.int(1e9)}`);
    const present = keys.filter((_, i) => i % 4 !== 1);
    const data = new Map(present.map((k) => [k, rng.bytes(rng.int(80))]));
    expectReplies(await roundTrip(present.map((k) => storage("set", k, data.get(k)!)), present.length), present.map(() => STORED));
    const asked = [...keys, keys[2]!]; // a repeated key is answered twice, as memcached does
    const expected = retrieval(asked.flatMap((k) => (data.has(k) ? [valueBlock(k, data.get(k)!)] : [])));
    return { asked, expected };
  };

  testDeliberate("a multi-get of 1,000 keys with misses comes back in key order", {
    buncracker: async () => {
      const { asked, expected } = await thousandKeys();
      expectReplies(await roundTrip([line("get", ...asked)], 1), [expected]);
      for (const n of await itemCounts()) expect(n).toBeGreaterThan(0);
    },
    nutcracker: async () => {
      // Every value is there, but 0.5.0 merges per server fragment: the order is not the keys'.
      const { asked, expected } = await thousandKeys();
      const [actual] = await roundTrip([line("get", ...asked)], 1);
      expect(sortedBlocks(actual!)).toBe(sortedBlocks(expected));
      expect(actual!.equals(expected)).toBe(false);
    },
  });
});

describe("deliberate differences from nutcracker", () => {
  /** nutcracker 0.5.0 closes the connection, without a reply, on anything it does not take. */
  const closesSilently = (request: string | Buffer) => async () => {
    const client = await RawClient.connect(pool);
    await client.send(Buffer.concat([Buffer.from(request), line("version")]));
    expect(latin1(await client.readUntilClose())).toBe("");
  };

  /** The seconds `key` has left on the one backend that holds it (memcached's `mg <key> t`); -1: never expires. */
  const remainingTtl = async (key: string): Promise<number> => {
    const found: number[] = [];
    for (const b of backends) {
      const [reply] = await exchange(endpointOf(b), `mg ${key} t\r\n`, 1, memcacheFrame);
      const m = /^HD t(-?\d+)\r\n$/.exec(latin1(reply!));
      if (m !== null) found.push(Number(m[1]));
      else expect(latin1(reply!)).toBe("EN\r\n");
    }
    expect(found).toHaveLength(1);
    return found[0]!;
  };

  testDeliberate("gat and gats: split, merged in key order, and the expiry is set", {
    buncracker: async () => {
      await roundTrip([storage("set", "gat:a", "A", { flags: 1 }), storage("set", "gat:c", "C")], 2);
      expectReplies(await roundTrip([line("gat", "100", "gat:a", "gat:b", "gat:c")], 1), [
        retrieval([valueBlock("gat:a", "A", 1), valueBlock("gat:c", "C")]),
      ]);
      const [gats] = await roundTrip([line("gats", "100", "gat:c", "gat:a")], 1);
      const values = parseRetrieval(gats!);
      expect(values.map((v) => [v.key, latin1(v.data), v.flags])).toEqual([["gat:c", "C", 0], ["gat:a", "A", 1]]);
      for (const v of values) expect(v.cas).toMatch(/^\d+$/);
      // The expiry: before the gat the keys never expired (memcached's meta get says t-1); now
      // the backend that holds each key counts down from 100 s.
      await roundTrip([storage("set", "gat:d", "D")], 1);
      expect(await remainingTtl("gat:d")).toBe(-1);
      await roundTrip([line("gat", "100", "gat:d")], 1);
      for (const key of ["gat:a", "gat:c", "gat:d"]) {
        const ttl = await remainingTtl(key);
        expect(ttl).toBeGreaterThan(90);
        expect(ttl).toBeLessThanOrEqual(100);
      }
    },
    nutcracker: closesSilently("gat 100 gat:a\r\n"),
  });

  testDeliberate("no key: gat/gats get memcached's END (no server asked), get/gets/touch its ERROR; the connection stays open", {
    buncracker: async () => {
      const lines = ["gat 10\r\n", "gats 10\r\n", "get\r\n", "gets\r\n", "touch\r\n"];
      const fromMemcached = await exchange(endpointOf(backends[0]!), lines.join(""), lines.length, memcacheFrame);
      expect(fromMemcached.map(latin1)).toEqual(["END\r\n", "END\r\n", "ERROR\r\n", "ERROR\r\n", "ERROR\r\n"]);
      expectReplies(await roundTrip([...lines.map((l) => Buffer.from(l)), line("get", "nope")], lines.length + 1), [...fromMemcached, END]);
    },
    nutcracker: closesSilently("gat 10\r\n"),
  });

  testDeliberate("an unknown command gets ERROR and the connection stays open", {
    buncracker: async () => {
      const [fromMemcached] = await exchange(endpointOf(backends[0]!), "bogus a b\r\n", 1, memcacheFrame);
      expectReplies(await roundTrip([line("bogus", "a", "b"), line("get", "nope")], 2), [fromMemcached!, END]);
    },
    nutcracker: closesSilently("bogus a b\r\n"),
  });

  test("keys with control characters are stored and read, as memcached and 0.5.0 take them (memaslap's keys)", async () => {
    const key = "\x10\x10\x10\x10\x10\x10\x10\x10a\x01\tb";
    const replies = await roundTrip([storage("set", key, "v"), line("get", key)], 2);
    expectReplies(replies, [STORED, retrieval([valueBlock(key, "v")])]);
  });

  testDeliberate("a key over 250 bytes gets CLIENT_ERROR and the connection stays open", {
    buncracker: async () => {
      const replies = await roundTrip([line("get", "k".repeat(251)), line("get", "nope")], 2);
      expect(latin1(replies[0]!)).toStartWith("CLIENT_ERROR ");
      expectReplies([replies[1]!], [END]);
    },
    nutcracker: closesSilently(line("get", "k".repeat(251))),
  });

  testDeliberate("a storage command with a bad number: CLIENT_ERROR, its data block is swallowed", {
    buncracker: async () => {
      const replies = await roundTrip([Buffer.from("set bad:k x 0 1\r\nv\r\n"), line("get", "bad:k")], 2);
      expect(latin1(replies[0]!)).toStartWith("CLIENT_ERROR ");
      expectReplies([replies[1]!], [END]);
    },
    nutcracker: closesSilently("set bad:k x 0 1\r\nv\r\n"),
  });

  testDeliberate("verbosity is accepted as memcached accepts it (OK; silent with noreply), and changes nothing", {
    buncracker: async () => {
      const replies = await roundTrip([line("verbosity", "1"), line("verbosity", "1", "noreply"), line("verbosity"), line("get", "nope")], 3);
      expectReplies(replies, [Buffer.from("OK\r\n"), Buffer.from("ERROR\r\n"), END]);
    },
    nutcracker: closesSilently("verbosity 1\r\n"),
  });

  for (const command of ["flush_all", "stats"]) {
    const name = command.split(" ")[0]!;
    testDeliberate(`${name} is refused with an error naming it, and the connection stays open`, {
      buncracker: async () => {
        const replies = await roundTrip([Buffer.from(`${command}\r\n`), line("get", "nope")], 2);
        expect(latin1(replies[0]!)).toMatch(/^(SERVER|CLIENT)_ERROR .*\r\n$/);
        expect(latin1(replies[0]!)).toContain(name);
        expectReplies([replies[1]!], [END]);
      },
      nutcracker: closesSilently(`${command}\r\n`),
    });
  }
});
