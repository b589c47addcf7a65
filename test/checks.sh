# Counted checks for the shell test scripts (test/container.sh, test/package.sh): source it
# after `set -euo pipefail`; each script prints its own summary from $passed and $failed.
started=$(date +%s)
passed=0
failed=0
step() { echo "# $* [$(($(date +%s) - started)) s]"; }
ok() { passed=$((passed + 1)); echo "ok - $*"; }
not_ok() { failed=$((failed + 1)); echo "not ok - $*"; }
check() { # check DESCRIPTION COMMAND...: one counted check
  local what=$1
  shift
  if "$@"; then ok "$what"; else not_ok "$what"; fi
}
die() { not_ok "$*"; exit 1; }
