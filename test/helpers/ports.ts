// Loopback ports for test processes, and waiting until something listens on them.
//
// Ports are drawn from 20000-32000, below Linux's ephemeral range (32768+), so a port we hand
// out is never also the local port of some unrelated outgoing connection. The vector ports
// 30500-30530 (distribution.json) and nutcracker's defaults are never handed out.

import { existsSync } from "node:fs";
import { connectSocket, type Endpoint } from "./client.ts";

const FIRST_PORT = 20000;
const LAST_PORT = 32000;
const RESERVED = (port: number): boolean =>
  (port >= 30500 && port <= 30530) || port === 22121 || port === 22122 || port === 22222;

const handedOut = new Set<number>();

/** True when `port` can be bound on `host` right now (bound and released at once). */
export function canBind(host: string, port: number): boolean {
  try {
    const server = Bun.listen({ hostname: host, port, socket: { data() {} } });
    server.stop(true);
    return true;
  } catch {
    return false;
  }
}

/** A port on `host` that is free now and was not handed out before in this process. */
export function freePort(host = "127.0.0.1"): number {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const port = FIRST_PORT + Math.floor(Math.random() * (LAST_PORT - FIRST_PORT));
    if (RESERVED(port) || handedOut.has(port)) continue;
    if (!canBind(host, port)) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`freePort: no free port found on ${host}`);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** True when a connection to the endpoint succeeds now. */
async function canConnect(target: Endpoint): Promise<boolean> {
  try {
    const socket = await connectSocket(target, { data() {} });
    socket.end();
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits until `host:port` accepts connections. Throws after `timeoutMs`, or as soon as
 * `stillAlive()` returns false (the process that should listen has died).
 */
export async function waitForPort(
  host: string,
  port: number,
  timeoutMs = 5000,
  stillAlive: () => boolean = () => true,
): Promise<void> {
  await waitFor(`${host}:${port}`, () => canConnect({ host, port }), timeoutMs, stillAlive);
}

/** Waits until the unix socket at `path` exists and accepts connections. */
export async function waitForUnixSocket(
  path: string,
  timeoutMs = 5000,
  stillAlive: () => boolean = () => true,
): Promise<void> {
  await waitFor(path, async () => existsSync(path) && (await canConnect({ path })), timeoutMs, stillAlive);
}

async function waitFor(
  what: string,
  ready: () => Promise<boolean>,
  timeoutMs: number,
  stillAlive: () => boolean,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ready()) return;
    if (!stillAlive()) throw new Error(`nothing listens on ${what}: the process exited`);
    if (Date.now() > deadline) throw new Error(`nothing listens on ${what} after ${timeoutMs} ms`);
    await sleep(20);
  }
}
