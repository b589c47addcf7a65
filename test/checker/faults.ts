// What goes wrong around the proxy while the checker runs: backends killed (SIGKILL, restarted
// empty a moment later) or frozen (SIGSTOP, past the pool timeout, then SIGCONT), one at a time;
// and side connections that send garbage, reconnecting whenever the proxy closes them.

import { ByteWriter } from "../../src/lib/bytes.ts";
import { mutate as mutateMemcache, validRequest as memcacheRequest } from "../fuzz/memcache.fuzz.ts";
import { mutate as mutateRedis, randomRequest as redisRequest, Rng as FuzzRng } from "../fuzz/redis.fuzz.ts";
import type { Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { makeRng, type Rng } from "../helpers/random.ts";
import type { FaultContext } from "./check.ts";
import type { Report } from "./report.ts";

/**
 * Faults for check()'s `inject`: until the run's duration has passed, one backend at a time is
 * killed (SIGKILL, restarted empty a moment later) or frozen (SIGSTOP past the pool timeout, then
 * SIGCONT), with pauses between.
 */
export function randomFaults(
  backends: readonly Backend[],
  rng: Rng,
  /** The pools a fault of each backend disturbs (FaultContext.fault's `pools`); default all. */
  poolsOf: (b: Backend) => string[] | undefined = () => undefined,
  gapMs: readonly [number, number] = [800, 2500],
): (ctx: FaultContext) => Promise<void> {
  const between = ([lo, hi]: readonly [number, number]): number => lo + rng.int(hi - lo + 1);
  return async (ctx) => {
    for (;;) {
      await Bun.sleep(between(gapMs));
      if (!ctx.running) return;
      const b = backends[rng.int(backends.length)]!;
      if (rng.int(2) === 0) {
        await ctx.fault(`kill ${b.kind}`, async () => {
          await b.kill();
          await Bun.sleep(between([100, 1000]));
          await b.restart();
        }, { pools: poolsOf(b) });
      } else {
        await ctx.fault(`stop ${b.kind}`, async () => {
          await b.process.freeze();
          await Bun.sleep(between([200, 2000]));
          b.process.signal("SIGCONT");
        }, { pools: poolsOf(b) });
      }
    }
  };
}

/** Garbage senders on side connections, for the length of the run. */
export class Garbage {
  private running = true;
  private loops: Promise<void>[] = [];

  constructor(private readonly report: Report) {}

  /** One more sender to `endpoint`, of `protocol` garbage. */
  add(endpoint: Endpoint, protocol: "redis" | "memcache", seed: number): void {
    this.loops.push(this.send(endpoint, protocol === "redis" ? redisGarbage(seed) : memcacheGarbage(seed)));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async send(endpoint: Endpoint, make: () => Uint8Array): Promise<void> {
    while (this.running) {
      let c: RawClient;
      try {
        c = await RawClient.connect(endpoint);
      } catch {
        await Bun.sleep(100);
        continue;
      }
      for (let i = 0; i < 50 && this.running && !c.closed; i++) {
        await c.send(make()).catch(() => {});
        this.report.garbage++;
        await Bun.sleep(2);
      }
      c.close();
    }
  }
}

/** Random, mutated and valid-looking requests from the redis fuzzer. */
function redisGarbage(seed: number): () => Uint8Array {
  const rng = new FuzzRng(seed);
  const w = new ByteWriter(1024);
  return () => {
    w.reset();
    for (let n = 1 + rng.int(3); n > 0; n--) {
      const from = w.len;
      redisRequest(rng, w);
      if (rng.chance(0.6)) {
        const damaged = mutateRedis(rng, w.buf.slice(from, w.len));
        w.len = from;
        w.bytes(damaged);
      }
    }
    return w.buf.slice(0, w.len);
  };
}

/** The same from the memcached fuzzer. */
function memcacheGarbage(seed: number): () => Uint8Array {
  const rng = makeRng(seed);
  return () => {
    const parts: Uint8Array[] = [];
    for (let n = 1 + rng.int(3); n > 0; n--) {
      const msg = memcacheRequest(rng);
      parts.push(rng.next() < 0.6 ? mutateMemcache(rng, msg) : msg);
    }
    return Buffer.concat(parts);
  };
}
