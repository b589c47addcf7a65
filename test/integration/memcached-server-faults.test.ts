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
  backends = [await startMemcached({ args: ["-o", "read_buf_mem_limit=1"] })];
  const pool = (name: string, extra: Record<string, string> = {}) =>
    poolYaml(name, { listen: `127.0.0.1:${freePort()}`, hash: "fnv1a_64", distribution: "ketama", ...extra }, [
      serverLine(backends[0]!.address),
    ]);
  proxy = await startProxy(TARGET, pool("oom") + "\n" + pool("oomSeparate", { coalesce_gets: "false" }));
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
});
