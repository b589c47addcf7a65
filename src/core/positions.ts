// Where a plan's server positions are (Codec.planner, PoolView): a position is a server of the
// pool, or, in a redis_cluster pool, a slot, served by its master now (so a plan made of slots
// keeps a transaction, a blocking command or a channel to its slot's master wherever the map
// puts it). The masters of a cluster, each at the lowest slot it serves, are its servers in order.

import { SLOT_COUNT } from "../route/key-slot.ts";
import type { ClusterRouting } from "../redis-cluster/routing.ts";
import { nodeAddress } from "../redis-cluster/slot-map.ts";
import type { Pool } from "./pool.ts";
import type { Server } from "./server.ts";

/** The server at `position` now; null when none serves it (a slot no master serves). */
export function serverAt(pool: Pool, position: number): Server | null {
  const cluster = pool.cluster;
  return cluster === null ? (pool.servers[position] ?? null) : pool.slotMaster(position);
}

/** Why `position` has no server (serverAt null), or the usual refusal of a server out. */
export function unservedReason(pool: Pool, position: number): string {
  return pool.cluster === null ? "Connection refused" : pool.cluster.unserved(position);
}

/** The servers in service: a cluster's masters, else the servers not ejected. */
export function liveServers(pool: Pool): Server[] {
  const cluster = pool.cluster;
  if (cluster === null) return pool.servers.filter((s) => !s.ejected);
  return cluster.masters().map((node) => pool.serverAt(node.host, node.port));
}

/** `servers` and, when the pool reads from replicas (read_from), each one's replicas in service
 *  after it. */
export function withReadReplicas(pool: Pool, servers: Server[]): Server[] {
  if (pool.cfg.readFrom === "master") return servers;
  return servers.flatMap((s) => [s, ...s.replicas.filter((r) => !r.ejected)]);
}

/** The position of every server in service, in order: a cluster's masters at the lowest slot
 *  each serves, else the indexes of the servers not ejected. */
export function everyPosition(pool: Pool): number[] {
  const cluster = pool.cluster;
  const positions: number[] = [];
  if (cluster === null) {
    for (const s of pool.servers) if (!s.ejected) positions.push(s.index);
    return positions;
  }
  return masterSlots(cluster);
}

function masterSlots(cluster: ClusterRouting): number[] {
  const seen = new Set<string>();
  const slots: number[] = [];
  const map = cluster.topology.map;
  if (map === null) return slots;
  for (let slot = 0; slot < SLOT_COUNT; slot++) {
    const node = map.master(slot);
    if (node === null || seen.has(nodeAddress(node))) continue;
    seen.add(nodeAddress(node));
    slots.push(slot);
  }
  return slots;
}
