// The routing table of a redis_cluster pool: which shard (a master and its readable replicas)
// serves each of the 16384 slots, built from the cluster's Topology
// (src/proto/redis/cluster-topology.ts) and the epoch it was read at. One typed-array lookup
// per request; a MOVED reply re-points one slot before the next full refresh replaces the map.

import type { ClusterNode, Shard, Topology } from "../proto/redis/cluster-topology.ts";
import { TopologyError } from "../proto/redis/cluster-topology.ts";
import { SLOT_COUNT } from "../route/key-slot.ts";

/** owner[] value of a slot no shard serves. */
const NONE = 0xffff;

/** "host:port": how nodes are told apart (ids change when a node is replaced at an address). */
export const nodeAddress = (node: ClusterNode): string => `${node.host}:${node.port}`;

export interface SlotShard {
  readonly master: ClusterNode | null;
  readonly replicas: readonly ClusterNode[];
}

export class SlotMap {
  readonly shards: SlotShard[];
  /** Slot -> index into shards, NONE when uncovered. */
  private readonly owner = new Uint16Array(SLOT_COUNT).fill(NONE);

  /** Throws TopologyError when two shards claim one slot (a view that cannot be trusted). */
  constructor(
    topology: Topology,
    /** cluster_current_epoch when the topology was read (-1 unknown). */
    readonly epoch: number,
  ) {
    this.shards = [];
    for (const shard of topology.shards) {
      if (shard.master === null) continue; // its slots stay uncovered until a master is known
      const index = this.shards.length;
      this.shards.push({ master: shard.master, replicas: shard.replicas });
      this.claim(shard, index);
    }
  }

  private claim(shard: Shard, index: number): void {
    for (const [first, last] of shard.ranges) {
      for (let slot = first; slot <= last; slot++) {
        if (this.owner[slot] !== NONE) {
          const other = this.shards[this.owner[slot]!]!.master!;
          throw new TopologyError(`slot ${slot} is claimed by ${nodeAddress(other)} and ${nodeAddress(shard.master!)}`);
        }
        this.owner[slot] = index;
      }
    }
  }

  /** The index into shards of the shard serving `slot`, -1 when none does. */
  shardOf(slot: number): number {
    const index = this.owner[slot]!;
    return index === NONE ? -1 : index;
  }

  /** The master serving `slot`, null when none does. */
  master(slot: number): ClusterNode | null {
    const index = this.owner[slot]!;
    return index === NONE ? null : this.shards[index]!.master;
  }

  /** Slots no shard serves. */
  uncovered(): number {
    let n = 0;
    for (let slot = 0; slot < SLOT_COUNT; slot++) if (this.owner[slot] === NONE) n++;
    return n;
  }

  /** Every node of the map, masters first, once per address. */
  nodes(): ClusterNode[] {
    const seen = new Map<string, ClusterNode>();
    for (const shard of this.shards) seen.set(nodeAddress(shard.master!), shard.master!);
    for (const shard of this.shards) for (const r of shard.replicas) if (!seen.has(nodeAddress(r))) seen.set(nodeAddress(r), r);
    return [...seen.values()];
  }

  /** A MOVED reply: `slot` is now served by the master at host:port (a shard of its own when
   *  the map does not know it as a master); returns the slot's shard index. */
  moved(slot: number, host: string, port: number): number {
    let index = this.shards.findIndex((s) => s.master!.host === host && s.master!.port === port);
    if (index < 0) {
      if (this.shards.length >= NONE) throw new TopologyError("too many shards");
      index = this.shards.length;
      this.shards.push({ master: { id: "", host, port }, replicas: [] });
    }
    this.owner[slot] = index;
    return index;
  }
}
