// End-to-end placement ground truth: for every pool in ../shared/vectors/distribution.json
// (recorded through the real nutcracker 0.5.0), parse the pool's YAML with our config loader,
// build its Router and route every key. This covers the server sort order, effective names,
// weights, float32 ketama point counts, hash tags, empty keys and single-server pools.

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { parseConfig } from "../../src/conf/load.ts";
import { Router } from "../../src/route/router.ts";

interface VectorServer {
  spec: string;
  effective_name: string;
}

interface VectorPool {
  name: string;
  yaml: string;
  distribution: string;
  hash: string;
  hash_tag: string | null;
  servers: VectorServer[];
  internal_order: number[];
  placements: number[];
}

const vectors = JSON.parse(
  readFileSync(new URL("../../../shared/vectors/distribution.json", import.meta.url), "utf8"),
) as { keys: string[]; pools: VectorPool[] };

const keys = vectors.keys.map((hex) => Buffer.from(hex, "hex"));

test("the vectors cover every pool and key", () => {
  expect(vectors.pools.length).toBe(42);
  expect(keys.length).toBe(389);
  expect(keys.some((key) => key.length === 0)).toBe(true);
});

describe("placements match nutcracker 0.5.0", () => {
  for (const vector of vectors.pools) {
    test(vector.name, () => {
      const config = parseConfig(vector.yaml, `${vector.name}.yml`, () => {});
      expect(config.pools.length).toBe(1);
      const pool = config.pools[0]!;
      expect([pool.distribution, pool.hash, pool.hashTag]).toEqual([
        vector.distribution as typeof pool.distribution,
        vector.hash as typeof pool.hash,
        vector.hash_tag,
      ]);
      // pool.servers is in internal order; placements index the YAML-order servers.
      const yamlIndex = new Map(vector.servers.map((s, i) => [s.effective_name, i]));
      const internalToYaml = pool.servers.map((s) => yamlIndex.get(s.effectiveName) ?? -1);
      expect(internalToYaml).toEqual(vector.internal_order);

      const router = new Router(pool);
      const wrong: string[] = [];
      keys.forEach((key, i) => {
        const index = router.route(key, 0, key.length);
        const placed = index < 0 ? index : internalToYaml[index];
        if (placed !== vector.placements[i]) {
          wrong.push(`key ${vectors.keys[i]!.slice(0, 40)}: server ${placed}, nutcracker ${vector.placements[i]}`);
        }
      });
      expect(wrong).toEqual([]);
    });
  }
});
