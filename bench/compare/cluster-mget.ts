// Closed-loop MGET load on a Redis Cluster: through a proxy (one MGET of all the keys per
// request), or straight to the masters the way a cluster-aware client has to do it, since redis
// refuses an MGET whose keys are in different slots (redis-benchmark cannot do it, ioredis
// Cluster and redis-py RedisCluster refuse it): the keys grouped by slot, one MGET per slot sent
// to the slot's master, every connection to each master written once per batch, the request done
// when all its parts answered (redis-py's mget_nonatomic, ioredis with a pipeline per node).
// That is the cheapest such client can be: slots and commands are computed before the run.
//
// Each of `conns` clients sends `pipeline` requests of `keys` random keys (`key:%012d`, of
// `keyspace`), waits for all their replies and sends the next batch; direct, each client has a
// connection to every master (as cluster clients do), through the proxy one connection.
//
//   bun bench/compare/cluster-mget.ts (--proxy PORT | --cluster SEED_PORT) [--conns 50]
//     [--pipeline 16] [--keys 10] [--keyspace 100000] [--seconds 3] [--fill]
//
// --fill first writes every key (MSET through --proxy). Prints one JSON line: requests (in the
// measured time), answered (all), seconds,
// requestsPerSec, errors, firstError, cpuUs (this process's CPU over the measured time).

import type { Socket } from "bun";
import { LoadWindow } from "./load-window.ts";

const option = (name: string, fallback: string): string => {
  const i = Bun.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Bun.argv[i + 1]!;
};
const proxyPort = Number(option("proxy", "0"));
const seedPort = Number(option("cluster", "0"));
const conns = Number(option("conns", "50"));
const pipeline = Number(option("pipeline", "16"));
const keysPer = Number(option("keys", "10"));
const keyspace = Number(option("keyspace", "100000"));
const seconds = Number(option("seconds", "3"));
const HOST = "127.0.0.1";
/** Batches prepared before the run, picked at random. */
const BATCHES = 512;

const encoder = new TextEncoder();
const keyName = (i: number): string => `key:${String(i).padStart(12, "0")}`;
const command = (args: string[]): string => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;

/** CRC-16/XMODEM and the `{...}` hash-tag rule: a key's cluster slot. */
function slotOf(key: string): number {
  const open = key.indexOf("{");
  if (open >= 0) {
    const close = key.indexOf("}", open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  let crc = 0;
  for (const byte of encoder.encode(key)) {
    crc ^= byte << 8;
    for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc & 16383;
}

/** The end of the reply at buf[p], or -1 when it is not complete yet (arrays included). */
function replyEnd(buf: Uint8Array, p: number, end: number): number {
  let q = p + 1;
  while (q + 1 < end && !(buf[q] === 13 && buf[q + 1] === 10)) q++;
  if (q + 1 >= end) return -1;
  const type = buf[p];
  if (type !== 36 && type !== 42) return q + 2; // + - :
  let n = 0;
  let negative = false;
  for (let i = p + 1; i < q; i++) {
    if (buf[i] === 45) negative = true;
    else n = n * 10 + (buf[i]! - 48);
  }
  let at = q + 2;
  if (negative) return at;
  if (type === 36) return at + n + 2 <= end ? at + n + 2 : -1;
  for (let i = 0; i < n; i++) {
    at = replyEnd(buf, at, end);
    if (at < 0) return -1;
  }
  return at;
}

/** Slot -> index of its master in `ports` (direct mode), from CLUSTER SLOTS. */
async function slotTable(seed: number): Promise<{ ports: number[]; owner: Int16Array }> {
  const run = Bun.spawnSync(["redis-cli", "-p", String(seed), "--json", "cluster", "slots"]);
  const ranges = JSON.parse(run.stdout.toString()) as [number, number, [string, number, ...unknown[]], ...unknown[]][];
  const ports: number[] = [];
  const owner = new Int16Array(16384).fill(-1);
  for (const [first, last, [, port]] of ranges) {
    if (!ports.includes(port)) ports.push(port);
    owner.fill(ports.indexOf(port), first, last + 1);
  }
  if (owner.includes(-1)) throw new Error("cluster-mget: the cluster does not serve every slot");
  return { ports, owner };
}

interface Line {
  socket: Socket<Line> | null;
  client: Client;
  pending: Uint8Array;
  awaited: number;
}
interface Client {
  lines: Line[];
  /** Lines still waiting for replies of the current batch. */
  busy: number;
}

/** A prepared batch: the bytes for each line (one per master, or the proxy) and the replies
 *  each line must get. */
interface Batch {
  bytes: Uint8Array[];
  replies: number[];
}

const phase = new LoadWindow();
let requests = 0;
/** Requests answered, the settling time's too. */
let answered = 0;
let errors = 0;
let firstError = "";

function prepare(nodes: number, owner: Int16Array | null): Batch[] {
  return Array.from({ length: BATCHES }, () => {
    const text = Array<string>(nodes).fill("");
    const replies = Array<number>(nodes).fill(0);
    for (let r = 0; r < pipeline; r++) {
      const keys = Array.from({ length: keysPer }, () => keyName(Math.floor(Math.random() * keyspace)));
      if (owner === null) {
        text[0] += command(["MGET", ...keys]);
        replies[0]!++;
        continue;
      }
      const bySlot = new Map<number, string[]>();
      for (const k of keys) {
        const s = slotOf(k);
        bySlot.set(s, [...(bySlot.get(s) ?? []), k]);
      }
      for (const [slot, group] of bySlot) {
        const node = owner[slot]!;
        text[node] += command(["MGET", ...group]);
        replies[node]!++;
      }
    }
    return { bytes: text.map((t) => encoder.encode(t)), replies };
  });
}

function sendBatch(c: Client, batches: Batch[]): void {
  const batch = batches[Math.floor(Math.random() * batches.length)]!;
  for (let i = 0; i < c.lines.length; i++) {
    const n = batch.replies[i]!;
    if (n === 0) continue;
    c.lines[i]!.awaited = n;
    c.busy++;
    c.lines[i]!.socket!.write(batch.bytes[i]!);
  }
}

function onData(line: Line, chunk: Uint8Array, batches: Batch[]): void {
  const buf = line.pending.length === 0 ? chunk : Buffer.concat([line.pending, chunk]);
  let p = 0;
  while (p < buf.length && line.awaited > 0) {
    const e = replyEnd(buf, p, buf.length);
    if (e < 0) break;
    if (buf[p] === 45) {
      errors++;
      if (firstError === "") firstError = new TextDecoder().decode(buf.subarray(p, e - 2));
    }
    line.awaited--;
    p = e;
  }
  line.pending = p < buf.length ? buf.slice(p) : new Uint8Array(0);
  if (line.awaited !== 0) return;
  const c = line.client;
  if (--c.busy !== 0) return;
  answered += pipeline;
  if (phase.measuring) requests += pipeline;
  if (!phase.stopping) sendBatch(c, batches);
}

async function open(ports: number[], batches: Batch[]): Promise<Client[]> {
  const clients: Client[] = [];
  for (let i = 0; i < conns; i++) {
    const c: Client = { lines: [], busy: 0 };
    for (const port of ports) {
      const line: Line = { socket: null, client: c, pending: new Uint8Array(0), awaited: 0 };
      line.socket = await Bun.connect<Line>({
        hostname: HOST,
        port,
        data: line,
        socket: {
          data: (s, chunk) => onData(s.data, chunk, batches),
          error: (_s, error) => {
            console.error(`cluster-mget: ${error.message}`);
            process.exit(1);
          },
        },
      });
      c.lines.push(line);
    }
    clients.push(c);
  }
  return clients;
}

/** Every key written through the proxy, 100 per MSET, 64 MSETs in flight. */
async function fill(port: number): Promise<void> {
  const value = "x".repeat(32);
  let next = 0;
  const done = new Promise<void>((resolve, reject) => {
    let awaited = 0;
    let pending = new Uint8Array(0);
    const sendSome = (s: Socket<undefined>): void => {
      const parts: string[] = [];
      for (; awaited < 64 && next < keyspace; awaited++) {
        const args = ["MSET"];
        for (let i = next; i < Math.min(next + 100, keyspace); i++) args.push(keyName(i), value);
        next += 100;
        parts.push(command(args));
      }
      if (parts.length > 0) s.write(parts.join(""));
      else if (awaited === 0) {
        s.end();
        resolve();
      }
    };
    void Bun.connect({
      hostname: HOST,
      port,
      socket: {
        open: sendSome,
        data: (s, chunk) => {
          const buf = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
          let p = 0;
          for (let e = replyEnd(buf, p, buf.length); e > 0; e = p < buf.length ? replyEnd(buf, p, buf.length) : -1) {
            if (buf[p] !== 43) reject(new Error(`cluster-mget --fill: ${new TextDecoder().decode(buf.subarray(p, e))}`));
            awaited--;
            p = e;
          }
          pending = buf.slice(p);
          sendSome(s);
        },
        error: (_s, error) => reject(error),
      },
    });
  });
  await done;
}

if ((proxyPort === 0) === (seedPort === 0)) throw new Error("cluster-mget: give --proxy PORT or --cluster SEED_PORT");
if (Bun.argv.includes("--fill")) {
  if (proxyPort === 0) throw new Error("cluster-mget: --fill needs --proxy");
  await fill(proxyPort);
}
const table = seedPort === 0 ? null : await slotTable(seedPort);
const ports = table === null ? [proxyPort] : table.ports;
const batches = prepare(ports.length, table?.owner ?? null);
const clients = await open(ports, batches);
for (const c of clients) sendBatch(c, batches);
const { elapsed, cpuUs } = await phase.run(seconds);
for (const c of clients) for (const l of c.lines) l.socket?.end();
console.log(JSON.stringify({ requests, answered, seconds: elapsed, requestsPerSec: requests / elapsed, errors, firstError, cpuUs }));
process.exit(0);
