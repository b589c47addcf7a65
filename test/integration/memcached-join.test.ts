// Joined retrievals (coalesce_gets, ours): get (and gets) requests to one server in one loop
// turn go upstream as one command line, and the line's reply is divided among them by key. Real
// memcached processes answer; a recording relay (tap) in front of them shows the lines on the
// wire. Expected replies come from a model of what was stored, never from the proxy.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { expectReplies } from "../helpers/assertions.ts";
import { startMemcached, type Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { serverLine } from "../helpers/config.ts";
import { stopAll } from "../helpers/direct.ts";
import { memcacheFrame } from "../helpers/memcache.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { poolOf, readStats, waitFor, type StatsDoc } from "../helpers/ops.ts";
import { makeRng, spread } from "../helpers/random.ts";
import { startTap, type Tap } from "../helpers/tap.ts";
import { makeTempDir, type TempDir } from "../helpers/tmp.ts";

setDefaultTimeout(60_000);

const item = (key: string, data: string, flags = 0): string => `VALUE ${key} ${flags} ${data.length}\r\n${data}\r\n`;
const set = (key: string, data: string, flags = 0): string => `set ${key} ${flags} 0 ${data.length}\r\n${data}\r\n`;

let backends: Backend[] = [];
let authBackend: Backend;
let taps: Tap[] = [];
let proxy: RunningProxy;
let dir: TempDir;

function pool(name: string, servers: Tap[], extra = ""): string {
  return (
    `${name}:\n  listen: 127.0.0.1:${freePort()}\n  hash: fnv1a_64\n  distribution: ketama\n${extra}` +
    `  servers:\n${servers.map((t) => `   - ${serverLine(t.address)}\n`).join("")}`
  );
}

beforeAll(async () => {
  if (TARGET !== "buncracker") return;
  dir = makeTempDir("bct-join-");
  const authFile = dir.file("auth");
  await Bun.write(authFile, "user:secret\n");
  [authBackend, ...backends] = await Promise.all([
    // Every command of an unauthenticated connection gets CLIENT_ERROR: a real error reply.
    startMemcached({ args: ["-Y", authFile] }),
    startMemcached(),
    startMemcached(),
  ]);
  taps = [...backends, authBackend].map((b) => startTap(b.host, b.port));
  const [t0, t1, tAuth] = taps as [Tap, Tap, Tap];
  proxy = await startProxy(
    TARGET,
    pool("one", [t0]) + pool("two", [t0, t1]) + pool("separate", [t0], "  coalesce_gets: false\n") + pool("auth", [tAuth]),
    { args: ["-i", String(STATS_INTERVAL_MS)] },
  );
});

afterAll(async () => {
  await proxy?.stop();
  for (const t of taps) t.stop();
  await stopAll(authBackend === undefined ? backends : [...backends, authBackend]);
  dir?.remove();
});

/** Send all requests in one write (one loop turn of the proxy) and read `count` replies. */
async function pipeline(endpoint: Endpoint, requests: string, count: number): Promise<Buffer[]> {
  const client = await RawClient.connect(endpoint);
  try {
    await client.send(requests);
    return await client.readReplies(count, memcacheFrame);
  } finally {
    client.close();
  }
}

const ep = (name: string): Endpoint => proxy.pools[name]!;
const STATS_INTERVAL_MS = 100;

describe.skipIf(TARGET !== "buncracker")("joined retrievals", () => {
  test("a pipeline's gets go as one line per kind; a set in between, or a key already on the line, starts a new line", async () => {
    await pipeline(ep("one"), set("j:a", "1") + set("j:c", "333", 5), 2);
    taps[0]!.forget();
    const replies = await pipeline(
      ep("one"),
      "get j:a\r\nget j:b\r\nget j:c j:a\r\ngets j:zz\r\ngets j:b\r\n" + set("j:b", "22") + "get j:b\r\nget j:a\r\n",
      8,
    );
    expectReplies(replies, [
      item("j:a", "1") + "END\r\n",
      "END\r\n",
      item("j:c", "333", 5) + item("j:a", "1") + "END\r\n",
      "END\r\n",
      "END\r\n",
      "STORED\r\n",
      item("j:b", "22") + "END\r\n",
      item("j:a", "1") + "END\r\n",
    ].map((s) => Buffer.from(s)));
    expect(taps[0]!.lines("get", "gets", "set")).toEqual([
      "get j:a j:b",
      "get j:c j:a",
      "gets j:zz j:b",
      "set j:b 0 0 2",
      "get j:b j:a",
    ]);
  });

  test("a key asked by two requests goes on two lines (which of them found it would be ambiguous)", async () => {
    taps[0]!.forget();
    // j:a and j:c are each asked by two requests: the second asker of each starts a new line.
    const replies = await pipeline(ep("one"), "get j:new j:a\r\nget j:a j:c\r\nget j:c\r\nget j:b\r\n", 4);
    expect(replies.map(String)).toEqual([
      item("j:a", "1") + "END\r\n",
      item("j:a", "1") + item("j:c", "333", 5) + "END\r\n",
      item("j:c", "333", 5) + "END\r\n",
      item("j:b", "22") + "END\r\n",
    ]);
    expect(taps[0]!.lines("get")).toEqual(["get j:new j:a", "get j:a j:c", "get j:c j:b"]);
  });

  test("a line with leading spaces takes no more keys (memcached's rule for long lines)", async () => {
    taps[0]!.forget();
    const replies = await pipeline(ep("one"), "  get j:a\r\nget j:a\r\nget j:c\r\n", 3);
    expect(replies.map(String)).toEqual([item("j:a", "1") + "END\r\n", item("j:a", "1") + "END\r\n", item("j:c", "333", 5) + "END\r\n"]);
    expect(taps[0]!.sent()).toBe("  get j:a\r\nget j:a j:c\r\n");
  });

  test("with coalesce_gets: false every request keeps its own line", async () => {
    taps[0]!.forget();
    const replies = await pipeline(ep("separate"), "get j:a\r\nget j:none\r\nget j:c j:a\r\n", 3);
    expect(replies.map(String)).toEqual([item("j:a", "1") + "END\r\n", "END\r\n", item("j:c", "333", 5) + item("j:a", "1") + "END\r\n"]);
    expect(taps[0]!.lines("get")).toEqual(["get j:a", "get j:none", "get j:c j:a"]);
  });

  test("split multi-gets and single gets share each server's line, keys in request order", async () => {
    const keys = Array.from({ length: 24 }, (_, i) => `s:${spread(i)}`);
    const stored = keys.filter((_, i) => i % 3 !== 0);
    await pipeline(ep("two"), stored.map((k) => set(k, `v-${k}`)).join(""), stored.length);
    for (const t of taps) t.forget();
    const requests = [keys.slice(0, 10), [keys[10]!], keys.slice(11, 20), [keys[20]!], keys.slice(21, 24)];
    const replies = await pipeline(ep("two"), requests.map((r) => `get ${r.join(" ")}\r\n`).join(""), requests.length);
    expectReplies(
      replies,
      requests.map((r) => Buffer.from(r.filter((k) => stored.includes(k)).map((k) => item(k, `v-${k}`)).join("") + "END\r\n")),
    );
    // Each server got one line: its share of every request's keys, in the order they were asked.
    const lines = [taps[0]!.lines("get"), taps[1]!.lines("get")];
    expect(lines.map((l) => l.length)).toEqual([1, 1]);
    const asked = requests.flat();
    for (const [line] of lines) {
      const got = line!.split(" ").slice(1);
      expect(got).toEqual(asked.filter((k) => got.includes(k)));
    }
    expect(new Set(lines.flatMap(([l]) => l!.split(" ").slice(1)))).toEqual(new Set(asked));
  });

  test("large values on a joined line: each request gets its own, whole, whatever the chunking", async () => {
    const big = (tag: string, n: number) => Array.from({ length: n }, (_, i) => String.fromCharCode(97 + ((i * 7 + tag.length) % 26))).join("");
    const values = { "L:big1": big("a", 300_000), "L:small": "s", "L:big2": big("bb", 200_000) };
    await pipeline(ep("one"), Object.entries(values).map(([k, v]) => set(k, v)).join(""), 3);
    taps[0]!.forget();
    const order = ["L:big1", "L:none", "L:small", "L:big2", "L:big1"] as const;
    const replies = await pipeline(ep("one"), order.map((k) => `get ${k}\r\n`).join(""), order.length);
    const want = order.map((k) => (k in values ? item(k, values[k as keyof typeof values]) : "") + "END\r\n");
    expect(replies.map((r) => r.toString("latin1"))).toEqual(want);
    expect(taps[0]!.lines("get")).toEqual(["get L:big1 L:none L:small L:big2", "get L:big1"]);
  });

  test("a value streamed, then the request's next item read in parts: the item stays with its request", async () => {
    // The server's reply reaches the proxy in 10,012-byte reads: the 50,000-byte value of L:huge
    // is streamed (over 32 KB known before it is whole), and the read that completes it ends
    // inside the data of L:after, the same request's next item. Parsing resumes there twice.
    const huge = "h".repeat(50_000);
    const after = "a".repeat(100);
    await pipeline(ep("one"), set("L:huge", huge) + set("L:after", after) + set("L:other", "o"), 3);
    const tap = startTap(backends[0]!.host, backends[0]!.port, { replyChunk: 10_012, gapMs: 5 });
    const dribbled = await startProxy(TARGET, pool("dribbled", [tap]));
    try {
      const replies = await pipeline(dribbled.pools.dribbled!, "get L:huge L:after\r\nget L:other\r\n", 2);
      expect(tap.lines("get")).toEqual(["get L:huge L:after L:other"]);
      expect(replies.map((r) => r.toString("latin1"))).toEqual([item("L:huge", huge) + item("L:after", after) + "END\r\n", item("L:other", "o") + "END\r\n"]);
    } finally {
      await dribbled.stop();
      tap.stop();
    }
  });

  test("a line stops taking requests past 2 KB (memcached reads longer lines on a slower path)", async () => {
    // 60 gets of one 100-byte key each, in one write: 6 KB of keys, which would fit one line.
    const keys = Array.from({ length: 60 }, (_, i) => `cap:${i}:`.padEnd(100, "k"));
    await pipeline(ep("one"), keys.slice(0, 3).map((k) => set(k, k)).join(""), 3);
    taps[0]!.forget();
    const replies = await pipeline(ep("one"), keys.map((k) => `get ${k}\r\n`).join(""), keys.length);
    expect(replies.map((r) => r.toString("latin1"))).toEqual(keys.map((k, i) => (i < 3 ? item(k, k) : "") + "END\r\n"));
    const lines = taps[0]!.lines("get");
    // Every key once, in order, over several lines; each line stopped near 2 KB: past it by at
    // most its last request's key, and (but the last) not much short of it.
    expect(lines.flatMap((l) => l.split(" ").slice(1))).toEqual(keys);
    expect(lines.length).toBeGreaterThanOrEqual(3);
    for (const l of lines) expect(l.length).toBeLessThanOrEqual(2048 + 101);
    for (const l of lines.slice(0, -1)) expect(l.length).toBeGreaterThan(2048 - 101);
  });

  test("an error reply to a joined line goes to every request on it, and the stream stays in step", async () => {
    taps[2]!.forget();
    const error = "CLIENT_ERROR unauthenticated\r\n";
    const replies = await pipeline(ep("auth"), "get a\r\nget b c\r\nget d\r\n", 3);
    expect(replies.map(String)).toEqual([error, error, error]);
    expect(taps[2]!.lines("get")).toEqual(["get a b c d"]);
    // The next request on the same server connection gets its own reply.
    expect((await pipeline(ep("auth"), "get e\r\n", 1)).map(String)).toEqual([error]);
  });

  test("many clients pipelining gets of shared keys, each with its own sets in between: every reply is right", async () => {
    const rng = makeRng(7);
    const shared = Array.from({ length: 60 }, (_, i) => `m:${spread(i)}`);
    const values = new Map<string, string>();
    for (const k of shared) if (rng.int(3) !== 0) values.set(k, `${k}=`.repeat(1 + rng.int(20)));
    await pipeline(ep("two"), [...values].map(([k, v]) => set(k, v)).join(""), values.size);

    let gets = 0;
    const runClient = async (c: number): Promise<void> => {
      const own = `own:${c}`;
      const client = await RawClient.connect(ep("two"));
      try {
        for (let round = 0; round < 20; round++) {
          let requests = "";
          const expected: string[] = [];
          let ownValue: string | null = null;
          for (let r = 0; r < 1 + rng.int(24); r++) {
            if (rng.int(6) === 0) {
              ownValue = `${c}-${round}-${r}`;
              requests += set(own, ownValue);
              expected.push("STORED\r\n");
              continue;
            }
            const keys = Array.from({ length: [1, 1, 2, 3, 10][rng.int(5)]! }, () => (rng.int(8) === 0 ? own : shared[rng.int(shared.length)]!));
            requests += `get ${keys.join(" ")}\r\n`;
            gets++;
            expected.push(
              keys
                .map((k) => (k === own ? (ownValue === null ? "" : item(k, ownValue)) : values.has(k) ? item(k, values.get(k)!) : ""))
                .join("") + "END\r\n",
            );
          }
          // The key of this client is deleted between rounds, so each round starts with a miss.
          requests += `delete ${own}\r\n`;
          expected.push(ownValue === null ? "NOT_FOUND\r\n" : "DELETED\r\n");
          await client.send(requests);
          const replies = await client.readReplies(expected.length, memcacheFrame);
          expect(replies.map(String)).toEqual(expected);
        }
      } finally {
        client.close();
      }
    };
    for (const t of taps) t.forget();
    await Promise.all(Array.from({ length: 12 }, (_, c) => runClient(c)));
    // Lines were joined: the servers got fewer get lines than there were get requests.
    expect(taps[0]!.lines("get").length + taps[1]!.lines("get").length).toBeLessThan(gets);
  });

  test("the queue gauges return to zero, and request_bytes add up to the bytes on the wire", async () => {
    const pools = ["one", "two", "separate", "auth"];
    const wire = () => taps.reduce((n, t) => n + t.received(), 0);
    // Every server's counter `key`, over the pools (a pool's servers are its object members).
    const summed = (doc: StatsDoc, key: string): number => {
      let n = 0;
      for (const p of pools) for (const s of Object.values(poolOf(doc, p))) if (typeof s === "object") n += s[key] as number;
      return n;
    };
    await waitFor("request_bytes to match the bytes the servers received", async () => {
      await Bun.sleep(2 * STATS_INTERVAL_MS);
      const doc = await readStats(proxy.statsPort);
      return summed(doc, "request_bytes") === wire() ? doc : undefined;
    });
    const doc = await readStats(proxy.statsPort);
    for (const key of ["in_queue", "in_queue_bytes", "out_queue", "out_queue_bytes"]) expect([key, summed(doc, key)]).toEqual([key, 0]);
  });
});
