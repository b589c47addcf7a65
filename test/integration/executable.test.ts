// What `npm run build` makes, checked when the suites run on it (BC_EXECUTABLE=dist/buncracker,
// the second pass of scripts/test.sh; skipped on the source): the single executable alone in an
// empty folder, with no Bun, node or node_modules to be found, routes keys over two real redis
// servers (the WASM hashkit is inside it) and prints the version banner; the Debian package
// beside it holds that same executable, the conffiles, the systemd unit and a man page that lists
// every flag --help lists. test/package.sh installs the package for real.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { gunzipSync } from "node:zlib";
import pkg from "../../package.json" with { type: "json" };
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { freePort, waitForPort } from "../helpers/ports.ts";
import { runToEnd, spawnManaged } from "../helpers/process.ts";
import { EXECUTABLE } from "../helpers/proxy.ts";
import { redisCall } from "../helpers/direct.ts";
import { pipeline, respFrame } from "../helpers/resp.ts";
import { makeTempDir, type TempDir } from "../helpers/tmp.ts";

setDefaultTimeout(60_000);

const REPO = join(import.meta.dir, "..", "..");
/** buncracker from source, to compare with. */
const SOURCE = [join(REPO, "node_modules", ".bin", "bun"), join(REPO, "src", "main.ts")];

/** The flags `--help` lists, long names without dashes, sorted. */
const helpFlags = (help: string): string[] => [...help.matchAll(/^ +(?:-\w, )?--([a-z-]+)/gm)].map((m) => m[1]!).sort();

describe.skipIf(EXECUTABLE === null)("the single executable and the Debian package", () => {
  const exe = EXECUTABLE!;
  let dir: TempDir;
  let alone: string;
  let backends: Backend[] = [];

  beforeAll(async () => {
    dir = makeTempDir("bct-exe-");
    alone = dir.file("buncracker");
    copyFileSync(exe, alone);
    backends = await Promise.all([startRedis(), startRedis()]);
  });

  afterAll(async () => {
    await Promise.all(backends.map((b) => b.stop()));
    dir?.remove();
  });

  test("-V: our version and the runtime's", async () => {
    const run = await runToEnd([alone, "-V"]);
    expect(run.code).toBe(0);
    expect(run.stderr).toStartWith(`This is buncracker-${pkg.version} (compatible with twemproxy 0.5.0)\nruntime: bun ${Bun.version}\n`);
  });

  test("-h, -D, -t (valid, invalid, missing file) and bad flags: the same output and exit status as the source", async () => {
    const good = dir.file("good.yml");
    const bad = dir.file("bad.yml");
    writeFileSync(good, poolYaml("p", { listen: "127.0.0.1:22121" }, ["127.0.0.1:6379:1"]));
    writeFileSync(bad, poolYaml("p", { listen: "127.0.0.1:22121", foo: 1 }, ["127.0.0.1:6379:1"]));
    const cases = [["-h"], ["-D"], ["-t", "-c", good], ["-t", "-c", bad], ["-t", "-c", dir.file("absent.yml")], ["-x"], ["--workers", "0"], ["-s", "70000"]];
    for (const argv of cases) {
      const [ours, source] = await Promise.all([runToEnd([alone, ...argv]), runToEnd([...SOURCE, ...argv])]);
      expect({ argv, code: ours.code, stdout: ours.stdout, stderr: ours.stderr }).toEqual({ argv, code: source.code, stdout: source.stdout, stderr: source.stderr });
    }
  });

  test("alone in an empty folder, no Bun or node on the PATH: routes keys over two redis servers", async () => {
    const listen = freePort();
    writeFileSync(dir.file("proxy.yml"), poolYaml("p", { listen: `127.0.0.1:${listen}`, redis: true, hash: "murmur", distribution: "ketama" }, backends.map((b) => serverLine(b.address))));
    const before = readdirSync(dir.path).sort();
    const proc = spawnManaged([alone, "-c", "proxy.yml", "-s", String(freePort()), "-a", "127.0.0.1"], { cwd: dir.path, env: { PATH: "/nonexistent" } });
    try {
      await waitForPort("127.0.0.1", listen, 10_000, () => proc.running);
      const client = await RawClient.connect({ host: "127.0.0.1", port: listen });
      const keys = Array.from({ length: 100 }, (_, i) => `alone:${i}`);
      await client.send(pipeline(keys.map((k) => ["SET", k, k])));
      const replies = await client.readReplies(keys.length, respFrame);
      client.close();
      expect(new Set(replies.map(String))).toEqual(new Set(["+OK\r\n"]));
      const held = await Promise.all(backends.map((b) => redisCall(b, "DBSIZE")));
      expect(held.map(Number).reduce((a, b) => a + b)).toBe(100);
      expect(held.every((n) => Number(n) > 0)).toBe(true);
      // Nothing unpacked beside it.
      expect(readdirSync(dir.path).sort()).toEqual(before);
    } finally {
      await proc.stop();
    }
  });

  test("the .deb: the same executable, conffiles, the systemd unit, a man page listing every --help flag", async () => {
    const deb = join(dirname(exe), `buncracker_${pkg.version}_${(await runToEnd(["dpkg", "--print-architecture"])).stdout.trim()}.deb`);
    const root = dir.file("root");
    expect((await runToEnd(["dpkg-deb", "-x", deb, root])).code).toBe(0);
    const field = async (name: string) => (await runToEnd(["dpkg-deb", "-f", deb, name])).stdout.trim();
    expect(await field("Package")).toBe("buncracker");
    expect(await field("Version")).toBe(pkg.version);
    const conffiles = (await runToEnd(["sh", "-c", `dpkg-deb --ctrl-tarfile '${deb}' | tar -xO ./conffiles`])).stdout;
    expect(conffiles.trim().split("\n").sort()).toEqual(["/etc/buncracker/buncracker.yml", "/etc/default/buncracker"]);
    expect(Bun.hash(readFileSync(join(root, "usr/sbin/buncracker")))).toBe(Bun.hash(readFileSync(exe)));
    const unit = readFileSync(join(root, "lib/systemd/system/buncracker.service"), "utf8");
    for (const line of ["Restart=on-failure", "ExecReload=/bin/kill -USR1 $MAINPID", "KillSignal=SIGTERM", "DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict"]) {
      expect(unit.split("\n")).toContain(line);
    }
    // The stop timeout covers the drain timeout the unit passes.
    const drainMs = Number(/--drain-timeout=(\d+)/.exec(unit)?.[1]);
    const stopSec = Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)?.[1]);
    expect(stopSec * 1000).toBeGreaterThan(drainMs);
    expect(Number(/^LimitNOFILE=(\d+)$/m.exec(unit)?.[1])).toBeGreaterThanOrEqual(65536);
    const man = gunzipSync(readFileSync(join(root, "usr/share/man/man8/buncracker.8.gz"))).toString();
    const manFlags = [...man.matchAll(/\\fB\\-\\-([a-z\\-]+)\\fR/g)].map((m) => m[1]!.replaceAll("\\-", "-"));
    const help = (await runToEnd([alone, "--help"])).stderr;
    expect(helpFlags(help).length).toBeGreaterThan(10);
    expect([...new Set(manFlags)].sort()).toEqual(helpFlags(help));
  });
});
