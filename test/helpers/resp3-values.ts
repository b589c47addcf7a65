// Random RESP3 values and their encoding, for the RESP3 round trips and fuzzing: every type
// (attributes, pushes, streamed strings and aggregates included), nested. The encoder is the
// test's own, written from the RESP3 specification, independent of src/proto/redis.

import type { Resp3 } from "./resp.ts";

export interface RandomSource {
  int(n: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
}

const TEXT = "abcxyz019 :\r\n\x00\xff";

function text(rng: RandomSource, max: number): string {
  let s = "";
  const n = rng.chance(0.1) ? 0 : rng.int(max + 1);
  for (let i = 0; i < n; i++) s += TEXT[rng.int(TEXT.length)];
  return s;
}

/** A line's text: no CR or LF. */
function lineText(rng: RandomSource): string {
  return text(rng, 12).replace(/[\r\n]/g, "_");
}

export function randomResp3(rng: RandomSource, depth = 3): Resp3 {
  const kinds = depth > 0 ? 15 : 10;
  switch (rng.int(kinds)) {
    case 0:
      return { t: "simple", v: lineText(rng) };
    case 1:
      return { t: "error", v: `ERR ${lineText(rng)}` };
    case 2:
      return { t: "int", v: BigInt(rng.int(2_000_000) - 1_000_000) * (rng.chance(0.1) ? 1_000_000_000_000n : 1n) };
    case 3:
      return { t: "double", v: rng.pick(["1.5", "-0.25", "inf", "-inf", "nan", "3", "1e+300", String(rng.int(1000) / 7)]) };
    case 4:
      return { t: "big", v: (rng.chance(0.5) ? "-" : "") + "3492890328409238509324850943850943825024385" };
    case 5:
      return { t: "bool", v: rng.chance(0.5) };
    case 6:
      return { t: "null" };
    case 7:
      return { t: "bulk", v: rng.chance(0.1) ? null : text(rng, 40) };
    case 8:
      return { t: "verbatim", format: rng.pick(["txt", "mkd"]), v: text(rng, 40) };
    case 9:
      return { t: "blobError", v: `SYNTAX ${text(rng, 20)}` };
    case 10:
      return { t: "array", v: rng.chance(0.1) ? null : list(rng, depth) };
    case 11:
      return { t: "set", v: list(rng, depth) };
    case 12:
      return { t: "push", v: [{ t: "bulk", v: "message" }, ...list(rng, depth)] };
    case 13:
      return { t: "map", v: pairs(rng, depth) };
    default:
      return { t: "attr", attrs: pairs(rng, depth), v: randomResp3(rng, depth - 1) };
  }
}

function list(rng: RandomSource, depth: number): Resp3[] {
  return Array.from({ length: rng.int(5) }, () => randomResp3(rng, depth - 1));
}

function pairs(rng: RandomSource, depth: number): [Resp3, Resp3][] {
  return Array.from({ length: rng.int(4) }, () => [randomResp3(rng, depth - 1), randomResp3(rng, depth - 1)]);
}

/** The encoding of `value`; with `streamed`, strings and aggregates are sometimes sent streamed. */
export function encodeResp3(value: Resp3, rng: RandomSource | null = null): string {
  const streamed = rng !== null && rng.chance(0.2);
  const blob = (type: string, body: string): string => {
    if (streamed && type === "$" && body.length > 0) {
      const cut = rng!.int(body.length);
      const parts = [body.slice(0, cut), body.slice(cut)].filter((p) => p.length > 0);
      return `$?\r\n${parts.map((p) => `;${p.length}\r\n${p}\r\n`).join("")};0\r\n`;
    }
    return `${type}${body.length}\r\n${body}\r\n`;
  };
  const aggregate = (type: string, items: Resp3[], count: number): string =>
    streamed && type !== "|"
      ? `${type}?\r\n${items.map((i) => encodeResp3(i, rng)).join("")}.\r\n`
      : `${type}${count}\r\n${items.map((i) => encodeResp3(i, rng)).join("")}`;
  switch (value.t) {
    case "simple":
      return `+${value.v}\r\n`;
    case "error":
      return `-${value.v}\r\n`;
    case "int":
      return `:${value.v}\r\n`;
    case "double":
      return `,${value.v}\r\n`;
    case "big":
      return `(${value.v}\r\n`;
    case "bool":
      return `#${value.v ? "t" : "f"}\r\n`;
    case "null":
      return "_\r\n";
    case "bulk":
      return value.v === null ? "$-1\r\n" : blob("$", value.v);
    case "verbatim":
      return blob("=", `${value.format}:${value.v}`);
    case "blobError":
      return blob("!", value.v);
    case "array":
      return value.v === null ? "*-1\r\n" : aggregate("*", value.v, value.v.length);
    case "set":
      return aggregate("~", value.v, value.v.length);
    case "push":
      return aggregate(">", value.v, value.v.length);
    case "map":
      return aggregate("%", value.v.flat(), value.v.length);
    case "attr":
      return aggregate("|", value.attrs.flat(), value.attrs.length) + encodeResp3(value.v, rng);
  }
}
