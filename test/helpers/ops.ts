// Operations-side helpers: read the stats port, fetch the metrics port, and wait for something a
// process does (a log line, a file, a counter) with a deadline that fails the test with a message.

import { RawClient } from "./client.ts";

/** Stats document types as twemproxy writes them: numbers, strings and nested objects. */
export type StatsValue = number | string | StatsDoc;
export interface StatsDoc {
  [key: string]: StatsValue;
}

/** The raw stats document: connect to the stats port, read until the server closes. */
export async function readStatsText(port: number, host = "127.0.0.1"): Promise<string> {
  const client = await RawClient.connect({ host, port });
  return (await client.readUntilClose()).toString("utf8");
}

export async function readStats(port: number, host = "127.0.0.1"): Promise<StatsDoc> {
  return JSON.parse(await readStatsText(port, host)) as StatsDoc;
}

/** A pool object of a stats document. */
export const poolOf = (doc: StatsDoc, pool: string): StatsDoc => doc[pool] as StatsDoc;
/** A server object of a pool object. */
export const serverOf = (doc: StatsDoc, pool: string, server: string): StatsDoc =>
  poolOf(doc, pool)[server] as StatsDoc;

/** GET (or another method) on the metrics port. */
export function metricsRequest(port: number, path: string, method = "GET"): Promise<Response> {
  return fetch(`http://127.0.0.1:${port}${path}`, { method });
}

/** Polls `check` until it returns a value other than undefined/false; throws after `timeoutMs`
 *  with `what` and the last value seen. */
export async function waitFor<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
  describeLast: () => string = () => "",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await check();
    if (result !== undefined && result !== false) return result;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${describeLast() ? `: ${describeLast()}` : ""}`);
    await Bun.sleep(25);
  }
}

/** Waits until `text()` matches `pattern` `count` times; returns the matches. */
export function waitForLines(
  text: () => string,
  pattern: RegExp,
  count = 1,
  timeoutMs = 10_000,
): Promise<RegExpMatchArray[]> {
  const global = new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`);
  return waitFor(
    `${count} line(s) matching ${pattern}`,
    () => {
      const found = [...text().matchAll(global)];
      return found.length >= count ? found : undefined;
    },
    timeoutMs,
    () => `output so far:\n${text().slice(-2000)}`,
  );
}
