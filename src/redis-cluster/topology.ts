// Keeps a redis_cluster pool's slot map current: loaded at start from any seed, then again
// periodically, after a MOVED (a redirection means the map is stale) and after a connection to
// a node failed (a failover moves masters). Loads never overlap: a refresh asked for while one
// runs starts once it ends, and refreshes start at most every MIN_GAP_MS, so a reshard's stream
// of MOVED replies costs a handful of loads, not one per reply. A load that fails keeps the
// map in use (logged, counted); nodes are asked in turn: the map's masters, its replicas, then
// the configured seeds.

import { LOG_INFO, log } from "../log.ts";
import { nodeAddress, type SlotMap } from "./slot-map.ts";
import { loadFromAny, type LoadOptions, type NodeAddress } from "./topology-loader.ts";

/** Between two loads' starts, at least this long. */
const MIN_GAP_MS = 100;
/** Without any reason to, the map is reloaded this often. */
export const PERIODIC_MS = 10_000;
/** Until a first map is loaded, the seeds are asked this often. */
const FIRST_RETRY_MS = 500;

export interface TopologyOptions extends LoadOptions {
  /** For log lines. */
  readonly pool: string;
  readonly seeds: readonly NodeAddress[];
  readonly periodicMs?: number;
}

export class ClusterTopology {
  /** The map in use; null until the first load succeeds. */
  map: SlotMap | null = null;
  /** Loads that gave a map, and loads that failed. */
  refreshes = 0;
  refreshFailures = 0;
  private loading = false;
  /** A refresh was asked for while loading (or too soon after the last): run one more. */
  private pending = false;
  private lastStart = 0;
  private gapTimer: Timer | null = null;
  private readonly periodic: Timer;
  private stopped = false;

  constructor(
    private opts: TopologyOptions,
    /** Called with every new map (the pool re-points its servers). */
    private readonly onMap: (map: SlotMap) => void,
    /** Called when a load fails (the map in use stays). */
    private readonly onFailure: () => void = () => {},
  ) {
    this.periodic = setInterval(() => this.refresh(), opts.periodicMs ?? PERIODIC_MS);
    this.periodic.unref();
    this.refresh();
  }

  /** New seeds or password (a reload): used from the next load on, which starts soon. */
  reconfigure(opts: TopologyOptions): void {
    this.opts = opts;
    this.refresh();
  }

  /** Loads the map again soon (at once, unless a load runs or one started under MIN_GAP_MS ago). */
  refresh(): void {
    if (this.stopped) return;
    if (this.loading || this.gapTimer !== null) {
      this.pending = true;
      return;
    }
    const wait = this.lastStart + MIN_GAP_MS - performance.now();
    if (wait > 0) {
      this.gapTimer = setTimeout(() => {
        this.gapTimer = null;
        this.refresh();
      }, wait);
      this.gapTimer.unref();
      return;
    }
    void this.load();
  }

  private candidates(): NodeAddress[] {
    const seen = new Set<string>();
    const out: NodeAddress[] = [];
    const add = (n: NodeAddress): void => {
      const key = `${n.host}:${n.port}`;
      if (!seen.has(key)) {
        seen.add(key);
        out.push(n);
      }
    };
    for (const n of this.map?.nodes() ?? []) add(n);
    for (const n of this.opts.seeds) add(n);
    return out;
  }

  private async load(): Promise<void> {
    this.loading = true;
    this.pending = false;
    this.lastStart = performance.now();
    try {
      const { map, from } = await loadFromAny(this.candidates(), this.opts);
      if (this.stopped) return;
      const previous = this.map;
      this.map = map;
      this.refreshes++;
      if (previous === null || previous.epoch !== map.epoch || log.level >= LOG_INFO) {
        const masters = map.shards.map((s) => nodeAddress(s.master!)).join(" ");
        log.notice(`pool '${this.opts.pool}': slot map from ${from.host}:${from.port}, epoch ${map.epoch}, masters ${masters}, ${map.uncovered()} slots uncovered`);
      }
      this.onMap(map);
    } catch (error) {
      this.refreshFailures++;
      this.onFailure();
      log.warn(`pool '${this.opts.pool}': ${(error as Error).message}`);
      if (this.map === null) this.pending = true;
    } finally {
      this.loading = false;
    }
    if (this.pending && !this.stopped) {
      if (this.map === null) {
        this.gapTimer = setTimeout(() => {
          this.gapTimer = null;
          this.refresh();
        }, FIRST_RETRY_MS);
        this.gapTimer.unref();
      } else {
        this.refresh();
      }
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.periodic);
    if (this.gapTimer !== null) clearTimeout(this.gapTimer);
  }
}
