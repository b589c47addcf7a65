// A seeded mix of memcached commands with every expected reply computed from a model of
// memcached's semantics; `noreply` requests have no reply, and must not shift the others.
// Every value written carries its request number, so a misrouted reply cannot match.

import { line, retrieval, storage, valueBlock } from "./memcache.ts";
import { makeRng, spread } from "./random.ts";

export interface MemcacheWorkload {
  requests: Buffer[];
  /** The expected reply per request that has one (noreply requests are left out). */
  expected: Buffer[];
  /** A short text per expected reply, naming its request. */
  labels: string[];
  /** Indexes into `expected` of multi-key retrievals (nutcracker 0.5.0 may reorder their values). */
  multiKey: number[];
}

interface Item {
  flags: number;
  data: Buffer;
}

const text = (s: string) => Buffer.from(s + "\r\n");

/**
 * `count` commands over keys prefixed with `prefix` (one prefix per concurrent user): set, add,
 * replace, append, prepend, get (1-6 keys), delete, incr, decr, touch, some with noreply.
 * The keyspace starts empty.
 */
export function memcacheWorkload(seed: number, count: number, prefix: string): MemcacheWorkload {
  const rng = makeRng(seed);
  const items = new Map<string, Item>();
  const out: MemcacheWorkload = { requests: [], expected: [], labels: [], multiKey: [] };
  const itemKey = () => `${prefix}i:${spread(rng.int(400))}`;
  const counterKey = () => `${prefix}n:${spread(rng.int(40))}`;
  const value = (i: number) => Buffer.concat([Buffer.from(`v${i}:`), rng.bytes(rng.int(60))]);
  const add = (request: Buffer, reply: Buffer | null, label: string) => {
    out.requests.push(request);
    if (reply === null) return;
    out.expected.push(reply);
    out.labels.push(label);
  };
  const stored = (ok: boolean) => text(ok ? "STORED" : "NOT_STORED");

  for (let i = 0; i < count; i++) {
    const roll = rng.int(100);
    const noreply = rng.int(10) === 0;
    if (roll < 22) {
      const key = itemKey();
      const item = { flags: rng.int(65536), data: value(i) };
      items.set(key, item);
      add(storage("set", key, item.data, { flags: item.flags, noreply }), noreply ? null : stored(true), `set ${key}`);
    } else if (roll < 26) {
      const key = itemKey();
      const ok = !items.has(key);
      const item = { flags: rng.int(100), data: value(i) };
      if (ok) items.set(key, item);
      add(storage("add", key, item.data, { flags: item.flags }), stored(ok), `add ${key}`);
    } else if (roll < 30) {
      const key = itemKey();
      const ok = items.has(key);
      const item = { flags: rng.int(100), data: value(i) };
      if (ok) items.set(key, item);
      add(storage("replace", key, item.data, { flags: item.flags }), stored(ok), `replace ${key}`);
    } else if (roll < 35) {
      const key = itemKey();
      const verb = rng.int(2) === 0 ? "append" : "prepend";
      const old = items.get(key);
      const more = value(i);
      if (old) old.data = verb === "append" ? Buffer.concat([old.data, more]) : Buffer.concat([more, old.data]);
      add(storage(verb, key, more, { noreply }), noreply ? null : stored(old !== undefined), `${verb} ${key}`);
    } else if (roll < 55) {
      const key = itemKey();
      const item = items.get(key);
      add(line("get", key), retrieval(item ? [valueBlock(key, item.data, item.flags)] : []), `get ${key}`);
    } else if (roll < 67) {
      const keys = Array.from({ length: 2 + rng.int(5) }, itemKey);
      const blocks = keys.flatMap((k) => {
        const item = items.get(k);
        return item ? [valueBlock(k, item.data, item.flags)] : [];
      });
      add(line("get", ...keys), retrieval(blocks), `get ${keys.join(" ")}`);
      out.multiKey.push(out.expected.length - 1);
    } else if (roll < 75) {
      const key = rng.int(3) === 0 ? counterKey() : itemKey();
      const existed = items.delete(key);
      add(line("delete", key, ...(noreply ? ["noreply"] : [])), noreply ? null : text(existed ? "DELETED" : "NOT_FOUND"), `delete ${key}`);
    } else if (roll < 80) {
      const key = counterKey();
      const item = { flags: 0, data: Buffer.from(String(rng.int(1000))) };
      items.set(key, item);
      add(storage("set", key, item.data), stored(true), `set ${key}`);
    } else if (roll < 94) {
      const key = counterKey();
      const verb = rng.int(3) === 0 ? "decr" : "incr";
      const by = rng.int(500);
      const item = items.get(key);
      let reply = text("NOT_FOUND");
      if (item) {
        const now = Number(item.data.toString());
        const next = verb === "incr" ? now + by : Math.max(0, now - by);
        // memcached rewrites a result that fits in place, space-padded to the old length
        const digits = String(next);
        item.data = Buffer.from(digits.length < item.data.length ? digits.padEnd(item.data.length, " ") : digits);
        reply = text(String(next));
      }
      add(line(verb, key, String(by), ...(noreply ? ["noreply"] : [])), noreply ? null : reply, `${verb} ${key} ${by}`);
    } else {
      const key = itemKey();
      add(line("touch", key, String(1000 + rng.int(1000))), text(items.has(key) ? "TOUCHED" : "NOT_FOUND"), `touch ${key}`);
    }
  }
  return out;
}
