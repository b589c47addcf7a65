// A reload under --workers, in two steps so that it applies in every worker or in none: each
// worker (one still starting once it listens) stages it (parses the config the supervisor read
// once, binds what it must: Proxy.stage) and says whether it could; only when every one could
// does each commit it, else each gives it up. A signal to each worker instead let one apply what another rejected
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

/** One reload over the workers that run now: those that listen are told to stage it at once,
 *  those still starting once they listen (started), so that no worker applies it alone after
 *  the others. `done` resolves with how many committed it once every one did, rejects with the
 *  first worker's reason once every one gave it up. */
export class ReloadRound {
  readonly done: Promise<number>;
  private readonly waiting: Set<number>;
  /** Starting workers not told to stage it yet. */
  private readonly unstarted: Set<number>;
  private readonly staged = new Set<number>();
  private failure: string | null = null;
  private over = false;
  private settle: (failure: string | null) => void = () => {};
  private readonly timer: Timer;

  constructor(
    readonly id: number,
    private readonly source: ConfigSource,
    listening: readonly number[],
    starting: readonly number[],
    private readonly send: (worker: number, order: ReloadOrder) => void,
  ) {
    this.waiting = new Set([...listening, ...starting]);
    this.unstarted = new Set(starting);
    this.done = new Promise((resolve, reject) => {
      this.settle = (failure) => (failure === null ? resolve(this.staged.size) : reject(new Error(failure)));
    });
    this.timer = setTimeout(() => this.giveUp(`no answer from worker ${[...this.waiting].join(", ")} within ${STAGE_ANSWER_MS} ms`), STAGE_ANSWER_MS);
    this.timer.unref();
    for (const w of listening) this.stage(w);
    this.check();
  }

  /** A worker that was starting listens now (its first report): it stages it too. */
  started(worker: number): void {
    if (this.unstarted.delete(worker) && !this.over) this.stage(worker);
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
    this.unstarted.delete(worker);
    this.staged.delete(worker);
    if (this.waiting.delete(worker)) this.check();
  }

  private stage(worker: number): void {
    this.send(worker, { order: "stage", id: this.id, source: this.source, reason: null });
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
