// memcached's own failures seen through the proxy: replies memcached drops, lines it closes a
// connection over. Real memcached 1.6 processes, started with the settings that make them fail;
// what each failure does is what the server itself does (shown straight to it first where the
// test depends on it), never what the proxy under test says.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startMemcached, type Backend } from "../helpers/backends.ts";
import { exchange, RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { endpointOf, stopAll } from "../helpers/direct.ts";
import { memcacheFrame } from "../helpers/memcache.ts";
import { freePort } from "../helpers/ports.ts";
import { unreadBytes } from "../helpers/procfs.ts";
import { waitFor } from "../helpers/ops.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";

setDefaultTimeout(60_000);

let backends: Backend[] = [];
let proxy: RunningProxy;

/** A get of this many keys needs more response objects than memcached's read_buf_mem_limit=1
 *  (1 MB of 16 KB buffers with one worker thread) lets it have. */
const OOM_KEYS = 1000;
const oomGet = `get ${Array.from({ length: OOM_KEYS }, (_, i) => `oom:${i}`).join(" ")}\r\n`;

beforeAll(async () => {
  if (TARGET !== "buncracker") return;
  backends = await Promise.all([startMemcached({ args: ["-o", "read_buf_mem_limit=1"] }), startMemcached()]);
  const pool = (name: string, backend: Backend, extra: Record<string, string> = {}) =>
    poolYaml(name, { listen: `127.0.0.1:${freePort()}`, hash: "fnv1a_64", distribution: "ketama", ...extra }, [serverLine(backend.address)]);
  const [limited, plain] = backends as [Backend, Backend];
  proxy = await startProxy(TARGET, pool("oom", limited) + "\n" + pool("oomSeparate", limited, { coalesce_gets: "false" }) + "\n" + pool("plain", plain));
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll(backends);
});

const text = (b: Buffer): string => b.toString("latin1");

describe.skipIf(TARGET !== "buncracker")("memcached failures", () => {
  test("memcached itself: a get it runs out of memory for drops the unsent reply of the set before it", async () => {
    // What the proxy has to live with: one reply for two requests.
    const direct = await RawClient.connect(endpointOf(backends[0]!));
    try {
      await direct.send(`set oom:direct 0 0 1\r\nx\r\n${oomGet}version\r\n`);
      const replies = await direct.readReplies(2, memcacheFrame);
      expect(replies.map(text)).toEqual(["SERVER_ERROR out of memory writing get response\r\n", expect.stringMatching(/^VERSION /)]);
    } finally {
      direct.close();
    }
  });

  for (const name of ["oom", "oomSeparate"]) {
    test(`${name}: after memcached drops replies, no request gets another's reply: all on that connection fail`, async () => {
      const a = await RawClient.connect(proxy.pools[name]!);
      try {
        // One write: memcached reads the set and the get together and drops STORED.
        await a.send(`set ${name}:a 0 0 1\r\nx\r\n${oomGet}`);
        const [first] = await a.readReplies(1, memcacheFrame, { more: true });
        expect(text(first!)).toMatch(/^(STORED|SERVER_ERROR .*)\r\n$/);
        // Another client's get on the same server: the big get never takes its reply, and it
        // gets its own.
        const other = exchange(proxy.pools[name]!, `get ${name}:a\r\n`, 1, memcacheFrame).catch((e: Error) => e);
        const [second] = await a.readReplies(1, memcacheFrame);
        expect(text(second!)).toMatch(/^SERVER_ERROR .*\r\n$/);
        const got = await other;
        expect(got instanceof Error ? got.message : got.map(text)).toEqual([`VALUE ${name}:a 0 1\r\nx\r\nEND\r\n`]);
      } finally {
        a.close();
      }
    });
  }

  test("a command line memcached could close the connection over is refused, and other clients' requests on that connection are answered", async () => {
    // memcached 1.6 closes a connection whose read buffer holds over 2048 bytes of a line other
    // than a get without its LF. A 2048-byte line and its CR at the end of one of its 16 KB reads:
    // a 100 KB value (read straight into its item, so the next read starts right after it), then
    // a 14,335-byte set, then the line, all in the socket of a stopped memcached.
    const plain = backends[1]!;
    const big = `set fault:big 0 0 100000\r\n${"b".repeat(100_000)}\r\n`;
    const fill = `set fault:fill 0 0 14307\r\n${"f".repeat(14_307)}\r\n`;
    const long = `${"set fault:long 0 0 1".padEnd(2048, " ")}\r\nx\r\n`;
    const get = "get fault:fill\r\n";
    expect(fill.length + 2049).toBe(16384);
    const ep = proxy.pools.plain!;
    expect(await exchange(ep, "get fault:none\r\n", 1, memcacheFrame)).toEqual([Buffer.from("END\r\n")]);
    const a = await RawClient.connect(ep);
    const b = await RawClient.connect(ep);
    try {
      await plain.process.freeze();
      try {
        await a.send(big + fill + long);
        await waitFor("the set before the long line in memcached's socket", () => unreadBytes(plain.port) >= big.length + fill.length || undefined);
        await b.send(get);
        // B's get behind A's requests (with the long line, when it went up, or without it).
        const behind = [big.length + fill.length + get.length, big.length + fill.length + long.length + get.length];
        await waitFor("another client's get behind them", () => behind.includes(unreadBytes(plain.port)) || undefined);
      } finally {
        plain.process.signal("SIGCONT");
      }
      expect((await b.readReplies(1, memcacheFrame)).map(text)).toEqual([`VALUE fault:fill 0 14307\r\n${"f".repeat(14_307)}\r\nEND\r\n`]);
      const { replies } = await a.readRepliesOrClose(3, memcacheFrame);
      expect(replies.map(text)).toEqual(["STORED\r\n", "STORED\r\n", "CLIENT_ERROR line too long\r\n"]);
    } finally {
      a.close();
      b.close();
    }
  });
});
