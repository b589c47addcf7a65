// A Redis Sentinel deployment on loopback for the high-availability tests: shards of a master and
// a replica (real redis-server processes) watched by real redis-sentinel processes, with short
// down-after and failover timeouts so a failover takes seconds. `startSentinels()` resolves once
// every sentinel knows every shard's replica and the other sentinels (so SENTINEL FAILOVER can
// succeed at once); `stop()` stops every process it started.

import { writeFileSync } from "node:fs";
import { startRedis, type Backend, type BackendTls } from "./backends.ts";
import { exchange, type RawClient } from "./client.ts";
import { redisCall } from "./direct.ts";
import { freePort, waitForPort } from "./ports.ts";
import { spawnManaged, type ManagedProcess } from "./process.ts";
import { command, decode, plain, RespError, respFrame, type RespValue } from "./resp.ts";
import { makeTempDir, type TempDir } from "./tmp.ts";

export interface Shard {
  /** The sentinel master name (the proxy's server name). */
  readonly name: string;
  /** The redis-servers the shard started with: the master at first, the replica at first. A
   *  failover swaps their roles, not these fields. */
  readonly master: Backend;
  readonly replica: Backend;
}

export interface SentinelProcess {
  readonly host: string;
  readonly port: number;
  /** "host:port", as written in a proxy's `sentinels:` list. */
  readonly address: string;
  readonly process: ManagedProcess;
  /** SIGKILL and wait for exit; its config file (what it learned) stays for restart(). */
  kill(): Promise<void>;
  /** Starts again on the same port with the config file it left. */
  restart(): Promise<void>;
  readonly running: boolean;
}

export interface SentinelDeployment {
  readonly shards: readonly Shard[];
  readonly sentinels: readonly SentinelProcess[];
  /** Every redis-server, masters and replicas. */
  readonly backends: readonly Backend[];
  /** The address a sentinel that answers calls `name`'s master now, as "host:port". */
  masterOf(name: string): Promise<string>;
  /** Waits until every running sentinel calls `address` the master of `name`, and the shard's
   *  two servers hold the roles that go with it. */
  awaitMaster(name: string, address: string, timeoutMs?: number): Promise<void>;
  /** The shard's backend at `address` (its master or its replica). */
  backendAt(name: string, address: string): Backend;
  stop(): Promise<void>;
}

export interface SentinelOptions {
  /** Shard names; default ["shard1", "shard2"]. */
  shards?: readonly string[];
  /** Sentinel processes; default 3 (quorum 2). */
  sentinels?: number;
  /** sentinel down-after-milliseconds; default 1000. */
  downAfterMs?: number;
  /** sentinel failover-timeout; default 6000. */
  failoverTimeoutMs?: number;
  /** requirepass on every sentinel (sentinel_auth). */
  sentinelPassword?: string;
}

const STARTUP_MS = 5000;
const SETTLE_MS = 20000;

const text = (v: RespValue): string => (Buffer.isBuffer(v) ? v.toString("latin1") : String(v));

/** A flat [field, value, ...] reply as a map. */
function fields(v: RespValue): Map<string, string> {
  const list = v as RespValue[];
  const out = new Map<string, string>();
  for (let i = 0; i + 1 < list.length; i += 2) out.set(text(list[i]!), text(list[i + 1]!));
  return out;
}

/** One command to a sentinel, with AUTH first when it needs a password. */
export async function sentinelCall(s: { host: string; port: number }, password: string | undefined, ...args: string[]): Promise<RespValue> {
  const commands = [...(password === undefined ? [] : [command("AUTH", password)]), command(...args)];
  const replies = await exchange({ host: s.host, port: s.port }, Buffer.concat(commands), commands.length, respFrame, 3000);
  const reply = decode(replies[replies.length - 1]!);
  if (reply instanceof RespError) throw new Error(`${args.join(" ")}: ${reply.message}`);
  return reply;
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs} ms${last ? ` (${(last as Error).message})` : ""}`);
    await Bun.sleep(100);
  }
}

/** The role a redis-server reports (`master` or `slave`) and, for a replica, its master and
 *  whether the replication link is up. */
async function roleOf(b: Backend): Promise<{ role: string; master: string; linkUp: boolean }> {
  const info = text(await redisCall(b, "INFO", "replication"));
  const get = (name: string) => new RegExp(`^${name}:(.*)$`, "m").exec(info)?.[1]?.trim() ?? "";
  return { role: get("role"), master: `${get("master_host")}:${get("master_port")}`, linkUp: get("master_link_status") === "up" };
}

function sentinelConfig(port: number, dir: TempDir, shards: readonly Shard[], opts: Required<Omit<SentinelOptions, "sentinelPassword">> & SentinelOptions): string {
  const quorum = Math.floor(opts.sentinels / 2) + 1;
  const lines = [
    `port ${port}`,
    `bind 127.0.0.1`,
    `daemonize no`,
    `protected-mode no`,
    `dir ${dir.path}`,
    `logfile ""`,
    ...(opts.sentinelPassword === undefined ? [] : [`requirepass ${opts.sentinelPassword}`, `sentinel sentinel-pass ${opts.sentinelPassword}`]),
  ];
  for (const shard of shards) {
    lines.push(
      `sentinel monitor ${shard.name} ${shard.master.host} ${shard.master.port} ${quorum}`,
      `sentinel down-after-milliseconds ${shard.name} ${opts.downAfterMs}`,
      `sentinel failover-timeout ${shard.name} ${opts.failoverTimeoutMs}`,
      `sentinel parallel-syncs ${shard.name} 1`,
    );
  }
  return lines.join("\n") + "\n";
}

async function launchSentinel(configFile: string, port: number): Promise<ManagedProcess> {
  const proc = spawnManaged(["redis-sentinel", configFile]);
  try {
    await waitForPort("127.0.0.1", port, STARTUP_MS, () => proc.running);
  } catch (error) {
    await proc.kill();
    await proc.drained;
    throw new Error(`redis-sentinel did not start (${(error as Error).message}): ${proc.stdout()}${proc.stderr()}`);
  }
  return proc;
}

async function startSentinel(shards: readonly Shard[], opts: Required<Omit<SentinelOptions, "sentinelPassword">> & SentinelOptions): Promise<{ process: SentinelProcess; dir: TempDir }> {
  const dir = makeTempDir("bct-sentinel-");
  for (let attempt = 1; ; attempt++) {
    const port = freePort();
    const configFile = dir.file("sentinel.conf");
    writeFileSync(configFile, sentinelConfig(port, dir, shards, opts));
    const started = await launchSentinel(configFile, port).catch((error: Error) => error);
    if (started instanceof Error) {
      if (attempt < 5) continue;
      dir.remove();
      throw started;
    }
    let current = started;
    const process: SentinelProcess = {
      host: "127.0.0.1",
      port,
      address: `127.0.0.1:${port}`,
      get process() {
        return current;
      },
      get running() {
        return current.running;
      },
      async kill() {
        await current.kill();
      },
      async restart() {
        await current.kill();
        current = await launchSentinel(configFile, port);
      },
    };
    return { process, dir };
  }
}

export async function startSentinels(options: SentinelOptions = {}): Promise<SentinelDeployment> {
  const opts = {
    shards: options.shards ?? ["shard1", "shard2"],
    sentinels: options.sentinels ?? 3,
    downAfterMs: options.downAfterMs ?? 1000,
    failoverTimeoutMs: options.failoverTimeoutMs ?? 6000,
    sentinelPassword: options.sentinelPassword,
  };
  const backends: Backend[] = [];
  const dirs: TempDir[] = [];
  const sentinels: SentinelProcess[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(sentinels.map((s) => s.process.stop()));
    await Promise.all(backends.map((b) => b.stop()));
    for (const d of dirs) d.remove();
  };
  try {
    const shards: Shard[] = [];
    for (const name of opts.shards) {
      const master = await startRedis();
      backends.push(master);
      // A replica that is promoted must accept writes; sentinel checks the replica's INFO.
      const replica = await startRedis({ args: ["--replicaof", master.host, String(master.port), "--replica-read-only", "yes"] });
      backends.push(replica);
      shards.push({ name, master, replica });
    }
    for (const shard of shards) {
      await until(`replica of ${shard.name} in sync`, SETTLE_MS, async () => (await roleOf(shard.replica)).linkUp);
    }
    for (let i = 0; i < opts.sentinels; i++) {
      const { process, dir } = await startSentinel(shards, opts);
      sentinels.push(process);
      dirs.push(dir);
    }
    const call = (s: SentinelProcess, ...args: string[]) => sentinelCall(s, opts.sentinelPassword, ...args);
    // Ready when every sentinel sees every replica and every other sentinel.
    for (const s of sentinels) {
      for (const shard of shards) {
        await until(`sentinel ${s.address} knows ${shard.name}`, SETTLE_MS, async () => {
          const m = fields(await call(s, "SENTINEL", "MASTER", shard.name));
          return Number(m.get("num-slaves")) >= 1 && Number(m.get("num-other-sentinels")) >= opts.sentinels - 1;
        });
      }
    }

    const byName = (name: string): Shard => {
      const shard = shards.find((s) => s.name === name);
      if (shard === undefined) throw new Error(`no shard ${name}`);
      return shard;
    };
    const deployment: SentinelDeployment = {
      shards,
      sentinels,
      backends,
      async masterOf(name) {
        for (const s of sentinels) {
          if (!s.running) continue;
          try {
            const reply = (await call(s, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)) as RespValue[];
            return `${text(reply[0]!)}:${text(reply[1]!)}`;
          } catch {
            // try the next one
          }
        }
        throw new Error(`no sentinel answers for ${name}`);
      },
      async awaitMaster(name, address, timeoutMs = SETTLE_MS) {
        const shard = byName(name);
        const master = deployment.backendAt(name, address);
        const replica = master === shard.master ? shard.replica : shard.master;
        await until(`${name} settled on master ${address}`, timeoutMs, async () => {
          for (const s of sentinels) {
            if (!s.running) continue;
            const reply = (await call(s, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", name)) as RespValue[];
            if (`${text(reply[0]!)}:${text(reply[1]!)}` !== address) return false;
          }
          if ((await roleOf(master)).role !== "master") return false;
          if (!replica.process.running) return true;
          const r = await roleOf(replica);
          return r.role === "slave" && r.master === address && r.linkUp;
        });
      },
      backendAt(name, address) {
        const shard = byName(name);
        if (shard.master.address === address) return shard.master;
        if (shard.replica.address === address) return shard.replica;
        throw new Error(`${address} is not a server of ${name}`);
      },
      stop,
    };
    return deployment;
  } catch (error) {
    await stop();
    throw error;
  }
}

/** SENTINEL FAILOVER <name> on one sentinel (it leads the failover). */
export async function forceFailover(sentinel: SentinelProcess, name: string, password?: string): Promise<void> {
  const reply = await sentinelCall(sentinel, password, "SENTINEL", "FAILOVER", name);
  if (text(reply) !== "OK") throw new Error(`SENTINEL FAILOVER ${name}: ${text(reply)}`);
}

/** One redis-sentinel whose port speaks only TLS (`tls-port`, `port 0`), monitoring `masters`
 *  (TLS redis-servers; `tls-replication yes`: it reaches them over TLS, with its own certificate
 *  as client certificate) with quorum 1. `tls.requireClientCert`: clients must show a
 *  certificate `tls.ca` signed. For the TLS suites; `stop()` stops it and removes its dir. */
export async function startTlsSentinel(
  masters: readonly { name: string; backend: Backend }[],
  tls: BackendTls & { ca: string },
): Promise<{ readonly address: string; stop(): Promise<void> }> {
  const dir = makeTempDir("bct-tls-sentinel-");
  for (let attempt = 1; ; attempt++) {
    const port = freePort();
    const configFile = dir.file("sentinel.conf");
    const lines = [
      `port 0`,
      `tls-port ${port}`,
      `tls-cert-file ${tls.cert}`,
      `tls-key-file ${tls.key}`,
      `tls-ca-cert-file ${tls.ca}`,
      `tls-auth-clients ${tls.requireClientCert ? "yes" : "no"}`,
      `tls-replication yes`,
      `bind 127.0.0.1`,
      `daemonize no`,
      `protected-mode no`,
      `dir ${dir.path}`,
      `logfile ""`,
      ...masters.flatMap(({ name, backend }) => [
        `sentinel monitor ${name} ${backend.host} ${backend.port} 1`,
        `sentinel down-after-milliseconds ${name} 1000`,
      ]),
    ];
    writeFileSync(configFile, lines.join("\n") + "\n");
    const started = await launchSentinel(configFile, port).catch((error: Error) => error);
    if (started instanceof Error) {
      if (attempt < 5) continue;
      dir.remove();
      throw started;
    }
    return {
      address: `127.0.0.1:${port}`,
      async stop() {
        await started.stop();
        dir.remove();
      },
    };
  }
}

/** The next `n` replies of a client through the proxy, as plain values (resp.ts plain). */
export async function readPlain(c: RawClient, n: number, timeoutMs = 30_000): Promise<unknown[]> {
  return (await c.readReplies(n, respFrame, timeoutMs)).map((r) => plain(decode(r)));
}
