#!/usr/bin/env bash
# The nothing-lost checker across Sentinel failovers (test/checker/failover.ts), not in CI:
#   scripts/failover-checker.sh [--duration SECONDS] [--every SECONDS]
# 5 minutes with a SENTINEL FAILOVER every 20 s unless told otherwise: writers through the proxy
# and, for comparison, redis-py's Sentinel client straight to redis (Debian's python3-redis).
# Starts its own redis-servers, redis-sentinels and proxy, and stops them. Exits 0 when the proxy
# lost, misordered or duplicated no acknowledged write and dropped no connection.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
exec node_modules/.bin/bun test/checker/failover.ts "$@"
