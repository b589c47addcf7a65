// Records Redis Cluster key-slot vectors from a real cluster: starts one (test/helpers), asks a
// node `CLUSTER KEYSLOT` for every key and writes test/vectors/keyslot.json, which
// test/unit/key-slot.test.ts replays against the WASM hashkit. Keys: twemproxy's hash-vector
// keys (binary ones included), hash-tag edge cases, and seeded random keys with and without
// braces. Run: bun scripts/record-keyslot.ts
//   (needs ../shared/vectors/hash.json next to the worktree for the twemproxy keys).

import { readFileSync, writeFileSync } from "node:fs";
import { exchange } from "../test/helpers/client.ts";
import { endpointOf } from "../test/helpers/direct.ts";
import { makeRng } from "../test/helpers/random.ts";
import { startRedisCluster } from "../test/helpers/redis-cluster.ts";
import { command, decode, respFrame } from "../test/helpers/resp.ts";

const OUT = new URL("../test/vectors/keyslot.json", import.meta.url);
const HASH_VECTORS = new URL("../../shared/vectors/hash.json", import.meta.url);

const EDGE_CASES = [
  "", "{", "}", "{}", "}{", "{{}}", "{}{}", "{a}", "{a", "a}", "a{", "}a{b}", "{{a}}", "{a}}",
  "foo", "bar", "123456789", "{user1000}.following", "{user1000}.followers", "foo{}{bar}",
  "foo{{bar}}zap", "foo{bar}{zap}", "{}foo", "foo{}", "x{ }y", "a{b}c{d}e", "{\x00}", "\x00{a}",
  "user:{42}:profile", "user:{42}", "{42}", "42",
];

function keys(): Buffer[] {
  const twemproxy = JSON.parse(readFileSync(HASH_VECTORS, "utf8")) as { vectors: { key: string }[] };
  const out = [...EDGE_CASES.map((k) => Buffer.from(k, "latin1")), ...twemproxy.vectors.map((v) => Buffer.from(v.key, "hex"))];
  const rng = makeRng(18);
  const alphabet = "ab{}:-_x0123456789";
  for (let i = 0; i < 400; i++) {
    const len = 1 + rng.int(24);
    let key = "";
    for (let j = 0; j < len; j++) key += rng.pick([...alphabet]);
    out.push(Buffer.from(key, "latin1"));
  }
  for (let i = 0; i < 50; i++) {
    out.push(rng.bytes(1 + rng.int(300)));
  }
  const seen = new Set<string>();
  return out.filter((k) => {
    const hex = k.toString("hex");
    if (seen.has(hex)) return false;
    seen.add(hex);
    return true;
  });
}

const cluster = await startRedisCluster({ masters: 3, replicas: 0 });
try {
  const node = cluster.nodes[0]!;
  const version = /redis_version:(\S+)/.exec(String(await cluster.call(node, "INFO", "server")))![1]!;
  const all = keys();
  const replies = await exchange(
    endpointOf(node),
    Buffer.concat(all.map((k) => command("CLUSTER", "KEYSLOT", k))),
    all.length,
    respFrame,
  );
  const vectors = all.map((key, i) => ({ key: key.toString("hex"), slot: decode(replies[i]!) as number }));
  const head = {
    format: "redis-cluster-keyslot-vectors/1",
    source: `CLUSTER KEYSLOT of redis-server ${version} (cluster-enabled), recorded by scripts/record-keyslot.ts`,
    count: vectors.length,
  };
  // One vector per line: readable diffs when the vectors are recorded again.
  const lines = vectors.map((v) => `  ${JSON.stringify(v)}`).join(",\n");
  writeFileSync(OUT, `${JSON.stringify(head, null, 1).slice(0, -2)},\n "vectors": [\n${lines}\n ]\n}\n`);
  console.log(`${vectors.length} vectors from redis ${version} -> ${OUT.pathname}`);
} finally {
  await cluster.stop();
}
