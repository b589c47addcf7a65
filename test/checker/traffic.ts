// Tagged requests and what their replies must be. Every key belongs to one lane and is written
// once, with a value that is a function of the key (`valueOf`), so any value in a reply names the
// request it belongs to: a reply carrying another key's value is misordered (same lane) or
// foreign (another lane). The lane's KeyBook says what each read must find: its acknowledged
// value, nil after an acknowledged delete, and, when a fault may explain it, either. Counts (DEL,
// EXISTS, memcached delete/touch) are checked against the book the same way. A proxy error is
// explained when a fault was under way while its request was in flight. Keys that fall out of a
// lane's recent set are deleted, so the backends' memory stays bounded over a long run.

import type { Framer } from "../helpers/client.ts";
import { memcacheFrame, parseRetrieval } from "../helpers/memcache.ts";
import type { Rng } from "../helpers/random.ts";
import { command, decode, RespError, respFrame, type RespValue } from "../helpers/resp.ts";
import { KeyBook, type Change, type Expect, type Sight } from "./book.ts";
import type { Calm } from "./calm.ts";
import type { Problem, Report } from "./report.ts";

/** "ok", a proxy error (explained by a fault or not), or a problem with what is wrong. */
export type Verdict = "ok" | { readonly error: string; readonly explained: boolean } | { readonly problem: Problem; readonly what: string };

/** A request waiting for its reply. */
export interface Awaited {
  /** The reply arrived: judge it. */
  check(reply: Buffer): Verdict;
  /** It never will (connection closed or desynchronised). */
  lost(): void;
}

export interface Request {
  readonly bytes: Buffer;
  /** Null when the request has no reply (memcached noreply). */
  readonly awaited: Awaited | null;
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
/** Expiry of every write (s): a backstop should a delete of a retired key fail. */
const TTL_S = 120;
/** Keys a lane still reads; older ones are deleted. */
const RECENT = 256;

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
const bad = (problem: Problem, what: string): Verdict => ({ problem, what });
const show = (x: unknown): string => JSON.stringify(x, (_k, v) => (v?.type === "Buffer" ? "<bytes>" : v))?.slice(0, 80) ?? "undefined";

/** What a read of one key found (its value or null) against what the book says it must. */
function judgeRead(book: KeyBook, report: Report, sight: Sight, found: Buffer | null): Verdict {
  const { key } = sight;
  if (found !== null && !found.equals(valueOf(key))) {
    const owner = ownerOf(found);
    if (owner === null) return bad("unexpected", `${key} holds ${JSON.stringify(found.toString("latin1", 0, 60))}`);
    return bad(laneOf(owner) === laneOf(key) ? "misordered" : "foreign", `${key} got ${owner}'s value`);
  }
  const must = book.expect(sight);
  if (must !== "either" && sight.state !== null) report.certain++;
  if (must === "value" && found === null) return bad("missing", `${key} read nil after its write was acknowledged`);
  if (must === "none" && found !== null) {
    return bad("wrong", sight.state === null ? `${key} was never written, read its value` : `${key} read a value after its delete was acknowledged`);
  }
  return "ok";
}

/** The count a certain DEL/EXISTS/delete must return, or null when a fault may have changed it. */
function expectCount(book: KeyBook, sights: Sight[], distinct: boolean): number | null {
  let n = 0;
  const seen = new Set<string>();
  for (const s of sights) {
    const must: Expect = book.expect(s);
    if (must === "either") return null;
    if (must === "value" && !(distinct && seen.has(s.key))) n++;
    seen.add(s.key);
  }
  return n;
}

/** Keys written by one lane, recent ones first for reads; old ones handed back for deletion. */
class KeyRing {
  private readonly keys: string[] = [];
  private readonly old: string[] = [];
  private seq = 0;
  constructor(
    private readonly lane: number,
    private readonly rng: Rng,
    private readonly book: KeyBook,
  ) {}

  fresh(): string {
    const key = `c:${this.lane}:${this.seq++}`;
    this.keys.push(key);
    if (this.keys.length > RECENT) this.old.push(this.keys.shift()!);
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

  /** Up to `n` keys no longer read, forgotten by the book (their deletion is not checked). */
  retired(n: number): string[] {
    const out = this.old.splice(0, n);
    for (const k of out) this.book.retire(k);
    return out;
  }

  get retiring(): number {
    return this.old.length;
  }
}

/** An Awaited whose reply is judged by `judge` and whose changes settle unknown when lost. */
function awaited(changes: Change[], judge: (reply: Buffer) => Verdict): Awaited {
  return {
    check: (reply) => {
      const verdict = judge(reply);
      for (const c of changes) c.unknown(); // settles only what the reply did not
      return verdict;
    },
    lost: () => {
      for (const c of changes) c.unknown();
    },
  };
}

// ---- redis ----

export class RedisTraffic implements Traffic {
  readonly framer = respFrame;
  private readonly keys: KeyRing;
  private readonly book: KeyBook;

  constructor(
    lane: number,
    private readonly rng: Rng,
    private readonly calm: Calm,
    private readonly report: Report,
  ) {
    this.book = new KeyBook(calm, TTL_S * 1000);
    this.keys = new KeyRing(lane, rng, this.book);
  }

  next(): Request {
    const { keys, book } = this;
    if (keys.retiring >= 4) {
      const ks = keys.retired(4);
      return this.make(command("DEL", ...ks), [], (r) => (typeof r === "number" && r >= 0 && r <= ks.length ? "ok" : bad("misordered", `DEL of retired keys got ${show(r)}`)));
    }
    const roll = this.rng.int(100);
    if (roll < 35) {
      const key = keys.fresh();
      const change = book.change(key, "write")!;
      return this.make(command("SET", key, valueOf(key), "EX", String(TTL_S)), [change], (r) => {
        if (r !== "OK") return bad("misordered", `SET ${key} got ${show(r)}`);
        change.done("value");
        return "ok";
      });
    }
    if (roll < 65) {
      const sight = book.see(keys.some());
      return this.make(command("GET", sight.key), [], (r) => (r === null || Buffer.isBuffer(r) ? judgeRead(book, this.report, sight, r) : bad("misordered", `GET ${sight.key} got ${show(r)}`)));
    }
    if (roll < 75) {
      const sights = keys.many(2 + this.rng.int(4)).map((k) => book.see(k));
      return this.make(command("MGET", ...sights.map((s) => s.key)), [], (r) => {
        if (!Array.isArray(r) || r.length !== sights.length) return bad("misordered", `MGET of ${sights.length} got ${show(r)}`);
        for (let i = 0; i < sights.length; i++) {
          const v = r[i]!;
          const verdict = v === null || Buffer.isBuffer(v) ? judgeRead(book, this.report, sights[i]!, v) : bad("misordered", `MGET item ${i} is ${show(v)}`);
          if (verdict !== "ok") return verdict;
        }
        return "ok";
      });
    }
    if (roll < 83) {
      const ks = [keys.fresh(), keys.fresh(), ...(this.rng.int(2) === 0 ? [keys.fresh()] : [])];
      const changes = ks.map((k) => book.change(k, "write")!);
      return this.make(command("MSET", ...ks.flatMap((k) => [k, valueOf(k)])), changes, (r) => {
        if (r !== "OK") return bad("misordered", `MSET got ${show(r)}`);
        for (const c of changes) c.done("value");
        return "ok";
      });
    }
    if (roll < 89) {
      const ks = keys.many(1 + this.rng.int(3));
      const sights = ks.map((k) => book.see(k, ks.filter((x) => x === k).length));
      const changes = ks.flatMap((k) => book.change(k, "delete") ?? []);
      return this.make(command("DEL", ...ks), changes, (r) => {
        if (typeof r !== "number" || r < 0 || r > ks.length) return bad("misordered", `DEL of ${ks.length} got ${show(r)}`);
        // Judged before the changes settle: the count is of what was there before.
        const must = expectCount(book, sights, true);
        for (const c of changes) c.done("none");
        return must === null || must === r ? "ok" : bad("wrong", `DEL ${ks.join(" ")} deleted ${r}, the lane's writes say ${must}`);
      });
    }
    if (roll < 95) {
      const sights = keys.many(1 + this.rng.int(3)).map((k) => book.see(k));
      return this.make(command("EXISTS", ...sights.map((s) => s.key)), [], (r) => {
        if (typeof r !== "number" || r < 0 || r > sights.length) return bad("misordered", `EXISTS of ${sights.length} got ${show(r)}`);
        const must = expectCount(book, sights, false);
        return must === null || must === r ? "ok" : bad(r < must ? "missing" : "wrong", `EXISTS ${sights.map((s) => s.key).join(" ")} counted ${r}, the lane's writes say ${must}`);
      });
    }
    return this.make(command("PING"), [], (r) => (r === "PONG" ? "ok" : bad("misordered", `PING got ${show(r)}`)));
  }

  private make(bytes: Buffer, changes: Change[], judge: (reply: RespValue) => Verdict): Request {
    const sent = this.calm.epoch;
    return {
      bytes,
      awaited: awaited(changes, (raw) => {
        const reply = decode(raw);
        if (!(reply instanceof RespError)) return judge(reply);
        for (const c of changes) c.unknown();
        const reason = reply.message.replace(/^ERR /, "");
        if (reply.message.startsWith("ERR ") && PROXY_ERRORS.has(reason)) return { error: reason, explained: !this.calm.undisturbedSince(sent) };
        return bad("unexpected", `-${reply.message}`);
      }),
    };
  }
}

// ---- memcached ----

const line = (s: string): Buffer => Buffer.from(s + "\r\n", "latin1");

export class MemcacheTraffic implements Traffic {
  readonly framer = memcacheFrame;
  private readonly keys: KeyRing;
  private readonly book: KeyBook;

  constructor(
    lane: number,
    private readonly rng: Rng,
    private readonly calm: Calm,
    private readonly report: Report,
  ) {
    this.book = new KeyBook(calm, TTL_S * 1000);
    this.keys = new KeyRing(lane, rng, this.book);
  }

  next(): Request {
    const { keys, book } = this;
    if (keys.retiring > 0 && this.rng.int(2) === 0) {
      const [key] = keys.retired(1);
      return this.make(line(`delete ${key}`), [], this.lineCheck(`delete ${key}`, ["DELETED", "NOT_FOUND"], () => "ok"));
    }
    const roll = this.rng.int(100);
    if (roll < 40) {
      const key = keys.fresh();
      const value = valueOf(key);
      const noreply = roll < 6;
      const bytes = Buffer.concat([line(`set ${key} 0 ${TTL_S} ${value.length}${noreply ? " noreply" : ""}`), value, line("")]);
      const change = book.change(key, "write")!;
      if (noreply) {
        change.unknown(); // nothing will say whether it was stored
        return { bytes, awaited: null };
      }
      return this.make(bytes, [change], this.lineCheck(`set ${key}`, ["STORED"], () => (change.done("value"), "ok")));
    }
    if (roll < 80) {
      const sights = keys.many(roll < 65 ? 1 : 2 + this.rng.int(4)).map((k) => book.see(k));
      return this.make(line(`get ${sights.map((s) => s.key).join(" ")}`), [], (raw) => this.retrieval(sights, raw));
    }
    const key = keys.some();
    if (roll < 90) {
      const sight = book.see(key, 1);
      const change = book.change(key, "delete");
      return this.make(line(`delete ${key}`), change === null ? [] : [change], this.lineCheck(`delete ${key}`, ["DELETED", "NOT_FOUND"], (got) => {
        const must = expectCount(book, [sight], true);
        change?.done("none");
        return must === null || must === (got === "DELETED" ? 1 : 0) ? "ok" : bad("wrong", `delete ${key} got ${got}, the lane's writes say ${must === 1 ? "DELETED" : "NOT_FOUND"}`);
      }));
    }
    const sight = book.see(key);
    return this.make(line(`touch ${key} ${TTL_S}`), [], this.lineCheck(`touch ${key}`, ["TOUCHED", "NOT_FOUND"], (got) => {
      const must = expectCount(book, [sight], true);
      if (must === null || must === (got === "TOUCHED" ? 1 : 0)) return "ok";
      return bad(must === 1 ? "missing" : "wrong", `touch ${key} got ${got}, the lane's writes say ${must === 1 ? "TOUCHED" : "NOT_FOUND"}`);
    }));
  }

  private make(bytes: Buffer, changes: Change[], judge: (raw: Buffer) => Verdict): Request {
    const sent = this.calm.epoch;
    return {
      bytes,
      awaited: awaited(changes, (raw) => {
        const text = raw.toString("latin1", 0, 200);
        if (!text.startsWith("SERVER_ERROR ")) return judge(raw);
        for (const c of changes) c.unknown();
        const reason = text.slice("SERVER_ERROR ".length, text.indexOf("\r\n"));
        return PROXY_ERRORS.has(reason) ? { error: reason, explained: !this.calm.undisturbedSince(sent) } : bad("unexpected", text.trim());
      }),
    };
  }

  /** A one-line reply that must be one of `allowed`, then judged by `then`. */
  private lineCheck(what: string, allowed: string[], then: (got: string) => Verdict): (raw: Buffer) => Verdict {
    return (raw) => {
      const got = raw.toString("latin1", 0, raw.length - 2);
      return allowed.includes(got) ? then(got) : bad("misordered", `${what} got ${JSON.stringify(got.slice(0, 80))}`);
    };
  }

  /** Values for some of the keys, in their order, each the key's own; the rest nil. */
  private retrieval(sights: Sight[], raw: Buffer): Verdict {
    const text = raw.toString("latin1", 0, 6);
    const ks = sights.map((s) => s.key);
    if (!text.startsWith("VALUE ") && text !== "END\r\n") return bad("misordered", `get ${ks.join(" ")} got ${JSON.stringify(raw.toString("latin1", 0, 80))}`);
    const values = parseRetrieval(raw);
    let at = 0;
    for (const v of values) {
      const from = at;
      while (at < ks.length && ks[at] !== v.key) at++;
      if (at === ks.length) {
        if (ks.includes(v.key)) return bad("misordered", `get ${ks.join(" ")}: ${v.key} out of order`);
        return judgeRead(this.book, this.report, sights[from] ?? sights[0]!, v.data);
      }
      for (let i = from; i < at; i++) {
        const verdict = judgeRead(this.book, this.report, sights[i]!, null);
        if (verdict !== "ok") return verdict;
      }
      const verdict = judgeRead(this.book, this.report, sights[at]!, v.data);
      if (verdict !== "ok") return verdict;
      at++;
    }
    for (let i = at; i < sights.length; i++) {
      const verdict = judgeRead(this.book, this.report, sights[i]!, null);
      if (verdict !== "ok") return verdict;
    }
    return "ok";
  }
}
