// Real redis-server and memcached processes on free loopback ports.

import { mkdirSync } from "node:fs";
import { freePort, waitForPort, waitForUnixSocket } from "./ports.ts";
import { spawnManaged, type ManagedProcess } from "./process.ts";
import { makeTempDir, type TempDir } from "./tmp.ts";

export interface Backend {
  readonly kind: "redis" | "memcached";
  readonly host: string;
  /** The TCP port (fixed across restart()). */
  readonly port: number;
  /** The unix socket path when one was asked for, else null. */
  readonly unixPath: string | null;
  /** "host:port", as written in a proxy's `servers:` list. */
  readonly address: string;
  /** The running process (replaced by restart()). */
  readonly process: ManagedProcess;
  /** SIGTERM and wait for exit (then removes its temp dir). */
  stop(): Promise<void>;
  /** SIGKILL (a crash, as far as the proxy can tell) and wait for exit (then removes its temp dir). */
  kill(): Promise<void>;
  /** Starts again on the same port (and socket), after stop() or kill(); empty. */
  restart(): Promise<void>;
}

/** TLS for a backend: its port speaks only TLS. */
export interface BackendTls {
  /** The server's certificate and key (PEM files). */
  readonly cert: string;
  readonly key: string;
  /** With `requireClientCert`: the CA clients' certificates must chain to. */
  readonly ca?: string;
  /** Refuse clients without a certificate `ca` signed (redis --tls-auth-clients yes,
   *  memcached ssl_verify_mode=2). */
  readonly requireClientCert?: boolean;
}

export interface RedisOptions {
  host?: string;
  /** A fixed port; default a free one. */
  port?: number;
  /** Also listen on a unix socket (its path is in `unixPath`). */
  unixSocket?: boolean;
  /** Sets `requirepass`. */
  password?: string;
  /** TLS on the port (`--tls-port`; no plaintext port). */
  tls?: BackendTls;
  /** More `--name value` arguments for redis-server. */
  args?: string[];
}

export interface MemcachedOptions {
  host?: string;
  port?: number;
  /** Memory limit in MB (`-m`); default 64. */
  memoryMb?: number;
  /** Largest item (`-I`), e.g. "2m"; default memcached's 1m. */
  maxItemSize?: string;
  /** TLS on the port (`-Z`). */
  tls?: BackendTls;
  args?: string[];
}

const STARTUP_MS = 5000;
const isRoot = process.getuid?.() === 0;

export function startRedis(opts: RedisOptions = {}): Promise<Backend> {
  const host = opts.host ?? "127.0.0.1";
  return startBackend("redis", host, opts.port, (port, dir) => {
    const tls = opts.tls;
    const ports = tls === undefined ? ["--port", String(port)] : ["--port", "0", "--tls-port", String(port)];
    const argv = [
      "redis-server",
      ...ports,
      "--bind", host,
      "--save", "",
      "--appendonly", "no",
      "--dir", dir.path,
      "--daemonize", "no",
      "--protected-mode", "no",
      "--logfile", "",
      // A replica's full sync starts at once: redis 7 waits 5 s by default for more replicas to
      // share it, which every sentinel and cluster deployment (and each failover in them) paid.
      "--repl-diskless-sync-delay", "0",
    ];
    if (opts.unixSocket) argv.push("--unixsocket", dir.file("redis.sock"), "--unixsocketperm", "700");
    if (opts.password !== undefined) argv.push("--requirepass", opts.password);
    if (tls !== undefined) {
      argv.push("--tls-cert-file", tls.cert, "--tls-key-file", tls.key);
      // redis needs a CA file even when it asks clients for nothing.
      argv.push("--tls-ca-cert-file", tls.ca ?? tls.cert, "--tls-auth-clients", tls.requireClientCert ? "yes" : "no");
    }
    argv.push(...(opts.args ?? []));
    return { argv, unixPath: opts.unixSocket ? dir.file("redis.sock") : null };
  });
}

export function startMemcached(opts: MemcachedOptions = {}): Promise<Backend> {
  const host = opts.host ?? "127.0.0.1";
  return startBackend("memcached", host, opts.port, (port) => {
    const argv = ["memcached", "-l", host, "-p", String(port), "-U", "0", "-t", "1"];
    argv.push("-m", String(opts.memoryMb ?? 64));
    if (opts.maxItemSize !== undefined) argv.push("-I", opts.maxItemSize);
    if (isRoot) argv.push("-u", "root");
    const tls = opts.tls;
    if (tls !== undefined) {
      const settings = [`ssl_chain_cert=${tls.cert}`, `ssl_key=${tls.key}`];
      if (tls.ca !== undefined) settings.push(`ssl_ca_cert=${tls.ca}`);
      if (tls.requireClientCert) settings.push("ssl_verify_mode=2");
      argv.push("-Z", "-o", settings.join(","));
    }
    argv.push(...(opts.args ?? []));
    return { argv, unixPath: null };
  });
}

type CommandLine = (port: number, dir: TempDir) => { argv: string[]; unixPath: string | null };

async function startBackend(
  kind: Backend["kind"],
  host: string,
  fixedPort: number | undefined,
  commandLine: CommandLine,
): Promise<Backend> {
  const dir = makeTempDir(`bct-${kind}-`);
  // A free port can be taken by someone else before the server binds it: retry with another.
  for (let attempt = 1; ; attempt++) {
    const port = fixedPort ?? freePort(host);
    const { argv, unixPath } = commandLine(port, dir);
    const started = await launch(argv, host, port, unixPath).catch((error: Error) => error);
    if (started instanceof Error) {
      if (fixedPort === undefined && attempt < 5) continue;
      dir.remove();
      throw started;
    }
    let current = started;
    const backend: Backend = {
      kind,
      host,
      port,
      unixPath,
      address: `${host}:${port}`,
      get process() {
        return current;
      },
      async stop() {
        await current.stop();
        dir.remove();
      },
      async kill() {
        await current.kill();
        dir.remove();
      },
      async restart() {
        await current.kill();
        mkdirSync(dir.path, { recursive: true });
        current = await launch(argv, host, port, unixPath);
      },
    };
    return backend;
  }
}

async function launch(argv: string[], host: string, port: number, unixPath: string | null): Promise<ManagedProcess> {
  const proc = spawnManaged(argv);
  const alive = () => proc.running;
  try {
    await waitForPort(host, port, STARTUP_MS, alive);
    if (unixPath) await waitForUnixSocket(unixPath, STARTUP_MS, alive);
  } catch (error) {
    await proc.kill();
    await proc.drained;
    throw new Error(`${argv[0]} did not start (${(error as Error).message}): ${proc.stdout()}${proc.stderr()}`);
  }
  return proc;
}
