// The reload history the dashboard shows: the last few reloads (SIGUSR1 or POST /reload), applied
// or rejected, with when, the generation they made and what changed or why they failed. main.ts
// records into it; nothing on the data path touches it.

export interface ReloadRecord {
  /** ms since the epoch. */
  readonly at: number;
  readonly applied: boolean;
  /** The config generation after it (unchanged when rejected). */
  readonly generation: number;
  /** What changed ("no changes", "pool redis: +server b") or why it was rejected. */
  readonly detail: string;
}

const KEEP = 20;

export class ReloadHistory {
  private readonly records: ReloadRecord[] = [];

  record(entry: ReloadRecord): void {
    this.records.push(entry);
    if (this.records.length > KEEP) this.records.shift();
  }

  /** Newest first. */
  list(): ReloadRecord[] {
    return [...this.records].reverse();
  }
}
