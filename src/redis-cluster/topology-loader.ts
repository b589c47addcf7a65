// Reads a Redis Cluster's slot map from one of its nodes: a short-lived connection of its own
// (never a request connection, whose replies belong to clients) sends [AUTH], CLUSTER INFO and
// CLUSTER SHARDS, or CLUSTER SLOTS when the node is older than redis 7, and builds a SlotMap.
// loadFromAny tries nodes in turn until one answers; each failure is kept for the message. The
// connection comes from the pool's socket factory (LoadOptions.connect), so a pool with
// server_tls reads its map over TLS, and takes each node's TLS port from CLUSTER SHARDS.

import type { Socket, SocketHandler } from "bun";
import { Rsp } from "../proto/codec.ts";
import { parseCurrentEpoch, parseShards, parseSlots, type Topology } from "../proto/redis/cluster-topology.ts";
import { parseResponse } from "../proto/redis/response.ts";
import { decodeReply, ReplyError, type RespValue } from "../proto/redis/value.ts";
import { SlotMap } from "./slot-map.ts";

export interface NodeAddress {
  readonly host: string;
  readonly port: number;
}

/** Opens a connection to a node; resolves once it may be written to (after the TLS handshake,
 *  if any), through handlers.open. */
export type NodeConnect = <T>(node: NodeAddress, handlers: SocketHandler<T>, data: T) => Promise<Socket<T>>;

/** Plain TCP (a pool passes its own socket factory's). */
const plainConnect: NodeConnect = (node, handlers, data) =>
  Bun.connect({ hostname: node.host, port: node.port, socket: handlers, data });

export interface LoadOptions {
  /** redis_auth: sent first when set. */
  readonly auth: string | null;
  /** Connect and every reply must come within this. */
  readonly timeoutMs: number;
  /** Default: plain TCP. */
  readonly connect?: NodeConnect;
  /** The nodes are reached over TLS (server_tls): their TLS ports are the ones to use. */
  readonly tls?: boolean;
}

const encoder = new TextEncoder();

function command(...args: string[]): Uint8Array {
  let text = `*${args.length}\r\n`;
  for (const arg of args) text += `$${encoder.encode(arg).length}\r\n${arg}\r\n`;
  return encoder.encode(text);
}

const CLUSTER_INFO = command("CLUSTER", "INFO");
const CLUSTER_SHARDS = command("CLUSTER", "SHARDS");
const CLUSTER_SLOTS = command("CLUSTER", "SLOTS");

/** One connection that sends commands and hands back their decoded replies, in order. */
class ControlConnection {
  private buf = new Uint8Array(0);
  private readonly rsp = new Rsp();
  private waiting: { resolve(v: RespValue): void; reject(e: Error): void }[] = [];
  private failure: Error | null = null;

  private constructor(private readonly socket: Socket<ControlConnection | null>) {}

  static async open(node: NodeAddress, opts: LoadOptions): Promise<ControlConnection> {
    let socket: Socket<ControlConnection | null> | null = null;
    const opened = new Promise<ControlConnection>((resolve, reject) => {
      const handlers: SocketHandler<ControlConnection | null> = {
        binaryType: "uint8array",
        open: (s) => {
          const conn = new ControlConnection(s);
          s.data = conn;
          resolve(conn);
        },
        data: (s, chunk) => s.data?.received(chunk),
        close: (s) => {
          s.data?.fail(new Error("connection closed"));
          reject(new Error("connection closed"));
        },
        error: (s, err) => {
          s.data?.fail(err);
          reject(err);
        },
        connectError: (_s, err) => reject(err),
      };
      (opts.connect ?? plainConnect)(node, handlers, null).then((s) => (socket = s), reject);
    });
    try {
      return await withTimeout(opened, opts.timeoutMs, "connect");
    } catch (error) {
      (socket as Socket<ControlConnection | null> | null)?.terminate();
      throw error;
    }
  }

  /** Sends the commands at once; resolves with their replies. */
  call(requests: Uint8Array[], timeoutMs: number): Promise<RespValue[]> {
    const replies = requests.map(
      () => new Promise<RespValue>((resolve, reject) => this.waiting.push({ resolve, reject })),
    );
    if (this.failure !== null) this.fail(this.failure);
    else for (const r of requests) this.socket.write(r);
    return withTimeout(Promise.all(replies), timeoutMs, "reply");
  }

  private received(chunk: Uint8Array): void {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf);
    joined.set(chunk, this.buf.length);
    let pos = 0;
    while (pos < joined.length && this.waiting.length > 0) {
      this.rsp.resume = 0;
      const end = parseResponse(joined, pos, joined.length, this.rsp);
      if (end < 0) {
        if (this.rsp.error !== null) this.fail(new Error(`bad reply: ${this.rsp.error}`));
        break;
      }
      let value: RespValue;
      try {
        value = decodeReply(joined, pos, end);
      } catch (error) {
        this.fail(error as Error);
        return;
      }
      this.waiting.shift()!.resolve(value);
      pos = end;
    }
    this.buf = joined.subarray(pos);
  }

  private fail(error: Error): void {
    this.failure = error;
    for (const w of this.waiting.splice(0)) w.reject(error);
  }

  close(): void {
    this.socket.end();
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The slot map as `node` sees it. Throws (TopologyError, or a network error) when it cannot. */
export async function loadFrom(node: NodeAddress, opts: LoadOptions): Promise<SlotMap> {
  const conn = await ControlConnection.open(node, opts);
  try {
    const first = opts.auth === null ? [] : [command("AUTH", opts.auth)];
    const replies = await conn.call([...first, CLUSTER_INFO, CLUSTER_SHARDS], opts.timeoutMs);
    const auth = opts.auth === null ? null : replies[0]!;
    if (auth instanceof ReplyError) throw new Error(`AUTH: ${auth.message}`);
    const [info, shards] = replies.slice(first.length);
    let topology: Topology;
    if (shards instanceof ReplyError && /unknown subcommand/i.test(shards.message)) {
      const [slots] = await conn.call([CLUSTER_SLOTS], opts.timeoutMs);
      topology = parseSlots(slots!, node.host);
    } else {
      topology = parseShards(shards!, node.host, opts.tls === true);
    }
    return new SlotMap(topology, parseCurrentEpoch(info!));
  } finally {
    conn.close();
  }
}

/** The first slot map any of `nodes` gives, tried in order, and the node that gave it. */
export async function loadFromAny(
  nodes: readonly NodeAddress[],
  opts: LoadOptions,
): Promise<{ map: SlotMap; from: NodeAddress }> {
  const failures: string[] = [];
  for (const node of nodes) {
    try {
      return { map: await loadFrom(node, opts), from: node };
    } catch (error) {
      failures.push(`${node.host}:${node.port}: ${(error as Error).message}`);
    }
  }
  throw new Error(`no cluster node gave its slot map (${failures.join("; ")})`);
}
