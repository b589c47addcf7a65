// Today's redis clients at their newest major versions, with their default options, through
// buncracker in front of two redis-servers: ioredis, node-redis and iovalkey (which open with
// HELLO 3, CLIENT SETNAME / SETINFO and an INFO ready check), Debian's redis-py (and its
// register_script on three servers that have never seen the script), redis-cli
// (one-shot, interactive on a terminal, and -3) and redis-benchmark's default test set. What
// each returns through the proxy must equal what it returns from a redis-server directly (the
// same workload on a lone server), and keys of the multi-key commands must have spread over
// both servers. buncracker only: nutcracker 0.5.0 closes on the first handshake command.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { startRedis, type Backend } from "../helpers/backends.ts";
import type { Endpoint } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { endpointOf, redisCall, redisHolders, redisKeys, stopAll } from "../helpers/direct.ts";
import { ioredis, iovalkey, nodeRedis, type Workload } from "../helpers/node-clients.ts";
import { freePort } from "../helpers/ports.ts";
import { runToEnd } from "../helpers/process.ts";
import { startProxy, TARGET, type RunningProxy } from "../helpers/proxy.ts";
import { makeTempDir } from "../helpers/tmp.ts";

setDefaultTimeout(60_000);

const PASSWORD = "s3cret";
let backends: Backend[] = []; // the open pool's
let scriptBackends: Backend[] = []; // the scripts pool's: fresh, no script cached
let lockedBackends: Backend[] = []; // the redis_auth pool's (requirepass)
let direct: Backend; // the independent expectation: a lone redis-server
let proxy: RunningProxy;
let open: Endpoint;
let locked: Endpoint;
let scripts: Endpoint;
const tmp = makeTempDir("bct-clients-");

const ours = TARGET === "buncracker";

beforeAll(async () => {
  if (!ours) return;
  [backends, lockedBackends, scriptBackends, direct] = await Promise.all([
    Promise.all([startRedis(), startRedis()]),
    Promise.all([startRedis({ password: PASSWORD }), startRedis({ password: PASSWORD })]),
    Promise.all([startRedis(), startRedis(), startRedis()]),
    startRedis(),
  ]);
  const yaml =
    poolYaml("open", { listen: `127.0.0.1:${freePort()}`, redis: true }, backends.map((b) => serverLine(b.address))) +
    poolYaml("locked", { listen: `127.0.0.1:${freePort()}`, redis: true, redis_auth: PASSWORD }, lockedBackends.map((b) => serverLine(b.address))) +
    poolYaml("scripts", { listen: `127.0.0.1:${freePort()}`, redis: true }, scriptBackends.map((b) => serverLine(b.address)));
  proxy = await startProxy("buncracker", yaml);
  open = proxy.pools.open!;
  locked = proxy.pools.locked!;
  scripts = proxy.pools.scripts!;
});

afterAll(async () => {
  await proxy?.stop();
  await stopAll([...backends, ...lockedBackends, ...scriptBackends, ...(direct ? [direct] : [])]);
  tmp.remove();
});

/** Keys for MSET/MGET; the test checks they spread over both servers. */
const spreadKeys = (prefix: string): string[] => Array.from({ length: 12 }, (_, i) => `${String.fromCharCode(97 + i)}${i * 7919}:${prefix}`);

async function expectSpread(keys: readonly string[], over: readonly Backend[], password?: string): Promise<void> {
  const holders = new Set<number>();
  if (password === undefined) {
    for (const key of keys) for (const h of await redisHolders(over, key)) holders.add(h);
  } else {
    for (let i = 0; i < over.length; i++) {
      const held = (await redisKeys(over[i]!, 0, password)).map(String);
      if (keys.some((k) => held.includes(k))) holders.add(i);
    }
  }
  expect(holders.size).toBe(over.length);
}

const LIBRARIES: [string, Workload][] = [
  ["ioredis", ioredis],
  ["node-redis", nodeRedis],
  ["iovalkey", iovalkey],
];

describe.skipIf(!ours)("Node.js client libraries, default options", () => {
  for (const [name, workload] of LIBRARIES) {
    test(`${name}: the same results as from redis-server itself`, async () => {
      const prefix = `${name}:`;
      const keys = spreadKeys(prefix);
      const theirs = await workload(endpointOf(direct), prefix, keys, { name: "app-1" });
      const through = await workload(open, prefix, keys, { name: "app-1" });
      expect(through).toEqual(theirs);
      // RESP3 types and nulls made it through as the library maps them.
      expect(through.mget).toEqual(["v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10", "v11", null, null]);
      expect(through.hgetall).toEqual({ a: "1", b: "2" });
      expect(through.name).toBe("app-1");
      await expectSpread(keys, backends);
    });

    test(`${name}: with a password (HELLO 3 AUTH / AUTH) against redis_auth`, async () => {
      const prefix = `${name}:auth:`;
      const keys = spreadKeys(prefix);
      const through = await workload(locked, prefix, keys, { password: PASSWORD });
      expect(through.get).toBe("1");
      expect(through.mset).toBe("OK");
      await expectSpread(keys, lockedBackends, PASSWORD);
      await expect(workload(locked, `${name}:bad:`, keys, { password: "wrong" })).rejects.toThrow();
    });
  }
});

// ---- redis-py (Debian's python3-redis) ----

const PYTHON = `
import json, sys, redis
host, port, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
keys = [chr(97 + i) + str(i * 7919) + ":" + prefix for i in range(12)]
r = redis.Redis(host=host, port=port)
out = {}
out["ping"] = r.ping()
out["set"] = r.set(prefix + "a", "1")
out["get"] = r.get(prefix + "a").decode()
p = r.pipeline(transaction=False)
for i in range(10): p.incr(prefix + "n" + str(i % 3))
out["pipeline"] = p.execute()
out["mset"] = r.mset({k: "v" + str(i) for i, k in enumerate(keys)})
out["mget"] = [v.decode() if v is not None else None for v in r.mget(keys + [prefix + "none"])]
blob = bytes(range(256))
r.set(prefix + "bin", blob)
out["binary"] = r.get(prefix + "bin") == blob
script = r.register_script("return redis.call('GET', KEYS[1])")
out["evalsha"] = [script(keys=[prefix + "a"]).decode(), script(keys=[prefix + "a"]).decode()]
out["eval"] = r.eval("return redis.call('GET', KEYS[1])", 1, prefix + "a").decode()
try:
    r.hset(prefix + "a", "f", "v")
except redis.ResponseError as e:
    out["wrongType"] = str(e)
out["afterError"] = r.get(prefix + "a").decode()
r.hset(prefix + "h", mapping={"a": "1", "b": "2"})
out["hgetall"] = {k.decode(): v.decode() for k, v in r.hgetall(prefix + "h").items()}
r.zadd(prefix + "z", {"m": 1.5})
out["zscore"] = r.zscore(prefix + "z", "m")
r.client_setname("py-app")
out["name"] = r.client_getname()
out["info_loading"] = r.info().get("loading")
print(json.dumps(out))
`;

// register_script on servers that have never seen the script: EVALSHA gets NOSCRIPT, then
// redis-py sends SCRIPT LOAD (served on every server) and EVALSHA again; a pipeline of scripts
// asks SCRIPT EXISTS first and loads the missing ones.
const PYTHON_SCRIPTS = `
import json, sys, redis
host, port, prefix = sys.argv[1], int(sys.argv[2]), sys.argv[3]
keys = [chr(97 + i % 26) + str(i * 7919) + ":" + prefix for i in range(300)]
r = redis.Redis(host=host, port=port)
r.mset({k: "v" + k for k in keys})
get = r.register_script("return redis.call('GET', KEYS[1])")
out = {}
out["evalsha"] = [get(keys=[k]).decode() for k in keys] == ["v" + k for k in keys]
out["exists"] = r.script_exists(get.sha)
out["flush"] = r.script_flush()
out["afterFlush"] = r.script_exists(get.sha)
p = r.pipeline(transaction=False)
for k in keys[:30]: get(keys=[k], client=p)
out["pipelined"] = [v.decode() for v in p.execute()] == ["v" + k for k in keys[:30]]
out["load"] = r.script_load("return 1")
print(json.dumps(out))
`;

describe.skipIf(!ours)("redis-py (Debian python3-redis)", () => {
  /** `program` run by Debian's python against e (its JSON output). */
  const run = async (program: string, e: Endpoint, prefix: string) => {
    if ("path" in e) throw new Error("TCP only");
    const file = tmp.file(`${prefix.replace(/\W/g, "")}.py`);
    writeFileSync(file, program);
    // Debian's python, which python3-redis installs into (not a pyenv or venv one on the PATH).
    const r = await runToEnd(["/usr/bin/python3", file, e.host, String(e.port), prefix], 30_000);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    return JSON.parse(r.stdout);
  };

  test("the same results as from redis-server itself", async () => {
    const theirs = await run(PYTHON, endpointOf(direct), "py:");
    const through = await run(PYTHON, open, "py:");
    expect(through).toEqual(theirs);
    expect(through.info_loading).toBe(0);
    await expectSpread(spreadKeys("py:"), backends);
  });

  test("register_script on a fresh pool of three servers: the same results as from redis-server itself", async () => {
    const sha1 = (lua: string): string => createHash("sha1").update(lua).digest("hex");
    const sha = sha1("return redis.call('GET', KEYS[1])");
    for (const b of scriptBackends) expect(await redisCall(b, "SCRIPT", "EXISTS", sha)).toEqual([0]);
    const theirs = await run(PYTHON_SCRIPTS, endpointOf(direct), "pys:");
    const through = await run(PYTHON_SCRIPTS, scripts, "pys:");
    expect(through).toEqual(theirs);
    expect(through).toEqual({ evalsha: true, exists: [true], flush: true, afterFlush: [false], pipelined: true, load: sha1("return 1") });
    // The keys were on every server, and the pipeline loaded the script on every one again.
    for (const b of scriptBackends) {
      expect(((await redisCall(b, "KEYS", "*:pys:")) as Buffer[]).length).toBeGreaterThan(0);
      expect(await redisCall(b, "SCRIPT", "EXISTS", sha)).toEqual([1]);
    }
  });
});

// ---- redis-cli and redis-benchmark ----

/** redis-cli with `args`, reading `input` on its standard input (a terminal with `tty`). */
async function redisCli(e: Endpoint, args: string[], input: string, tty = false): Promise<string> {
  if ("path" in e) throw new Error("TCP only");
  const file = tmp.file(`cli-${Math.random().toString(36).slice(2)}.txt`);
  writeFileSync(file, input);
  const cli = ["redis-cli", "-h", e.host, "-p", String(e.port), ...args].join(" ");
  // `script` gives redis-cli a terminal, so it runs its interactive prompt (TERM=dumb: plain
  // line reading, no terminal queries).
  const shell = tty ? `TERM=dumb script -qc '${cli}' /dev/null < ${file}` : `${cli} < ${file}`;
  const r = await runToEnd(["sh", "-c", shell], 30_000);
  expect(r.code).toBe(0);
  // The terminal echoes the input lines whenever they arrive: leave them out.
  const typed = new Set(input.split("\n"));
  return r.stdout
    .replaceAll(`${e.host}:${e.port}`, "HOST:PORT")
    .split(/\r?\n/)
    .filter((line) => !(tty && typed.has(line)))
    .join("\n");
}

const CLI_INPUT = ["SET cli:a hello", "GET cli:a", "MSET cli:b 1 cli:c 2 cli:d 3", "MGET cli:b cli:c cli:none cli:d", "HSET cli:h f 1.5", "HGETALL cli:h", "INCRBYFLOAT cli:f 0.5", "HSET cli:a f v", "GET cli:a", "PING", "ECHO hi", ""].join("\n");

describe.skipIf(!ours)("redis-cli", () => {
  for (const [label, args, tty] of [
    ["one command per line", [], false],
    ["interactive, on a terminal", [], true],
    ["-3 (RESP3), interactive", ["-3"], true],
  ] as const) {
    test(`${label}: the same output as from redis-server itself`, async () => {
      const theirs = await redisCli(endpointOf(direct), [...args], CLI_INPUT, tty);
      const through = await redisCli(open, [...args], CLI_INPUT, tty);
      expect(through).toBe(theirs);
      expect(through).toContain("hello");
    });
  }
});

describe.skipIf(!ours)("redis-benchmark", () => {
  test("its default test set (PING_INLINE first): every test reports a rate", async () => {
    const run = async (e: Endpoint) => {
      if ("path" in e) throw new Error("TCP only");
      const r = await runToEnd(["redis-benchmark", "-h", e.host, "-p", String(e.port), "-n", "300", "-c", "4", "-q"], 120_000);
      expect(r.code).toBe(0);
      // -q prints "\r<TEST>: rate..." progress lines; the last one per test has the rate.
      const lines = r.stdout.split(/[\r\n]+/).filter((l) => l.includes("requests per second"));
      return lines.map((l) => l.split(":")[0]!.trim());
    };
    const theirs = await run(endpointOf(direct));
    const through = await run(open);
    expect(theirs[0]).toBe("PING_INLINE");
    expect(through).toEqual(theirs);
  }, 240_000);
});
