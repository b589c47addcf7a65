// Tagged requests and what their replies may be. Every key is written once, with a value that is
// a function of the key (`valueOf`), so any value in a reply names the request it belongs to:
// a reply carrying another key's value is misordered (same client) or foreign (another client).
// A read may find nothing (the write failed, its backend restarted, an ejection moved the key),
// never a value that is not the key's own.

import type { Framer } from "../helpers/client.ts";
import { memcacheFrame, parseRetrieval } from "../helpers/memcache.ts";
import type { Rng } from "../helpers/random.ts";
import { command, decode, RespError, respFrame, type RespValue } from "../helpers/resp.ts";

/** "ok", or what is wrong: error:<proxy reason>, misordered:, foreign:, unexpected: <detail>. */
export type Verdict = "ok" | `${"error" | "misordered" | "foreign" | "unexpected"}:${string}`;

export interface Request {
  readonly bytes: Buffer;
  /** Null when the request has no reply (memcached noreply). */
  readonly check: ((reply: Buffer) => Verdict) | null;
}

export interface Traffic {
  readonly framer: Framer;
  next(): Request;
}

/** The error reasons a proxy gives when a backend fails (twemproxy's strerror texts). */
export const PROXY_ERRORS = new Set([
  "Connection refused",
  "Connection reset by peer",
  "Connection timed out",
  "Host is down",
  "Broken pipe",
  "Invalid response from server",
]);

const SIZES = [8, 8, 40, 40, 40, 200, 200, 2000, 20000];

/** The one value ever written to `key`: the key, then filler of a size chosen by the key. */
export function valueOf(key: string): Buffer {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (Math.imul(h, 31) + key.charCodeAt(i)) >>> 0;
  const size = h % 997 === 0 ? 100_000 : SIZES[h % SIZES.length]!;
  const head = Buffer.from(`${key}=`, "latin1");
  const out = Buffer.alloc(head.length + size, 97 + (h % 26));
  head.copy(out);
  return out;
}

/** Whose value is this? The key it was written for, or null when it is no checker value. */
function ownerOf(value: Buffer): string | null {
  const eq = value.indexOf(0x3d);
  if (eq < 0) return null;
  const key = value.toString("latin1", 0, eq);
  return /^c:\d+:\d+$/.test(key) && valueOf(key).equals(value) ? key : null;
}

const laneOf = (key: string): string => key.split(":")[1]!;

/** A value found where `key`'s belongs: which kind of wrong is it? */
function stray(key: string, value: Buffer): Verdict {
  const owner = ownerOf(value);
  if (owner === null) return `unexpected:${key} holds ${JSON.stringify(value.toString("latin1", 0, 60))}`;
  return laneOf(owner) === laneOf(key) ? `misordered:${key} got ${owner}'s value` : `foreign:${key} got ${owner}'s value`;
}

/** Keys written by one client, for its reads and deletes (most recent last). */
class KeyRing {
  private readonly keys: string[] = [];
  private seq = 0;
  constructor(
    private readonly lane: number,
    private readonly rng: Rng,
  ) {}

  fresh(): string {
    const key = `c:${this.lane}:${this.seq++}`;
    this.keys.push(key);
    if (this.keys.length > 256) this.keys.shift();
    return key;
  }

  /** A recent key, now and then one never written. */
  some(): string {
    if (this.keys.length === 0 || this.rng.int(10) === 0) return `c:${this.lane}:${this.seq + 1_000_000 + this.rng.int(1000)}`;
    return this.keys[this.keys.length - 1 - this.rng.int(Math.min(this.keys.length, 64))]!;
  }

  many(n: number): string[] {
    return Array.from({ length: n }, () => this.some());
  }
}

// ---- redis ----

function redisError(reply: RespValue): Verdict | null {
  if (!(reply instanceof RespError)) return null;
  const reason = reply.message.replace(/^ERR /, "");
  return reply.message.startsWith("ERR ") && PROXY_ERRORS.has(reason) ? `error:${reason}` : `unexpected:-${reply.message}`;
}

function expectValue(key: string, got: RespValue): Verdict {
  if (got === null) return "ok";
  if (!Buffer.isBuffer(got)) return `misordered:GET ${key} got ${JSON.stringify(got)}`;
  return got.equals(valueOf(key)) ? "ok" : stray(key, got);
}

export class RedisTraffic implements Traffic {
  readonly framer = respFrame;
  private readonly keys: KeyRing;

  constructor(
    lane: number,
    private readonly rng: Rng,
  ) {
    this.keys = new KeyRing(lane, rng);
  }

  next(): Request {
    const roll = this.rng.int(100);
    const keys = this.keys;
    if (roll < 35) {
      const key = keys.fresh();
      return this.make(command("SET", key, valueOf(key), "EX", "120"), (r) => (r === "OK" ? "ok" : `misordered:SET ${key} got ${JSON.stringify(r)}`));
    }
    if (roll < 65) {
      const key = keys.some();
      return this.make(command("GET", key), (r) => expectValue(key, r));
    }
    if (roll < 75) {
      const ks = keys.many(2 + this.rng.int(4));
      return this.make(command("MGET", ...ks), (r) => {
        if (!Array.isArray(r) || r.length !== ks.length) return `misordered:MGET of ${ks.length} got ${JSON.stringify(r).slice(0, 80)}`;
        for (let i = 0; i < ks.length; i++) {
          const v = expectValue(ks[i]!, r[i]!);
          if (v !== "ok") return v;
        }
        return "ok";
      });
    }
    if (roll < 83) {
      const ks = [keys.fresh(), keys.fresh(), ...(this.rng.int(2) === 0 ? [keys.fresh()] : [])];
      return this.make(command("MSET", ...ks.flatMap((k) => [k, valueOf(k)])), (r) => (r === "OK" ? "ok" : `misordered:MSET got ${JSON.stringify(r)}`));
    }
    if (roll < 95) {
      const ks = keys.many(1 + this.rng.int(3));
      const verb = roll < 89 ? "DEL" : "EXISTS";
      return this.make(command(verb, ...ks), (r) =>
        typeof r === "number" && r >= 0 && r <= ks.length ? "ok" : `misordered:${verb} of ${ks.length} got ${JSON.stringify(r)}`,
      );
    }
    return this.make(command("PING"), (r) => (r === "PONG" ? "ok" : `misordered:PING got ${JSON.stringify(r)}`));
  }

  private make(bytes: Buffer, check: (reply: RespValue) => Verdict): Request {
    return {
      bytes,
      check: (raw) => {
        const reply = decode(raw);
        return redisError(reply) ?? check(reply);
      },
    };
  }
}

// ---- memcached ----

const line = (s: string): Buffer => Buffer.from(s + "\r\n", "latin1");

export class MemcacheTraffic implements Traffic {
  readonly framer = memcacheFrame;
  private readonly keys: KeyRing;

  constructor(
    lane: number,
    private readonly rng: Rng,
  ) {
    this.keys = new KeyRing(lane, rng);
  }

  next(): Request {
    const roll = this.rng.int(100);
    const keys = this.keys;
    if (roll < 40) {
      const key = keys.fresh();
      const value = valueOf(key);
      const noreply = roll < 6;
      const bytes = Buffer.concat([line(`set ${key} 0 120 ${value.length}${noreply ? " noreply" : ""}`), value, line("")]);
      return { bytes, check: noreply ? null : this.lineCheck(`set ${key}`, ["STORED"]) };
    }
    if (roll < 80) {
      const ks = keys.many(roll < 65 ? 1 : 2 + this.rng.int(4));
      return { bytes: line(`get ${ks.join(" ")}`), check: (raw) => this.retrieval(ks, raw) };
    }
    if (roll < 90) {
      const key = keys.some();
      return { bytes: line(`delete ${key}`), check: this.lineCheck(`delete ${key}`, ["DELETED", "NOT_FOUND"]) };
    }
    const key = keys.some();
    return { bytes: line(`touch ${key} 120`), check: this.lineCheck(`touch ${key}`, ["TOUCHED", "NOT_FOUND"]) };
  }

  private proxyError(text: string): Verdict | null {
    if (!text.startsWith("SERVER_ERROR ")) return null;
    const reason = text.slice("SERVER_ERROR ".length, -2);
    return PROXY_ERRORS.has(reason) ? `error:${reason}` : `unexpected:${text.trim()}`;
  }

  private lineCheck(what: string, allowed: string[]): (raw: Buffer) => Verdict {
    return (raw) => {
      const text = raw.toString("latin1");
      const err = this.proxyError(text);
      if (err !== null) return err;
      return allowed.includes(text.slice(0, -2)) ? "ok" : `misordered:${what} got ${JSON.stringify(text.slice(0, 80))}`;
    };
  }

  /** Values for some of `ks`, in their order, each the key's own. */
  private retrieval(ks: string[], raw: Buffer): Verdict {
    const text = raw.toString("latin1", 0, 200);
    const err = this.proxyError(text);
    if (err !== null) return err;
    if (!text.startsWith("VALUE ") && text !== "END\r\n") return `misordered:get ${ks.join(" ")} got ${JSON.stringify(text.slice(0, 80))}`;
    let at = 0;
    for (const v of parseRetrieval(raw)) {
      while (at < ks.length && ks[at] !== v.key) at++;
      if (at === ks.length) return ks.includes(v.key) ? `misordered:get ${ks.join(" ")}: ${v.key} out of order` : stray(ks[0]!, v.data);
      if (!v.data.equals(valueOf(v.key))) return stray(v.key, v.data);
      at++;
    }
    return "ok";
  }
}
