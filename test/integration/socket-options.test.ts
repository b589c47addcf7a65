// Socket options of the pool config, seen from the kernel: `tcpkeepalive` puts SO_KEEPALIVE on
// the server connections (its timer shows in /proc/net/tcp; nutcracker 0.5.0 puts it on the
// clients' instead), `reuseport` lets two proxies listen
// on one port (and without it the second cannot start), and a `[::1]:port` listener serves over
// IPv6 loopback.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient, type Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { testNeeding } from "../helpers/needs.ts";
import { canBind, freePort } from "../helpers/ports.ts";
import { testDeliberate } from "../helpers/deliberate.ts";
import { listenerCount, timersOn, timersTo } from "../helpers/procfs.ts";
import { startProxy, TARGET } from "../helpers/proxy.ts";
import { eventually } from "../helpers/reload.ts";
import { bulk, command, OK, respFrame } from "../helpers/resp.ts";
import { stopAfterEach } from "../helpers/track.ts";

setDefaultTimeout(60_000);

const track = stopAfterEach();
/** /proc/net/tcp's timer of a socket with SO_KEEPALIVE (and nothing in flight). */
const KEEPALIVE = 2;
let redis: Backend;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
});

/** SET then GET through `endpoint`, on one connection. */
async function roundTrip(endpoint: Endpoint, key: string): Promise<void> {
  const c = await RawClient.connect(endpoint);
  try {
    await c.send(Buffer.concat([command("SET", key, "v"), command("GET", key)]));
    expect(await c.readReplies(2, respFrame)).toEqual([OK, bulk("v")]);
  } finally {
    c.close();
  }
}

describe("tcpkeepalive", () => {
  /** The kernel timers on the proxy's side of its server connection and of a client's, with the option or not. */
  async function timersWith(keepalive: boolean): Promise<{ server: number[]; client: number[] }> {
    const backend = await track(startRedis());
    const port = freePort();
    const settings = { listen: `127.0.0.1:${port}`, redis: true, ...(keepalive ? { tcpkeepalive: true } : {}) };
    const proxy = await track(startProxy(TARGET, poolYaml("ka", settings, [serverLine(backend.address)])));
    const c = await RawClient.connect(proxy.pools.ka!);
    try {
      await c.send(command("GET", "ka"));
      expect(await c.readReply(respFrame)).toEqual(bulk(null));
      return { server: timersTo(backend.port), client: timersOn(port) };
    } finally {
      c.close();
    }
  }

  // twemproxy's README says "tcp keepalive ... for connections to servers"; 0.5.0 itself sets it
  // on the listening socket, so its clients' connections get it and its server connections not.
  testDeliberate("on: the kernel's keepalive timer runs on the server connection", {
    buncracker: async () => {
      expect((await timersWith(true)).server).toEqual([KEEPALIVE]);
    },
    nutcracker: async () => {
      expect(await timersWith(true)).toEqual({ server: [0], client: [KEEPALIVE] });
    },
  });

  test("off (the default): no keepalive timer on either connection", async () => {
    expect(await timersWith(false)).toEqual({ server: [0], client: [0] });
  });
});

describe.skipIf(TARGET !== "buncracker")("reuseport", () => {
  test("on: two proxies listen on one port, and both serve", async () => {
    const port = freePort();
    const yaml = poolYaml("rp", { listen: `127.0.0.1:${port}`, redis: true, reuseport: true }, [serverLine(redis.address)]);
    const first = await track(startProxy(TARGET, yaml));
    // (startProxy's own check is answered by the first proxy: wait for the second listener.)
    const second = await track(startProxy(TARGET, yaml));
    await eventually("two listeners on the port", () => (listenerCount(port) === 2 ? true : undefined), 5000);
    expect(second.process.running).toBe(true);
    await roundTrip(first.pools.rp!, "rp1");
    await second.stop();
    expect(listenerCount(port)).toBe(1);
    await roundTrip(first.pools.rp!, "rp2");
  });

  test("off (the default): a second proxy on the port cannot listen, says so and exits", async () => {
    const port = freePort();
    const yaml = poolYaml("norp", { listen: `127.0.0.1:${port}`, redis: true }, [serverLine(redis.address)]);
    await track(startProxy(TARGET, yaml));
    // (startProxy's own check is answered by the first proxy.)
    const second = await track(startProxy(TARGET, yaml));
    await eventually("the second proxy exits", () => (second.process.running ? undefined : true), 5000);
    expect(second.stderr()).toContain(`pool 'norp': cannot listen on 127.0.0.1:${port}`);
    expect(listenerCount(port)).toBe(1);
  });
});

describe.skipIf(TARGET !== "buncracker")("IPv6 loopback", () => {
  const port = ((): number => {
    try {
      return freePort("::1");
    } catch {
      return 0; // no IPv6 loopback
    }
  })();
  testNeeding(port > 0 && canBind("::1", port), "IPv6 loopback ::1 is not available")("a [::1]:port listener serves over ::1", async () => {
    const yaml = poolYaml("v6", { listen: `[::1]:${port}`, redis: true }, [serverLine(redis.address)]);
    const proxy = await track(startProxy(TARGET, yaml));
    expect(proxy.pools.v6).toEqual({ host: "::1", port });
    await roundTrip({ host: "::1", port }, "v6");
  });
});
