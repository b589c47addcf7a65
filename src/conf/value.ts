// Scalar checks shared by the config schema and the address parsers. A ValueError carries only
// the problem; the loader adds the file, line, pool and key around it.

export class ValueError extends Error {}

const INT_MAX = 2 ** 31 - 1; // twemproxy keeps every number in a C int

/** Digits only (no sign, spaces or 0x) up to INT_MAX, as twemproxy's nc_atoi reads numbers
 *  (which wraps larger ones; we refuse them); null otherwise. */
export function decimal(text: string): number | null {
  if (!/^[0-9]+$/.test(text)) return null;
  const value = Number(text);
  return value > INT_MAX ? null : value;
}

export function parseDecimal(text: string, what: string): number {
  const value = decimal(text);
  if (value !== null) return value;
  const problem = /^[0-9]+$/.test(text) ? `is too large (at most ${INT_MAX})` : "is not a number (digits only)";
  throw new ValueError(`${what} ${quote(text)} ${problem}`);
}

const SIZE_UNITS: Readonly<Record<string, number>> = { "": 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 };
/** Larger sizes are surely typos (and stay exact in a double). */
const SIZE_MAX = 2 ** 50;

/** A size in bytes: digits, optionally followed by kb, mb or gb (1024-based, any case: "512mb"). */
export function parseByteSize(text: string, what: string): number {
  const match = /^([0-9]+)([kmg]b)?$/i.exec(text);
  const bytes = match === null ? NaN : Number(match[1]) * SIZE_UNITS[(match[2] ?? "").toLowerCase()]!;
  if (Number.isNaN(bytes)) throw new ValueError(`${what} ${quote(text)} is not a size (digits, optionally followed by kb, mb or gb)`);
  if (bytes > SIZE_MAX) throw new ValueError(`${what} ${quote(text)} is too large (at most 1024 TB)`);
  return bytes;
}

export function parsePort(text: string, what = "port"): number {
  const port = parseDecimal(text, what);
  if (port < 1 || port > 65535) throw new ValueError(`${what} ${quote(text)} is not a valid port (1..65535)`);
  return port;
}

/** How values are shown in messages: JSON quoting makes empty strings, spaces and \r visible. */
export const quote = (text: string): string => JSON.stringify(text);

export const utf8Length = (text: string): number => Buffer.byteLength(text, "utf8");
