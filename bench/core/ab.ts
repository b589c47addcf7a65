// The CPU the proxy's own JavaScript spends per request, for two source trees side by side in
// one process (a refactor's before and after): each tree's real Proxy serves one pool whose
// server connections are fake sockets (Bun.connect is replaced before the trees load), a client
// pipelines a batch, the fake servers answer, the client gets its replies. The trees run in
// alternating blocks, so the machine's load falls on both alike; no syscalls are made, so the
// figures are the proxy's JS (plus this harness's fixed share), not the kernel's.
//
//   bun bench/core/ab.ts <workload> <tree A> <tree B> [--blocks 30] [--batches 1000]
//   workloads: get-p1 get-p16 set-p16 mget10-p16 mc-get-p16 mc-mget10-p1
//
// A tree is a checkout with src/ and build/hashkit.wasm (e.g. `git archive <commit> | tar -x`
// into a folder, node_modules linked). Prints one JSON line: per tree the median and the least
// CPU µs per batch over the blocks, and the median over blocks of B's CPU / A's (the block
// before it, of the other tree, ran under the same load).

import type { SocketHandler } from "bun";

interface Fake {
  data: { onData(chunk: Uint8Array): void };
  chunks: Uint8Array[];
}

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const at = args.indexOf(`--${name}`);
  return at < 0 ? fallback : Number(args.splice(at, 2)[1]);
};
const blocks = option("blocks", 30);
const batches = option("batches", 1000);
const [workload, ...trees] = args;
if (workload === undefined || trees.length !== 2) {
  console.error("usage: bun bench/core/ab.ts <workload> <tree A> <tree B> [--blocks N] [--batches N]");
  process.exit(2);
}

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** The server sockets of the tree being driven (Bun.connect puts new ones there). */
let servers: Fake[] = [];
(Bun as unknown as { connect: unknown }).connect = (opts: { socket: SocketHandler<unknown>; data: Fake["data"] }) => {
  const fake: Fake = { data: opts.data, chunks: [] };
  const socket = {
    data: opts.data,
    write(buf: Uint8Array, offset = 0, length = buf.length - offset): number {
      fake.chunks.push(buf.slice(offset, offset + length));
      return length;
    },
    end() {},
    terminate() {},
    setNoDelay: () => true,
    setKeepAlive: () => true,
    pause() {},
    resume() {},
  };
  servers.push(fake);
  queueMicrotask(() => opts.socket.open!(socket as never));
  return Promise.resolve(socket);
};

const redis = !workload.startsWith("mc-");
// Spread as redis-benchmark's random keys are: fnv1a_64's low 32 bits move little with the last
// digit, and consecutive numbers all landed on one server (no MGET was split).
const key = (i: number): string => `key:${String((i * 7919) % 100000).padStart(12, "0")}`;
const VALUE = "v".repeat(32);
const resp = (...a: string[]): string => `*${a.length}\r\n${a.map((x) => `$${x.length}\r\n${x}\r\n`).join("")}`;
const BATCHES: Record<string, () => string> = {
  "get-p1": () => resp("GET", key(1)),
  "get-p16": () => Array.from({ length: 16 }, (_, i) => resp("GET", key(i))).join(""),
  "set-p16": () => Array.from({ length: 16 }, (_, i) => resp("SET", key(i), VALUE)).join(""),
  "mget10-p16": () => Array.from({ length: 16 }, (_, j) => resp("MGET", ...Array.from({ length: 10 }, (_, i) => key(j * 10 + i)))).join(""),
  "mc-get-p16": () => Array.from({ length: 16 }, (_, i) => `get ${key(i)}\r\n`).join(""),
  "mc-mget10-p1": () => `get ${Array.from({ length: 10 }, (_, i) => key(i)).join(" ")}\r\n`,
};
if (BATCHES[workload] === undefined) throw new Error(`unknown workload ${workload}`);
const batch = encoder.encode(BATCHES[workload]());

/** What a server answers to everything it was sent (the same text every batch: cached). */
const answers = new Map<string, Uint8Array>();
function answer(text: string): Uint8Array {
  let reply = answers.get(text);
  if (reply !== undefined) return reply;
  let out = "";
  if (redis) {
    const lines = text.split("\r\n");
    lines.forEach((line, i) => {
      if (!line.startsWith("*")) return;
      const n = Number(line.slice(1));
      const name = lines[i + 2]!.toLowerCase();
      out += name === "get" ? `$32\r\n${VALUE}\r\n` : name === "set" ? "+OK\r\n" : `*${n - 1}\r\n${`$32\r\n${VALUE}\r\n`.repeat(n - 1)}`;
    });
  } else {
    for (const line of text.split("\r\n")) {
      if (!line.startsWith("get ")) continue;
      for (const k of line.slice(4).split(" ")) out += `VALUE ${k} 0 32\r\n${VALUE}\r\n`;
      out += "END\r\n";
    }
  }
  reply = encoder.encode(out);
  answers.set(text, reply);
  return reply;
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** One batch through the proxy of `tree`, as a function. */
async function driver(tree: string): Promise<() => Promise<void>> {
  const { parseConfig } = await import(`${tree}/src/conf/load.ts`);
  const { Proxy } = await import(`${tree}/src/core/proxy.ts`);
  const yaml =
    `p:\n  listen: 127.0.0.1:1\n${redis ? "  redis: true\n" : ""}  hash: fnv1a_64\n  distribution: ketama\n  servers:\n` +
    [0, 1, 2, 3].map((i) => `   - 127.0.0.1:${7101 + i}:1 s${i}\n`).join("");
  const proxy = new Proxy(parseConfig(yaml, "ab.yml", () => {}), { reusePort: false, listenUnix: false });
  const pool = proxy.pools[0];
  let written = 0;
  const socket = {
    data: undefined as unknown as { onData(chunk: Uint8Array): void },
    write(buf: Uint8Array, offset = 0, length = buf.length - offset): number {
      written += length;
      return length;
    },
    end() {},
    terminate() {},
    setNoDelay: () => true,
    pause() {},
    resume() {},
  };
  // The listener's accept: exported since the core split, a Pool method before it.
  const listener = await import(`${tree}/src/core/listener.ts`).catch(() => null);
  if (listener?.accept !== undefined) listener.accept(pool, socket);
  else pool.accept(socket);
  const client = socket.data;
  const mine: Fake[] = [];
  return async () => {
    servers = mine;
    const before = written;
    client.onData(batch.slice());
    await turn();
    for (const s of mine) {
      if (s.chunks.length === 0) continue;
      const text = s.chunks.map((c) => latin1.decode(c)).join("");
      s.chunks.length = 0;
      s.data.onData(answer(text).slice());
    }
    for (let i = 0; written === before; i++) {
      if (i > 1000) throw new Error(`${tree}: no reply`);
      await (i < 100 ? turn() : Bun.sleep(1));
    }
  };
}

const drivers: (() => Promise<void>)[] = [];
for (const tree of trees) {
  const once = await driver(tree);
  for (let i = 0; i < 3000; i++) await once(); // connections open, the JIT settles
  drivers.push(once);
}
const cpu: number[][] = [[], []];
for (let b = 0; b < blocks; b++) {
  for (let k = 0; k < 2; k++) {
    const t = (k + b) % 2;
    const start = process.cpuUsage();
    for (let i = 0; i < batches; i++) await drivers[t]!();
    const used = process.cpuUsage(start);
    cpu[t]!.push((used.user + used.system) / batches);
  }
}
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1]!;
const round = (x: number): number => Math.round(x * 1000) / 1000;
console.log(
  JSON.stringify({
    workload,
    trees,
    medianUsPerBatch: cpu.map((c) => round(median(c))),
    leastUsPerBatch: cpu.map((c) => round(Math.min(...c))),
    ratioBtoA: round(median(cpu[1]!.map((x, i) => x / cpu[0]![i]!))),
  }),
);
process.exit(0);
