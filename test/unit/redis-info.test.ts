// INFO built by the proxy (src/proto/redis/info.ts) from two real redis-servers' INFO replies:
// the keyspace and the stats are the sums of what each server says (checked against DBSIZE and
// each server's own fields, clients too), the version is the servers', loading:0 is there for ready checks,
// and sections are chosen as redis chooses them.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { buildInfo, infoBody, lowestVersion, parseInfo, type InfoFacts } from "../../src/proto/redis/info.ts";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { exchange } from "../helpers/client.ts";
import { endpointOf } from "../helpers/direct.ts";
import { command, pipeline, respFrame } from "../helpers/resp.ts";

let servers: Backend[];
beforeAll(async () => {
  servers = await Promise.all([startRedis(), startRedis(), startRedis({ args: ["--databases", "4"] })]);
});
afterAll(async () => {
  await Promise.all(servers.map((s) => s?.stop()));
});

const facts: InfoFacts = { version: "0.1.0", processId: 1234, port: 22121, uptimeSeconds: 90_000, redisDb: 0, cluster: false };

/** Each server's INFO text, read the way the proxy reads it (infoBody of the raw reply). */
async function infos(resp3 = false, section?: string): Promise<string[]> {
  const info = section === undefined ? command("INFO") : command("INFO", section);
  return Promise.all(
    servers.map(async (s) => {
      const replies = await exchange(endpointOf(s), resp3 ? Buffer.concat([command("HELLO", "3"), info]) : info, resp3 ? 2 : 1, respFrame);
      const reply = replies[replies.length - 1]!;
      const text = infoBody(reply, 0, reply.length);
      expect(text).not.toBeNull();
      return text!;
    }),
  );
}

const fieldOf = (text: string, section: string, name: string): string | undefined =>
  parseInfo(text).get(section)?.find(([k]) => k === name)?.[1];

describe("INFO from the servers' INFO", () => {
  test("keyspace: db0 sums the servers' keys and expires", async () => {
    const sizes = [5, 12, 0];
    await Promise.all(
      servers.map((s, i) => {
        const sets = Array.from({ length: sizes[i]! }, (_, k) => ["SET", `k${k}`, "v", ...(k % 3 === 0 ? ["EX", "1000"] : [])]);
        return sets.length === 0 ? null : exchange(endpointOf(s), pipeline(sets), sets.length, respFrame);
      }),
    );
    const text = buildInfo(["keyspace"], await infos(), facts);
    const expires = sizes.reduce((n, size) => n + Math.ceil(size / 3), 0);
    expect(text).toMatch(new RegExp(`^# Keyspace\\r\\ndb0:keys=17,expires=${expires},avg_ttl=\\d+(,[a-z_]+=\\d+)*\\r\\n$`));
    // Another redis_db: the servers' line for that db, still shown as db0 (none here: no line).
    expect(buildInfo(["keyspace"], await infos(), { ...facts, redisDb: 2 })).toBe("# Keyspace\r\n");
  });

  test("stats are summed, the version is the servers', the proxy's facts are its own", async () => {
    const texts = await infos(true); // RESP3: verbatim strings
    const info = buildInfo([], texts, facts);
    const own = (section: string, name: string) => fieldOf(info, section, name);
    const sum = (name: string) => texts.reduce((n, t) => n + Number(fieldOf(t, "stats", name)), 0);
    // Each server counted the INFO it answered after the texts were taken: compare with the
    // texts themselves, not the servers now.
    expect(Number(own("stats", "total_commands_processed"))).toBe(sum("total_commands_processed"));
    expect(Number(own("stats", "total_connections_received"))).toBe(sum("total_connections_received"));
    expect(own("server", "redis_version")).toBe(fieldOf(texts[0]!, "server", "redis_version"));
    expect(own("server", "buncracker_version")).toBe("0.1.0");
    expect(own("server", "uptime_in_days")).toBe("1");
    expect(Number(own("clients", "connected_clients"))).toBe(texts.reduce((n, t) => n + Number(fieldOf(t, "clients", "connected_clients")), 0));
    expect(own("persistence", "loading")).toBe("0");
    expect(own("replication", "role")).toBe("master");
    expect(Number(own("memory", "used_memory"))).toBe(texts.reduce((n, t) => n + Number(fieldOf(t, "memory", "used_memory")), 0));
    // Every line is a header, a field or the blank line between sections, CRLF-terminated.
    expect(info.endsWith("\r\n")).toBe(true);
    for (const line of info.slice(0, -2).split("\r\n")) expect(line).toMatch(/^(# [A-Z][a-z]+|[a-z_0-9]+:[^\r\n]*|)$/);
  });

  test("sections: one, several, any case, all; unknown ones give nothing", async () => {
    const texts = await infos();
    const headers = (requested: string[]) => [...buildInfo(requested, texts, facts).matchAll(/^# (\w+)/gm)].map((m) => m[1]);
    expect(headers([])).toEqual(["Server", "Clients", "Memory", "Persistence", "Stats", "Replication", "Keyspace"]);
    expect(headers(["all"])).toEqual(headers([]));
    expect(headers(["SERVER"])).toEqual(["Server"]);
    expect(headers(["keyspace", "clients"])).toEqual(["Clients", "Keyspace"]);
    expect(buildInfo(["nosuchsection"], texts, facts)).toBe("");
    // A redis_cluster pool's INFO says so (redis-py's RedisCluster checks cluster_enabled).
    const cluster = { ...facts, cluster: true };
    expect([...buildInfo([], texts, cluster).matchAll(/^# (\w+)/gm)].map((m) => m[1])).toEqual([...headers([]), "Cluster"]);
    expect(fieldOf(buildInfo(["cluster"], texts, cluster), "cluster", "cluster_enabled")).toBe("1");
    expect(fieldOf(buildInfo(["server"], texts, cluster), "server", "redis_mode")).toBe("cluster");
    expect(buildInfo(["cluster"], texts, facts)).toBe("");
    // A server that did not answer is left out of the sums.
    expect(fieldOf(buildInfo(["server"], [null, texts[0]!], facts), "server", "redis_version")).toBe(fieldOf(texts[0]!, "server", "redis_version"));
  });

  test("the lowest version of mixed servers; replies that are not INFO texts", () => {
    expect(lowestVersion(["7.0.15", "6.2.14", null, "7.2.4"])).toBe("6.2.14");
    expect(lowestVersion(["10.0.0", "9.9.9"])).toBe("9.9.9");
    expect(lowestVersion([null])).toBeNull();
    const error = Buffer.from("-ERR nope\r\n");
    expect(infoBody(error, 0, error.length)).toBeNull();
    const verbatim = Buffer.from("=10\r\ntxt:# A\r\nb\r\n");
    expect(infoBody(verbatim, 0, verbatim.length)).toBe("# A\r\nb");
  });
});
