// buncracker: flags -> config -> proxy (or a supervisor of worker proxies), or one of
// -h / -V / -D / -t.

import { parseArgs } from "./cli/args.ts";
import type { Options } from "./cli/options.ts";
import { testConf } from "./cli/testconf.ts";
import { infoText, usage, versionBanner } from "./cli/usage.ts";
import { REPORT_INTERVAL_MS, WORKER_ENV, runSupervisor, type SupervisorMessage, type WorkerMessage, type WorkerReport } from "./cluster/supervisor.ts";
import { takeSnapshot } from "./cluster/snapshot.ts";
import { ConfigError, loadConfig } from "./conf/load.ts";
import { bufferBudget } from "./core/budget.ts";
import { Proxy } from "./core/proxy.ts";
import { bufferPool } from "./lib/bytes.ts";
import { log } from "./log.ts";
import { daemonChannel, daemonize } from "./ops/daemon.ts";
import { writePidFile } from "./ops/pidfile.ts";
import { selfCommand } from "./ops/self.ts";
import { installSignals } from "./ops/signals.ts";
import { startMetricsServer } from "./stats/http.ts";
import { ReloadHistory } from "./stats/reloads.ts";
import { startStatsServer } from "./stats/server.ts";

function fail(message: string): never {
  process.stderr.write(message + "\n");
  process.exit(1);
}

/** A reload read and staged (Proxy.stage), logged and recorded whichever way it ends. */
interface Staged {
  commit(): void;
  abandon(reason: string): void;
}

/** SIGUSR1 / POST /reload (a worker: the supervisor's orders): re-read the config and stage it;
 *  an invalid file, or one that cannot be applied, changes nothing. Every outcome goes into
 *  `history` (the dashboard's). */
function reloader(proxy: Proxy, opts: Options, history: ReloadHistory): () => Staged {
  const rejected = (reason: string): void => {
    log.error(`reload rejected, the running configuration is unchanged: ${reason}`);
    history.record({ at: Date.now(), applied: false, generation: proxy.generation, detail: reason });
  };
  return () => {
    let staged;
    try {
      // A listen address that cannot be bound: Proxy.stage changed nothing.
      staged = proxy.stage(loadConfig(opts.confFile), opts.drainTimeout);
    } catch (err) {
      const reason = err instanceof ConfigError ? err.message : (err as Error).message;
      rejected(reason);
      throw new Error(reason);
    }
    return {
      commit() {
        let summary;
        try {
          summary = staged.commit();
        } catch (err) {
          rejected((err as Error).message);
          throw err;
        }
        log.notice(`reloaded '${opts.confFile}' (generation ${proxy.generation}): ${summary}`);
        history.record({ at: Date.now(), applied: true, generation: proxy.generation, detail: summary });
      },
      abandon(reason) {
        staged.abandon();
        rejected(reason);
      },
    };
  };
}

/** A worker follows the supervisor's messages: what it missed while starting, and the two
 *  steps of each reload (cluster/reload-round.ts). */
function followSupervisor(stage: () => Staged, reloadNow: () => void): void {
  let staged: Staged | null = null;
  const reply = (message: WorkerMessage): void => {
    process.send?.(message);
  };
  process.on("message", (m: SupervisorMessage) => {
    if ("logLevel" in m) {
      log.level = m.logLevel;
      if (m.missedReload) reloadNow();
      return;
    }
    if (m.order === "stage") {
      staged?.abandon("superseded by the next reload");
      staged = null;
      try {
        staged = stage();
        reply({ reloadId: m.id, error: null });
      } catch (err) {
        reply({ reloadId: m.id, error: (err as Error).message });
      }
      return;
    }
    const s = staged;
    staged = null;
    if (s === null) return;
    try {
      if (m.order === "commit") s.commit();
      else s.abandon(m.reason ?? "another worker could not apply it");
    } catch {
      // logged by the reloader (the drain gave it up)
    }
  });
}

/** Run the proxy in this process (alone, as the daemon, or as one of the supervisor's workers). */
function serve(opts: Options, worker: number | null): void {
  const config = loadConfig(opts.confFile);
  bufferPool.setSize(opts.mbufSize);
  // Workers share the budget evenly (each runs its own clients).
  bufferBudget.limit = worker === null ? opts.bufferBudget : opts.bufferBudget / opts.workers;
  const proxy = new Proxy(config, {
    reusePort: worker !== null,
    // A unix socket path cannot be shared: worker 0 alone serves unix-socket pools.
    listenUnix: worker === null || worker === 0,
  });
  // The pid file, signal handlers, stats and metrics are all in place before the pools listen
  // (as nutcracker binds its stats port before its pools): whoever sees a pool listening can
  // rely on them.
  if (worker === null && opts.pidFile !== null) writePidFile(opts.pidFile);
  const reloads = new ReloadHistory();
  const stage = reloader(proxy, opts, reloads);
  const reload = (): void => stage().commit();
  const signalled = (): void => {
    try {
      reload();
    } catch {
      // logged by the reloader; the old configuration keeps running
    }
  };
  // A worker reloads on the supervisor's word (its own SIGUSR1 too, sent by hand).
  process.on("SIGUSR1", signalled);
  installSignals({ drain: () => proxy.drain(opts.drainTimeout) });
  if (worker !== null) {
    proxy.start();
    // The supervisor serves stats and metrics for all workers from these reports; the first,
    // sent now, also tells it this worker listens.
    const report = (): void => {
      process.send?.(takeSnapshot(proxy.stats, proxy.pools, proxy.generation, proxy.loadedAt) satisfies WorkerReport);
    };
    followSupervisor(stage, signalled);
    report();
    setInterval(report, REPORT_INTERVAL_MS).unref();
    // The supervisor is gone (killed): drain and exit rather than serve on unsupervised.
    process.on("disconnect", () => process.kill(process.pid, "SIGTERM"));
    return;
  }
  startStatsServer({
    hostname: opts.statsAddr,
    port: opts.statsPort,
    intervalMs: opts.statsInterval,
    stats: proxy.stats,
  });
  if (opts.metricsPort > 0) {
    startMetricsServer({
      hostname: opts.statsAddr,
      port: opts.metricsPort,
      stats: proxy.stats,
      health: proxy,
      reload,
      configGeneration: () => proxy.generation,
      configLoadedAt: () => proxy.loadedAt,
      reloads,
      bufferBudget: opts.bufferBudget,
    });
  }
  proxy.start();
}

async function main(argv: readonly string[]): Promise<void> {
  const opts = parseArgs(argv);
  if ("error" in opts) fail(`buncracker: ${opts.error}\n${usage()}`);
  const info = infoText(opts);
  if (info !== null) {
    process.stderr.write(info);
    process.exit(0);
  }
  if (opts.testConf) process.exit(testConf(opts.confFile));

  const workerEnv = process.env[WORKER_ENV];
  const worker = workerEnv === undefined ? null : Number(workerEnv);
  const daemon = daemonChannel();
  try {
    if (opts.daemonize && daemon === null && worker === null) {
      loadConfig(opts.confFile); // config errors are shown in the foreground
      process.exit(await daemonize());
    }
    log.level = opts.verbosity;
    log.open(opts.output);
    if (worker === null) log.always(versionBanner().trimEnd().replaceAll("\n", ", "));
    if (worker === null && opts.workers > 1) {
      const config = loadConfig(opts.confFile);
      if (opts.pidFile !== null) writePidFile(opts.pidFile);
      // Ready (for the daemon's parent) once every worker listens.
      runSupervisor(opts, config, selfCommand(), argv, {
        ready: () => daemon?.ready(),
        failed: (message) => daemon?.fail(`buncracker: ${message}`),
      });
    } else {
      serve(opts, worker);
      daemon?.ready();
    }
  } catch (err) {
    const message = `buncracker: ${(err as Error).message}`;
    daemon?.fail(message);
    if (worker !== null) process.send?.({ startError: (err as Error).message } satisfies WorkerReport);
    fail(message);
  }
}

await main(process.argv.slice(2));
