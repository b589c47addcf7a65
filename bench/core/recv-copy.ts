// What receiving costs the runtime, by the two read paths Bun has: the `data` callback of
// Bun.connect (a fresh buffer per chunk, copied from the runtime's receive buffer) and node:net's
// `onread` option, which in Node reads into the caller's own buffer. A sender process pushes the
// same bytes over loopback to each in turn; the receiver's user and system CPU are printed.
//
//   bun bench/core/recv-copy.ts [--mb 2048] [--rounds 2]

import type { Socket } from "bun";
import { connect } from "node:net";

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => {
  const at = args.indexOf(`--${name}`);
  return at < 0 ? fallback : Number(args[at + 1]);
};

if (args[0] === "send") {
  // The sender: serves `total` bytes to every connection, honouring partial writes.
  const total = option("bytes", 0);
  const payload = new Uint8Array(1 << 20).fill(0x61);
  const sent = new WeakMap<object, number>();
  const pump = (s: Socket<undefined>): void => {
    let done = sent.get(s) ?? 0;
    while (done < total) {
      const at = done % payload.length;
      const n = s.write(payload.subarray(at, Math.min(payload.length, at + total - done)));
      done += n;
      if (n === 0) break;
    }
    sent.set(s, done);
    if (done >= total) s.end();
  };
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { open: pump, drain: pump, data() {} } });
  console.log(listener.port);
} else {
  const mb = option("mb", 2048);
  const rounds = option("rounds", 2);
  const total = mb * 1048576;
  const sender = Bun.spawn([process.execPath, import.meta.path, "send", "--bytes", String(total)], { stdout: "pipe" });
  const first = await sender.stdout.getReader().read();
  const port = Number(new TextDecoder().decode(first.value).trim());

  /** Receive `total` bytes by one path; the CPU it took, in ms. */
  const receive = async (path: "data" | "onread"): Promise<{ user: number; system: number }> => {
    const start = process.cpuUsage();
    let got = 0;
    await new Promise<void>((resolve, reject) => {
      if (path === "data") {
        Bun.connect({ hostname: "127.0.0.1", port, socket: { data: (_s, d) => void (got += d.length), close: () => resolve(), error: reject } });
      } else {
        const onread = {
          buffer: Buffer.alloc(1 << 16),
          callback: (n: number): boolean => {
            got += n;
            return true;
          },
        };
        connect({ port, host: "127.0.0.1", onread }).on("close", () => resolve());
      }
    });
    if (got !== total) throw new Error(`${path}: received ${got} of ${total} bytes`);
    const used = process.cpuUsage(start);
    return { user: used.user / 1000, system: used.system / 1000 };
  };

  for (let r = 0; r < rounds; r++) {
    for (const path of ["data", "onread"] as const) {
      const { user, system } = await receive(path);
      console.log(`${path.padEnd(6)} ${mb} MB: user ${user.toFixed(0)} ms, system ${system.toFixed(0)} ms`);
    }
  }
  sender.kill();
}
