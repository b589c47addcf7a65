// The twemproxy ground-truth vectors in ../shared/vectors (see its README.md), and rewriting a
// vector pool's YAML so it can run here against real backends.

import { readFileSync } from "node:fs";
import { join } from "node:path";

const VECTORS_DIR = join(import.meta.dir, "..", "..", "..", "shared", "vectors");

export interface VectorServer {
  spec: string;
  host: string;
  port: number;
  weight: number;
  name: string | null;
  effective_name: string;
}

export interface VectorPool {
  name: string;
  yaml: string;
  distribution: string;
  hash: string;
  hash_tag: string | null;
  servers: VectorServer[];
  /** placements[i] = index into `servers` of the server that stored keys[i]. */
  placements: number[];
}

export interface DistributionVectors {
  /** Raw key bytes. */
  keys: Buffer[];
  pools: VectorPool[];
}

let cached: DistributionVectors | null = null;

export function loadDistribution(): DistributionVectors {
  if (cached === null) {
    const raw = JSON.parse(readFileSync(join(VECTORS_DIR, "distribution.json"), "utf8")) as {
      keys: string[];
      pools: VectorPool[];
    };
    cached = { keys: raw.keys.map((hex) => Buffer.from(hex, "hex")), pools: raw.pools };
  }
  return cached;
}

/** True when placement depends on the servers' addresses (some server has no name) and the ring hashes them. */
export const addressesMatter = (pool: VectorPool): boolean =>
  pool.servers.length > 1 && pool.distribution === "ketama" && pool.servers.some((s) => s.name === null);

/**
 * The pool's YAML with `listen` replaced, `redis:` set for the protocol, `redis_db` dropped for
 * memcached, and each server port replaced through `portMap` (unmapped ports stay). Everything
 * else (names, weights, order, hash, distribution, hash_tag) is kept exactly.
 */
export function rewritePoolYaml(
  pool: VectorPool,
  opts: { listen: string; redis: boolean; portMap?: ReadonlyMap<number, number> },
): string {
  const lines: string[] = [];
  for (const line of pool.yaml.split("\n")) {
    if (/^\s+listen:/.test(line)) lines.push(`  listen: ${opts.listen}`);
    else if (/^\s+redis:/.test(line)) lines.push(`  redis: ${opts.redis}`);
    else if (/^\s+redis_db:/.test(line) && !opts.redis) continue;
    else if (/^\s+- /.test(line) && opts.portMap) {
      lines.push(line.replace(/^(\s+- [^:]+:)(\d+)(:.*)$/, (_, head: string, port: string, tail: string) =>
        `${head}${opts.portMap!.get(Number(port)) ?? port}${tail}`));
    } else lines.push(line);
  }
  return lines.join("\n").trimEnd() + "\n";
}
