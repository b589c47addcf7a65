// A reload under --workers, in two steps so that it applies in every worker or in none: each
// worker that listens stages it (parses the config the supervisor read once, binds what it
// must: Proxy.stage) and says whether it could; only when every one could does each commit it,
// else each gives it up. A signal to each worker instead let one apply what another rejected
// (a unix socket only worker 0 binds), and the workers then ran different configs.

import type { ConfigSource } from "../conf/load.ts";

/** Supervisor -> worker. */
export interface ReloadOrder {
  readonly order: "stage" | "commit" | "abandon";
  readonly id: number;
  /** The config every worker stages (stage; read once by the supervisor, so a file that
   *  changes meanwhile cannot reach one worker and not another), else null. */
  readonly source: ConfigSource | null;
  /** Why it is given up (abandon). */
  readonly reason: string | null;
}

/** Worker -> supervisor: whether it staged reload `reloadId` (error null) or why not. */
export interface ReloadReply {
  readonly reloadId: number;
  readonly error: string | null;
}

/** How long a worker may take to stage a reload: one that does not answer (stopped, stuck)
 *  must not hold every later reload, nor POST /reload (its HTTP connection idles out at 10 s). */
export const STAGE_ANSWER_MS = 5000;

/** One reload over the workers that listen now. `done` resolves once every one committed it,
 *  rejects with the first worker's reason once every one gave it up. */
export class ReloadRound {
  readonly done: Promise<void>;
  private readonly waiting: Set<number>;
  private readonly staged = new Set<number>();
  private failure: string | null = null;
  private over = false;
  private settle: (failure: string | null) => void = () => {};
  private readonly timer: Timer;

  constructor(
    readonly id: number,
    source: ConfigSource,
    workers: readonly number[],
    private readonly send: (worker: number, order: ReloadOrder) => void,
  ) {
    this.waiting = new Set(workers);
    this.done = new Promise((resolve, reject) => {
      this.settle = (failure) => (failure === null ? resolve() : reject(new Error(failure)));
    });
    this.timer = setTimeout(() => this.giveUp(`no answer from worker ${[...this.waiting].join(", ")} within ${STAGE_ANSWER_MS} ms`), STAGE_ANSWER_MS);
    this.timer.unref();
    for (const w of workers) send(w, { order: "stage", id, source, reason: null });
    this.check();
  }

  replied(worker: number, reply: ReloadReply): void {
    if (reply.reloadId !== this.id) return;
    if (!this.waiting.delete(worker)) {
      // Too late (given up without it): it must not keep what it staged.
      if (this.over && reply.error === null) this.send(worker, { order: "abandon", id: this.id, source: null, reason: this.failure });
      return;
    }
    if (reply.error === null) this.staged.add(worker);
    else this.failure ??= `worker ${worker}: ${reply.error}`;
    this.check();
  }

  /** The supervisor drains (SIGTERM), or a worker did not answer in time: the workers that
   *  staged it give it up now; one that answers later is told to give it up then. */
  giveUp(reason: string): void {
    this.failure ??= reason;
    this.waiting.clear();
    this.check();
  }

  /** A worker exited: it takes no part (its replacement starts on the config that the round
   *  ends with). */
  exited(worker: number): void {
    this.staged.delete(worker);
    if (this.waiting.delete(worker)) this.check();
  }

  private check(): void {
    if (this.waiting.size > 0 || this.over) return;
    this.over = true;
    clearTimeout(this.timer);
    const order = this.failure === null ? "commit" : "abandon";
    for (const w of this.staged) this.send(w, { order, id: this.id, source: null, reason: this.failure });
    this.settle(this.failure);
  }
}
