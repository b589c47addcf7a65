// Closed-loop, pipelined memcached ASCII load generator.
//
// Each connection sends a batch of `pipeline` requests, waits for all their replies, and sends
// the next batch (as redis-benchmark -P does), until `seconds` have passed. Keys are drawn at
// random from `keyspace` keys named like redis-benchmark's (`key:000000012345`). A request's
// latency is the time from its batch's write to the arrival of the chunk that completes its
// reply. Replies are parsed in place; nothing is allocated per request.
//
//   bun bench/compare/mcload.ts --port 11211 [--host 127.0.0.1] [--conns 50] [--pipeline 1]
//     [--op get|set] [--multi 1] [--keyspace 100000] [--prefix key:] [--value 32]
//     [--seconds 3] [--procs 1]
//
// Prints one JSON line (LoadReport). With --procs N it runs N copies of itself, splitting the
// connections, and merges their reports (for when one Bun process cannot saturate the target).

import type { Socket } from "bun";
import { merge, newHistogram, quantile, record } from "./histogram.ts";

interface LoadOptions {
  host: string;
  port: number;
  conns: number;
  pipeline: number;
  op: "get" | "set";
  /** Keys per get request (a multi-get when > 1). */
  multi: number;
  keyspace: number;
  prefix: string;
  value: number;
  seconds: number;
  procs: number;
}

export interface LoadReport {
  /** Requests answered (a 10-key multi-get is one request). */
  requests: number;
  seconds: number;
  requestsPerSec: number;
  p50us: number;
  p99us: number;
  /** Keys found / not found by get requests. */
  hits: number;
  misses: number;
  /** Replies that were errors (ERROR, CLIENT_ERROR, SERVER_ERROR, NOT_STORED ...), and the first one. */
  errors: number;
  firstError: string;
  /** CPU time of the generator process(es) while measuring, microseconds. */
  cpuUs: number;
  histogram: number[];
}

const CR = 13;
const LF = 10;
const SPACE = 32;
const DIGITS = 12; // redis-benchmark's __rand_int__ width
const encoder = new TextEncoder();

function parseOptions(argv: string[]): LoadOptions {
  const options: LoadOptions = {
    host: "127.0.0.1",
    port: 0,
    conns: 50,
    pipeline: 1,
    op: "get",
    multi: 1,
    keyspace: 100_000,
    prefix: "key:",
    value: 32,
    seconds: 3,
    procs: 1,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]!.replace(/^--/, "");
    const value = argv[i + 1];
    if (!(name in options) || value === undefined) throw new Error(`mcload: bad option ${argv[i]}`);
    const current = options[name as keyof LoadOptions];
    if (typeof current === "number") {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0) throw new Error(`mcload: --${name} needs a positive number, got ${value}`);
      (options as unknown as Record<string, number>)[name] = n;
    } else (options as unknown as Record<string, string>)[name] = value;
  }
  if (options.port === 0) throw new Error("mcload: --port is required");
  if (options.op !== "get" && options.op !== "set") throw new Error(`mcload: --op must be get or set`);
  if (options.op === "set" && options.multi !== 1) throw new Error("mcload: --multi applies to get only");
  return options;
}

/** Writes prefix + 12-digit zero-padded `n` at `at`; returns the end offset. */
function writeKey(buf: Uint8Array, at: number, prefix: Uint8Array, n: number): number {
  buf.set(prefix, at);
  let end = at + prefix.length + DIGITS;
  for (let i = end - 1; i >= at + prefix.length; i--) {
    buf[i] = 48 + (n % 10);
    n = Math.floor(n / 10);
  }
  return end;
}

/** Builds batches of requests into one reusable buffer per connection. */
class RequestWriter {
  private readonly prefix: Uint8Array;
  private readonly setTail: Uint8Array; // " 0 0 <len>\r\n" + value + "\r\n"
  readonly buf: Uint8Array;

  constructor(private readonly o: LoadOptions) {
    this.prefix = encoder.encode(o.prefix);
    const value = new Uint8Array(o.value).fill(120); // 'x'
    const header = encoder.encode(` 0 0 ${o.value}\r\n`);
    this.setTail = new Uint8Array(header.length + o.value + 2);
    this.setTail.set(header, 0);
    this.setTail.set(value, header.length);
    this.setTail.set([CR, LF], header.length + o.value);
    const keyLen = this.prefix.length + DIGITS + 1;
    const perRequest = o.op === "set" ? 4 + keyLen + this.setTail.length : 4 + keyLen * o.multi + 2;
    this.buf = new Uint8Array(perRequest * o.pipeline);
  }

  /** Fills `buf` with one batch; returns its length. */
  batch(): number {
    const { buf, o } = this;
    let at = 0;
    for (let r = 0; r < o.pipeline; r++) {
      if (o.op === "set") {
        buf.set(SET, at);
        at = writeKey(buf, at + 4, this.prefix, Math.floor(Math.random() * o.keyspace));
        buf.set(this.setTail, at);
        at += this.setTail.length;
      } else {
        buf.set(GET, at);
        at += 3;
        for (let k = 0; k < o.multi; k++) {
          buf[at] = SPACE;
          at = writeKey(buf, at + 1, this.prefix, Math.floor(Math.random() * o.keyspace));
        }
        buf[at++] = CR;
        buf[at++] = LF;
      }
    }
    return at;
  }
}
const SET = encoder.encode("set ");
const GET = encoder.encode("get");

/** Shared totals of one generator process. */
class Totals {
  requests = 0;
  hits = 0;
  misses = 0;
  errors = 0;
  firstError = "";
  readonly histogram = newHistogram();
  lastReplyNs = 0;
}

/** One client connection: batch out, replies in, repeat until the deadline. */
class Connection {
  private readonly writer: RequestWriter;
  private socket: Socket<Connection> | null = null;
  private batchStartNs = 0;
  private pendingReplies = 0;
  private unsentFrom = 0;
  private unsentTo = 0;
  /** Bytes of a VALUE data block (plus its CRLF) still to skip. */
  private dataLeft = 0;
  /** Values seen in the get reply being parsed. */
  private values = 0;
  /** Start of a reply line split across chunks. */
  private carry: Uint8Array | null = null;
  finished = false;

  constructor(
    private readonly o: LoadOptions,
    private readonly totals: Totals,
    private readonly deadlineNs: () => number,
    private readonly onFinished: () => void,
  ) {
    this.writer = new RequestWriter(o);
  }

  attach(socket: Socket<Connection>): void {
    this.socket = socket;
  }

  sendBatch(): void {
    this.pendingReplies = this.o.pipeline;
    this.unsentFrom = 0;
    this.unsentTo = this.writer.batch();
    this.batchStartNs = Bun.nanoseconds();
    this.flush();
  }

  flush(): void {
    if (this.unsentFrom === this.unsentTo || this.socket === null) return;
    this.unsentFrom += Math.max(0, this.socket.write(this.writer.buf.subarray(this.unsentFrom, this.unsentTo)));
  }

  onData(chunk: Uint8Array): void {
    const now = Bun.nanoseconds();
    let buf = chunk;
    if (this.carry !== null) {
      buf = new Uint8Array(this.carry.length + chunk.length);
      buf.set(this.carry, 0);
      buf.set(chunk, this.carry.length);
      this.carry = null;
    }
    let pos = 0;
    const end = buf.length;
    while (pos < end) {
      if (this.dataLeft > 0) {
        const skip = Math.min(this.dataLeft, end - pos);
        this.dataLeft -= skip;
        pos += skip;
        continue;
      }
      const lf = buf.indexOf(LF, pos);
      if (lf < 0) {
        this.carry = buf.slice(pos);
        return;
      }
      this.line(buf, pos, lf, now);
      pos = lf + 1;
    }
  }

  /** One reply line [from, lf). */
  private line(buf: Uint8Array, from: number, lf: number, now: number): void {
    const first = buf[from];
    if (first === 86 /* V: VALUE <key> <flags> <bytes> [<cas>] */) {
      let at = from;
      for (let spaces = 0; spaces < 3; at++) if (buf[at] === SPACE) spaces++;
      let bytes = 0;
      for (let c = buf[at]!; c >= 48 && c <= 57; c = buf[++at]!) bytes = bytes * 10 + (c - 48);
      this.dataLeft = bytes + 2;
      this.values++;
      return;
    }
    if (first === 69 && buf[from + 1] === 78 /* END */) {
      this.totals.hits += this.values;
      this.totals.misses += this.o.multi - this.values;
      this.values = 0;
    } else if (!(first === 83 && buf[from + 1] === 84) /* not STORED */) {
      if (this.totals.errors++ === 0) this.totals.firstError = new TextDecoder().decode(buf.subarray(from, lf)).trim();
    }
    this.replyDone(now);
  }

  private replyDone(now: number): void {
    const totals = this.totals;
    totals.requests++;
    record(totals.histogram, (now - this.batchStartNs) / 1000);
    if (--this.pendingReplies > 0) return;
    totals.lastReplyNs = now;
    if (now < this.deadlineNs()) this.sendBatch();
    else this.finish();
  }

  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.socket?.end();
    this.onFinished();
  }
}

async function runOne(o: LoadOptions): Promise<LoadReport> {
  const totals = new Totals();
  let deadline = Number.MAX_SAFE_INTEGER;
  let open = o.conns;
  let allDone: () => void = () => {};
  const done = new Promise<void>((resolve) => (allDone = resolve));
  const connections: Connection[] = [];
  for (let i = 0; i < o.conns; i++) {
    connections.push(new Connection(o, totals, () => deadline, () => --open === 0 && allDone()));
  }
  const CONNECT_AT_ONCE = 64; // stay under the listeners' accept backlogs
  for (let i = 0; i < connections.length; i += CONNECT_AT_ONCE) {
    await Promise.all(
      connections.slice(i, i + CONNECT_AT_ONCE).map(async (connection) => {
        const socket = await Bun.connect<Connection>({
          hostname: o.host,
          port: o.port,
          data: connection,
          socket: {
            data: (s, chunk) => s.data.onData(chunk),
            drain: (s) => s.data.flush(),
            close: (s) => {
              if (!s.data.finished) fail(`connection closed by ${o.host}:${o.port}`);
            },
            error: (_s, error) => fail(`socket error: ${error.message}`),
          },
        });
        connection.attach(socket);
      }),
    );
  }
  const cpuAtStart = process.cpuUsage();
  const startNs = Bun.nanoseconds();
  deadline = startNs + o.seconds * 1e9;
  const watchdog = setTimeout(() => fail(`no reply within ${o.seconds + 10} s`), (o.seconds + 10) * 1000);
  for (const connection of connections) connection.sendBatch();
  await done;
  clearTimeout(watchdog);
  const seconds = (totals.lastReplyNs - startNs) / 1e9;
  const cpu = process.cpuUsage(cpuAtStart);
  return {
    requests: totals.requests,
    seconds,
    requestsPerSec: totals.requests / seconds,
    p50us: quantile(totals.histogram, 0.5),
    p99us: quantile(totals.histogram, 0.99),
    hits: totals.hits,
    misses: totals.misses,
    errors: totals.errors,
    firstError: totals.firstError,
    cpuUs: cpu.user + cpu.system,
    histogram: Array.from(totals.histogram),
  };
}

function fail(message: string): never {
  console.error(`mcload: ${message}`);
  process.exit(1);
}

/** Runs `procs` copies of this script with the connections split between them. */
async function runMany(o: LoadOptions, argv: string[]): Promise<LoadReport> {
  const children = Array.from({ length: o.procs }, (_, i) => {
    const conns = Math.floor(o.conns / o.procs) + (i < o.conns % o.procs ? 1 : 0);
    return Bun.spawn([process.execPath, import.meta.path, ...argv, "--procs", "1", "--conns", String(conns)], {
      stdout: "pipe",
      stderr: "inherit",
    });
  });
  const outputs = await Promise.all(children.map((child) => new Response(child.stdout).text()));
  const codes = await Promise.all(children.map((child) => child.exited));
  if (codes.some((code) => code !== 0)) fail(`a generator process failed (exit codes ${codes.join(",")})`);
  const reports = outputs.map((text) => JSON.parse(text) as LoadReport);
  const histogram = newHistogram();
  for (const report of reports) merge(histogram, report.histogram);
  const sum = (pick: (r: LoadReport) => number): number => reports.reduce((total, r) => total + pick(r), 0);
  const seconds = Math.max(...reports.map((r) => r.seconds));
  return {
    requests: sum((r) => r.requests),
    seconds,
    requestsPerSec: sum((r) => r.requestsPerSec),
    p50us: quantile(histogram, 0.5),
    p99us: quantile(histogram, 0.99),
    hits: sum((r) => r.hits),
    misses: sum((r) => r.misses),
    errors: sum((r) => r.errors),
    firstError: reports.find((r) => r.errors > 0)?.firstError ?? "",
    cpuUs: sum((r) => r.cpuUs),
    histogram: Array.from(histogram),
  };
}

if (import.meta.main) {
  const argv = Bun.argv.slice(2);
  try {
    const options = parseOptions(argv);
    const report = options.procs > 1 ? await runMany(options, argv) : await runOne(options);
    console.log(JSON.stringify(report));
  } catch (error) {
    fail((error as Error).message);
  }
}
