#!/usr/bin/env bash
# The container tier, built and run for real with podman: builds the image (on local stand-ins
# for the public base images, deploy/offline/base.sh), brings up compose.yml's 3 redis,
# 2 memcached and buncracker, sends redis and memcached traffic through the containerised proxy,
# checks /healthz, /metrics, the stats port, the image's HEALTHCHECK and the drain on SIGTERM,
# runs deploy/k8s's Deployment with `podman kube play` on the same backends, then tears it all
# down. Not part of `npm test` (it takes minutes): run it as root, `test/container.sh`.
#
# Everything podman makes lives in one scratch folder (its own storage, network configs and API
# socket) that is removed at the end; what podman changes outside it (firewall chains, the
# ip_forward sysctl, its run folders) is put back as it was found. Missing Debian packages
# (podman, docker-compose, debootstrap, ...) are installed, and stay.
#   CONTAINER_TEST_TIMEOUT  bound on the whole run, clean-up included, in seconds (900)
#   CONTAINER_TEST_STORE    keep podman's image storage in this folder between runs: the base
#                           images are then built once (the buncracker image is always removed)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${CONTAINER_TEST_BOUNDED:-}" ]; then
  export CONTAINER_TEST_BOUNDED=1
  exec timeout --kill-after=120 "${CONTAINER_TEST_TIMEOUT:-900}" "$0" "$@"
fi

. test/checks.sh

[ "$(id -u)" -eq 0 ] || die "run as root (podman's bridge networks and firewall rules need it)"

# ---- tools -------------------------------------------------------------------------------
need=()
for pair in podman:podman runc:runc netavark:netavark aardvark-dns:aardvark-dns \
  iptables:iptables catatonit:catatonit debootstrap:debootstrap \
  docker-compose:docker-compose redis-cli:redis-tools; do
  command -v "${pair%%:*}" >/dev/null || [ -x "/usr/lib/podman/${pair%%:*}" ] || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  step "installing Debian packages: ${need[*]}"
  apt-get update -qq
  # No recommends: docker-compose's would pull in a Docker engine.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
[ -x node_modules/bun/bin/bun.exe ] || scripts/deps.sh
bun=node_modules/bun/bin/bun.exe
version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' package.json)
image=localhost/buncracker:$version
project=buncrackertest
network=${project}_default

# ---- what podman may change outside its scratch folder, to put back --------------------
ip_forward_before=$(cat /proc/sys/net/ipv4/ip_forward)
netavark_rules_before=$(iptables-save 2>/dev/null | grep -c NETAVARK || true)
declare -A netavark_before # per table, netavark's chains and rules (iptables -S) found before
for table in nat filter; do
  netavark_before[$table]=$(iptables -t "$table" -S 2>/dev/null | grep NETAVARK || true)
done
nft_tables_before=$(nft list tables 2>/dev/null || true)
run_dirs_absent=()
for d in /run/containers /run/libpod /var/lib/containers /etc/containers/networks; do
  [ -e "$d" ] || run_dirs_absent+=("$d")
done

# ---- podman, isolated in a scratch folder (CONTAINERS.md) -------------------------------
ctr=$(mktemp -d /tmp/buncracker-ctr.XXXXXX)
store=${CONTAINER_TEST_STORE:-$ctr/storage}
mkdir -p "$store" "$ctr/networks"
cat >"$ctr/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
tmp_dir = "$ctr/tmp"
events_logger = "file"
[network]
network_config_dir = "$ctr/networks"
EOF
cat >"$ctr/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$store"
runroot = "$ctr/run"
EOF
export CONTAINERS_CONF=$ctr/containers.conf CONTAINERS_STORAGE_CONF=$ctr/storage.conf
export DOCKER_HOST=unix://$ctr/podman.sock
compose() { docker-compose --ansi never -p "$project" -f compose.yml "$@"; }
service_pid=""
kube_file=""
compose_up=false

restore_firewall() {
  # netavark leaves its chains and rules behind: those this run added go (another run's, found
  # before, stay).
  local table rule chain
  for table in nat filter; do
    local before=${netavark_before[$table]}
    while read -r rule; do
      eval "iptables -t $table ${rule/#-A/-D}"
    done < <(iptables -t "$table" -S 2>/dev/null | grep -E '^-A .*NETAVARK' | grep -vxF -f <(printf '%s\n' "$before") || true)
    for chain in $(iptables -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^NETAVARK/ { print $2 }'); do
      grep -qxF -- "-N $chain" <<<"$before" && continue
      iptables -t "$table" -F "$chain"
      iptables -t "$table" -X "$chain"
    done
    # The table itself, if this run made it and it holds nothing but empty built-in chains.
    if ! grep -qx "table ip $table" <<<"$nft_tables_before" \
      && ! iptables -t "$table" -S 2>/dev/null | grep -qv '^-P'; then
      nft delete table ip "$table" 2>/dev/null || true
    fi
  done
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  step "tearing down"
  if [ -n "$kube_file" ]; then podman kube down "$kube_file" >/dev/null 2>&1 || true; fi
  if $compose_up; then compose down --timeout 5 >/dev/null 2>&1 || true; fi
  podman pod rm --all --force >/dev/null 2>&1 || true
  podman rm --all --force --time 0 >/dev/null 2>&1 || true
  if [ -n "$service_pid" ]; then kill "$service_pid" 2>/dev/null && wait "$service_pid" 2>/dev/null || true; fi
  if [ -n "${CONTAINER_TEST_STORE:-}" ]; then
    podman rmi --force "$image" >/dev/null 2>&1 || true
    podman image prune --force >/dev/null 2>&1 || true
  else
    podman rmi --all --force >/dev/null 2>&1 || true
  fi
  podman network prune --force >/dev/null 2>&1 || true
  # conmon runs `podman container cleanup` after each container exits: let those finish.
  for _ in $(seq 100); do pgrep -f -- "$ctr" >/dev/null || break; sleep 0.2; done
  # Mounts podman left under the scratch folder (overlay layers, shm), innermost first.
  findmnt -rn -o TARGET | grep "^$ctr/" | sort -r | xargs -r umount -l 2>/dev/null || true
  rm -rf "$ctr"
  restore_firewall
  echo "$ip_forward_before" >/proc/sys/net/ipv4/ip_forward
  local d
  for d in "${run_dirs_absent[@]}"; do rm -rf "$d"; done
  local left
  left=$(pgrep -f -- "$ctr" || true)
  check "no podman process left (${left:-none})" test -z "$left"
  check "scratch folder removed" test ! -e "$ctr"
  check "firewall as found (NETAVARK rules: $netavark_rules_before)" \
    test "$(iptables-save 2>/dev/null | grep -c NETAVARK || true)" = "$netavark_rules_before"
  echo "# container tier: $passed passed, $failed failed, $(($(date +%s) - started)) s"
  if [ "$status" -eq 0 ] && [ "$failed" -gt 0 ]; then status=1; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

# Free loopback ports for the host side of compose's and the pod's published ports.
read -r p_redis p_memcache p_stats p_metrics k_redis k_memcache k_stats k_metrics < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(8)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])')

# ---- static checks ------------------------------------------------------------------------
step "static checks"
check "compose.yml is valid (docker-compose config -q)" compose config -q
configmap_yaml() { sed -n '/^  buncracker.yml: |$/,$p' deploy/k8s/configmap.yaml | tail -n +2 | sed 's/^    //'; }
check "deploy/k8s/configmap.yaml holds deploy/buncracker.yml" diff <(configmap_yaml) deploy/buncracker.yml
check "the Deployment runs buncracker:$version (the image built here)" \
  grep -q "image: buncracker:$version\$" deploy/k8s/deployment.yaml
if command -v kubectl >/dev/null; then
  check "deploy/k8s renders (kubectl kustomize)" eval 'kubectl kustomize deploy/k8s >/dev/null'
fi

# ---- images -------------------------------------------------------------------------------
step "base images (deploy/offline/base.sh; debootstrap takes a few minutes the first time)"
bases_out=$(deploy/offline/base.sh) || die "base images"
mapfile -t bases <<<"$bases_out"
bun_image=${bases[1]}
backends_image=${bases[2]}
ok "base images: ${bases[*]}"

step "building $image on $bun_image"
build_args=(--format docker --build-arg "BUN_IMAGE=$bun_image" -t "$image")
# Behind a TLS-intercepting proxy, bun install inside the build needs its CA as well.
if [ -f "${NODE_EXTRA_CA_CERTS:-}" ]; then
  build_args+=(-v "$NODE_EXTRA_CA_CERTS:/run/extra-ca.crt:ro" --build-arg NODE_EXTRA_CA_CERTS=/run/extra-ca.crt)
fi
podman build --quiet "${build_args[@]}" . >"$ctr/build.log" 2>&1 || { tail -30 "$ctr/build.log"; die "podman build"; }
ok "image built: $image, $(podman image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }') (base $(podman image inspect --format '{{.Size}}' "$bun_image" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
check "the image runs as a non-root user" test "$(podman image inspect --format '{{.Config.User}}' "$image")" = 1000:1000
check "the image is the single executable alone: no shell, no Bun" \
  eval '! podman run --rm --entrypoint /bin/sh "$image" -c true >/dev/null 2>&1 && ! podman run --rm --entrypoint bun "$image" --version >/dev/null 2>&1'
image_bytes=$(podman image inspect --format '{{.Size}}' "$image")
bun_bytes=$(podman image inspect --format '{{.Size}}' "$bun_image")
check "the image is smaller than the Bun image it was built on" test "$image_bytes" -lt "$bun_bytes"
check "the image's config passes -t" eval 'podman run --rm "$image" -t -c /etc/buncracker/buncracker.yml >/dev/null 2>&1'

# ---- compose ------------------------------------------------------------------------------
step "compose up: 3 redis, 2 memcached, buncracker (Prometheus cannot be pulled offline)"
podman system service --time=0 "$DOCKER_HOST" >"$ctr/service.log" 2>&1 &
service_pid=$!
for _ in $(seq 50); do [ -S "$ctr/podman.sock" ] && break; sleep 0.1; done
export BUNCRACKER_IMAGE=$image REDIS_IMAGE=$backends_image MEMCACHED_IMAGE=$backends_image
export BUNCRACKER_REDIS_PORT=$p_redis BUNCRACKER_MEMCACHE_PORT=$p_memcache
export BUNCRACKER_STATS_PORT=$p_stats BUNCRACKER_METRICS_PORT=$p_metrics
compose_up=true
compose up -d --no-build redis-1 redis-2 redis-3 memcached-1 memcached-2 buncracker \
  >"$ctr/compose.log" 2>&1 || { cat "$ctr/compose.log"; die "compose up"; }
proxy=${project}_buncracker_1

healthz_ok() { curl -fsS -m 2 "http://127.0.0.1:$1/healthz" 2>/dev/null | grep -q '"status":"ok"'; }
wait_healthy() { for _ in $(seq 100); do healthz_ok "$1" && return 0; sleep 0.1; done; return 1; }
check "compose: /healthz is 200 {status: ok}" wait_healthy "$p_metrics"
check "compose: the image's HEALTHCHECK passes (podman healthcheck run)" \
  eval 'podman healthcheck run "$proxy" >/dev/null'

# ---- redis traffic ------------------------------------------------------------------------
step "redis traffic through the containerised proxy"
keys=()
for i in $(seq 1 200); do keys+=("ctr:$(printf '%s' "$i" | md5sum | cut -c1-12)"); done
redis_set_all() {
  local i
  for i in "${!keys[@]}"; do printf 'SET %s value-%s\n' "${keys[$i]}" "$i"; done \
    | redis-cli -p "$1" | grep -c '^OK$'
}
redis_get_all() { # every key reads back its own value
  local i
  diff <(for i in "${!keys[@]}"; do printf 'GET %s\n' "${keys[$i]}"; done | redis-cli -p "$1") \
    <(for i in "${!keys[@]}"; do echo "value-$i"; done) >/dev/null
}
check "200 SETs answered OK" test "$(redis_set_all "$p_redis")" = 200
check "200 GETs answer their own values" redis_get_all "$p_redis"
multi=$({ redis-cli -p "$p_redis" mset m:a 1 m:b 2 m:c 3 m:d 4; redis-cli -p "$p_redis" mget m:a m:b m:c m:d m:none; } | tr '\n' ' ')
check "MSET then MGET across shards: $multi" test "$multi" = "OK 1 2 3 4  "
backend_keys() { podman exec "${project}_$1_1" redis-cli --scan --pattern 'ctr:*' | sort; }
for n in 1 2 3; do backend_keys "redis-$n" >"$ctr/redis-$n.keys"; done
check "each redis backend holds some keys" eval '[ -s "$ctr/redis-1.keys" ] && [ -s "$ctr/redis-2.keys" ] && [ -s "$ctr/redis-3.keys" ]'
check "every key is on exactly one backend" \
  diff <(sort "$ctr"/redis-*.keys) <(printf '%s\n' "${keys[@]}" | sort)

# ---- memcached traffic --------------------------------------------------------------------
step "memcached traffic through the containerised proxy"
mc() { # mc PORT: the requests on stdin, then quit; the replies on stdout
  timeout 10 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"; { cat; printf "quit\r\n"; } >&3; cat <&3' "$1"
}
mkeys=()
for i in $(seq 1 100); do mkeys+=("mc:$(printf '%s' "$i" | sha1sum | cut -c1-12)"); done
check "100 sets STORED" test "$(for i in "${!mkeys[@]}"; do
  printf 'set %s 0 0 %d\r\nvalue-%s\r\n' "${mkeys[$i]}" $((6 + ${#i})) "$i"; done | mc "$p_memcache" | grep -c $'^STORED\r$')" = 100
multiget() { # one get of every key: each VALUE in order, then END
  diff <(printf 'get %s\r\n' "${mkeys[*]}" | mc "$1") <(for i in "${!mkeys[@]}"; do
    printf 'VALUE %s 0 %d\r\nvalue-%s\r\n' "${mkeys[$i]}" $((6 + ${#i})) "$i"; done; printf 'END\r\n') >/dev/null
}
check "a 100-key get returns every value in order" multiget "$p_memcache"
items() { # curr_items of one memcached backend, asked inside its container
  podman exec "${project}_$1_1" bash -c 'exec 3<>/dev/tcp/127.0.0.1/11211; printf "stats\r\nquit\r\n" >&3; cat <&3' |
    awk '$2 == "curr_items" { print $3 + 0 }'
}
m1=$(items memcached-1)
m2=$(items memcached-2)
check "both memcached backends hold items, 100 in all ($m1 + $m2)" eval '[ "$m1" -gt 0 ] && [ "$m2" -gt 0 ] && [ $((m1 + m2)) -eq 100 ]'

# ---- stats and metrics --------------------------------------------------------------------
step "stats port and /metrics"
stats=$(timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"; cat <&3' "$p_stats")
check "stats port: one JSON document with both pools" env STATS="$stats" "$bun" -e '
  const s = JSON.parse(process.env.STATS);
  process.exit(s.service === "nutcracker" && s.redis && s.memcache ? 0 : 1)'
metrics=$(curl -fsS -m 5 -D "$ctr/metrics.headers" "http://127.0.0.1:$p_metrics/metrics")
check "/metrics is Prometheus text" grep -qi '^content-type: text/plain; version=0.0.4' "$ctr/metrics.headers"
redis_requests=$(awk '/^buncracker_server_requests_total\{pool="redis",/ { n += $2 } END { print n + 0 }' <<<"$metrics")
check "/metrics counts the redis requests sent (>= 400: $redis_requests)" test "$redis_requests" -ge 400

# ---- Kubernetes Deployment, podman kube play ----------------------------------------------
step "podman kube play deploy/k8s/deployment.yaml (ConfigMap mounted) on the compose backends"
# podman publishes every containerPort on the host (0.0.0.0) and runs one pod per replica: the
# copy run here pins the ports to free loopback ports, so it runs one replica.
kube_file=$ctr/deployment.yaml
sed -e 's/^  replicas: .*/  replicas: 1/' \
  -e "s/containerPort: 22121 }/containerPort: 22121, hostIP: 127.0.0.1, hostPort: $k_redis }/" \
  -e "s/containerPort: 22122 }/containerPort: 22122, hostIP: 127.0.0.1, hostPort: $k_memcache }/" \
  -e "s/containerPort: 22222 }/containerPort: 22222, hostIP: 127.0.0.1, hostPort: $k_stats }/" \
  -e "s/containerPort: 22223 }/containerPort: 22223, hostIP: 127.0.0.1, hostPort: $k_metrics }/" \
  deploy/k8s/deployment.yaml >"$kube_file"
[ "$(grep -c 'hostIP: 127.0.0.1' "$kube_file")" -eq 4 ] || die "the Deployment's 4 ports were not found"
podman kube play --network "$network" --configmap deploy/k8s/configmap.yaml "$kube_file" \
  >"$ctr/kube.log" 2>&1 || { cat "$ctr/kube.log"; die "podman kube play"; }
pod_ctr=buncracker-pod-0-buncracker
check "pod: readiness /healthz is 200 {status: ok}" wait_healthy "$k_metrics"
pod_user=$(podman inspect --format 'user {{.Config.User}}, read-only root {{.HostConfig.ReadonlyRootfs}}' "$pod_ctr")
check "pod: $pod_user" test "$pod_user" = "user 1000:1000, read-only root true"
check "pod: a second replica reads every redis key where the first put it" redis_get_all "$k_redis"
check "pod: and every memcached key" multiget "$k_memcache"

# ---- drain on SIGTERM ---------------------------------------------------------------------
step "drain: stop while a request is in flight"
# A request that takes 700 ms on redis (within the pool's 1000 ms timeout); the stop comes
# 200 ms into it: the reply must still arrive, and the proxy exit 0 before the grace period.
busy="local t = redis.call('TIME') local s = t[1] * 1000000 + t[2]
repeat local n = redis.call('TIME') until n[1] * 1000000 + n[2] - s > 700000 return 'drained'"
redis-cli -p "$p_redis" eval "$busy" 1 drain:key >"$ctr/inflight.out" 2>&1 &
inflight=$!
sleep 0.2
stop_started=$(date +%s%N)
podman stop --time 15 "$proxy" >/dev/null 2>>"$ctr/podman.log"
stop_ms=$((($(date +%s%N) - stop_started) / 1000000))
wait "$inflight" || true
check "the in-flight request got its reply" test "$(cat "$ctr/inflight.out")" = drained
check "compose: buncracker exited 0 on SIGTERM after ${stop_ms} ms" \
  test "$(podman inspect --format '{{.State.ExitCode}}' "$proxy")" = 0
check "compose: the log shows the drain" eval 'podman logs "$proxy" 2>&1 | grep -q "draining"'
podman pod stop --time 25 buncracker-pod-0 >/dev/null 2>>"$ctr/podman.log"
check "pod: exited 0 on stop" test "$(podman inspect --format '{{.State.ExitCode}}' "$pod_ctr")" = 0
podman kube down "$kube_file" >/dev/null 2>&1
kube_file=""
ok "podman kube down"
compose down --timeout 5 >/dev/null 2>&1
compose_up=false
ok "compose down"
