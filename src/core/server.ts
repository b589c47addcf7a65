// A backend server of a pool: its address (which may change at run time), its health (failures,
// ejection) and its connections, kept in connection groups. A group is a set of
// server_connections connections opened the same way (the same Codec.preamble): group 0 serves
// every client today; a protocol can put clients in other groups (Codec.group: RESP3 clients on
// connections opened with HELLO 3), and a group can be made for one client alone (pub/sub,
// blocking commands) and closed with it. In a pool that follows sentinels, a master also has
// its replicas (servers of their own, for read_from) and may hold its writes during a failover.

import { sameEndpoint } from "../conf/address.ts";
import type { Address, ServerConfig } from "../conf/types.ts";
import type { ServerStats } from "../stats/store.ts";
import type { Pool } from "./pool.ts";
import { Lending } from "./dedicated.ts";
import { ServerConn } from "./server-conn.ts";

/** Connections of one server opened alike, used round robin. */
export class ConnGroup {
  conns: (ServerConn | null)[];
  private next = 0;

  constructor(
    readonly server: Server,
    /** Codec.group id: what the connections send first (Codec.preamble). */
    readonly id: number,
    size: number,
  ) {
    this.conns = new Array<ServerConn | null>(size).fill(null);
  }

  /** A connection for the next request: round robin over the slots, opening one when a slot is
   *  empty. */
  conn(): ServerConn {
    const i = this.next;
    this.next = i + 1 === this.conns.length ? 0 : i + 1;
    return this.conns[i] ?? this.open(i);
  }

  open(slot: number): ServerConn {
    const c = new ServerConn(this.server, this, slot);
    this.conns[slot] = c;
    c.connect();
    return c;
  }

  /** Open every empty slot (preconnect). */
  fill(): void {
    for (let i = 0; i < this.conns.length; i++) if (this.conns[i] === null) this.open(i);
  }

  /** A connection closed or retired: its slot is free (if it still holds it). */
  release(conn: ServerConn, slot: number): void {
    if (this.conns[slot] === conn) this.conns[slot] = null;
  }

  /** A new server_connections: connections beyond it close once answered. */
  resize(size: number): void {
    if (size === this.conns.length) return;
    for (let i = size; i < this.conns.length; i++) this.conns[i]?.retire();
    this.conns.length = size;
    for (let i = 0; i < size; i++) this.conns[i] ??= null;
    this.next = 0;
  }

  /** Close each connection once its requests are answered; later requests open new ones. */
  retire(): void {
    for (const c of this.conns) c?.retire();
  }

  closeAll(reason: string): void {
    for (const c of this.conns) c?.close(reason);
  }
}

export class Server {
  /** By Codec.group id; made on first use. */
  readonly groups: ConnGroup[] = [];
  /** Connections of one client alone, and the shared subscription ones (dedicated.ts). */
  readonly lending: Lending = new Lending(this);
  /** Where new connections go: cfg.addr unless moved (moveTo). */
  addr: Address;
  /** Consecutive failures (auto_eject_hosts). */
  failures = 0;
  ejected = false;
  /** A failover of this master is under way (sentinels): its writes wait (failover.ts). */
  holdWrites = false;
  /** Its replicas that reads may go to (read_from), and the next one to use. */
  replicas: Server[] = [];
  private nextReplica = 0;

  constructor(
    readonly pool: Pool,
    public index: number,
    public cfg: ServerConfig,
    readonly stats: ServerStats,
    /** For a replica: the master whose reads it serves; null for a master. */
    readonly replicaOf: Server | null = null,
  ) {
    this.addr = cfg.addr;
  }

  /** How logs name it when reached at `addr`: as configured ("host:port:weight name"), and
   *  where a failover moved it. */
  nameAt(addr: Address): string {
    // By endpoint: a reload gives a server it keeps a new config object.
    return sameEndpoint(addr, this.cfg.addr) ? this.cfg.pname : `${this.cfg.pname} (moved to ${addr.spec})`;
  }

  /** How logs name it where it is now. */
  get logName(): string {
    return this.nameAt(this.addr);
  }

  /** Where a read-only request for this server goes with read_from: round robin over the
   *  replicas in service; with none, the master for prefer-replica, else null. */
  readTarget(): Server | null {
    const replicas = this.replicas;
    for (let n = 0; n < replicas.length; n++) {
      // The list may be shorter than when nextReplica was set (a new slot map, a failover).
      const i = this.nextReplica < replicas.length ? this.nextReplica : 0;
      this.nextReplica = i + 1 >= replicas.length ? 0 : i + 1;
      const r = replicas[i]!;
      if (!r.ejected) return r;
    }
    return this.pool.cfg.readFrom === "prefer-replica" ? this : null;
  }

  /** A connection of group `group` for the next request. */
  conn(group: number): ServerConn {
    return (this.groups[group] ?? this.group(group)).conn();
  }

  /** Group `id`, made when missing. */
  group(id: number): ConnGroup {
    let g = this.groups[id];
    if (g === undefined) {
      g = new ConnGroup(this, id, this.pool.cfg.serverConnections);
      this.groups[id] = g;
    }
    return g;
  }

  /** Hot reload: the server stays, at a new index, maybe with a new weight or connection count. */
  reconfigure(index: number, cfg: ServerConfig): void {
    this.index = index;
    this.cfg = cfg;
    for (const g of this.groups) g?.resize(this.pool.cfg.serverConnections);
  }

  /** The server now lives at `addr` (a failover): requests from now on go there; those already
   *  sent finish (or fail) on their old shared connections, which close once answered. The
   *  clients' own connections close now (a blocking request there would wait for writes that
   *  go elsewhere, a transaction would run on the old master; a subscriber is disconnected, as
   *  when its server fails, to subscribe again). */
  moveTo(addr: Address): void {
    const from = this.addr.spec;
    this.addr = addr;
    this.retire();
    this.lending.closeAll(`server ${this.cfg.name} moved from ${from} to ${addr.spec} (failover)`);
  }

  /** Left the pool in a reload, or its connections' preamble (AUTH, SELECT) is stale: close
   *  each connection once its requests are answered; the next request opens a new one. */
  retire(): void {
    for (const g of this.groups) g?.retire();
  }

  /** Open every connection of group 0 (preconnect). */
  preconnect(): void {
    this.group(0).fill();
  }

  closeAll(reason: string): void {
    for (const g of this.groups) g?.closeAll(reason);
    this.lending.closeAll(reason);
  }
}
