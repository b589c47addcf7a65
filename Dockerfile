# buncracker's image: the Bun runtime, src/, the built WASM hashkit and the production
# dependencies (yaml) only. Build:  docker build -t buncracker .
# Where no registry is reachable, build the base locally and pass it in (deploy/offline/base.sh):
#   podman build --format docker --build-arg BUN_IMAGE=localhost/bun:1.4.5-slim -t buncracker .
# (podman's default OCI format drops HEALTHCHECK; --format docker keeps it.)
# Run: the config is read from /etc/buncracker/buncracker.yml (mount yours there); pools listen
# on the ports the config names, stats JSON on 22222, /metrics and /healthz on 22223.

ARG BUN_IMAGE=oven/bun:1.4.5-slim

# The WASM hashkit, compiled by AssemblyScript (a devDependency). --omit=optional skips the npm
# copy of Bun itself (the image already has one); --ignore-scripts skips its download script.
FROM ${BUN_IMAGE} AS wasm
# Behind a TLS-intercepting proxy: its CA for `bun install`, e.g. with podman
#   -v /path/ca.crt:/run/ca.crt:ro --build-arg NODE_EXTRA_CA_CERTS=/run/ca.crt
ARG NODE_EXTRA_CA_CERTS
WORKDIR /build
COPY package.json package-lock.json ./
RUN bun install --frozen-lockfile --ignore-scripts --omit=optional
COPY assembly/ assembly/
RUN bun run build:wasm

FROM ${BUN_IMAGE} AS deps
ARG NODE_EXTRA_CA_CERTS
WORKDIR /build
COPY package.json package-lock.json ./
RUN bun install --frozen-lockfile --ignore-scripts --production

FROM ${BUN_IMAGE}
WORKDIR /app
COPY --from=deps /build/node_modules/ node_modules/
COPY package.json ./
COPY src/ src/
COPY --from=wasm /build/build/hashkit.wasm build/hashkit.wasm
COPY deploy/buncracker.yml /etc/buncracker/buncracker.yml
# The official image's unprivileged `bun` user, by number so that Kubernetes' runAsNonRoot can
# check it; nothing in the image is writable by it.
USER 1000:1000
EXPOSE 22121 22122 22222 22223
# SIGTERM: stop accepting, let in-flight requests finish (up to --drain-timeout), exit 0.
# Orchestrators must wait longer than the drain timeout before SIGKILL (compose
# stop_grace_period, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
# No curl in the image: Bun fetches /healthz itself (200 while every pool is listening).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["bun", "-e", "const r = await fetch('http://127.0.0.1:22223/healthz'); process.exit(r.ok ? 0 : 1)"]
# bun itself is PID 1 and gets the signals (`bun run` would be a launcher in between).
ENTRYPOINT ["bun", "src/main.ts"]
CMD ["-c", "/etc/buncracker/buncracker.yml", "-s", "22222", "-a", "0.0.0.0", "--metrics-port", "22223", "--drain-timeout", "10000"]
