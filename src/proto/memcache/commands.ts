// The memcached ASCII command table: the single source of every command the proxy knows, its
// line shape (which tokens it takes, whether a data block follows) and how the core routes it.
// The name lookup used by the parser is derived from it.

import { Route, type CommandSpec } from "../codec.ts";

/** The syntax families of command lines (the parser validates each family once). */
export const Shape = {
  /** `<cmd> <key> <flags> <exptime> <bytes> [noreply]` + data block */
  Storage: 0,
  /** `cas <key> <flags> <exptime> <bytes> <cas unique> [noreply]` + data block */
  Cas: 1,
  /** `<cmd> <key>+` */
  Retrieval: 2,
  /** `<cmd> <exptime> <key>+` */
  Gat: 3,
  /** `delete <key> [0] [noreply]` (the `0` is memcached's legacy hold time) */
  Delete: 4,
  /** `<cmd> <key> <value> [noreply]` */
  Arith: 5,
  /** `touch <key> <exptime> [noreply]` */
  Touch: 6,
  /** `version`, any further tokens ignored (as memcached does) */
  Version: 7,
  /** `quit`, any further tokens ignored */
  Quit: 8,
  /** `verbosity <level> [noreply]` */
  Verbosity: 9,
  /** Known to memcached, not proxied: rejected with an error naming it. */
  Unsupported: 10,
  /** Unsupported, but followed by a data block whose length is token 2 (meta `ms`), which
   *  must be skipped to stay in step with the client. */
  UnsupportedWithData: 11,
} as const;
export type Shape = (typeof Shape)[keyof typeof Shape];

/** A command the proxy forwards (or answers, for quit). */
export interface RoutedCommand extends CommandSpec {
  readonly shape: Exclude<Shape, typeof Shape.Unsupported | typeof Shape.UnsupportedWithData>;
}

/** A command the proxy recognises only to reject it by name; it is never routed. */
export interface UnsupportedCommand {
  readonly name: string;
  readonly shape: typeof Shape.Unsupported | typeof Shape.UnsupportedWithData;
  readonly route: null;
}

export type MemcacheCommand = RoutedCommand | UnsupportedCommand;

const routed = (name: string, shape: RoutedCommand["shape"], route: Route, join = 0): RoutedCommand => ({
  name,
  shape,
  route,
  join,
});
const unsupported = (name: string, shape: UnsupportedCommand["shape"] = Shape.Unsupported): UnsupportedCommand => ({
  name,
  shape,
  route: null,
});

export const COMMANDS: readonly MemcacheCommand[] = [
  // get and gets lines take any number of keys, so consecutive ones of a kind can be joined
  // (Codec.join); gat/gats lines also carry an exptime, which would have to match.
  routed("get", Shape.Retrieval, Route.Get, 1),
  routed("gets", Shape.Retrieval, Route.Get, 2),
  routed("gat", Shape.Gat, Route.Get),
  routed("gats", Shape.Gat, Route.Get),
  routed("set", Shape.Storage, Route.Key),
  routed("add", Shape.Storage, Route.Key),
  routed("replace", Shape.Storage, Route.Key),
  routed("append", Shape.Storage, Route.Key),
  routed("prepend", Shape.Storage, Route.Key),
  routed("cas", Shape.Cas, Route.Key),
  routed("delete", Shape.Delete, Route.Key),
  routed("incr", Shape.Arith, Route.Key),
  routed("decr", Shape.Arith, Route.Key),
  routed("touch", Shape.Touch, Route.Key),
  routed("version", Shape.Version, Route.Any),
  routed("quit", Shape.Quit, Route.Local),
  routed("verbosity", Shape.Verbosity, Route.Local),
  // memcached 1.6's other ASCII commands: server-wide or per-connection state that has no
  // meaning behind a sharding proxy (twemproxy rejects them too, by closing the connection).
  unsupported("flush_all"),
  unsupported("stats"),
  unsupported("shutdown"),
  unsupported("slabs"),
  unsupported("lru"),
  unsupported("lru_crawler"),
  unsupported("watch"),
  unsupported("cache_memlimit"),
  unsupported("extstore"),
  unsupported("mg"),
  unsupported("ms", Shape.UnsupportedWithData),
  unsupported("md"),
  unsupported("ma"),
  unsupported("mn"),
  unsupported("me"),
];

/** gat/gats with an exptime and no key: memcached answers an empty result (END), and so does
 *  the proxy (local.ts) without asking a server. Not a row of COMMANDS: the parser gives it to
 *  such a line (request.ts retrieval). */
export const KEYLESS_GAT: RoutedCommand = routed("gat", Shape.Gat, Route.Local);

// Lookup by (length, bytes), derived from COMMANDS: candidates of one length are few, so a
// byte comparison against each finds the command without building a string.
const byLength: { bytes: Uint8Array; command: MemcacheCommand }[][] = [];
for (const command of COMMANDS) {
  const bytes = new TextEncoder().encode(command.name);
  (byLength[bytes.length] ??= []).push({ bytes, command });
}

/** The command named by buf[start, end) (case-sensitive, as in memcached), or null. */
export function lookupCommand(buf: Uint8Array, start: number, end: number): MemcacheCommand | null {
  const candidates = byLength[end - start];
  if (candidates === undefined) return null;
  for (let c = 0; c < candidates.length; c++) {
    const { bytes, command } = candidates[c]!;
    let i = 0;
    while (i < bytes.length && bytes[i] === buf[start + i]) i++;
    if (i === bytes.length) return command;
  }
  return null;
}

/** req.command (a CommandSpec to the core) as this table's row. */
export function isMemcacheCommand(spec: CommandSpec | null): spec is RoutedCommand {
  return spec !== null && "shape" in spec;
}
