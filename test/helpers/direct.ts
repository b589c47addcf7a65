// Talking to backends directly (not through a proxy): one-off commands, listing and flushing.

import type { Backend } from "./backends.ts";
import { exchange, type Endpoint } from "./client.ts";
import { memcacheFrame } from "./memcache.ts";
import { command, decode, respFrame, type Bytes, type RespValue } from "./resp.ts";

export const endpointOf = (backend: Backend): Endpoint => ({ host: backend.host, port: backend.port });

/** Sends one redis command straight to `backend` and decodes the reply. */
export async function redisCall(backend: Backend, ...args: Bytes[]): Promise<RespValue> {
  const [reply] = await exchange(endpointOf(backend), command(...args), 1, respFrame);
  return decode(reply!);
}

/** Every key in redis database `db` of `backend` (KEYS *, as raw bytes). */
export async function redisKeys(backend: Backend, db = 0, password?: string): Promise<Buffer[]> {
  const commands = [...(password ? [command("AUTH", password)] : []), command("SELECT", String(db)), command("KEYS", "*")];
  const replies = await exchange(endpointOf(backend), Buffer.concat(commands), commands.length, respFrame);
  return decode(replies[replies.length - 1]!) as Buffer[];
}

/** Indexes (into `backends`) of the redis backends whose database `db` holds `key`. */
export async function redisHolders(backends: readonly Backend[], key: Bytes, db = 0): Promise<number[]> {
  const found = await Promise.all(
    backends.map(async (b) => {
      const replies = await exchange(endpointOf(b), Buffer.concat([command("SELECT", String(db)), command("EXISTS", key)]), 2, respFrame);
      return decode(replies[1]!) === 1;
    }),
  );
  return found.flatMap((present, i) => (present ? [i] : []));
}

/** Empties every database of each redis backend, or each memcached backend. */
export async function flushBackends(backends: readonly Backend[], password?: string): Promise<void> {
  await Promise.all(
    backends.map((b) =>
      b.kind === "redis"
        ? exchange(endpointOf(b), Buffer.concat([...(password ? [command("AUTH", password)] : []), command("FLUSHALL")]), password ? 2 : 1, respFrame)
        : exchange(endpointOf(b), "flush_all\r\n", 1, memcacheFrame),
    ),
  );
}

/** Stops every backend (for afterAll). */
export async function stopAll(things: readonly { stop(): Promise<unknown> }[]): Promise<void> {
  await Promise.all(things.map((t) => t.stop()));
}
