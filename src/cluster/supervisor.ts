// --workers N: the supervisor starts N worker processes running the proxy on the same command
// line (each listen port shared with SO_REUSEPORT), restarts one that dies with a backoff,
// forwards signals, and serves the stats port and /metrics as the sum over its workers.

import type { Subprocess } from "bun";
import type { Options } from "../cli/options.ts";
import type { Config } from "../conf/types.ts";
import { readConfigSource, type ConfigSource } from "../conf/load.ts";
import { log } from "../log.ts";
import { startMetricsServer, type PoolHealth } from "../stats/http.ts";
import type { WorkerProcesses } from "../stats/process.ts";
import { startStatsServer, type RunningServer } from "../stats/server.ts";
import { ProxyStats } from "../stats/store.ts";
import { ReloadRound, type ReloadOrder, type ReloadReply } from "./reload-round.ts";
import { retire, sumHealth, sumSnapshots, type StatsSnapshot } from "./snapshot.ts";

/** Set in a worker's environment to its index (0..N-1). */
export const WORKER_ENV = "BUNCRACKER_WORKER";
/** Set ("1") in the environment of a worker started again after every worker had started: it
 *  serves what it can bind of the config the others run (Proxy.start partial). */
export const RESTART_ENV = "BUNCRACKER_RESTART";
/** How often a worker reports its counters (it also reports once as soon as it listens). */
export const REPORT_INTERVAL_MS = 1000;

/** What a worker sends over IPC: its counters, or why it could not start. */
export type WorkerReport = StatsSnapshot | { readonly startError: string };
export type WorkerMessage = WorkerReport | ReloadReply;

/** What the supervisor sends a worker that listens and missed something while it started: a
 *  log level moved or a log rotation (SIGHUP). It was not signalled then: before its handlers
 *  are installed, SIGHUP would kill it. (A reload it does not miss: the round waits for it.) */
export interface CatchUp {
  readonly logLevel: number;
  /** A SIGHUP came after its start: it may have opened the file the rotation moved away. */
  readonly reopenLog: boolean;
}

export type SupervisorMessage = CatchUp | ReloadOrder;

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** A worker that ran this long before dying is restarted without waiting. */
const HEALTHY_RUN_MS = 60_000;

export interface SupervisorEvents {
  /** Every worker has started and listens (the daemon's parent may exit 0). */
  ready(): void;
  /** A worker failed before every worker had started: the supervisor exits 1 after this. */
  failed(message: string): void;
}

interface Worker {
  proc: Subprocess | null;
  startedAt: number;
  restarts: number;
  /** Reported at least once since its last start (so it listens, and handles signals). */
  reported: boolean;
  /** A SIGHUP came while it started: it reopens its log once it reports. */
  missedReopen: boolean;
}

/** The CPU a worker that exited spent: its resource usage as it was reaped (its last report is
 *  up to a second old, and one that never reported has none), else what it last reported. */
function spentCpuSeconds(proc: Subprocess, reported: number): number {
  const usage = proc.resourceUsage();
  return usage === undefined ? reported : Math.max(reported, Number(usage.cpuTime.total) / 1e6);
}

/** `command` starts this program again (ops/self.ts selfCommand); `argv` are its flags. */
export function runSupervisor(
  opts: Options,
  config: Config,
  /** config as read: what every worker starts on until a reload commits another. */
  source: ConfigSource,
  command: readonly string[],
  argv: readonly string[],
  events: SupervisorEvents,
): void {
  const workers: Worker[] = [];
  const snapshots = new Map<number, StatsSnapshot>();
  /** What workers that died had counted: added to the sum so counters never go back. */
  let retired: StatsSnapshot | null = null;
  /** The CPU workers that died had spent (stats/process.ts WorkerProcesses.retiredCpuSeconds). */
  let retiredCpuSeconds = 0;
  const stats = new ProxyStats([]);
  let started = false;
  let stopping = false;
  const servers: RunningServer[] = [];

  const each = (signal: NodeJS.Signals): void => {
    for (const w of workers) w.proc?.kill(signal);
  };
  /** SIGHUP/SIGTTIN/SIGTTOU go to workers that listen: one still starting may not handle them
   *  yet (SIGHUP would kill it); it catches up when it reports. */
  const forward = (signal: NodeJS.Signals): void => {
    for (const w of workers) {
      if (w.reported) w.proc?.kill(signal);
      else if (signal === "SIGHUP") w.missedReopen = true;
    }
  };

  /** The generation of `source` (1, +1 per committed round) and when it was read: the
   *  workers' own restart at 1 (a restarted one starts on `source`). */
  let generation = 1;
  let loadedAt = Date.now();
  let round: ReloadRound | null = null;
  let rounds = 0;
  /** The last reload asked for: the next one starts once it is over (one at a time). */
  let lastReload: Promise<void> = Promise.resolve();
  const refused = (err: Error): never => {
    log.error(`reload applied by no worker: ${err.message}`);
    throw err;
  };
  /** Sends `w` what it missed while it started, if anything (it listens, so it handles it). */
  const catchUp = (w: Worker): void => {
    if (log.level === opts.verbosity && !w.missedReopen) return;
    w.proc?.send({ logLevel: log.level, reopenLog: w.missedReopen } satisfies SupervisorMessage);
    w.missedReopen = false;
  };
  const runRound = async (): Promise<void> => {
    if (stopping) refused(new Error("the proxy is draining (SIGTERM)"));
    let read: { source: ConfigSource; invalid: string | null } = { source, invalid: null };
    try {
      read = readConfigSource(opts.confFile);
    } catch (err) {
      refused(err as Error);
    }
    const next = read.source;
    // Every running worker takes part, one still starting once it listens (ReloadRound.started):
    // applied alone after the others, it could fail where they did not. One waiting to restart
    // starts after the round (restart), on the config the round ends with.
    const running = [...workers.keys()].filter((i) => workers[i]!.proc !== null);
    // Each worker says why a file is invalid; with none to ask, the supervisor does (else every
    // worker would restart on it, and fail).
    if (running.length === 0 && read.invalid !== null) refused(new Error(read.invalid));
    const listening = running.filter((i) => workers[i]!.reported);
    const starting = running.filter((i) => !workers[i]!.reported);
    const r = new ReloadRound(++rounds, next, listening, starting, (i, order) => workers[i]!.proc?.send(order satisfies SupervisorMessage));
    round = r;
    const committed = await r.done.catch(refused);
    source = next;
    generation++;
    loadedAt = Date.now();
    log.notice(`reload applied by ${committed} workers`);
  };
  /** SIGUSR1 / POST /reload: stage the file in every running worker, then commit it in all or
   *  give it up in all (reload-round.ts). */
  const reload = (): Promise<void> => {
    lastReload = lastReload.catch(() => {}).then(runRound);
    return lastReload;
  };

  const refresh = (): void => sumSnapshots(stats, snapshots.values(), retired);
  /** The live workers' memory, CPU and loop lag as they last reported, their start times, and
   *  the dead ones' CPU. */
  const workerProcesses = (): WorkerProcesses => ({
    live: [...snapshots].sort(([a], [b]) => a - b).map(([index, s]) => ({
      index,
      pid: workers[index]!.proc?.pid ?? 0,
      startedAt: workers[index]!.startedAt,
      loopLagSeconds: s.loopLagSeconds,
      ...s.process,
    })),
    retiredCpuSeconds,
  });

  const received = (i: number, report: WorkerMessage): void => {
    const w = workers[i]!;
    if ("reloadId" in report) {
      // Only the latest round's; an older one's late answers were given up with it (a worker
      // staging a new round drops what it staged before).
      round?.replied(i, report);
      return;
    }
    if ("startError" in report) {
      log.error(`worker ${i}: ${report.startError}`);
      if (!started) startFailed(`worker ${i} could not start: ${report.startError}`);
      return;
    }
    snapshots.set(i, report);
    if (w.reported) return;
    w.reported = true;
    catchUp(w);
    round?.started(i);
    refresh();
    if (!started && workers.every((x) => x.reported)) {
      started = true;
      log.notice(`all ${workers.length} workers listening`);
      events.ready();
    }
  };

  const startFailed = (message: string): void => {
    stopping = true;
    each("SIGKILL");
    events.failed(message);
    log.error(message);
    log.flush();
    process.exit(1);
  };

  const spawn = (i: number): void => {
    const w = workers[i]!;
    w.startedAt = Date.now();
    w.reported = false;
    // It opens the log file as it is now.
    w.missedReopen = false;
    w.proc = Bun.spawn({
      cmd: [...command, ...argv],
      env: { ...process.env, [WORKER_ENV]: String(i), [RESTART_ENV]: started ? "1" : "0" },
      // Not the file as it is now: an edit not reloaded yet must not reach one worker alone.
      stdio: [new Blob([JSON.stringify(source)]), "inherit", "inherit"],
      // No report from a worker that has exited (read after its exit, it would count it twice
      // beside `retired`, and the sum would go back at its successor's first); its reason, yes.
      ipc: (message: WorkerMessage, from) => {
        if (from === w.proc || "startError" in message) received(i, message);
      },
      onExit(proc, code, signal) {
        w.proc = null;
        round?.exited(i);
        const last = snapshots.get(i);
        snapshots.delete(i);
        if (last !== undefined) retired = retire(retired, last);
        retiredCpuSeconds += spentCpuSeconds(proc, last?.process.cpuSeconds ?? 0);
        if (stopping) {
          if (workers.every((x) => x.proc === null)) finish();
          return;
        }
        const how = signal ?? `code ${code}`;
        if (!started) {
          startFailed(`worker ${i} exited (${how}) before it was listening`);
          return;
        }
        const ranFor = Date.now() - w.startedAt;
        w.restarts = ranFor > HEALTHY_RUN_MS ? 0 : w.restarts + 1;
        const delay =
          w.restarts === 0 ? 0 : Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (w.restarts - 1));
        log.error(`worker ${i} exited (${how}); restarting it in ${delay} ms`);
        setTimeout(() => restart(i), delay);
      },
    });
  };

  /** Starts worker `i` again once no reload round runs (one queued too): it starts on the
   *  config the rounds end with, not on the one they are replacing. */
  const restart = (i: number): void => {
    void lastReload.catch(() => {}).then(() => {
      if (!stopping) spawn(i);
    });
  };

  const finish = (): void => {
    for (const s of servers) s.stop();
    log.notice("all workers exited");
    process.exit(0);
  };

  // Until the first report, every configured pool is known but not yet listening.
  const starting: PoolHealth[] = config.pools.map((p) => ({
    name: p.name,
    listening: false,
    sentinels: p.sentinels.length > 0,
    // A pool that follows sentinels is where they say, known once a worker reports.
    servers: p.servers.map((s) => ({ name: s.statsName, ejected: false, address: p.sentinels.length > 0 ? null : s.addr.spec, failures: 0 })),
  }));
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
        bufferBudget: opts.bufferBudget,
        health: {
          health: () => {
            const pools = snapshots.size === 0 ? starting : sumHealth(snapshots.values());
            // Draining: every worker stops accepting now, which their reports say a second late.
            return stopping ? pools.map((p) => ({ ...p, listening: false })) : pools;
          },
        },
        reload,
        workers: workerProcesses,
        configGeneration: () => generation,
        configLoadedAt: () => loadedAt,
      }),
    );
  }

  // Workers only once the stats and metrics ports are bound (as a single process binds them
  // before its pools): one that cannot be fails the start before any pool listens.
  for (let i = 0; i < opts.workers; i++) {
    workers.push({ proc: null, startedAt: 0, restarts: 0, reported: false, missedReopen: false });
    spawn(i);
  }
  log.notice(`supervisor ${process.pid} started ${opts.workers} workers`);

  // The supervisor logs too (worker exits): it reopens its own log and moves its own level.
  process.on("SIGHUP", () => {
    log.reopen();
    forward("SIGHUP");
  });
  process.on("SIGTTIN", () => {
    log.levelUp();
    forward("SIGTTIN");
  });
  process.on("SIGTTOU", () => {
    log.levelDown();
    forward("SIGTTOU");
  });
  process.on("SIGUSR1", () => {
    reload().catch(() => {}); // logged by runRound
  });
  process.on("SIGPIPE", () => {});
  process.on("SIGTERM", () => {
    if (stopping) {
      each("SIGKILL");
      process.exit(1);
    }
    stopping = true;
    log.notice("SIGTERM: draining workers");
    // Not committed now: a worker that has begun draining would refuse it anyway.
    round?.giveUp("the proxy is draining (SIGTERM)");
    each("SIGTERM");
    if (workers.every((w) => w.proc === null)) finish();
  });
  process.on("SIGINT", () => {
    stopping = true;
    each("SIGKILL");
    process.exit(1);
  });
}
