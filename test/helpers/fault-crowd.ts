// Many concurrent clients, as a separate process (so the test runner's open-file limit does not
// matter): opens `count` redis connections to host:port, `batch` at a time, and on each one
// SETs and GETs a key of its own and checks both replies; all connections stay open until every
// one is done, then it prints one JSON line, holds them `holdMs` more, and exits.
//
//   bun test/helpers/fault-crowd.ts HOST PORT COUNT [BATCH] [HOLD_MS]

import type { Socket } from "bun";

interface Result {
  /** Connections that opened. */
  connected: number;
  /** Clients whose two replies were right. */
  answered: number;
  /** Clients that failed (connect error, close, wrong reply), and a few of their stories. */
  failed: number;
  samples: string[];
}

const [host = "127.0.0.1", portText = "", countText = "10000", batchText = "500", holdText = "1000"] = process.argv.slice(2);
const port = Number(portText);
const count = Number(countText);
const batch = Number(batchText);
const holdMs = Number(holdText);

const resp = (...args: string[]): string => `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;

/** One client: connect, SET and GET its key, resolve with the error text or null. */
function client(i: number, sockets: Socket<undefined>[]): Promise<string | null> {
  const value = `value-${i}-${"x".repeat(i % 50)}`;
  const expected = `+OK\r\n$${value.length}\r\n${value}\r\n`;
  let got = "";
  return new Promise((resolve) => {
    Bun.connect({
      hostname: host,
      port,
      socket: {
        open(s) {
          sockets.push(s);
          s.write(resp("SET", `crowd:${i}`, value) + resp("GET", `crowd:${i}`));
        },
        data(_s, chunk) {
          got += Buffer.from(chunk).toString("latin1");
          if (got.length >= expected.length) resolve(got === expected ? null : `client ${i}: ${JSON.stringify(got.slice(0, 80))}`);
        },
        close() {
          resolve(`client ${i}: closed after ${JSON.stringify(got.slice(0, 80))}`);
        },
        connectError(_s, err) {
          resolve(`client ${i}: connect: ${err.message}`);
        },
        error(_s, err) {
          resolve(`client ${i}: ${err.message}`);
        },
      },
    }).catch((err: Error) => resolve(`client ${i}: connect: ${err.message}`));
  });
}

const sockets: Socket<undefined>[] = [];
const result: Result = { connected: 0, answered: 0, failed: 0, samples: [] };
for (let at = 0; at < count; at += batch) {
  const outcomes = await Promise.all(Array.from({ length: Math.min(batch, count - at) }, (_, j) => client(at + j, sockets)));
  for (const o of outcomes) {
    if (o === null) result.answered++;
    else if (result.failed++ < 5) result.samples.push(o);
  }
}
result.connected = sockets.length;
process.stdout.write(JSON.stringify(result) + "\n");
await Bun.sleep(holdMs);
for (const s of sockets) s.end();
process.exit(0);
