// --workers N: the supervisor starts N worker processes running the proxy on the same command
// line (each listen port shared with SO_REUSEPORT), restarts one that dies with a backoff,
// forwards signals, and serves the stats port and /metrics as the sum over its workers.

import type { Subprocess } from "bun";
import type { Options } from "../cli/options.ts";
import { log } from "../log.ts";
import { startMetricsServer } from "../stats/http.ts";
import { startStatsServer, type RunningServer } from "../stats/server.ts";
import { ProxyStats } from "../stats/store.ts";
import { sumHealth, sumSnapshots, type StatsSnapshot } from "./snapshot.ts";

/** Set in a worker's environment to its index (0..N-1). */
export const WORKER_ENV = "BUNCRACKER_WORKER";
/** How often a worker reports its counters. */
export const REPORT_INTERVAL_MS = 1000;

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** A worker that ran this long before dying is restarted without waiting. */
const HEALTHY_RUN_MS = 60_000;
const FORWARDED = ["SIGHUP", "SIGTTIN", "SIGTTOU", "SIGUSR1"] as const;

interface Worker {
  proc: Subprocess | null;
  startedAt: number;
  restarts: number;
}

export function runSupervisor(opts: Options, mainPath: string, argv: readonly string[]): void {
  const workers: Worker[] = [];
  const snapshots = new Map<number, StatsSnapshot>();
  const stats = new ProxyStats([]);
  let stopping = false;
  let servers: RunningServer[] = [];

  const spawn = (i: number): void => {
    const w = workers[i]!;
    w.startedAt = Date.now();
    w.proc = Bun.spawn({
      cmd: [process.execPath, mainPath, ...argv],
      env: { ...process.env, [WORKER_ENV]: String(i) },
      stdio: ["ignore", "inherit", "inherit"],
      ipc(message: StatsSnapshot) {
        snapshots.set(i, message);
      },
      onExit(_proc, code, signal) {
        w.proc = null;
        snapshots.delete(i);
        if (stopping) {
          if (workers.every((x) => x.proc === null)) finish();
          return;
        }
        const ranFor = Date.now() - w.startedAt;
        w.restarts = ranFor > HEALTHY_RUN_MS ? 0 : w.restarts + 1;
        const delay =
          w.restarts === 0 ? 0 : Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (w.restarts - 1));
        log.error(
          `worker ${i} exited (${signal ?? `code ${code}`}); restarting it in ${delay} ms`,
        );
        setTimeout(() => spawn(i), delay);
      },
    });
  };

  const finish = (): void => {
    for (const s of servers) s.stop();
    log.notice("all workers exited");
    process.exit(0);
  };

  const each = (signal: NodeJS.Signals): void => {
    for (const w of workers) w.proc?.kill(signal);
  };

  for (let i = 0; i < opts.workers; i++) {
    workers.push({ proc: null, startedAt: 0, restarts: 0 });
    spawn(i);
  }
  log.notice(`supervisor ${process.pid} started ${opts.workers} workers`);

  const refresh = (): void => sumSnapshots(stats, snapshots.values());
  setInterval(refresh, REPORT_INTERVAL_MS).unref();
  servers.push(
    startStatsServer({
      hostname: opts.statsAddr,
      port: opts.statsPort,
      intervalMs: opts.statsInterval,
      stats,
    }),
  );
  if (opts.metricsPort > 0) {
    servers.push(
      startMetricsServer({
        hostname: opts.statsAddr,
        port: opts.metricsPort,
        stats,
        health: { health: () => sumHealth(snapshots.values()) },
        reload: () => each("SIGUSR1"),
        configGeneration: () => Math.max(1, ...[...snapshots.values()].map((s) => s.generation)),
      }),
    );
  }

  for (const signal of FORWARDED) process.on(signal, () => each(signal));
  process.on("SIGPIPE", () => {});
  process.on("SIGTERM", () => {
    if (stopping) {
      each("SIGKILL");
      process.exit(1);
    }
    stopping = true;
    log.notice("SIGTERM: draining workers");
    each("SIGTERM");
    if (workers.every((w) => w.proc === null)) finish();
  });
  process.on("SIGINT", () => {
    stopping = true;
    each("SIGKILL");
    process.exit(1);
  });
  servers = servers.slice();
}
