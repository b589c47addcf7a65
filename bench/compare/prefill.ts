// Writes every key a workload can read (so gets hit), and checks that an endpoint answers.

import { WireClient, lineCount } from "./wire.ts";

export interface KeySet {
  prefix: string;
  keyspace: number;
  valueSize: number;
}

const BATCH_BYTES = 256 * 1024;

const keyName = (prefix: string, n: number): string => prefix + String(n).padStart(12, "0");

function setCommand(redis: boolean, key: string, value: string): string {
  return redis
    ? `*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${value.length}\r\n${value}\r\n`
    : `set ${key} 0 0 ${value.length}\r\n${value}\r\n`;
}

/** Sets every key of `keys` through 127.0.0.1:`port`, pipelined; throws on any error reply. */
export async function prefill(port: number, redis: boolean, keys: KeySet): Promise<void> {
  const value = "x".repeat(keys.valueSize);
  const perBatch = Math.max(1, Math.floor(BATCH_BYTES / (keys.valueSize + 64)));
  const encoder = new TextEncoder();
  const client = await WireClient.open(port);
  try {
    for (let first = 0; first < keys.keyspace; first += perBatch) {
      const count = Math.min(perBatch, keys.keyspace - first);
      let batch = "";
      for (let n = first; n < first + count; n++) batch += setCommand(redis, keyName(keys.prefix, n), value);
      const replies = await client.send(encoder.encode(batch), (text) => lineCount(text) >= count, 30_000);
      const bad = replies.split("\r\n").find((line) => line !== "" && line !== (redis ? "+OK" : "STORED"));
      if (bad !== undefined) throw new Error(`prefill ${keys.prefix} via ${port}: ${bad}`);
    }
  } finally {
    client.close();
  }
}

/** A set and a get of one key; resolves with null when both work, else with what went wrong. */
export async function probe(port: number, redis: boolean): Promise<string | null> {
  const key = "buncracker-bench-probe";
  const request = redis
    ? `${setCommand(true, key, "ok")}*2\r\n$3\r\nGET\r\n$${key.length}\r\n${key}\r\n`
    : `${setCommand(false, key, "ok")}get ${key}\r\n`;
  const expected = redis ? "+OK\r\n$2\r\nok\r\n" : `STORED\r\nVALUE ${key} 0 2\r\nok\r\nEND\r\n`;
  try {
    const client = await WireClient.open(port);
    try {
      const reply = await client.send(new TextEncoder().encode(request), (text) => text.length >= expected.length, 3000);
      return reply === expected ? null : `unexpected reply ${JSON.stringify(reply)}`;
    } finally {
      client.close();
    }
  } catch (error) {
    return (error as Error).message;
  }
}
