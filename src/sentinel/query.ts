// Asking one sentinel what it knows about some masters: `SENTINEL MASTER <name>` (address,
// config epoch, flags, failover timeout) and `SENTINEL REPLICAS <name>` for each, pipelined on a
// connection of its own that closes when the answers are in (a subscribed connection can ask
// nothing). SENTINEL MASTER rather than GET-MASTER-ADDR-BY-NAME: the same address, plus the
// config epoch that says which of two sentinels' answers is newer.

import type { Address } from "../conf/types.ts";
import { SentinelConn, type SentinelSockets } from "./conn.ts";
import type { Instance } from "./events.ts";
import { encodeCommand, fieldsOf, ReplyError, type Reply, type ReplyFramer } from "./reply.ts";

/** A replica as the sentinel reports it, and whether reads may go to it. */
export interface ReplicaView extends Instance {
  /** Reachable, reporting the replica role, replicating from `master` with its link up. */
  readonly usable: boolean;
  /** Reachable but not usable yet (still syncing, or not yet pointed at the master). */
  readonly settling: boolean;
}

/** One sentinel's view of one master. */
export interface MasterView {
  readonly master: Instance;
  /** Sentinel's config epoch of the master: the higher one is the newer configuration. */
  readonly epoch: number;
  /** This sentinel is running a failover of it. */
  readonly failingOver: boolean;
  /** sentinel failover-timeout (ms): a failover ends, one way or another, within about this. */
  readonly failoverTimeout: number;
  readonly replicas: readonly ReplicaView[];
}

/** Per master name: its view, or why the sentinel gave none (e.g. it does not monitor it). */
export type SentinelAnswer = ReadonlyMap<string, MasterView | string>;

const DEFAULT_FAILOVER_TIMEOUT = 180000; // sentinel's own default

function masterView(master: Reply, replicas: Reply): MasterView | string {
  if (master instanceof ReplyError) return master.message;
  if (replicas instanceof ReplyError) return replicas.message;
  const m = fieldsOf(master);
  const host = m.get("ip");
  const port = Number(m.get("port"));
  if (host === undefined || !Number.isInteger(port)) return "SENTINEL MASTER gave no address";
  const flags = (m.get("flags") ?? "").split(",");
  const views = Array.isArray(replicas) ? replicas.map(replicaView(host, port)) : [];
  return {
    master: { host, port },
    epoch: Number(m.get("config-epoch") ?? 0),
    failingOver: flags.includes("failover_in_progress"),
    failoverTimeout: Number(m.get("failover-timeout") ?? DEFAULT_FAILOVER_TIMEOUT),
    replicas: views.filter((r) => r !== null),
  };
}

const replicaView =
  (masterHost: string, masterPort: number) =>
  (reply: Reply): ReplicaView | null => {
    const r = fieldsOf(reply);
    const host = r.get("ip");
    const port = Number(r.get("port"));
    if (host === undefined || !Number.isInteger(port)) return null;
    const flags = (r.get("flags") ?? "").split(",");
    const reachable = !flags.includes("s_down") && !flags.includes("o_down") && !flags.includes("disconnected");
    const replicating =
      r.get("role-reported") === "slave" &&
      r.get("master-link-status") === "ok" &&
      r.get("master-host") === masterHost &&
      Number(r.get("master-port")) === masterPort;
    return { host, port, usable: reachable && replicating, settling: reachable && !replicating };
  };

/** Asks the sentinel at `addr` about every name; rejects when it cannot be reached, refuses the
 *  password, or does not answer within `timeoutMs`. */
export function askSentinel(
  addr: Address,
  auth: string | null,
  names: readonly string[],
  timeoutMs: number,
  framer: ReplyFramer,
  sockets: SentinelSockets,
): Promise<SentinelAnswer> {
  return new Promise((resolve, reject) => {
    const replies: Reply[] = [];
    let resolved = false;
    const expected = 2 * names.length + (auth === null ? 0 : 1);
    const timer = setTimeout(() => conn.end(`no answer after ${timeoutMs} ms`), timeoutMs);
    const conn = new SentinelConn(
      addr,
      {
        reply(reply) {
          replies.push(reply);
          if (auth !== null && replies.length === 1 && reply instanceof ReplyError) {
            conn.end(`AUTH refused: ${reply.message}`);
            return;
          }
          if (replies.length < expected) return;
          const answers = new Map<string, MasterView | string>();
          const first = auth === null ? 0 : 1;
          names.forEach((name, i) => answers.set(name, masterView(replies[first + 2 * i]!, replies[first + 2 * i + 1]!)));
          resolved = true;
          conn.end("done");
          resolve(answers);
        },
        closed(reason) {
          clearTimeout(timer);
          if (!resolved) reject(new Error(reason));
        },
      },
      timeoutMs,
      framer,
      sockets,
    );
    if (auth !== null) conn.write(encodeCommand("AUTH", auth));
    for (const name of names) {
      conn.write(encodeCommand("SENTINEL", "MASTER", name));
      conn.write(encodeCommand("SENTINEL", "REPLICAS", name));
    }
  });
}
