// Where keys belong when some servers are out. twemproxy rebuilds the ring over the live
// servers only, which is the ring of a pool listing just those servers; so the expected
// placement over a live set is the router's placement (checked bit-exact against twemproxy's
// vectors in test/unit/distribution.test.ts) for the pool without the ejected servers.

import { parseConfig } from "../../src/conf/load.ts";
import { Router } from "../../src/route/router.ts";
import { poolYaml, serverLine, type Setting } from "./config.ts";

/**
 * For each key, the address ("host:port") of the server it routes to in a pool of `servers`
 * (addresses, weight 1, in this order) with the given routing settings (hash, distribution,
 * hash_tag; default ketama with fnv1a_64 as twemproxy's defaults).
 */
export function placement(servers: readonly string[], keys: readonly (string | Uint8Array)[], settings: Record<string, Setting> = {}): string[] {
  const yaml = poolYaml("ring", { listen: "127.0.0.1:1", distribution: "ketama", ...settings }, servers.map((s) => serverLine(s)));
  const pool = parseConfig(yaml, "ring.yml", () => {}).pools[0]!;
  const router = new Router(pool);
  return keys.map((key) => {
    const bytes = typeof key === "string" ? Buffer.from(key, "latin1") : key;
    const i = router.route(bytes, 0, bytes.length);
    if (i < 0) throw new Error(`placement: no server for key ${JSON.stringify(Buffer.from(bytes).toString("latin1"))}`);
    const addr = pool.servers[i]!.addr;
    return `${addr.host}:${addr.port}`;
  });
}
