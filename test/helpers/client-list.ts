// A redis-server's own view of its client connections (CLIENT LIST), for suites that check
// which upstream connections the proxy holds: subscribers, blocked clients, transactions.

import type { Backend } from "./backends.ts";
import { redisCall } from "./direct.ts";

/** One line of CLIENT LIST, its fields by name (id, addr, flags, cmd, sub, psub, ssub, multi...). */
export type ClientInfo = Readonly<Record<string, string>>;

/** The backend's client connections, besides the one asking. */
export async function clientList(backend: Backend): Promise<ClientInfo[]> {
  const text = String(await redisCall(backend, "CLIENT", "LIST"));
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => Object.fromEntries(line.trim().split(" ").map((field) => {
      const eq = field.indexOf("=");
      return [field.slice(0, eq), field.slice(eq + 1)];
    })))
    .filter((c) => c["cmd"] !== "client|list");
}

/** Connections in subscribed mode (any channel, pattern or shard channel). */
export const subscribers = (list: readonly ClientInfo[]): ClientInfo[] =>
  list.filter((c) => Number(c["sub"] ?? 0) + Number(c["psub"] ?? 0) + Number(c["ssub"] ?? 0) > 0);

/** Connections blocked in a command (flags has b). */
export const blocked = (list: readonly ClientInfo[]): ClientInfo[] => list.filter((c) => (c["flags"] ?? "").includes("b"));
