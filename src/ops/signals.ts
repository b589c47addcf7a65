// Signals as nutcracker handles them (nc_signal.c), with its log texts, plus a graceful SIGTERM:
//   SIGHUP  reopen (re-create) the log file     SIGTTIN / SIGTTOU  log level up / down
//   SIGPIPE ignored                             SIGINT             exit 1 (as nutcracker)
//   SIGTERM drain, then exit 0; a second SIGTERM exits 1 at once (in-flight requests dropped)

import { constants } from "node:os";
import { log } from "../log.ts";

export interface SignalActions {
  /** SIGTERM: stop accepting, let in-flight requests finish within the drain timeout, close
   *  every connection (the core's Proxy.drain). The process exits 0 once it settles. */
  drain(): Promise<void>;
}

type Handled = "SIGHUP" | "SIGTTIN" | "SIGTTOU" | "SIGPIPE" | "SIGINT" | "SIGTERM";

function received(signal: Handled, action: string): void {
  log.always(`signal ${constants.signals[signal]} (${signal}) received${action}`);
}

/** Installs the handlers; returns a function that removes them. */
export function installSignals(actions: SignalActions): () => void {
  let draining = false;
  const handlers: Record<Handled, () => void> = {
    SIGHUP() {
      received("SIGHUP", ", reopening log file");
      log.reopen();
    },
    SIGTTIN() {
      received("SIGTTIN", ", up logging level");
      log.levelUp();
    },
    SIGTTOU() {
      received("SIGTTOU", ", down logging level");
      log.levelDown();
    },
    SIGPIPE() {},
    SIGINT() {
      received("SIGINT", ", exiting");
      process.exit(1);
    },
    SIGTERM() {
      if (draining) {
        received("SIGTERM", " again, exiting now");
        process.exit(1);
      }
      draining = true;
      received("SIGTERM", ", draining");
      actions.drain().then(
        () => process.exit(0),
        (err: unknown) => {
          log.error(`drain failed: ${(err as Error).message}`);
          process.exit(1);
        },
      );
    },
  };
  const signals = Object.keys(handlers) as Handled[];
  for (const signal of signals) process.on(signal, handlers[signal]);
  return () => {
    for (const signal of signals) process.off(signal, handlers[signal]);
  };
}
