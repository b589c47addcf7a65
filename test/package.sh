#!/usr/bin/env bash
# The Debian package, installed for real: builds dist/buncracker_<version>_<arch>.deb
# (scripts/build.sh), boots a clean Debian container with systemd as PID 1 (podman, local images
# from deploy/offline/, no registry), and in it: dpkg -i, the service starts as a dynamic
# non-root user with the unit's hardening, traffic through both pools lands on the backends,
# the dashboard and /healthz answer, `systemctl reload` applies an edited config (same pid),
# a crash is restarted (Restart=on-failure), `systemctl stop` lets an in-flight request finish
# and exits 0, Debian's nutcracker is replaced on its own config (keys it wrote are read back),
# then dpkg --remove keeps the edited conffile and --purge removes everything.
# Not part of `npm test` (a few minutes): run it as root, `npm run test:package`.
#
# The container is --privileged only so that its systemd may make the mount namespaces the
# unit's hardening asks for (ProtectSystem=strict, PrivateTmp, DynamicUser); on a real machine
# systemd has them. It has no network (--network=none): every request is sent from inside it.
# Everything podman makes lives in a scratch folder removed at the end.
#   PACKAGE_TEST_TIMEOUT  bound on the whole run, clean-up included, in seconds (600)
#   CONTAINER_TEST_STORE  keep podman's image storage in this folder between runs (base images)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${PACKAGE_TEST_BOUNDED:-}" ]; then
  export PACKAGE_TEST_BOUNDED=1
  exec timeout --kill-after=60 "${PACKAGE_TEST_TIMEOUT:-600}" "$0" "$@"
fi

. test/checks.sh
# grep -q stops reading at the first match, and under pipefail the writer's SIGPIPE would fail
# the pipeline: this reads everything.
contains() { grep -c -- "$1" >/dev/null; }

[ "$(id -u)" -eq 0 ] || die "run as root (podman and a privileged systemd container need it)"

need=()
for pair in podman:podman runc:runc catatonit:catatonit debootstrap:debootstrap dpkg-deb:dpkg; do
  command -v "${pair%%:*}" >/dev/null || [ -x "/usr/lib/podman/${pair%%:*}" ] || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  step "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

step "npm run build"
scripts/build.sh
version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' package.json)
deb=dist/buncracker_${version}_$(dpkg --print-architecture).deb
[ -f "$deb" ] || die "$deb was not built"
ok "built $deb ($(du -h "$deb" | cut -f1))"

# ---- podman, isolated in a scratch folder (../shared/CONTAINERS.md) ------------------------
run_dirs_absent=()
for d in /run/containers /run/libpod /var/lib/containers; do [ -e "$d" ] || run_dirs_absent+=("$d"); done
scratch=$(mktemp -d /tmp/buncracker-pkg.XXXXXX)
store=${CONTAINER_TEST_STORE:-$scratch/storage}
mkdir -p "$store"
cat >"$scratch/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
tmp_dir = "$scratch/tmp"
events_logger = "file"
EOF
cat >"$scratch/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$store"
runroot = "$scratch/run"
EOF
export CONTAINERS_CONF=$scratch/containers.conf CONTAINERS_STORAGE_CONF=$scratch/storage.conf
image=localhost/debian-systemd:bookworm
box=buncracker-package-test

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  step "tearing down"
  podman rm --force --time 0 "$box" >/dev/null 2>&1 || true
  if [ -z "${CONTAINER_TEST_STORE:-}" ]; then podman rmi --all --force >/dev/null 2>&1 || true; fi
  for _ in $(seq 100); do pgrep -f -- "$scratch" >/dev/null || break; sleep 0.2; done
  findmnt -rn -o TARGET | grep "^$scratch/" | sort -r | xargs -r umount -l 2>/dev/null || true
  rm -rf "$scratch"
  local d
  for d in "${run_dirs_absent[@]}"; do rm -rf "$d"; done
  check "no podman process left" test -z "$(pgrep -f -- "$scratch" || true)"
  check "scratch folder removed" test ! -e "$scratch"
  echo "# package test: $passed passed, $failed failed, $(($(date +%s) - started)) s"
  if [ "$status" -eq 0 ] && [ "$failed" -gt 0 ]; then status=1; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

step "images: a debootstrap Debian base, then systemd + redis + memcached + nutcracker on it"
bases_out=$(deploy/offline/base.sh) || die "base images"
debian_image=$(head -1 <<<"$bases_out")
if ! podman image exists "$image"; then
  podman build --quiet --build-arg DEBIAN_IMAGE="$debian_image" -t "$image" \
    -f deploy/offline/systemd.Containerfile deploy/offline >"$scratch/build.log" 2>&1 \
    || { tail -20 "$scratch/build.log"; die "podman build $image"; }
fi
ok "image $image"

step "boot a clean Debian with systemd"
podman run -d --name "$box" --privileged --systemd=always --network=none "$image" >/dev/null
on() { podman exec "$box" "$@"; }
booted() { local s; s=$(on systemctl is-system-running 2>/dev/null || true); [ "$s" = running ] || [ "$s" = degraded ]; }
for _ in $(seq 100); do booted && break; sleep 0.2; done
check "systemd is running in the container" booted
check "redis-server and memcached run there" on sh -c 'redis-cli ping | grep -q PONG && systemctl is-active -q memcached'

# ---- install ----------------------------------------------------------------------------
step "dpkg -i $(basename "$deb")"
podman cp "$deb" "$box:/tmp/buncracker.deb"
on dpkg -i /tmp/buncracker.deb >"$scratch/dpkg.log" 2>&1 || { cat "$scratch/dpkg.log"; die "dpkg -i"; }
ok "dpkg -i"
active() { on systemctl is-active -q buncracker; }
listening() { on redis-cli -p 22121 ping 2>/dev/null | contains PONG; }
wait_for() { local i; for i in $(seq 100); do "$@" && return 0; sleep 0.1; done; return 1; }
check "the service is enabled and active after install" eval 'on systemctl is-enabled -q buncracker && wait_for active'
check "and listening" wait_for listening
check "/usr/sbin/buncracker -V names our version and the runtime" \
  eval 'on /usr/sbin/buncracker -V 2>&1 | tr "\n" " " | grep -Eq "buncracker-'"$version"' .*runtime: bun [0-9.]+"'
check "/etc/buncracker/buncracker.yml and /etc/default/buncracker are conffiles" \
  eval 'on dpkg-query -W -f="\${Conffiles}" buncracker | contains /etc/buncracker/buncracker.yml && on dpkg-query -W -f="\${Conffiles}" buncracker | contains /etc/default/buncracker'
main_pid() { on systemctl show -p MainPID --value buncracker; }
user=$(on stat -c '%u %U' "/proc/$(main_pid)")
check "runs as a dynamic non-root user (uid, name: $user)" eval '[ -n "$user" ] && [ "${user%% *}" != 0 ]'
props=$(on systemctl show buncracker -p Restart -p NoNewPrivileges -p ProtectSystem -p DynamicUser -p LimitNOFILE -p TimeoutStopUSec -p KillSignal | sort | tr '\n' ' ')
check "unit: $props" test "$props" = "DynamicUser=yes KillSignal=15 LimitNOFILE=65536 NoNewPrivileges=yes ProtectSystem=strict Restart=on-failure TimeoutStopUSec=15s "
limit=$(on grep "Max open files" "/proc/$(main_pid)/limits" | awk '{ print $4 }')
# LimitNOFILE=65536, as far as the container's own hard limit allows (this sandbox: 20000).
hard=$(on sh -c 'ulimit -Hn')
want=$((hard < 65536 ? hard : 65536))
check "the process may open $want files (LimitNOFILE=65536, container hard limit $hard): $limit" test "$limit" = "$want"
man_text=$(on zcat /usr/share/man/man8/buncracker.8.gz | sed 's/\\-/-/g')
help_flags=$(on /usr/sbin/buncracker --help 2>&1 | grep -Eo '^ +(-[a-zA-Z], )?--[a-z-]+' | grep -Eo -- '--[a-z-]+')
missing=$(for f in $help_flags; do grep -qF -- "fB$f\\fR" <<<"$man_text" || echo "$f"; done)
check "the man page has every flag --help lists ($(wc -w <<<"$help_flags"); missing: ${missing:-none})" test -z "$missing"

# ---- traffic ----------------------------------------------------------------------------
step "traffic through the service"
set_all() { on sh -c 'for i in $(seq 1 100); do echo "SET pkg:$i v$i"; done | redis-cli -p '"$1"' | grep -c "^OK$"'; }
check "100 SETs through the redis pool" test "$(set_all 22121)" = 100
check "each reached redis-server" test "$(on sh -c 'redis-cli --scan --pattern "pkg:*" | wc -l')" = 100
mc='exec 3<>/dev/tcp/127.0.0.1/22122; printf "set pkg 0 0 5\r\nhello\r\nget pkg\r\nquit\r\n" >&3; cat <&3'
check "memcached pool: set, get" test "$(on bash -c "$mc" | tr -d '\r' | tr '\n' ' ')" = "STORED VALUE pkg 0 5 hello END "
check "the stats port answers on loopback" eval 'on bash -c "exec 3<>/dev/tcp/127.0.0.1/22222; cat <&3" | contains "\"service\":\"nutcracker\""'
check "/healthz: ok" eval 'on curl -fsS -m 2 http://127.0.0.1:22223/healthz | contains "\"status\":\"ok\""'
check "the dashboard at / and /dashboard.json" \
  eval 'on curl -fsS -m 2 http://127.0.0.1:22223/ | contains "<title>buncracker dashboard" && on curl -fsS -m 2 http://127.0.0.1:22223/dashboard.json | contains "\"name\":\"memcache\""'

# ---- reload -----------------------------------------------------------------------------
step "systemctl reload after editing the config"
pid_before=$(main_pid)
on sh -c 'printf "\nextra:\n  listen: 127.0.0.1:22124\n  redis: true\n  servers:\n   - 127.0.0.1:6379:1\n" >>/etc/buncracker/buncracker.yml'
on systemctl reload buncracker
reloaded() { on journalctl -u buncracker --no-pager | contains "reloaded '/etc/buncracker/buncracker.yml' (generation 2)"; }
check "the journal shows generation 2" wait_for reloaded
check "the new pool answers: a key written before the reload" test "$(on redis-cli -p 22124 get pkg:7)" = v7
check "same process (pid $pid_before)" test "$(main_pid)" = "$pid_before"
check "/healthz says generation 2" eval 'on curl -fsS http://127.0.0.1:22223/healthz | contains "\"generation\":2"'

# ---- crash --------------------------------------------------------------------------------
step "a crash is restarted"
on kill -KILL "$pid_before"
restarted() { local p; p=$(main_pid); [ "$p" != 0 ] && [ "$p" != "$pid_before" ] && active && listening; }
check "SIGKILL: systemd restarts it (Restart=on-failure)" eval 'for _ in $(seq 50); do restarted && break; sleep 0.1; done; restarted'

# ---- stop with a request in flight ------------------------------------------------------
step "systemctl stop with a request in flight"
# A request that takes 1.5 s on redis, sent to the pool the reload added (no timeout; the
# default pools time out after 400 ms); the stop comes once the proxy has it out on the server.
busy="local t = redis.call('TIME') local s = t[1] * 1000000 + t[2]
repeat local n = redis.call('TIME') until n[1] * 1000000 + n[2] - s > 1500000 return 'drained'"
on redis-cli -p 22124 eval "$busy" 1 drain:key >"$scratch/inflight.out" 2>&1 &
inflight=$!
out_on_server() { on bash -c 'exec 3<>/dev/tcp/127.0.0.1/22222; cat <&3' | contains '"out_queue":1'; }
check "the request is in flight" wait_for out_on_server
on systemctl stop buncracker
wait "$inflight" || true
check "the in-flight request got its reply ($(cat "$scratch/inflight.out"))" test "$(cat "$scratch/inflight.out")" = drained
check "stopped cleanly: inactive, exit status 0" \
  test "$(on systemctl show buncracker -p ActiveState -p ExecMainStatus | sort | tr '\n' ' ')" = "ActiveState=inactive ExecMainStatus=0 "
check "the journal shows the drain" eval 'on journalctl -u buncracker --no-pager | contains "SIGTERM) received, draining"'

# ---- replacing Debian's nutcracker ------------------------------------------------------
step "replacing nutcracker: its config, its keys"
on redis-server --port 6380 --save "" --daemonize yes >/dev/null
podman exec -i "$box" sh -c 'mkdir -p /etc/nutcracker && cat >/etc/nutcracker/nutcracker.yml' <<'EOF'
cache:
  listen: 127.0.0.1:22121
  hash: fnv1a_64
  distribution: ketama
  redis: true
  auto_eject_hosts: false
  servers:
   - 127.0.0.1:6379:1 first
   - 127.0.0.1:6380:1 second
EOF
on systemctl start nutcracker
nutcracker_up() { on systemctl is-active -q nutcracker && listening; }
wait_for nutcracker_up || die "nutcracker does not serve its own config"
ok "nutcracker serves its own config"
wrote=$(on sh -c 'for i in $(seq 1 100); do echo "SET moved:$i m$i"; done | redis-cli -p 22121 | grep -c "^OK$"')
check "100 keys written through nutcracker" test "$wrote" = 100
on systemctl disable --now nutcracker >/dev/null 2>&1
on cp /etc/nutcracker/nutcracker.yml /etc/buncracker/buncracker.yml
on systemctl start buncracker
check "buncracker starts on nutcracker's config file" wait_for listening
read_back() { on sh -c 'for i in $(seq 1 100); do echo "GET moved:$i"; done | redis-cli -p 22121' | diff - <(for i in $(seq 1 100); do echo "m$i"; done) >/dev/null; }
check "and reads every key back from where nutcracker put it (both backends)" \
  eval 'read_back && [ "$(on redis-cli -p 6380 --scan --pattern "moved:*" | wc -l)" -gt 0 ]'

# ---- remove, purge ----------------------------------------------------------------------
step "dpkg --remove, then --purge"
on dpkg --remove buncracker >"$scratch/remove.log" 2>&1 || { cat "$scratch/remove.log"; not_ok "dpkg --remove"; }
check "removed: the service is gone, the executable too" \
  eval '! on systemctl is-active -q buncracker && ! on test -e /usr/sbin/buncracker && ! on test -e /lib/systemd/system/buncracker.service'
check "the edited conffile is kept on remove" eval 'on grep -q "second" /etc/buncracker/buncracker.yml'
on dpkg --purge buncracker >"$scratch/purge.log" 2>&1 || { cat "$scratch/purge.log"; not_ok "dpkg --purge"; }
check "purged: /etc/buncracker, /etc/default/buncracker and the enablement are gone" \
  eval '! on test -e /etc/buncracker && ! on test -e /etc/default/buncracker && ! on test -e /etc/systemd/system/multi-user.target.wants/buncracker.service'
check "dpkg knows no buncracker" eval '! on dpkg -s buncracker >/dev/null 2>&1'
