// A client that sends its requests and then half-closes (FIN, as `printf ... | nc -N` does)
// still gets every reply it is owed before the proxy closes the connection, as with
// twemproxy 0.5.0 (which marks the connection eof and closes once its replies are out).

import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { createConnection } from "node:net";
import { startMemcached, startRedis, type Backend } from "../helpers/backends.ts";
import type { Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { freePort } from "../helpers/ports.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";

setDefaultTimeout(60_000);

let backends: Backend[] = [];
let proxy: RunningProxy;

beforeAll(async () => {
  backends = await Promise.all([startRedis(), startRedis(), startMemcached(), startMemcached()]);
  const [r1, r2, m1, m2] = backends;
  proxy = await startProxy(
    TARGET,
    poolYaml("r", { listen: `127.0.0.1:${freePort()}`, redis: true }, [
      serverLine(r1!.address, 1, "r1"),
      serverLine(r2!.address, 1, "r2"),
    ]) +
      poolYaml("m", { listen: `127.0.0.1:${freePort()}` }, [
        serverLine(m1!.address, 1, "m1"),
        serverLine(m2!.address, 1, "m2"),
      ]),
  );
});

afterAll(async () => {
  await proxy?.stop();
  await Promise.all(backends.map((b) => b.stop()));
});

/** Send `request`, half-close, and collect everything until the proxy closes. */
function sendThenHalfClose(endpoint: Endpoint, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const target = "path" in endpoint ? { path: endpoint.path } : { host: endpoint.host, port: endpoint.port };
    const socket = createConnection({ ...target, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close after ${Buffer.concat(chunks).toString("latin1")}`));
    }, 10_000);
    socket.on("connect", () => socket.end(request));
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("end", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString("latin1"));
    });
    socket.on("error", reject);
  });
}

test("redis: the replies to a pipeline sent before FIN all arrive, split ones included", async () => {
  const reply = await sendThenHalfClose(
    proxy.pools.r!,
    "*5\r\n$4\r\nMSET\r\n$2\r\nh1\r\n$1\r\na\r\n$2\r\nh2\r\n$1\r\nb\r\n" +
      "*3\r\n$4\r\nMGET\r\n$2\r\nh1\r\n$2\r\nh2\r\n*2\r\n$3\r\nGET\r\n$2\r\nh2\r\n",
  );
  expect(reply).toBe("+OK\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nb\r\n");
});

test.skipIf(TARGET !== "buncracker")("redis: a transaction sent before FIN runs on its connection and is answered", async () => {
  const reply = await sendThenHalfClose(
    proxy.pools.r!,
    "*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$3\r\nfin\r\n$1\r\n1\r\n*2\r\n$4\r\nINCR\r\n$3\r\nfin\r\n*1\r\n$4\r\nEXEC\r\n",
  );
  expect(reply).toBe("+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n");
});

test("memcached: the replies to a pipeline sent before FIN all arrive", async () => {
  const reply = await sendThenHalfClose(
    proxy.pools.m!,
    "set h1 0 0 1\r\na\r\nset h2 0 0 1\r\nb\r\nget h1 h2\r\n",
  );
  expect(reply).toBe("STORED\r\nSTORED\r\nVALUE h1 0 1\r\na\r\nVALUE h2 0 1\r\nb\r\nEND\r\n");
});
