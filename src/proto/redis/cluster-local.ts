// What a redis_cluster pool answers itself so that cluster-aware clients (redis-py RedisCluster,
// ioredis Cluster, redis-cli -c) can use the proxy: it presents itself as a one-node cluster
// that serves every slot at the address the client reached it on, so such a client sends
// everything to the proxy, which routes by the real cluster's slots. CLUSTER SLOTS, SHARDS,
// NODES, INFO, MYID and KEYSLOT are answered in redis 7's own shapes (the pool's INFO, with
// cluster_enabled:1 that redis-py's RedisCluster checks, is built by info.ts), in the client's
// protocol as redis 7 gives them: for a RESP3 client, SHARDS' shards and nodes and SLOTS' node
// metadata are maps, NODES and INFO verbatim text. Pure: the request's arguments, the client's
// protocol and the proxy's identity in, the reply bytes out.

import { createHash } from "node:crypto";
import type { Proto } from "./reply.ts";

/** The proxy as the one node its clients see. */
export interface SelfNode {
  /** 40 hex characters, stable for a pool at an address (selfId()). */
  readonly id: string;
  /** Where the client reached the proxy. */
  readonly host: string;
  readonly port: number;
  /** The real cluster's current epoch (-1 unknown: shown as 0). */
  readonly epoch: number;
  /** Slots the real cluster leaves uncovered: CLUSTER INFO says fail while there are any. */
  readonly uncovered: number;
}

/** The key slot of buf[start, end) (src/route/key-slot.ts). */
export type SlotOf = (buf: Uint8Array, start: number, end: number) => number;

const LAST_SLOT = 16383;
const encoder = new TextEncoder();

/** A node id for the proxy: the same for every process serving one pool at one address. */
export function selfId(pool: string, host: string, port: number): string {
  return createHash("sha1").update(`buncracker\n${pool}\n${host}:${port}`).digest("hex");
}

const bulk = (text: string): string => `$${encoder.encode(text).length}\r\n${text}\r\n`;
const int = (n: number): string => `:${n}\r\n`;
const array = (items: string[]): string => `*${items.length}\r\n${items.join("")}`;
const error = (text: string): Uint8Array => encoder.encode(`-ERR ${text}\r\n`);
/** [name, value, ...]: a map in RESP3, a flat array in RESP2 (as redis's addReplyMapLen). */
const map = (proto: Proto, items: string[]): string => (proto === 3 ? `%${items.length / 2}\r\n${items.join("")}` : array(items));
/** Text: verbatim ("txt") in RESP3, a bulk string in RESP2 (as redis's addReplyVerbatim). */
const text = (proto: Proto, body: string): string =>
  proto === 3 ? `=${encoder.encode(body).length + 4}\r\ntxt:${body}\r\n` : bulk(body);

function slots(self: SelfNode, proto: Proto): string {
  // redis 7: [first, last, [host, port, id, {metadata}]]
  return array([array([int(0), int(LAST_SLOT), array([bulk(self.host), int(self.port), bulk(self.id), map(proto, [])])])]);
}

function shards(self: SelfNode, proto: Proto): string {
  const node = map(proto, [
    bulk("id"), bulk(self.id),
    bulk("port"), int(self.port),
    bulk("ip"), bulk(self.host),
    bulk("endpoint"), bulk(self.host),
    bulk("role"), bulk("master"),
    bulk("replication-offset"), int(0),
    bulk("health"), bulk("online"),
  ]);
  return array([map(proto, [bulk("slots"), array([int(0), int(LAST_SLOT)]), bulk("nodes"), array([node])])]);
}

function nodes(self: SelfNode, proto: Proto): string {
  const epoch = Math.max(self.epoch, 0);
  return text(proto, `${self.id} ${self.host}:${self.port}@0 myself,master - 0 0 ${epoch} connected 0-${LAST_SLOT}\n`);
}

function info(self: SelfNode, proto: Proto): string {
  const epoch = Math.max(self.epoch, 0);
  const ok = LAST_SLOT + 1 - self.uncovered;
  const lines = [
    `cluster_state:${self.uncovered === 0 ? "ok" : "fail"}`,
    `cluster_slots_assigned:${LAST_SLOT + 1}`,
    `cluster_slots_ok:${ok}`,
    "cluster_slots_pfail:0",
    `cluster_slots_fail:${self.uncovered}`,
    "cluster_known_nodes:1",
    "cluster_size:1",
    `cluster_current_epoch:${epoch}`,
    `cluster_my_epoch:${epoch}`,
  ];
  return text(proto, lines.map((l) => `${l}\r\n`).join(""));
}

/** Subcommand -> [arguments after it, the reply]. */
const ANSWERS: ReadonlyMap<string, { readonly args: number; reply(self: SelfNode, proto: Proto): string }> = new Map([
  ["slots", { args: 0, reply: slots }],
  ["shards", { args: 0, reply: shards }],
  ["nodes", { args: 0, reply: nodes }],
  ["info", { args: 0, reply: info }],
  ["myid", { args: 0, reply: (self: SelfNode) => bulk(self.id) }],
]);

function lowerAscii(buf: Uint8Array, start: number, end: number): string {
  let text = "";
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    text += String.fromCharCode(c >= 65 && c <= 90 ? c + 32 : c);
  }
  return text;
}

/** The reply to `CLUSTER <sub> ...` whose arguments (the command name is argument 0) are
 *  buf[argStart[i], argEnd[i]) for i < nargs, for a client speaking `proto`. */
export function clusterReply(
  buf: Uint8Array,
  argStart: Int32Array,
  argEnd: Int32Array,
  nargs: number,
  self: SelfNode,
  slotOf: SlotOf,
  proto: Proto = 2,
): Uint8Array {
  if (nargs < 2) return error("wrong number of arguments for 'cluster' command");
  const sub = lowerAscii(buf, argStart[1]!, argEnd[1]!);
  if (sub === "keyslot") {
    if (nargs !== 3) return error("wrong number of arguments for 'cluster|keyslot' command");
    return encoder.encode(int(slotOf(buf, argStart[2]!, argEnd[2]!)));
  }
  const answer = ANSWERS.get(sub);
  if (answer === undefined) {
    // Printable for the message; redis quotes the name as given.
    const shown = sub.replace(/[^\x20-\x7e]/g, "?").slice(0, 64);
    return error(`unsupported command 'cluster|${shown}' (the proxy answers CLUSTER SLOTS, SHARDS, NODES, INFO, MYID and KEYSLOT)`);
  }
  if (nargs !== 2 + answer.args) return error(`wrong number of arguments for 'cluster|${sub}' command`);
  return encoder.encode(answer.reply(self, proto));
}
