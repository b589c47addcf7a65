// A redis_cluster pool's requests whose connection to a node was lost (the node died, closed
// the connection or refused it: how a master failover starts). Such a request is sent again
// when that is safe: it never left the proxy (its connection never opened), or it only reads
// (MSG_READ). It waits a moment (routing.ts lostDelay: the map reloads meanwhile, as a failed
// connection asks it to) and goes to the slot's node as the map then says, again and again
// while the request's time allows; so during a failover a client sees errors only for writes
// the dead master may have run, or when the cluster takes longer than the request's timeout.

import type { ClusterRouting } from "../redis-cluster/routing.ts";
import { send } from "./cluster-dispatch.ts";
import { fail } from "./deliver.ts";
import { destination, noReplica } from "./dispatch.ts";
import { MSG_READ, type Msg } from "./msg.ts";
import type { Pool } from "./pool.ts";

/** msg's connection was lost; `unwritten`: none of its bytes reached the socket. True when msg
 *  will be sent again; false when it must fail. */
export function resendLost(pool: Pool, cluster: ClusterRouting, msg: Msg, unwritten: boolean): boolean {
  // Not sent by slot (a keyless command), or a write the node may have run.
  if (msg.sentBuf === null || (!unwritten && (msg.flags & MSG_READ) === 0)) return false;
  const delayMs = cluster.lostDelay(msg);
  if (delayMs < 0) return false;
  setTimeout(() => again(pool, cluster, msg), delayMs);
  return true;
}

function again(pool: Pool, cluster: ClusterRouting, msg: Msg): void {
  if (msg.client.closed) {
    fail(pool, msg, "Connection closed by client");
    return;
  }
  const master = pool.slotMaster(msg.slot);
  if (master === null) {
    fail(pool, msg, cluster.unserved(msg.slot));
    return;
  }
  const server = destination(pool, master, (msg.flags & MSG_READ) !== 0);
  if (server === null) fail(pool, msg, noReplica(master));
  else send(msg, server, false, cluster);
}
