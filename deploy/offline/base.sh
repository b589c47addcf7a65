#!/usr/bin/env bash
# Builds, with podman and no image registry, local stand-ins for the public images the container
# tier starts from (see ../../Dockerfile and ../../compose.yml):
#   localhost/debian:bookworm          debootstrap minbase from apt's own Debian mirror
#   localhost/bun:<version>-slim       for oven/bun:<version>-slim: Debian + the Bun binary of
#                                      the pinned `bun` devDependency (run `npm install` first)
#   localhost/cache-backends:bookworm  for redis:7 and memcached:1.6: both from Debian's packages
# Images that exist already are kept. Needs root, debootstrap and a podman set up as described
# in CONTAINERS.md (runc, cgroupfs, ulimits): pass that setup in CONTAINERS_CONF.
# Prints the three image names, one per line, in that order.
set -euo pipefail
cd "$(dirname "$0")/../.."

suite=bookworm
bun_bin=node_modules/bun/bin/bun.exe
bun_version=$(sed -n 's/.*"bun": *"\([0-9.]*\)".*/\1/p' package.json)
debian_image=localhost/debian:$suite
bun_image=localhost/bun:$bun_version-slim
backends_image=localhost/cache-backends:$suite

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! podman image exists "$debian_image"; then
  mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' | awk -v s="$suite" '$2 == s { print $1; exit }')
  echo "base: debootstrap $suite from ${mirror:=http://deb.debian.org/debian/}" >&2
  debootstrap --variant=minbase "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # Trimmed like Debian's -slim images: no package cache or lists, no docs, man pages, locales.
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/* \
    "$work"/rootfs/usr/share/{doc,man,locale}/*
  tar -C "$work/rootfs" -c . | podman import --quiet - "$debian_image" >/dev/null
  rm -rf "$work/rootfs"
fi

if ! podman image exists "$bun_image"; then
  [ -x "$bun_bin" ] && [ "$("$bun_bin" --version)" = "$bun_version" ] \
    || { echo "base: $bun_bin is not Bun $bun_version: run npm install" >&2; exit 1; }
  mkdir "$work/bun"
  cp "$bun_bin" "$work/bun/bun"
  podman build --quiet --build-arg DEBIAN_IMAGE="$debian_image" -t "$bun_image" \
    -f deploy/offline/bun.Containerfile "$work/bun" >/dev/null
fi

if ! podman image exists "$backends_image"; then
  podman build --quiet --build-arg DEBIAN_IMAGE="$debian_image" -t "$backends_image" \
    -f deploy/offline/backends.Containerfile "$work" >/dev/null
fi

printf '%s\n' "$debian_image" "$bun_image" "$backends_image"
