// Closed-loop, pipelined redis load generator for a mix of GETs and SETs (redis-benchmark runs
// one command per run, so it cannot mix them).
//
// Each connection sends a batch of `pipeline` commands, each a GET with probability `get-share`
// and a SET otherwise, waits for all their replies and sends the next batch, until `seconds`
// have passed. Keys are drawn at random from `keyspace` keys named like redis-benchmark's
// (`key:000000012345`, prefilled by the suite). Commands come from pools built before the run,
// so the generator's CPU per request is the same against every target. A request's latency is
// the time from its batch's write to the chunk that completes its reply.
//
//   bun bench/compare/redisload.ts --port 6379 [--conns 500] [--pipeline 4] [--get-share 0.8]
//     [--keyspace 100000] [--prefix key:] [--value 32] [--seconds 3]
//
// Prints one JSON line (mcload.ts's LoadReport; hits and misses count GET replies).

import type { Socket } from "bun";
import { newHistogram, quantile, record } from "./histogram.ts";
import type { LoadReport } from "./mcload.ts";
import { LoadWindow } from "./load-window.ts";

const CR = 13;
const LF = 10;
const POOL = 4096;
const CONNECT_AT_ONCE = 64; // stay under the listeners' accept backlogs

function option(name: string, fallback: number | string): string {
  const i = Bun.argv.indexOf(`--${name}`);
  return i < 0 ? String(fallback) : Bun.argv[i + 1]!;
}

const host = option("host", "127.0.0.1");
const port = Number(option("port", 6379));
const conns = Number(option("conns", 500));
const pipeline = Number(option("pipeline", 4));
const getShare = Number(option("get-share", 0.8));
const keyspace = Number(option("keyspace", 100_000));
const prefix = option("prefix", "key:");
const valueSize = Number(option("value", 32));
const seconds = Number(option("seconds", 3));

const encoder = new TextEncoder();
const bulk = (s: string): string => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
const randomKey = (): string => prefix + String(Math.floor(Math.random() * keyspace)).padStart(12, "0");
const VALUE = "x".repeat(valueSize);
const GETS = Array.from({ length: POOL }, () => encoder.encode(`*2\r\n$3\r\nGET\r\n${bulk(randomKey())}`));
const SETS = Array.from({ length: POOL }, () => encoder.encode(`*3\r\n$3\r\nSET\r\n${bulk(randomKey())}${bulk(VALUE)}`));

/** The end of the reply at buf[p], or -1 when it is not complete yet. Replies here are flat. */
function replyEnd(buf: Uint8Array, p: number, end: number): number {
  let q = p + 1;
  while (q + 1 < end && !(buf[q] === CR && buf[q + 1] === LF)) q++;
  if (q + 1 >= end) return -1;
  if (buf[p] !== 36) return q + 2; // + - :
  let length = 0;
  let negative = false;
  for (let i = p + 1; i < q; i++) {
    if (buf[i] === 45) negative = true;
    else length = length * 10 + (buf[i]! - 48);
  }
  if (negative) return q + 2; // $-1
  return q + 2 + length + 2 <= end ? q + 2 + length + 2 : -1;
}

interface Conn {
  socket: Socket<Conn> | null;
  pending: Uint8Array;
  /** Replies still awaited in the current batch, and which of them are GETs. */
  awaited: number;
  isGet: boolean[];
  sentAt: number;
}

const histogram = newHistogram();
let requests = 0;
let hits = 0;
let misses = 0;
let errors = 0;
let firstError = "";
const phase = new LoadWindow();

function sendBatch(c: Conn): void {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < pipeline; i++) {
    const get = Math.random() < getShare;
    c.isGet[i] = get;
    parts.push((get ? GETS : SETS)[Math.floor(Math.random() * POOL)]!);
  }
  c.awaited = pipeline;
  c.sentAt = performance.now();
  c.socket!.write(Buffer.concat(parts));
}

function onData(c: Conn, chunk: Uint8Array): void {
  const buf = c.pending.length === 0 ? chunk : Buffer.concat([c.pending, chunk]);
  const now = performance.now();
  let p = 0;
  while (p < buf.length && c.awaited > 0) {
    const e = replyEnd(buf, p, buf.length);
    if (e < 0) break;
    const index = pipeline - c.awaited;
    if (buf[p] === 45) {
      errors++;
      if (firstError === "") firstError = new TextDecoder().decode(buf.subarray(p, e - 2));
    } else if (c.isGet[index]) {
      if (buf[p] === 36 && buf[p + 1] === 45) misses++;
      else hits++;
    }
    if (phase.measuring) {
      requests++;
      record(histogram, (now - c.sentAt) * 1000);
    }
    c.awaited--;
    p = e;
  }
  c.pending = p < buf.length ? buf.slice(p) : new Uint8Array(0);
  if (c.awaited === 0 && !phase.stopping) sendBatch(c);
}

const all: Conn[] = [];
for (let first = 0; first < conns; first += CONNECT_AT_ONCE) {
  const batch = Array.from({ length: Math.min(CONNECT_AT_ONCE, conns - first) }, async () => {
    const c: Conn = { socket: null, pending: new Uint8Array(0), awaited: 0, isGet: [], sentAt: 0 };
    c.socket = await Bun.connect<Conn>({
      hostname: host,
      port,
      data: c,
      socket: {
        data: (s, chunk) => onData(s.data, chunk),
        error: (_s, error) => {
          console.error(`redisload: ${error.message}`);
          process.exit(1);
        },
      },
    });
    all.push(c);
  });
  await Promise.all(batch);
}

for (const c of all) sendBatch(c);
const { elapsed, cpuUs } = await phase.run(seconds);
for (const c of all) c.socket?.end();

const report: LoadReport = {
  requests,
  seconds: elapsed,
  requestsPerSec: requests / elapsed,
  p50us: quantile(histogram, 0.5),
  p99us: quantile(histogram, 0.99),
  hits,
  misses,
  errors,
  firstError,
  cpuUs,
  histogram: [],
};
console.log(JSON.stringify(report));
process.exit(0);
