// A seeded mix of redis commands with every expected reply computed from a model of redis's own
// semantics, so a pipeline's replies can be checked one by one: reply i must be the reply to
// request i. Every value written carries its request number, so a reply delivered to the wrong
// request cannot match by accident.

import { makeRng, spread } from "./random.ts";
import { array, bulk, command, integer, OK, simple } from "./resp.ts";

export interface Workload {
  requests: Buffer[];
  expected: Buffer[];
  /** A short text per request, for failure messages. */
  labels: string[];
}

/**
 * `count` commands over keys prefixed with `prefix` (give each concurrent user its own prefix):
 * SET, GET, APPEND, STRLEN, EXISTS, DEL, MGET (2-6 keys), INCRBY, RPUSH, LRANGE, HSET, HGET, PING.
 * The keyspace starts empty.
 */
export function redisWorkload(seed: number, count: number, prefix: string): Workload {
  const rng = makeRng(seed);
  const strings = new Map<string, Buffer>();
  const counters = new Map<string, number>();
  const lists = new Map<string, Buffer[]>();
  const hashes = new Map<string, Map<string, Buffer>>();
  const out: Workload = { requests: [], expected: [], labels: [] };
  const stringKey = () => `${prefix}s:${spread(rng.int(400))}`;
  const value = (i: number) => Buffer.concat([Buffer.from(`v${i}:`), rng.bytes(rng.int(40))]);
  const add = (args: (string | Buffer)[], reply: Buffer) => {
    out.requests.push(command(...args));
    out.expected.push(reply);
    out.labels.push(args.map((a) => (typeof a === "string" ? a : `<${a.length} bytes>`)).join(" "));
  };

  for (let i = 0; i < count; i++) {
    const roll = rng.int(100);
    if (roll < 20) {
      const key = stringKey();
      const v = value(i);
      strings.set(key, v);
      add(["SET", key, v], OK);
    } else if (roll < 38) {
      const key = stringKey();
      add(["GET", key], bulk(strings.get(key) ?? null));
    } else if (roll < 43) {
      const key = stringKey();
      const v = value(i);
      const joined = Buffer.concat([strings.get(key) ?? Buffer.alloc(0), v]);
      strings.set(key, joined);
      add(["APPEND", key, v], integer(joined.length));
    } else if (roll < 47) {
      const key = stringKey();
      add(["STRLEN", key], integer(strings.get(key)?.length ?? 0));
    } else if (roll < 51) {
      const key = stringKey();
      add(["EXISTS", key], integer(strings.has(key) ? 1 : 0));
    } else if (roll < 56) {
      const key = stringKey();
      add(["DEL", key], integer(strings.delete(key) ? 1 : 0));
    } else if (roll < 66) {
      const keys = Array.from({ length: 2 + rng.int(5) }, stringKey);
      add(["MGET", ...keys], array(keys.map((k) => bulk(strings.get(k) ?? null))));
    } else if (roll < 76) {
      const key = `${prefix}c:${spread(rng.int(50))}`;
      const by = rng.int(1000) - 300;
      const now = (counters.get(key) ?? 0) + by;
      counters.set(key, now);
      add(["INCRBY", key, String(by)], integer(now));
    } else if (roll < 83) {
      const key = `${prefix}l:${spread(rng.int(50))}`;
      const list = lists.get(key) ?? [];
      list.push(value(i));
      lists.set(key, list);
      add(["RPUSH", key, list[list.length - 1]!], integer(list.length));
    } else if (roll < 87) {
      const key = `${prefix}l:${spread(rng.int(50))}`;
      add(["LRANGE", key, "0", "-1"], array((lists.get(key) ?? []).map((v) => bulk(v))));
    } else if (roll < 93) {
      const key = `${prefix}h:${spread(rng.int(50))}`;
      const field = `f${rng.int(8)}`;
      const hash = hashes.get(key) ?? new Map<string, Buffer>();
      const isNew = !hash.has(field);
      hash.set(field, value(i));
      hashes.set(key, hash);
      add(["HSET", key, field, hash.get(field)!], integer(isNew ? 1 : 0));
    } else if (roll < 98) {
      const key = `${prefix}h:${spread(rng.int(50))}`;
      const field = `f${rng.int(8)}`;
      add(["HGET", key, field], bulk(hashes.get(key)?.get(field) ?? null));
    } else {
      add(["PING"], simple("PONG"));
    }
  }
  return out;
}
