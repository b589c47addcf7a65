// Pub/sub fan-out load generator: `subscribers` connections SUBSCRIBE to one channel, then one
// publisher connection keeps `window` PUBLISHes in flight for `seconds`. Every message is
// `value` bytes carrying its send time, so each subscriber records the delivery latency; the
// rate reported is messages delivered to subscribers per second (a PUBLISH to 100 subscribers
// is 100 deliveries). A subscriber's messages all have one length (one channel, one size), so
// they are counted by length and parsed only for their send time.
//
//   bun bench/compare/pubsub.ts --port 6379 [--subscribers 100] [--window 16] [--value 32]
//     [--seconds 3]
//
// Prints one JSON line (mcload.ts's LoadReport; requests = deliveries while measuring). Fails
// (exit 1, the reason on stderr) when SUBSCRIBE or PUBLISH gets an error reply or no answer.

import type { Socket } from "bun";
import { newHistogram, quantile, record } from "./histogram.ts";
import type { LoadReport } from "./mcload.ts";
import { LoadWindow } from "./load-window.ts";

const CONNECT_AT_ONCE = 64;
const TIME_DIGITS = 16;

function option(name: string, fallback: number): number {
  const i = Bun.argv.indexOf(`--${name}`);
  return i < 0 ? fallback : Number(Bun.argv[i + 1]);
}

const host = "127.0.0.1";
const port = option("port", 6379);
const subscribers = option("subscribers", 100);
const window = option("window", 16);
const valueSize = Math.max(TIME_DIGITS, option("value", 32));
const seconds = option("seconds", 3);

const CHANNEL = "buncracker-bench-fanout";
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bulk = (s: string): string => `$${s.length}\r\n${s}\r\n`;
const SUBSCRIBE = encoder.encode(`*2\r\n${bulk("SUBSCRIBE")}${bulk(CHANNEL)}`);
const CONFIRM = encoder.encode(`*3\r\n${bulk("subscribe")}${bulk(CHANNEL)}:1\r\n`);
const MESSAGE_HEAD = `*3\r\n${bulk("message")}${bulk(CHANNEL)}$${valueSize}\r\n`;
const MESSAGE_LENGTH = MESSAGE_HEAD.length + valueSize + 2;
const PUBLISH_HEAD = `*3\r\n${bulk("PUBLISH")}${bulk(CHANNEL)}$${valueSize}\r\n`;

function fail(why: string): never {
  console.error(`pubsub: ${why}`);
  process.exit(1);
}

const firstLine = (buf: Uint8Array): string => decoder.decode(buf.subarray(0, 200)).split("\r\n")[0]!;

const histogram = newHistogram();
let deliveries = 0;
const phase = new LoadWindow();

interface Subscriber {
  socket: Socket<Subscriber> | null;
  confirmed: boolean;
  pending: Uint8Array;
  onConfirmed: () => void;
}

function onSubscriberData(s: Subscriber, chunk: Uint8Array): void {
  let buf = s.pending.length === 0 ? chunk : Buffer.concat([s.pending, chunk]);
  if (!s.confirmed) {
    if (buf[0] !== 42) fail(`SUBSCRIBE through port ${port} answered ${JSON.stringify(firstLine(buf))}`);
    if (buf.length < CONFIRM.length) {
      s.pending = buf.slice();
      return;
    }
    s.confirmed = true;
    s.onConfirmed();
    buf = buf.subarray(CONFIRM.length);
  }
  const now = performance.now() * 1000;
  let p = 0;
  for (; p + MESSAGE_LENGTH <= buf.length; p += MESSAGE_LENGTH) {
    if (buf[p] !== 42 && buf[p] !== 62) fail(`a subscriber got ${JSON.stringify(firstLine(buf.subarray(p)))}`);
    if (!phase.measuring) continue;
    deliveries++;
    const at = p + MESSAGE_HEAD.length;
    record(histogram, now - Number(decoder.decode(buf.subarray(at, at + TIME_DIGITS))));
  }
  s.pending = p < buf.length ? buf.slice(p) : new Uint8Array(0);
}

const subs: Subscriber[] = [];
for (let first = 0; first < subscribers; first += CONNECT_AT_ONCE) {
  const batch = Array.from({ length: Math.min(CONNECT_AT_ONCE, subscribers - first) }, async () => {
    let onConfirmed = (): void => {};
    const confirmed = new Promise<void>((resolve) => (onConfirmed = resolve));
    const s: Subscriber = { socket: null, confirmed: false, pending: new Uint8Array(0), onConfirmed };
    s.socket = await Bun.connect<Subscriber>({
      hostname: host,
      port,
      data: s,
      socket: {
        data: (sock, chunk) => onSubscriberData(sock.data, chunk),
        close: () => {
          if (!phase.stopping) fail("a subscriber's connection was closed");
        },
        error: (_sock, error) => fail(error.message),
      },
    });
    s.socket.write(SUBSCRIBE);
    subs.push(s);
    const timer = setTimeout(() => fail(`SUBSCRIBE through port ${port} got no answer in 5 s`), 5000);
    await confirmed;
    clearTimeout(timer);
  });
  await Promise.all(batch);
}

// The publisher: a closed loop keeping `window` PUBLISHes unanswered.
let unanswered = 0;
let publishPending: Uint8Array = new Uint8Array(0);
function publish(socket: Socket<undefined>, count: number): void {
  let text = "";
  for (let i = 0; i < count; i++) {
    const stamp = String(Math.floor(performance.now() * 1000)).padStart(TIME_DIGITS, "0");
    text += `${PUBLISH_HEAD}${stamp}${"x".repeat(valueSize - TIME_DIGITS)}\r\n`;
  }
  unanswered += count;
  socket.write(text);
}
const publisher = await Bun.connect({
  hostname: host,
  port,
  socket: {
    data: (socket, chunk) => {
      const buf = publishPending.length === 0 ? chunk : Buffer.concat([publishPending, chunk]);
      let p = 0;
      let answered = 0;
      for (let q = buf.indexOf(10, p); q >= 0; q = buf.indexOf(10, p)) {
        if (buf[p] !== 58) fail(`PUBLISH through port ${port} answered ${JSON.stringify(firstLine(buf.subarray(p)))}`);
        answered++;
        p = q + 1;
      }
      publishPending = buf.slice(p);
      unanswered -= answered;
      if (!phase.stopping && answered > 0) publish(socket, answered);
    },
    error: (_socket, error) => fail(error.message),
  },
});
publish(publisher, window);
const { elapsed, cpuUs } = await phase.run(seconds);
publisher.end();
for (const s of subs) s.socket?.end();
if (deliveries === 0) fail(`no message reached a subscriber in ${seconds} s (${unanswered} PUBLISHes unanswered)`);

const report: LoadReport = {
  requests: deliveries,
  seconds: elapsed,
  requestsPerSec: deliveries / elapsed,
  p50us: quantile(histogram, 0.5),
  p99us: quantile(histogram, 0.99),
  hits: 0,
  misses: 0,
  errors: 0,
  firstError: "",
  cpuUs,
  histogram: [],
};
console.log(JSON.stringify(report));
process.exit(0);
