// Sentinel event messages and replies as redis-sentinel 7 sends them (the texts below, but for IPv6, were
// captured from real sentinels during a SENTINEL FAILOVER), parsed into typed events; the reply
// reader fed byte by byte.

import { describe, expect, test } from "bun:test";
import { CHANNELS, EVENTS, parseEvent } from "../../src/sentinel/events.ts";
import { redisCodec } from "../../src/proto/redis/index.ts";
import { encodeCommand, fieldsOf, ReplyError, ReplyReader } from "../../src/sentinel/reply.ts";

describe("parseEvent", () => {
  test("+switch-master names the master, its old and its new address", () => {
    expect(parseEvent("+switch-master", "shard1 127.0.0.1 31481 127.0.0.1 28668")).toEqual({
      channel: "+switch-master",
      meaning: "switch-master",
      master: "shard1",
      type: "master",
      instance: { host: "127.0.0.1", port: 31481 },
      to: { host: "127.0.0.1", port: 28668 },
    });
  });

  test("a master event names the master itself", () => {
    expect(parseEvent("+try-failover", "master shard1 127.0.0.1 31481")).toMatchObject({
      meaning: "failover",
      master: "shard1",
      type: "master",
      instance: { host: "127.0.0.1", port: 31481 },
    });
    expect(parseEvent("+odown", "master shard1 127.0.0.1 31481 #quorum 2/2")).toMatchObject({ meaning: "down", type: "master" });
  });

  test("a replica event names its master after the @", () => {
    const e = parseEvent("+selected-slave", "slave 127.0.0.1:28668 127.0.0.1 28668 @ shard1 127.0.0.1 31481");
    expect(e).toMatchObject({ meaning: "failover", master: "shard1", type: "slave", instance: { host: "127.0.0.1", port: 28668 } });
    const role = parseEvent("-role-change", "slave 127.0.0.1:31481 127.0.0.1 31481 @ shard1 127.0.0.1 28668 new reported role is master");
    expect(role).toMatchObject({ meaning: "replicas", master: "shard1", instance: { port: 31481 } });
  });

  test("IPv6 instances", () => {
    expect(parseEvent("+sdown", "slave [::1]:6380 ::1 6380 @ m ::1 6379")).toMatchObject({ master: "m", instance: { host: "::1", port: 6380 } });
  });

  test("channels not followed and malformed messages give null", () => {
    expect(parseEvent("+new-epoch", "1")).toBeNull();
    expect(parseEvent("+switch-master", "shard1 127.0.0.1 x 127.0.0.1 1")).toBeNull();
    expect(parseEvent("+switch-master", "shard1 127.0.0.1 1")).toBeNull();
    expect(parseEvent("+sdown", "slave 127.0.0.1:1 127.0.0.1 1")).toBeNull();
    expect(parseEvent("+sdown", "")).toBeNull();
    expect(parseEvent("+sdown", "master m h 70000")).toBeNull();
  });

  test("every failover step of sentinel.c is followed, and the subscription is the table", () => {
    for (const step of ["+try-failover", "+selected-slave", "+failover-state-send-slaveof-noone", "+promoted-slave"]) {
      expect([step, EVENTS[step]]).toEqual([step, "failover"]);
    }
    for (const abort of ["-failover-abort-not-elected", "-failover-abort-no-good-slave", "-failover-abort-slave-timeout"]) {
      expect([abort, EVENTS[abort]]).toEqual([abort, "abort"]);
    }
    expect(CHANNELS).toEqual(Object.keys(EVENTS));
  });
});

describe("ReplyReader", () => {
  const stream = Buffer.from(
    "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$5\r\na b c\r\n" + "-ERR no such master\r\n" + ":7\r\n" + "$-1\r\n" + "*2\r\n$2\r\nip\r\n+x\r\n",
  );
  const expected = [["message", "+switch-master", "a b c"], new ReplyError("ERR no such master"), 7, null, ["ip", "x"]];

  test("whole stream", () => {
    expect(new ReplyReader(redisCodec).feed(stream)).toEqual(expected);
  });

  test("one byte at a time", () => {
    const reader = new ReplyReader(redisCodec);
    const got = [];
    for (let i = 0; i < stream.length; i++) got.push(...reader.feed(stream.subarray(i, i + 1)));
    expect(got).toEqual(expected);
  });

  test("garbage throws", () => {
    expect(() => new ReplyReader(redisCodec).feed(Buffer.from("hello\r\n"))).toThrow();
  });

  test("commands and field lists", () => {
    expect(Buffer.from(encodeCommand("SENTINEL", "MASTER", "é")).toString()).toBe("*3\r\n$8\r\nSENTINEL\r\n$6\r\nMASTER\r\n$2\r\né\r\n");
    expect(fieldsOf(["ip", "127.0.0.1", "port", "6379"])).toEqual(new Map([["ip", "127.0.0.1"], ["port", "6379"]]));
  });
});
