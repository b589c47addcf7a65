#!/usr/bin/env bash
# Installs what buncracker's tests, demo and benchmarks need and a fresh Debian machine lacks:
# the Debian packages (real backends, the reference nutcracker, chromium for the dashboard's
# browser test, netcat for the README's examples), the npm packages (Bun is one) and the WASM
# build. Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v redis-sentinel >/dev/null || need+=(redis-sentinel)
command -v memcached >/dev/null || need+=(memcached)
command -v memcaslap >/dev/null || need+=(libmemcached-tools)
[ -x /usr/sbin/nutcracker ] || need+=(nutcracker)
command -v openssl >/dev/null || need+=(openssl) # the TLS suites make their certificates
command -v chromium >/dev/null || need+=(chromium)
[ -x /bin/nc.openbsd ] || need+=(netcat-openbsd)
# redis-py, one of the client libraries the tests connect through the proxy (its RedisCluster
# too, for the redis_cluster client tests; Debian's python3, not a pyenv one), and `script`,
# which gives redis-cli a terminal for its interactive prompt.
/usr/bin/python3 -c 'import redis.cluster' 2>/dev/null || need+=(python3-redis)
command -v script >/dev/null || need+=(bsdutils)
if [ ${#need[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${need[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # No recommends: chromium's would pull in a desktop.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts packaged daemons on install; the project runs its own on free ports.
  for svc in redis-server redis-sentinel memcached nutcracker; do
    $SUDO service "$svc" stop >/dev/null 2>&1 || true
  done
fi

[ -x node_modules/.bin/bun ] && [ -d node_modules/yaml ] || npm install --no-audit --no-fund
[ build/hashkit.wasm -nt assembly ] 2>/dev/null && [ -z "$(find assembly -newer build/hashkit.wasm)" ] \
  || node_modules/.bin/bun run build:wasm
