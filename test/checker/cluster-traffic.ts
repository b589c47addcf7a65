// Checker traffic for a redis_cluster pool (a Traffic for lane.ts): keys spread over every slot,
// and every reply predicted exactly from what the lane saw acknowledged, so nothing lost,
// duplicated or redirected can pass. A GET or MGET of an acknowledged key must return its value
// (keys never expire or get deleted); an INCR of the lane's own counter must return one more
// than the last (a lost or doubled execution shows); MSET, EXISTS, TOUCH, DEL and UNLINK span
// slots (the proxy splits them). A MOVED, ASK or TRYAGAIN reaching the client is unexpected;
// proxy errors and CLUSTERDOWN are counted by reason, never explained (no fault is declared to
// the report: a test allows them where it expects them).
// After the run, verify() reads every acknowledged key and counter from the nodes directly.

import type { Backend } from "../helpers/backends.ts";
import { exchange } from "../helpers/client.ts";
import { endpointOf } from "../helpers/direct.ts";
import type { Rng } from "../helpers/random.ts";
import { command, decode, RespError, respFrame, type RespValue } from "../helpers/resp.ts";
import type { Problem } from "./report.ts";
import { PROXY_ERRORS, type Request, type Traffic, type Verdict } from "./traffic.ts";

const COUNTERS = 4;

/** The one value ever written to `key`: the key, then 8 to 200 bytes of filler chosen by it
 *  (small: a reshard moves every key written, and the lanes write a lot of them). */
export function valueOf(key: string): Buffer {
  let h = 0;
  for (let i = 0; i < key.length; i++) h = (Math.imul(h, 31) + key.charCodeAt(i)) >>> 0;
  return Buffer.from(`${key}=${String.fromCharCode(97 + (h % 26)).repeat(8 + (h % 193))}`, "latin1");
}

const bad = (problem: Problem, what: string): Verdict => ({ problem, what });

function errorVerdict(reply: RespValue): Verdict | null {
  if (!(reply instanceof RespError)) return null;
  const reason = reply.message.replace(/^ERR /, "");
  if (reply.message.startsWith("ERR ") && PROXY_ERRORS.has(reason)) return { error: reason, explained: false };
  if (reply.message.startsWith("CLUSTERDOWN")) return { error: "CLUSTERDOWN", explained: false };
  return bad("unexpected", `-${reply.message}`);
}

export class ClusterTraffic implements Traffic {
  readonly framer = respFrame;
  /** Keys whose SET or MSET was acknowledged. */
  readonly acked: string[] = [];
  /** The lane's counters: the value last returned, and whether an error left it unknown. */
  readonly counters = new Array<number>(COUNTERS).fill(0);
  readonly uncertain = new Array<boolean>(COUNTERS).fill(false);
  private seq = 0;

  constructor(
    readonly lane: number,
    private readonly rng: Rng,
  ) {}

  counterKey(j: number): string {
    return `n:${this.lane}:${j}`;
  }

  private fresh(): string {
    return `c:${this.lane}:${this.seq++}`;
  }

  /** Acknowledged keys, `n` of them (fewer when fewer are known), distinct. */
  private known(n: number): string[] {
    const picked = new Set<string>();
    for (let i = 0; i < n * 2 && picked.size < n && this.acked.length > 0; i++) {
      picked.add(this.acked[this.acked.length - 1 - this.rng.int(Math.min(this.acked.length, 500))]!);
    }
    return [...picked];
  }

  next(): Request {
    const roll = this.rng.int(100);
    if (roll < 25 || this.acked.length < 8) {
      const key = this.fresh();
      return this.make(command("SET", key, valueOf(key)), (r) => {
        if (r !== "OK") return bad("misordered", `SET ${key} got ${JSON.stringify(r)}`);
        this.acked.push(key);
        return "ok";
      });
    }
    if (roll < 45) {
      const [key] = this.known(1);
      return this.make(command("GET", key!), (r) => this.value(key!, r));
    }
    if (roll < 55) {
      const keys = this.known(2 + this.rng.int(6));
      return this.make(command("MGET", ...keys), (r) => {
        if (!Array.isArray(r) || r.length !== keys.length) return bad("misordered", `MGET of ${keys.length} got ${JSON.stringify(r).slice(0, 80)}`);
        for (let i = 0; i < keys.length; i++) {
          const v = this.value(keys[i]!, r[i]!);
          if (v !== "ok") return v;
        }
        return "ok";
      });
    }
    if (roll < 65) {
      const keys = Array.from({ length: 2 + this.rng.int(4) }, () => this.fresh());
      return this.make(command("MSET", ...keys.flatMap((k) => [k, valueOf(k)])), (r) => {
        if (r !== "OK") return bad("misordered", `MSET got ${JSON.stringify(r)}`);
        this.acked.push(...keys);
        return "ok";
      });
    }
    if (roll < 80) {
      const j = this.rng.int(COUNTERS);
      return this.make(command("INCR", this.counterKey(j)), (r) => this.counted(j, r), j);
    }
    if (roll < 90) {
      const keys = this.known(1 + this.rng.int(5));
      const verb = roll < 85 ? "EXISTS" : "TOUCH";
      return this.make(command(verb, ...keys), (r) => (r === keys.length ? "ok" : bad("unexpected", `${verb} of ${keys.length} acknowledged keys got ${JSON.stringify(r)}`)));
    }
    if (roll < 97) {
      // Keys never written: nothing to delete, on every slot they fall in.
      const keys = Array.from({ length: 1 + this.rng.int(4) }, () => `gone:${this.lane}:${this.seq++}`);
      const verb = roll < 94 ? "DEL" : "UNLINK";
      return this.make(command(verb, ...keys), (r) => (r === 0 ? "ok" : bad("unexpected", `${verb} of absent keys got ${JSON.stringify(r)}`)));
    }
    return this.make(command("PING"), (r) => (r === "PONG" ? "ok" : bad("misordered", `PING got ${JSON.stringify(r)}`)));
  }

  private value(key: string, got: RespValue): Verdict {
    if (Buffer.isBuffer(got) && got.equals(valueOf(key))) return "ok";
    if (got === null) return bad("missing", `acknowledged ${key} is missing`);
    return bad("misordered", `${key} got ${JSON.stringify(String(got)).slice(0, 60)}`);
  }

  private counted(j: number, got: RespValue): Verdict {
    if (typeof got !== "number") return bad("misordered", `INCR got ${JSON.stringify(got)}`);
    const want = this.counters[j]! + 1;
    if (got !== want && !(this.uncertain[j] && got > want)) {
      return bad("unexpected", `INCR ${this.counterKey(j)} returned ${got} after ${this.counters[j]} (an execution lost or doubled)`);
    }
    this.counters[j] = got;
    this.uncertain[j] = false;
    return "ok";
  }

  /** `counter`: the INCR's counter, whose value an error or a lost reply leaves unknown (it
   *  may have run). */
  private make(bytes: Buffer, check: (reply: RespValue) => Verdict, counter = -1): Request {
    return {
      bytes,
      awaited: {
        check: (raw) => {
          const reply = decode(raw);
          const error = errorVerdict(reply);
          if (error !== null) {
            if (counter >= 0) this.uncertain[counter] = true;
            return error;
          }
          return check(reply);
        },
        lost: () => {
          if (counter >= 0) this.uncertain[counter] = true;
        },
      },
    };
  }
}

/**
 * Reads every acknowledged key and counter of `lanes` straight from the node that owns its slot
 * (`ownerOf`: the cluster's own view, not the proxy's); returns what is missing or wrong.
 */
export async function verifyOnNodes(
  lanes: readonly ClusterTraffic[],
  ownerOf: (key: string) => Promise<Backend>,
): Promise<string[]> {
  const expected = new Map<string, Buffer | number>();
  /** Counters whose last INCR failed: at least the value, maybe one more. */
  const atLeast = new Set<string>();
  for (const lane of lanes) {
    for (const key of lane.acked) expected.set(key, valueOf(key));
    lane.counters.forEach((n, j) => {
      if (n > 0) expected.set(lane.counterKey(j), n);
      if (lane.uncertain[j]) atLeast.add(lane.counterKey(j));
    });
  }
  const byNode = new Map<Backend, string[]>();
  for (const key of expected.keys()) {
    const node = await ownerOf(key);
    const keys = byNode.get(node);
    if (keys === undefined) byNode.set(node, [key]);
    else keys.push(key);
  }
  const problems: string[] = [];
  for (const [node, keys] of byNode) {
    for (let i = 0; i < keys.length; i += 500) {
      const batch = keys.slice(i, i + 500);
      const replies = await exchange(endpointOf(node), Buffer.concat(batch.map((k) => command("GET", k))), batch.length, respFrame, 30_000);
      batch.forEach((key, b) => {
        const got = decode(replies[b]!);
        const want = expected.get(key)!;
        const count = Buffer.isBuffer(got) ? Number(got.toString()) : NaN;
        const ok =
          typeof want === "number"
            ? count === want || (atLeast.has(key) && count > want)
            : Buffer.isBuffer(got) && got.equals(want);
        if (!ok && problems.length < 20) problems.push(`${key} on ${node.address}: ${JSON.stringify(String(got)).slice(0, 60)}`);
        else if (!ok) problems.push(key);
      });
    }
  }
  return problems;
}
