#!/usr/bin/env bash
# Runs the proxy on conf/nutcracker.yml in front of local backends it starts (2 redis-server,
# 2 memcached, the addresses in that file), with the metrics port on (the dashboard at
# http://127.0.0.1:22223/). Extra arguments go to the proxy. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM
for port in 16379 16380; do
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --daemonize no \
    --logfile "" --loglevel warning >/dev/null &
  pids+=($!)
done
for port in 21211 21212; do
  memcached -u "$(id -un)" -l 127.0.0.1 -p "$port" -U 0 &
  pids+=($!)
done
echo "demo: redis on 16379 16380, memcached on 21211 21212;" \
  "proxy: redis pool 127.0.0.1:22121, memcached pool 127.0.0.1:22122, stats 127.0.0.1:22222" >&2
echo "demo: dashboard http://127.0.0.1:22223/ (data: /dashboard.json; /metrics, /healthz)" >&2
node_modules/.bin/bun src/main.ts -c conf/nutcracker.yml -a 127.0.0.1 --metrics-port 22223 "$@" &
pids+=($!)
wait "${pids[-1]}"
