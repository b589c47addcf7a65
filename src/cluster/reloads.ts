// A process's reloads: the reloader (SIGUSR1 / POST /reload: the file read, staged in the
// Proxy, then committed or given up, each outcome logged and recorded) and, in a worker, the
// supervisor's messages it follows (the two steps of a reload round, what it missed while it
// started).

import { loadConfig, parseConfigSource, type ConfigSource } from "../conf/load.ts";
import type { Options } from "../cli/options.ts";
import type { Proxy } from "../core/proxy.ts";
import { log } from "../log.ts";
import type { ReloadHistory } from "../stats/reloads.ts";
import type { SupervisorMessage, WorkerMessage } from "./supervisor.ts";

/** A reload read and staged (Proxy.stage), logged and recorded whichever way it ends. */
export interface Staged {
  commit(): void;
  abandon(reason: string): void;
}

/** SIGUSR1 / POST /reload: read the config (a worker: parse the one its supervisor read) and
 *  stage it; an invalid file, or one that cannot be applied, changes nothing. Every outcome goes
 *  into `history` (the dashboard's). */
export function reloader(proxy: Proxy, opts: Options, history: ReloadHistory): (source?: ConfigSource) => Staged {
  const rejected = (reason: string): void => {
    log.error(`reload rejected, the running configuration is unchanged: ${reason}`);
    history.record({ at: Date.now(), applied: false, generation: proxy.generation, detail: reason });
  };
  return (source) => {
    let staged;
    try {
      // A listen address that cannot be bound: Proxy.stage changed nothing.
      const next = source === undefined ? loadConfig(opts.confFile) : parseConfigSource(source, opts.confFile);
      staged = proxy.stage(next, opts.drainTimeout);
    } catch (err) {
      const reason = (err as Error).message;
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
export function followSupervisor(stage: (source?: ConfigSource) => Staged): void {
  let staged: Staged | null = null;
  /** The round `staged` belongs to: orders for another are stale. */
  let stagedId = 0;
  const reply = (message: WorkerMessage): void => {
    process.send?.(message);
  };
  process.on("message", (m: SupervisorMessage) => {
    if ("logLevel" in m) {
      if (m.reopenLog) log.reopen();
      log.level = m.logLevel;
      return;
    }
    if (m.order === "stage") {
      staged?.abandon("superseded by the next reload");
      staged = null;
      try {
        staged = stage(m.source ?? undefined);
        stagedId = m.id;
        reply({ reloadId: m.id, error: null });
      } catch (err) {
        reply({ reloadId: m.id, error: (err as Error).message });
      }
      return;
    }
    const s = staged;
    if (s === null || m.id !== stagedId) return;
    staged = null;
    try {
      if (m.order === "commit") s.commit();
      else s.abandon(m.reason ?? "another worker could not apply it");
    } catch {
      // logged by the reloader (the drain gave it up)
    }
  });
}

