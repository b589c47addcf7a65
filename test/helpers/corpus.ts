// Request corpora (test/corpus/*.txt): named sessions of requests, each sent as one pipeline on
// a fresh connection. Format:
//
//   # a comment
//   == session-name
//   SET key "a value with spaces\r\n"      (redis: one command per line, redis-cli quoting)
//   raw "*1\r\n$4\r\nPING\r\n"            (bytes sent as they are; counts as one reply)
//   set k 0 0 5\r\nhello                    (memcached: the line as written, then \r\n)
//
// Quoting: "..." with \r \n \t \\ \" \xHH escapes; bare words are taken as they are. In memcached
// corpora the whole line (after unescaping) is the request, so data blocks are written inline.

import { readFileSync } from "node:fs";
import { command } from "./resp.ts";

export interface CorpusSession {
  name: string;
  /** The file line of the `==` header, for messages. */
  line: number;
  requests: Buffer[];
  /** How many replies a well-behaved server sends for this session. */
  replies: number;
}

export type CorpusProtocol = "redis" | "memcached";

export function loadCorpus(path: string, protocol: CorpusProtocol): CorpusSession[] {
  const sessions: CorpusSession[] = [];
  const text = readFileSync(path, "latin1");
  let current: CorpusSession | null = null;
  let quitSeen = false;
  text.split("\n").forEach((raw, index) => {
    const source = raw.replace(/\r$/, "");
    const trimmed = source.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const where = `${path}:${index + 1}`;
    if (trimmed.startsWith("==")) {
      const name = trimmed.slice(2).trim();
      if (sessions.some((s) => s.name === name)) throw new Error(`${where}: duplicate session ${JSON.stringify(name)}`);
      current = { name, line: index + 1, requests: [], replies: 0 };
      sessions.push(current);
      quitSeen = false;
      return;
    }
    if (current === null) throw new Error(`${where}: a request before the first "== name" line`);
    const session: CorpusSession = current;
    if (trimmed.startsWith("raw ")) {
      const [bytes, ...rest] = tokenize(trimmed.slice(4), where);
      if (bytes === undefined || rest.length > 0) throw new Error(`${where}: raw takes one quoted string`);
      session.requests.push(bytes);
      if (!quitSeen) session.replies++;
      return;
    }
    if (protocol === "redis") {
      const args = tokenize(trimmed, where);
      session.requests.push(command(...args));
      const name = args[0]!.toString("latin1").toLowerCase();
      if (name === "quit") quitSeen = true;
      else if (!quitSeen) session.replies++;
    } else {
      const request = Buffer.concat([unescape(trimmed, where), Buffer.from("\r\n")]);
      session.requests.push(request);
      const head = request.toString("latin1").split("\r\n")[0]!.split(" ");
      if (head[0] === "quit") quitSeen = true;
      else if (!quitSeen && head[head.length - 1] !== "noreply") session.replies++;
    }
  });
  for (const s of sessions) if (s.requests.length === 0) throw new Error(`${path}:${s.line}: session ${s.name} is empty`);
  return sessions;
}

/** Splits a line into arguments: bare words, or "quoted" strings with escapes. */
function tokenize(line: string, where: string): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i < line.length) {
    if (line[i] === " " || line[i] === "\t") {
      i++;
      continue;
    }
    if (line[i] === '"') {
      let j = i + 1;
      let body = "";
      while (j < line.length && line[j] !== '"') {
        if (line[j] === "\\") {
          body += line.slice(j, j + 2);
          j += 2;
        } else body += line[j++];
      }
      if (j >= line.length) throw new Error(`${where}: unterminated quote`);
      out.push(unescape(body, where));
      i = j + 1;
      if (i < line.length && line[i] !== " ") throw new Error(`${where}: a quoted argument must be followed by a space`);
    } else {
      let j = i;
      while (j < line.length && line[j] !== " " && line[j] !== "\t") j++;
      out.push(Buffer.from(line.slice(i, j), "latin1"));
      i = j;
    }
  }
  if (out.length === 0) throw new Error(`${where}: empty request`);
  return out;
}

const ESCAPES: Record<string, number> = { r: 13, n: 10, t: 9, "\\": 92, '"': 34, "0": 0, s: 32 };

/** Resolves \r \n \t \\ \" \0 \s (space) and \xHH. */
function unescape(text: string, where: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (text[i] !== "\\") {
      bytes.push(c & 0xff);
      continue;
    }
    const e = text[i + 1];
    if (e === "x") {
      const hex = text.slice(i + 2, i + 4);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw new Error(`${where}: bad \\x escape`);
      bytes.push(parseInt(hex, 16));
      i += 3;
    } else if (e !== undefined && e in ESCAPES) {
      bytes.push(ESCAPES[e]!);
      i += 1;
    } else throw new Error(`${where}: unknown escape \\${e ?? ""}`);
  }
  return Buffer.from(bytes);
}
