#!/usr/bin/env bash
# Runs every test: set-up first (scripts/deps.sh), then bun's test runner over test/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
exec node_modules/.bin/bun test --timeout 120000 "$@"
