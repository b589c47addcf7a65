// buncracker with --workers N: start the supervisor and wait until every worker listens, find the
// workers, and open clients knowing which worker accepted each one.

import { RawClient } from "./client.ts";
import { waitFor } from "./ops.ts";
import { childPids, connectionOwner, environOf, listenerCount } from "./procfs.ts";
import { startProxy, type ProxyOptions, type RunningProxy } from "./proxy.ts";

export interface Supervised {
  readonly proxy: RunningProxy;
  /** The worker processes now, by index (BUNCRACKER_WORKER); waits while one is restarting. */
  workers(): Promise<number[]>;
}

/** Starts buncracker with `--workers n`; resolves once every TCP pool has n listeners. */
export async function startWorkers(yamlText: string, n: number, opts: ProxyOptions = {}): Promise<Supervised> {
  const proxy = await startProxy("buncracker", yamlText, {
    ...opts,
    args: ["--workers", String(n), ...(opts.args ?? [])],
  });
  const supervised: Supervised = {
    proxy,
    workers: () =>
      waitFor(`${n} workers`, () => {
        const byIndex: number[] = [];
        for (const pid of childPids(proxy.pid)) {
          const index = environOf(pid, "BUNCRACKER_WORKER");
          if (index !== undefined) byIndex[Number(index)] = pid;
        }
        return byIndex.filter(Boolean).length === n ? byIndex : undefined;
      }),
  };
  for (const endpoint of Object.values(proxy.pools)) {
    if ("port" in endpoint) await waitForListeners(endpoint.port, n);
  }
  return supervised;
}

/** Waits until `port` has `n` listening sockets (one per worker). */
export function waitForListeners(port: number, n: number, timeoutMs = 20_000): Promise<true> {
  return waitFor(`${n} listeners on port ${port}`, () => listenerCount(port) === n, timeoutMs, () =>
    `${listenerCount(port)} listening`,
  );
}

export interface OwnedClient {
  readonly client: RawClient;
  /** The worker pid that accepted the connection. */
  readonly owner: number;
}

/** Opens `count` clients to the TCP `port` and finds the worker (among `workers`) serving each. */
export async function ownedClients(port: number, count: number, workers: readonly number[]): Promise<OwnedClient[]> {
  const clients: OwnedClient[] = [];
  for (let i = 0; i < count; i++) {
    const client = await RawClient.connect({ host: "127.0.0.1", port });
    const owner = await waitFor(`the worker that accepted client ${i}`, () => connectionOwner(port, client.localPort, workers) ?? undefined);
    clients.push({ client, owner });
  }
  return clients;
}
