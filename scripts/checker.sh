#!/usr/bin/env bash
# The "nothing lost" checker (test/checker/run.ts) for 10 minutes, or as long as asked:
#   scripts/checker.sh [--duration SECONDS] [--seed N] [--target buncracker|nutcracker]
# Starts its own redis and memcached backends and the proxy, and stops them. Exits 0 when some
# request succeeded, none was lost, misordered, duplicated or answered with another request's
# value, every read outside the faults found what its lane wrote, and every proxy error came
# while a fault was under way (test/checker/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
exec node_modules/.bin/bun test/checker/run.ts --duration 600 "$@"
