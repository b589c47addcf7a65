// buncracker: flags -> config -> proxy (or a supervisor of worker proxies), or one of
// -h / -V / -D / -t.

import { parseArgs } from "./cli/args.ts";
import type { Options } from "./cli/options.ts";
import { testConf } from "./cli/testconf.ts";
import { infoText, usage, versionBanner } from "./cli/usage.ts";
import { followSupervisor, reloader } from "./cluster/reloads.ts";
import { REPORT_INTERVAL_MS, RESTART_ENV, WORKER_ENV, runSupervisor, type WorkerReport } from "./cluster/supervisor.ts";
import { takeSnapshot } from "./cluster/snapshot.ts";
import { loadConfig, parseConfig, parseConfigSource, readConfigText, type ConfigSource } from "./conf/load.ts";
import { pemTexts } from "./conf/pem.ts";
import { bufferBudget } from "./core/budget.ts";
import { Proxy } from "./core/proxy.ts";
import { bufferPool } from "./lib/bytes.ts";
import { log } from "./log.ts";
import { daemonChannel, daemonize } from "./ops/daemon.ts";
import { writePidFile } from "./ops/pidfile.ts";
import { selfCommand } from "./ops/self.ts";
import { installSignals } from "./ops/signals.ts";
import { startMetricsServer } from "./stats/http.ts";
import { EventLoopLag } from "./stats/loop-lag.ts";
import { ownProcessFigures } from "./stats/process.ts";
import { ReloadHistory } from "./stats/reloads.ts";
import { startStatsServer } from "./stats/server.ts";

function fail(message: string): never {
  process.stderr.write(message + "\n");
  process.exit(1);
}

/** Run the proxy in this process (alone, as the daemon, or as one of the supervisor's workers,
 *  on the config the supervisor gives it). */
function serve(opts: Options, worker: number | null, source: ConfigSource | null): void {
  const config = source === null ? loadConfig(opts.confFile) : parseConfigSource(source, opts.confFile);
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
  // A worker reloads on the supervisor's orders; a SIGUSR1 sent to one by hand reloads it alone.
  process.on("SIGUSR1", signalled);
  installSignals({ drain: () => proxy.drain(opts.drainTimeout) });
  if (worker !== null) {
    // Restarted: a pool it cannot bind (a reload committed while it was away, a unix socket it
    // alone binds) must not keep it from serving the rest, in a restart loop.
    proxy.start(process.env[RESTART_ENV] === "1");
    // The supervisor's /metrics shows the workers' loop lag, memory and CPU (they serve the
    // clients); each report carries them.
    const lag = new EventLoopLag();
    lag.start();
    // The supervisor serves stats and metrics for all workers from these reports; the first,
    // sent now, also tells it this worker listens.
    const report = (): void => {
      process.send?.(takeSnapshot(proxy.stats, proxy.pools, proxy.generation, proxy.loadedAt, lag.takeWorst(), ownProcessFigures()) satisfies WorkerReport);
    };
    followSupervisor(stage);
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
      const text = readConfigText(opts.confFile);
      const config = parseConfig(text, opts.confFile);
      const source: ConfigSource = { text, pems: pemTexts(config) };
      if (opts.pidFile !== null) writePidFile(opts.pidFile);
      // Ready (for the daemon's parent) once every worker listens.
      runSupervisor(opts, config, source, selfCommand(), argv, {
        ready: () => daemon?.ready(),
        failed: (message) => daemon?.fail(`buncracker: ${message}`),
      });
    } else {
      // A worker's config comes on stdin: the supervisor's, not the files as they are now.
      serve(opts, worker, worker === null ? null : ((await Bun.stdin.json()) as ConfigSource));
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
