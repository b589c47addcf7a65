#!/usr/bin/env bash
# `npm run build`: the single executable and the Debian package, offline.
#   dist/buncracker                      bun build --compile: the Bun runtime, src/ (as bytecode)
#                                        and build/hashkit.wasm in one file; needs neither Bun nor
#                                        node where it runs
#   dist/buncracker_<version>_<arch>.deb dpkg-deb: /usr/sbin/buncracker, /etc/buncracker/buncracker.yml
#                                        and /etc/default/buncracker (conffiles), the systemd unit,
#                                        buncracker(8); from deploy/debian/
# The executable is for this machine's OS and CPU (Bun's own runtime is the one embedded).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
bun=node_modules/.bin/bun
version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' package.json)
arch=$(dpkg --print-architecture)

rm -rf dist
mkdir -p dist
# build:exe (package.json, also the Dockerfile's): --bytecode compiles the bundle to JSC bytecode
# at build time, so start-up skips parsing (it needs --format=esm for main.ts's top-level await);
# the source map is embedded, so stack traces name src/ files and lines.
"$bun" run build:exe >dist/build.log 2>&1 || { cat dist/build.log >&2; exit 1; }
rm -f dist/build.log
./dist/buncracker -V 2>&1 | grep -q "buncracker-$version" || { echo "build: dist/buncracker -V failed" >&2; exit 1; }

root=dist/deb
install -D -m 0755 dist/buncracker "$root/usr/sbin/buncracker"
install -D -m 0644 deploy/debian/buncracker.yml "$root/etc/buncracker/buncracker.yml"
install -D -m 0644 deploy/debian/default "$root/etc/default/buncracker"
install -D -m 0644 deploy/debian/buncracker.service "$root/lib/systemd/system/buncracker.service"
mkdir -p "$root/usr/share/man/man8" "$root/usr/share/doc/buncracker" "$root/DEBIAN"
"$bun" scripts/manpage.ts | gzip -9n >"$root/usr/share/man/man8/buncracker.8.gz"
cp conf/nutcracker.yml "$root/usr/share/doc/buncracker/example.yml"
printf 'buncracker %s\nLicense: Apache-2.0\n' "$version" >"$root/usr/share/doc/buncracker/copyright"
for script in postinst prerm postrm; do install -m 0755 "deploy/debian/$script" "$root/DEBIAN/$script"; done
printf '/etc/buncracker/buncracker.yml\n/etc/default/buncracker\n' >"$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  deploy/debian/control >"$root/DEBIAN/control"
deb=dist/buncracker_${version}_${arch}.deb
# gzip: a tenth of the time xz takes (the build runs in every `npm test`), 50 MB instead of 38.
dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >/dev/null
rm -rf "$root"
ls -l dist/buncracker "$deb" | awk '{ printf "build: %s, %.1f MB\n", $NF, $5 / 1048576 }' >&2
