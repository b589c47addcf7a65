// A real Redis Cluster on loopback for tests: cluster-enabled redis-server processes on free
// ports (each with its own bus port, `cluster-port`), joined by `redis-cli --cluster create`,
// ready once every node reports cluster_state:ok, knows every other node and every replica's
// link to its master is up. Whoever starts one stops it (stop() stops every node, added ones too).
// untilRouting() waits for a redis_cluster proxy pool in front of one to have its slot map.

import { startRedis, type Backend } from "./backends.ts";
import { freePort } from "./ports.ts";
import { runToEnd } from "./process.ts";
import { exchange, type Endpoint } from "./client.ts";
import { redisCall } from "./direct.ts";
import { command, respFrame, RespError, type Bytes, type RespValue } from "./resp.ts";

export interface ClusterOptions {
  /** Masters; default 3. */
  masters?: number;
  /** Replicas per master; default 1. */
  replicas?: number;
  /** cluster-node-timeout in ms (how soon a dead master is failed over); default 2000. */
  nodeTimeoutMs?: number;
  /** Each node also listens with TLS (its `tlsAddress`), and the cluster bus and replication
   *  run over TLS (`--tls-cluster yes`, `--tls-replication yes`); the plaintext port stays for
   *  the test's own calls and `redis-cli --cluster`. The cluster bus asks the connecting node
   *  for a certificate: `client` is the one each node gives (clientAuth). */
  tls?: { readonly cert: string; readonly key: string; readonly ca: string; readonly client: { readonly cert: string; readonly key: string } };
}

/** One line of CLUSTER NODES. */
export interface NodeLine {
  id: string;
  /** "host:port" (without the bus port). */
  address: string;
  port: number;
  flags: string[];
  /** The master's id for a replica, "-" for a master. */
  masterId: string;
  configEpoch: number;
  connected: boolean;
  /** Slot ranges owned, [first, last] inclusive (importing/migrating markers left out). */
  slots: [number, number][];
}

/** A slot's move from its owner to another master, step by step as redis-cli --cluster moves
 *  one, behind a proxy's back. */
export interface SlotMove {
  readonly slot: number;
  /** Its owner, and the master it goes to (the first other one serving slots). */
  readonly source: Backend;
  readonly dest: Backend;
  readonly sourceId: string;
  readonly destId: string;
  /** The masters serving slots when the move was planned. */
  readonly masters: readonly NodeLine[];
  /** SETSLOT IMPORTING at the destination, then MIGRATING at the source: keys may MIGRATE now,
   *  and the source answers ASK for those it lacks. */
  begin(): Promise<void>;
  /** SETSLOT NODE <destination> at the destination, then at the source: the slot is the
   *  destination's. */
  finish(): Promise<void>;
  /** SETSLOT STABLE at both: the move is called off, the slot stays where it was. */
  cancel(): Promise<void>;
}

export interface RedisCluster {
  /** Every node started, in start order (added ones at the end); a stopped node stays listed. */
  readonly nodes: Backend[];
  /** "host:port" of the nodes created with the cluster, for a proxy's `servers:`. */
  readonly seeds: string[];
  /** With `tls`: a node's TLS "host:port" (null without). */
  tlsAddress(node: Backend): string | null;
  /** One command to one node, decoded; a redis error reply throws. */
  call(node: Backend, ...args: Bytes[]): Promise<RespValue>;
  /** CLUSTER NODES as `node` sees it. */
  nodeLines(node: Backend): Promise<NodeLine[]>;
  /** The node (among the running ones) that owns `slot` as master, as `via` sees it. */
  ownerOf(slot: number, via?: Backend): Promise<Backend>;
  /** The masters serving slots, as a running node sees them. */
  masters(): Promise<NodeLine[]>;
  /** The node at "host:port". */
  nodeAt(address: string): Backend;
  /** Plans moving `slot` from its owner to another master (nothing is sent yet). */
  slotMove(slot: number): Promise<SlotMove>;
  /** `redis-cli --cluster <args...>`; throws with its output when it fails. */
  cli(args: string[], timeoutMs?: number): Promise<string>;
  /** Resolves when the running nodes are healthy (see the file comment); throws after timeoutMs. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Starts an empty cluster node (not yet part of the cluster: see `cli(["add-node", ...])`). */
  startNode(): Promise<Backend>;
  stop(): Promise<void>;
}

const SLOTS = 16384;
/** redis-server's start-up warnings, left out of a diagnosis. */
const STARTUP_NOISE = /oO0OoO0O|Redis version=|Configuration loaded|Server initialized|overcommit/;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function startRedisCluster(opts: ClusterOptions = {}): Promise<RedisCluster> {
  const masters = opts.masters ?? 3;
  const replicas = opts.replicas ?? 1;
  const nodeTimeout = opts.nodeTimeoutMs ?? 2000;
  const nodes: Backend[] = [];
  const tlsPorts = new Map<Backend, number>();

  const startNode = async (): Promise<Backend> => {
    const tlsPort = freePort();
    const tls = opts.tls;
    const tlsArgs = tls === undefined ? [] : [
      "--tls-port", String(tlsPort),
      "--tls-cert-file", tls.cert, "--tls-key-file", tls.key, "--tls-ca-cert-file", tls.ca,
      "--tls-client-cert-file", tls.client.cert, "--tls-client-key-file", tls.client.key,
      "--tls-auth-clients", "no", "--tls-cluster", "yes", "--tls-replication", "yes",
    ];
    const node = await startRedis({
      args: [
        ...tlsArgs,
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-port", String(freePort()),
        "--cluster-node-timeout", String(nodeTimeout),
        // A replica may be promoted however long its link was down (tests kill masters).
        "--cluster-replica-validity-factor", "0",
      ],
    });
    nodes.push(node);
    if (tls !== undefined) tlsPorts.set(node, tlsPort);
    return node;
  };

  const call = async (node: Backend, ...args: Bytes[]): Promise<RespValue> => {
    const value = await redisCall(node, ...args);
    if (value instanceof RespError) throw new Error(`${node.address} ${String(args[0])}: ${value.message}`);
    return value;
  };

  const running = (): Backend[] => nodes.filter((n) => n.process.running);

  const nodeLines = async (node: Backend): Promise<NodeLine[]> =>
    parseClusterNodes(String(await call(node, "CLUSTER", "NODES")));

  const cli = async (args: string[], timeoutMs = 60_000): Promise<string> => {
    const result = await runToEnd(["redis-cli", "--cluster", ...args], timeoutMs);
    const output = result.stdout + result.stderr;
    if (result.code !== 0 || /\[ERR\]/.test(output)) {
      throw new Error(`redis-cli --cluster ${args.join(" ")} failed (${result.code}): ${output.slice(-2000)}`);
    }
    return output;
  };

  /** The first problem found and the node it was found on, or null when healthy. */
  const healthy = async (): Promise<{ node: Backend; problem: string } | null> => {
    const live = running();
    for (const node of live) {
      const problem = await nodeProblem(node, live.length).catch((error: Error) => error.message);
      if (problem !== null) return { node, problem };
    }
    // Every node sees the role each node gives itself: gossip carries a new replica's role (or
    // a failover's) to the others a moment after the node has it.
    const selves = await Promise.all(live.map(async (n) => (await nodeLines(n)).find((l) => l.flags.includes("myself"))!));
    for (const node of live) {
      const lines = await nodeLines(node);
      for (const self of selves) {
        const seen = lines.find((l) => l.id === self.id);
        if (seen?.masterId !== self.masterId) return { node, problem: `${node.address} does not see ${self.address} as ${self.masterId === "-" ? "a master" : `a replica of ${self.masterId}`} yet` };
      }
    }
    return null;
  };

  const nodeProblem = async (node: Backend, live: number): Promise<string | null> => {
    const info = String(await call(node, "CLUSTER", "INFO"));
    if (!/cluster_state:ok/.test(info)) return `${node.address}: cluster_state is not ok`;
    const lines = await nodeLines(node);
    const connected = lines.filter((l) => l.connected && !l.flags.includes("fail")).length;
    if (connected < live) return `${node.address} sees ${connected} of ${live} nodes connected`;
    const me = lines.find((l) => l.flags.includes("myself"))!;
    if (me.flags.includes("slave")) {
      const replication = String(await call(node, "INFO", "replication"));
      if (!/master_link_status:up/.test(replication)) return `${node.address}: replica link not up`;
    }
    const covered = lines.reduce((sum, l) => sum + l.slots.reduce((s, [a, b]) => s + b - a + 1, 0), 0);
    if (covered !== SLOTS) return `${node.address} sees ${covered} slots covered`;
    return null;
  };

  /** What the nodes say about a problem that lasted: the node's own view and the warnings the
   *  nodes logged (state changes, FAIL reports, elections), and every node that exited. Such a
   *  failure came once in many runs; this is what tells its cause next time. */
  const diagnosis = async (node: Backend): Promise<string> => {
    const parts: string[] = [];
    if (node.process.running) {
      const info = await call(node, "CLUSTER", "INFO").then(String, (error: Error) => error.message);
      parts.push(`${node.address} CLUSTER INFO: ${info.split("\r\n").filter((l) => /^cluster_(state|slots|known|size|current|my)/.test(l)).join(" ")}`);
      parts.push(`${node.address} CLUSTER NODES:\n${await call(node, "CLUSTER", "NODES").then(String, (error: Error) => error.message)}`);
    }
    for (const n of nodes) {
      const warnings = n.process.stdout().split("\n").filter((l) => l.includes(" # ") && !STARTUP_NOISE.test(l)).slice(-12);
      const state = n.process.running ? "running" : `exited (${await n.process.exited})`;
      parts.push(`${n.address} ${state}; its last warnings:\n  ${warnings.join("\n  ")}`);
    }
    return parts.join("\n");
  };

  const waitHealthy = async (timeoutMs = 30_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = await healthy();
      if (found === null) return;
      if (Date.now() > deadline) throw new Error(`cluster not healthy after ${timeoutMs} ms: ${found.problem}\n${await diagnosis(found.node)}`);
      await sleep(100);
    }
  };

  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => n.stop()));
  };

  try {
    for (let i = 0; i < masters * (1 + replicas); i++) await startNode();
    const seeds = nodes.map((n) => n.address);
    await cli(["create", ...seeds, "--cluster-replicas", String(replicas), "--cluster-yes"]);
    const cluster: RedisCluster = {
      nodes,
      seeds,
      tlsAddress: (node) => (tlsPorts.has(node) ? `${node.host}:${tlsPorts.get(node)}` : null),
      call,
      nodeLines,
      async ownerOf(slot, via) {
        const lines = await nodeLines(via ?? running()[0]!);
        const owner = lines.find((l) => l.masterId === "-" && l.slots.some(([a, b]) => slot >= a && slot <= b));
        const node = running().find((n) => n.address === owner?.address);
        if (node === undefined) throw new Error(`no running master owns slot ${slot}`);
        return node;
      },
      async masters() {
        return (await nodeLines(running()[0]!)).filter((l) => l.masterId === "-" && l.slots.length > 0);
      },
      nodeAt: (address) => nodes.find((n) => n.address === address)!,
      async slotMove(slot) {
        const source = await cluster.ownerOf(slot);
        const masters = await cluster.masters();
        const sourceId = masters.find((l) => l.address === source.address)!.id;
        const destLine = masters.find((l) => l.address !== source.address)!;
        const dest = cluster.nodeAt(destLine.address);
        const setslot = (node: Backend, ...args: string[]) => call(node, "CLUSTER", "SETSLOT", String(slot), ...args);
        return {
          slot,
          source,
          dest,
          sourceId,
          destId: destLine.id,
          masters,
          async begin() {
            await setslot(dest, "IMPORTING", sourceId);
            await setslot(source, "MIGRATING", destLine.id);
          },
          async finish() {
            await setslot(dest, "NODE", destLine.id);
            await setslot(source, "NODE", destLine.id);
          },
          async cancel() {
            await setslot(dest, "STABLE");
            await setslot(source, "STABLE");
          },
        };
      },
      cli,
      waitHealthy,
      startNode,
      stop,
    };
    await waitHealthy();
    return cluster;
  } catch (error) {
    await stop();
    throw error;
  }
}

/** CLUSTER NODES text -> one NodeLine per node. */
export function parseClusterNodes(text: string): NodeLine[] {
  return text
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => {
      const [id, addr, flags, masterId, , , epoch, link, ...slots] = line.trim().split(" ");
      const address = addr!.split("@")[0]!.split(",")[0]!;
      const ranges: [number, number][] = [];
      for (const s of slots) {
        if (s.startsWith("[")) continue; // [slot->-id] / [slot-<-id]: a migration in progress
        const [a, b] = s.split("-").map(Number);
        ranges.push([a!, b ?? a!]);
      }
      return {
        id: id!,
        address,
        port: Number(address.slice(address.lastIndexOf(":") + 1)),
        flags: flags!.split(","),
        masterId: masterId!,
        configEpoch: Number(epoch),
        connected: link === "connected",
        slots: ranges,
      };
    });
}

/** Resolves once a redis_cluster pool at `endpoint` routes requests (its first slot map is
 *  loaded: a GET is answered by a node, not with the proxy's "not loaded yet" error). */
export async function untilRouting(endpoint: Endpoint, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [reply] = await exchange(endpoint, command("GET", "untilRouting"), 1, respFrame);
    if (!reply!.toString("latin1").startsWith("-")) return;
    if (Date.now() > deadline) throw new Error(`the proxy does not route after ${timeoutMs} ms: ${reply!.toString("latin1").trim()}`);
    await sleep(20);
  }
}
