# buncracker's image: the single executable (`bun run build:exe`: the Bun runtime, src/ as
# bytecode and the WASM hashkit in one file) on an empty base with only the C library it links,
# plus /usr/bin/env for the HEALTHCHECK. No Bun, node_modules or shell in the image.
# Build:  docker build -t buncracker .
# Where no registry is reachable, build the base locally and pass it in (deploy/offline/base.sh):
#   podman build --format docker --build-arg BUN_IMAGE=localhost/bun:1.4.5-slim -t buncracker .
# (podman's default OCI format drops HEALTHCHECK; --format docker keeps it.)
# Run: the config is read from /etc/buncracker/buncracker.yml (mount yours there); pools listen
# on the ports the config names, stats JSON on 22222, /metrics, /healthz and the dashboard on 22223.

ARG BUN_IMAGE=oven/bun:1.4.5-slim

# The WASM hashkit is compiled by AssemblyScript (a devDependency), then everything into one
# executable. --omit=optional skips the npm copy of Bun itself (the image already has one);
# --ignore-scripts skips its download script.
FROM ${BUN_IMAGE} AS build
# Behind a TLS-intercepting proxy: its CA for `bun install`, e.g. with podman
#   -v /path/ca.crt:/run/ca.crt:ro --build-arg NODE_EXTRA_CA_CERTS=/run/ca.crt
ARG NODE_EXTRA_CA_CERTS
WORKDIR /build
COPY package.json package-lock.json ./
RUN bun install --frozen-lockfile --ignore-scripts --omit=optional
COPY assembly/ assembly/
RUN bun run build:wasm
COPY src/ src/
RUN bun run build:exe
# The runtime's root: the executable, the shared libraries it and env load (ldd), and the config.
RUN mkdir -p /rootfs/usr/sbin /rootfs/etc/buncracker /rootfs/tmp \
 && cp dist/buncracker /rootfs/usr/sbin/buncracker \
 && for f in /usr/bin/env $({ ldd dist/buncracker; ldd /usr/bin/env; } | grep -o '/[^ ]*' | sort -u); do \
      cp --parents -L "$f" /rootfs; done \
 && chmod 1777 /rootfs/tmp
COPY deploy/buncracker.yml /rootfs/etc/buncracker/buncracker.yml

FROM scratch
COPY --from=build /rootfs/ /
# An unprivileged user by number (Kubernetes' runAsNonRoot checks it); nothing in the image is
# writable by it.
USER 1000:1000
EXPOSE 22121 22122 22222 22223
# SIGTERM: stop accepting, let in-flight requests finish (up to --drain-timeout), exit 0.
# Orchestrators must wait longer than the drain timeout before SIGKILL (compose
# stop_grace_period, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
# No curl in the image: the executable, run as Bun (BUN_BE_BUN=1), fetches /healthz itself
# (200 while every pool is listening).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/bin/env", "BUN_BE_BUN=1", "/usr/sbin/buncracker", "-e", "const r = await fetch('http://127.0.0.1:22223/healthz'); process.exit(r.ok ? 0 : 1)"]
# The proxy itself is PID 1 and gets the signals.
ENTRYPOINT ["/usr/sbin/buncracker"]
CMD ["-c", "/etc/buncracker/buncracker.yml", "-s", "22222", "-a", "0.0.0.0", "--metrics-port", "22223", "--drain-timeout", "10000"]
