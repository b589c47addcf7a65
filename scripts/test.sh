#!/usr/bin/env bash
# Runs every test: set-up first (scripts/deps.sh), the type check (tsc), then bun's test runner over test/ on the source
# (`bun src/main.ts`), then `npm run build` and the integration suites that exercise the process
# as a whole (data path, RESP3, operations and signals, reload, workers) a second time on the single
# executable (BC_EXECUTABLE=dist/buncracker). With arguments, only `bun test "$@"` on the source.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
bun=node_modules/.bin/bun
if [ $# -gt 0 ]; then exec "$bun" test --timeout 120000 "$@"; fi
echo "# type check (tsc, strict)" >&2
node_modules/.bin/tsc -p .
"$bun" test --timeout 120000
scripts/build.sh
echo "# the same suites on the single executable, dist/buncracker" >&2
BC_EXECUTABLE=dist/buncracker exec "$bun" test --timeout 120000 \
  test/integration/redis-data.test.ts test/integration/redis-resp3.test.ts test/integration/memcached-data.test.ts \
  test/integration/ops-signals.test.ts test/integration/ops-process.test.ts test/integration/ops-stats.test.ts \
  test/integration/reload-pools.test.ts test/integration/reload-servers.test.ts test/integration/reload-workers.test.ts \
  test/integration/workers-lifecycle.test.ts test/integration/placement.test.ts test/integration/dashboard.test.ts \
  test/integration/executable.test.ts
