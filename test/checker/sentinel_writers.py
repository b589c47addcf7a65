"""Writers through redis-py's own Sentinel support, straight to redis: the comparison side of
test/checker/failover.ts (run by it with Debian's /usr/bin/python3 and its python3-redis).

Each writer thread talks to one master through `Sentinel(...).master_for(name)` (redis-py's
sentinel-aware client with its default options), alternating `SET <prefix>:<w>:<i> <i>` and
`INCR <prefix>:<w>:n`, one request at a time, and records what was acknowledged and when.

Commands on stdin, one a line:
  failover <name>   a SENTINEL FAILOVER of <name> is being sent now (its time is recorded)
  stop              stop writing, read every acknowledged write back from the masters the
                    sentinels name now, print one JSON line of figures, exit
"""

import argparse
import json
import sys
import threading
import time
from array import array

from redis.sentinel import Sentinel

PAUSE_S = 0.001  # between a writer's requests: bounds the keys a long run leaves in redis


class Writer(threading.Thread):
    def __init__(self, sentinel, name, prefix, wid):
        super().__init__(daemon=True)
        self.name = name
        self.prefix = f"{prefix}:{wid}"
        self.client = sentinel.master_for(name)
        self.running = True
        # Acknowledged SETs: their index and time (time.time()).
        self.set_index = array("q")
        self.set_time = array("d")
        self.max_incr = 0
        self.acked = 0
        self.errors = {}

    def run(self):
        i = 0
        while self.running:
            try:
                if i % 2 == 0:
                    self.client.set(f"{self.prefix}:{i}", str(i))
                    self.set_index.append(i)
                    self.set_time.append(time.time())
                else:
                    n = self.client.incr(f"{self.prefix}:n")
                    self.max_incr = max(self.max_incr, n)
                self.acked += 1
            except Exception as error:  # every failure is counted, by its text
                text = f"{type(error).__name__}: {error}"[:120]
                self.errors[text] = self.errors.get(text, 0) + 1
                time.sleep(0.01)
            i += 1
            time.sleep(PAUSE_S)


def check(writer, master):
    """(acknowledged writes lost, [(time, kept)] of its acknowledged SETs)."""
    host, port = master
    from redis import Redis

    r = Redis(host=host, port=port)
    lost = 0
    kept = []
    keys = [f"{writer.prefix}:{i}" for i in writer.set_index]
    for at in range(0, len(keys), 1000):
        values = r.mget(keys[at : at + 1000])
        for k, v in enumerate(values):
            j = at + k
            ok = v is not None and int(v) == writer.set_index[j]
            if not ok:
                lost += 1
            kept.append((writer.set_time[j], ok))
    n = int(r.get(f"{writer.prefix}:n") or 0)
    if n < writer.max_incr:
        lost += writer.max_incr - n
    r.close()
    return lost, kept


def outage(kept, start, end):
    """Seconds from a failover at `start` until acknowledged writes were kept again: the first
    kept acknowledgement after the last lost one before `end`, or, with none lost, the end of
    the longest pause between acknowledgements."""
    window = [(t, ok) for t, ok in kept if start <= t < end]
    if not window:
        return None
    lost_at = [t for t, ok in window if not ok]
    if lost_at:
        after = [t for t, ok in window if ok and t > lost_at[-1]]
        return (after[0] - start) if after else None
    gap, resumed, previous = 0.0, window[0][0] - start, start
    for t, _ in window:
        if t - previous > gap:
            gap, resumed = t - previous, t - start
        previous = t
    return resumed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sentinels", required=True, help="host:port,host:port,...")
    parser.add_argument("--names", required=True, help="master names, comma-separated")
    parser.add_argument("--writers", type=int, default=2, help="writer threads per master")
    parser.add_argument("--prefix", default="py")
    args = parser.parse_args()
    sentinels = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in args.sentinels.split(","))]
    names = args.names.split(",")
    sentinel = Sentinel(sentinels)
    writers = [Writer(sentinel, name, f"{args.prefix}:{name}", w) for name in names for w in range(args.writers)]
    for w in writers:
        w.start()
    print("ready", flush=True)

    failovers = []  # (time, name)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["failover"]:
            failovers.append((time.time(), words[1]))
        elif words[:1] == ["stop"]:
            break
    ended = time.time()
    for w in writers:
        w.running = False
    for w in writers:
        w.join(10)

    masters = {name: sentinel.discover_master(name) for name in names}
    lost = 0
    errors = {}
    kept_by_name = {name: [] for name in names}
    for w in writers:
        n, kept = check(w, masters[w.name])
        lost += n
        kept_by_name[w.name].extend(kept)
        for text, count in w.errors.items():
            errors[text] = errors.get(text, 0) + count
    outages = []
    for k, (start, name) in enumerate(failovers):
        end = failovers[k + 1][0] if k + 1 < len(failovers) else ended
        kept = sorted(kept_by_name[name])
        o = outage(kept, start, end)
        if o is not None:
            outages.append(round(o, 3))
    print(
        json.dumps(
            {
                "acked": sum(w.acked for w in writers),
                "lost": lost,
                "errors": errors,
                "failovers": len(failovers),
                "kept_again_s": outages,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
