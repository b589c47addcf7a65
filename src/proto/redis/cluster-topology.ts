// A Redis Cluster's topology from its own replies: CLUSTER SHARDS (redis 7), CLUSTER SLOTS (any
// cluster version) and the current epoch from CLUSTER INFO, decoded (value.ts) into shards (a
// master, its replicas) and the slot ranges each serves. Pure: a reply in, a Topology out or a
// TopologyError naming what is wrong; the routing table is built from it by src/redis-cluster/slot-map.ts.

import { ReplyError, textOf, type RespValue } from "./value.ts";

/** A cluster node as the proxy reaches it. */
export interface ClusterNode {
  /** The node's 40-character id ("" when the reply gave none). */
  readonly id: string;
  readonly host: string;
  readonly port: number;
}

export interface Shard {
  /** Null when the reply named no master for the shard, or only a failed one without slots (one
   *  a replica replaced). */
  readonly master: ClusterNode | null;
  /** Replicas that can serve reads: CLUSTER SHARDS health "online"; CLUSTER SLOTS lists only those. */
  readonly replicas: readonly ClusterNode[];
  /** Slot ranges [first, last], inclusive. */
  readonly ranges: readonly (readonly [number, number])[];
}

export interface Topology {
  readonly shards: readonly Shard[];
}

export class TopologyError extends Error {
  override name = "TopologyError";
}

const LAST_SLOT = 16383;

/** An endpoint a node gave that says "use the address you reached me on" (redis docs: "?" for
 *  an unknown endpoint, "" or null with cluster-preferred-endpoint-type). */
function hostOr(endpoint: string | null, fallbackHost: string): string {
  return endpoint === null || endpoint === "" || endpoint === "?" ? fallbackHost : endpoint;
}

function replyArray(value: RespValue, what: string): RespValue[] {
  if (value instanceof ReplyError) throw new TopologyError(`${what}: the node replied -${value.message}`);
  if (!Array.isArray(value)) throw new TopologyError(`${what}: expected an array`);
  return value;
}

function port(value: RespValue, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new TopologyError(`${what}: bad port ${String(value)}`);
  }
  return value;
}

function slotRange(first: RespValue, last: RespValue, what: string): [number, number] {
  if (typeof first !== "number" || typeof last !== "number" || first < 0 || last > LAST_SLOT || first > last) {
    throw new TopologyError(`${what}: bad slot range ${String(first)}-${String(last)}`);
  }
  return [first, last];
}

/** A flat [name, value, name, value...] array (how RESP2 carries CLUSTER SHARDS' maps). */
function fields(value: RespValue, what: string): Map<string, RespValue> {
  const items = replyArray(value, what);
  if (items.length % 2 !== 0) throw new TopologyError(`${what}: odd number of map items`);
  const map = new Map<string, RespValue>();
  for (let i = 0; i < items.length; i += 2) {
    const name = textOf(items[i]!);
    if (name === null) throw new TopologyError(`${what}: a field name is not a string`);
    map.set(name, items[i + 1]!);
  }
  return map;
}

/** CLUSTER SHARDS: one map per shard, {slots: [first, last, ...], nodes: [node maps]}. A node
 *  named by "endpoint" (else "ip"), else `fallbackHost` (the address the reply came from); at
 *  its "port", or with `tls` at its "tls-port" when it has one (a node may have both). */
export function parseShards(reply: RespValue, fallbackHost: string, tls = false): Topology {
  const shards = replyArray(reply, "CLUSTER SHARDS").map((entry, s): Shard => {
    const what = `CLUSTER SHARDS shard ${s}`;
    const shard = fields(entry, what);
    const slots = replyArray(shard.get("slots") ?? null, `${what} slots`);
    if (slots.length % 2 !== 0) throw new TopologyError(`${what}: odd number of slot bounds`);
    const ranges: [number, number][] = [];
    for (let i = 0; i < slots.length; i += 2) ranges.push(slotRange(slots[i]!, slots[i + 1]!, what));
    let master: ClusterNode | null = null;
    let masterFailing = false;
    const replicas: ClusterNode[] = [];
    replyArray(shard.get("nodes") ?? null, `${what} nodes`).forEach((item, n) => {
      const node = fields(item, `${what} node ${n}`);
      const endpoint = textOf(node.get("endpoint") ?? null);
      const host = hostOr(endpoint, hostOr(textOf(node.get("ip") ?? null), fallbackHost));
      const found = {
        id: textOf(node.get("id") ?? null) ?? "",
        host,
        port: port((tls ? node.get("tls-port") : undefined) ?? node.get("port") ?? null, `${what} node ${n}`),
      };
      const role = textOf(node.get("role") ?? null);
      const health = textOf(node.get("health") ?? null);
      if (role === "master") {
        // A failed master stays listed (with health "fail") until a replica replaces it.
        if (master === null || health !== "fail") {
          master = found;
          masterFailing = health === "fail";
        }
      } else if (health === "online") {
        replicas.push(found);
      }
    });
    // A failed master whose slots a replica took over stays listed, without slots, until every
    // node forgets it: it is no master of anything (whole-pool commands and map loads would
    // wait on it, for ever on a host that hangs).
    if (masterFailing && ranges.length === 0) master = null;
    return { master, replicas, ranges };
  });
  return { shards };
}

/** CLUSTER SLOTS: one entry per slot range, [first, last, master, replica...], each node
 *  [host, port, id, ...]; ranges of the same master become one shard. */
export function parseSlots(reply: RespValue, fallbackHost: string): Topology {
  const byMaster = new Map<string, { master: ClusterNode; replicas: ClusterNode[]; ranges: [number, number][] }>();
  replyArray(reply, "CLUSTER SLOTS").forEach((entry, r) => {
    const what = `CLUSTER SLOTS entry ${r}`;
    const items = replyArray(entry, what);
    if (items.length < 3) throw new TopologyError(`${what}: no master`);
    const range = slotRange(items[0]!, items[1]!, what);
    const nodes = items.slice(2).map((item, n): ClusterNode => {
      const node = replyArray(item, `${what} node ${n}`);
      return {
        host: hostOr(textOf(node[0] ?? null), fallbackHost),
        port: port(node[1] ?? null, `${what} node ${n}`),
        id: textOf(node[2] ?? null) ?? "",
      };
    });
    const master = nodes[0]!;
    const key = `${master.host}:${master.port}`;
    let shard = byMaster.get(key);
    if (shard === undefined) {
      shard = { master, replicas: nodes.slice(1), ranges: [] };
      byMaster.set(key, shard);
    }
    shard.ranges.push(range);
  });
  return { shards: [...byMaster.values()] };
}

/** cluster_current_epoch from CLUSTER INFO's text; -1 when it is missing. */
export function parseCurrentEpoch(reply: RespValue): number {
  const text = textOf(reply);
  if (text === null) throw new TopologyError(`CLUSTER INFO: expected a bulk string`);
  const match = /(?:^|\n)cluster_current_epoch:(\d+)\r?(?:\n|$)/.exec(text);
  return match === null ? -1 : Number(match[1]);
}
