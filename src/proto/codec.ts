// The one interface every wire protocol implements (twemproxy's proto/ split): the core
// (src/core) moves bytes and messages and never looks inside them; a Codec parses requests
// and responses in place, says how each request is routed, builds split fragments and merges
// their replies. Parsers are pure functions of bytes: no sockets, no allocation per message
// beyond the reused Req/Rsp scratch objects.

import type { PoolConfig } from "../conf/types.ts";
import type { ByteWriter } from "../core/bytes.ts";

/** parseRequest / parseResponse: the message is incomplete; retry when more bytes arrive
 *  (`need` says how many bytes from the message start are needed at least). */
export const NEED_MORE = -1;
/** The stream cannot be trusted any more (broken framing): reply `error` and close. */
export const FATAL = -2;

/** Return NEED_MORE for a message that started at `pos` and needs bytes up to `upTo`. */
export function needMore(m: Req | Rsp, pos: number, upTo: number): number {
  m.need = upTo - pos;
  return NEED_MORE;
}

/** Return FATAL with the reason. */
export function fatal(m: Req | Rsp, error: string): number {
  m.error = error;
  return FATAL;
}

/** How the core dispatches a request. One value per command in each protocol's command table. */
export const Route = {
  /** Forward the original bytes to the server of key 0 (single-key commands, and multi-key
   *  commands that twemproxy sends to the first key's server). */
  Key: 0,
  /** Split by server; the reply is the values in key order (redis MGET, memcached get/gets/gat/gats). */
  Get: 1,
  /** Split by server; the reply sums the integer replies (DEL, UNLINK, TOUCH, EXISTS). */
  Sum: 2,
  /** Split key/value pairs by server; the reply is +OK (MSET). */
  Set: 3,
  /** No key: forward to any live server (memcached `version`). */
  Any: 4,
  /** Answered by the proxy. */
  Ping: 5,
  Quit: 6,
  Auth: 7,
} as const;
export type Route = (typeof Route)[keyof typeof Route];

export interface CommandSpec {
  /** Lowercase command name. */
  readonly name: string;
  readonly route: Route;
  /** Retrievals of one non-zero kind may share a command line upstream (Codec.join). */
  readonly join?: number;
}

function grow(a: Int32Array<ArrayBuffer>, n: number): Int32Array<ArrayBuffer> {
  if (n < a.length) return a;
  const b = new Int32Array(Math.max(n + 1, a.length * 2));
  b.set(a);
  return b;
}

/** Scratch result of parseRequest, reused for every request of a connection. All offsets are
 *  absolute positions in the buffer that was parsed. */
export class Req {
  /** The whole request is buf[start, end). */
  start = 0;
  end = 0;
  command: CommandSpec | null = null;
  /** Arguments: redis: every bulk string, the command name is arg 0. memcached: every token of
   *  the command line, the command name is arg 0; a storage command's data block is `data`. */
  nargs = 0;
  argStart = new Int32Array(16);
  argEnd = new Int32Array(16);
  /** Keys, as indexes into the arguments. */
  nkeys = 0;
  keyArg = new Int32Array(16);
  /** memcached storage commands: the data block, without its trailing CRLF. */
  dataStart = 0;
  dataEnd = 0;
  /** memcached: the request carried `noreply` (the core forwards it without, via
   *  Codec.buildForward, and drops the reply, so the server's reply stream stays in step). */
  noreply = false;
  /** With NEED_MORE: bytes from `start` needed before the parse can progress. */
  need = 0;
  /** A well-framed request the proxy rejects: the full reply line without CRLF, in the
   *  protocol's own form ("-ERR unknown command 'x'", "CLIENT_ERROR bad data chunk", "ERROR").
   *  With FATAL: the reply line sent before the connection is closed. */
  error: string | null = null;

  reset(start: number): void {
    this.start = start;
    this.end = start;
    this.command = null;
    this.nargs = 0;
    this.nkeys = 0;
    this.noreply = false;
    this.need = 0;
    this.error = null;
  }

  pushArg(start: number, end: number): void {
    if (this.nargs >= this.argStart.length) {
      this.argStart = grow(this.argStart, this.nargs);
      this.argEnd = grow(this.argEnd, this.nargs);
    }
    this.argStart[this.nargs] = start;
    this.argEnd[this.nargs++] = end;
  }

  pushKey(arg: number): void {
    if (this.nkeys >= this.keyArg.length) this.keyArg = grow(this.keyArg, this.nkeys);
    this.keyArg[this.nkeys++] = arg;
  }

  keyStart(i: number): number {
    return this.argStart[this.keyArg[i]!]!;
  }

  keyEnd(i: number): number {
    return this.argEnd[this.keyArg[i]!]!;
  }
}

const NO_BYTES = new Uint8Array(0);

/** Scratch result of parseResponse. */
export class Rsp {
  start = 0;
  end = 0;
  need = 0;
  /** The reply is an error reply (redis `-...`, memcached ERROR / CLIENT_ERROR / SERVER_ERROR). */
  isError = false;
  /** The reply says the server is failing (redis -OOM, -BUSY, -LOADING): counts toward ejection. */
  failure = false;
  /** With FATAL: what was wrong with the server's bytes (for the log). */
  error: string | null = null;
  /** With NEED_MORE: the first `opaque` bytes from `start` are final whatever follows (complete
   *  values, then the data of a block whose length is known but whose bytes have not all
   *  arrived), so a large reply can be passed on before it is complete; 0 when there are none.
   *  The rest of the reply is then parsed from where they end with `resume = next`. */
  opaque = 0;
  next = 0;
  /** Input, kept by reset(): 0 to parse a reply from its start, or an earlier `next`. */
  resume = 0;
  /** Input, kept by reset(): the next request on the connection joined this one's command line
   *  (Codec.join), so the reply ends before the terminator, which belongs to the last request of
   *  the line, or before the first item that is not for the next of its keys with a hit (keys are
   *  answered in order). Its keys are keyBuf[keys[3i], keys[3i + 1]) for each i with
   *  keys[3i + 2] === keyGroup (Split.keys), or, with keys null, keyBuf[keyStart, keyEnd),
   *  separated by spaces. */
  joined = false;
  keyBuf: Uint8Array = NO_BYTES;
  keys: Int32Array | null = null;
  keyGroup = 0;
  keyStart = 0;
  keyEnd = 0;
  /** Parse state of a joined reply: the index of the first key not yet matched by an item, or,
   *  with keys null, its offset from keyStart (kept when parsing resumes after a part passed on,
   *  Rsp.resume). */
  keyCursor = 0;
  /** A joined reply that ended before its terminator (which its client still needs). */
  open = false;
  /** With isError: where the error line starts (what the rest of a joined line gets). */
  errorStart = 0;

  reset(start: number): void {
    this.start = start;
    this.end = start;
    this.need = 0;
    this.isError = false;
    this.failure = false;
    this.error = null;
    this.opaque = 0;
    this.next = 0;
    if (this.resume === 0) this.keyCursor = 0;
    this.open = false;
    this.errorStart = start;
  }
}

/** What the core hands to Codec.merge once every fragment of a split request has replied.
 *  Offsets are absolute positions in the buffers named (read buffers are never reused, see
 *  core/reader.ts), so nothing is copied or sliced to describe a split. */
export interface Split {
  readonly route: Route;
  /** The buffer the request was parsed from. */
  readonly bytes: Uint8Array;
  readonly nkeys: number;
  /** Key i is bytes[keys[3i], keys[3i + 1]) and went in fragment keys[3i + 2]. */
  readonly keys: Int32Array;
  readonly nfrags: number;
  /** Fragment f's complete reply is fragBuf[f][fragPos[2f], fragPos[2f + 1]). None is a
   *  proxy-made error (the core answers the whole request with that error itself). */
  readonly fragBuf: Uint8Array[];
  readonly fragPos: Int32Array;
}

/** The keys on one command line (Codec.join); lines are given without their line end. */
export interface LineKeySet {
  /** Start over with the keys of the command line line[start, end). */
  reset(line: Uint8Array, start: number, end: number): void;
  /** Add key[start, end), unless the command line line[lineStart, lineEnd) has it already
   *  (false then). */
  add(key: Uint8Array, start: number, end: number, line: Uint8Array, lineStart: number, lineEnd: number): boolean;
}

export interface Codec {
  readonly name: "redis" | "memcache";

  /** Parse one request at buf[pos, end). Returns the position after it (req filled; if
   *  req.error is set the core replies with it and keeps the connection), NEED_MORE or FATAL. */
  parseRequest(buf: Uint8Array, pos: number, end: number, req: Req): number;

  /** Parse one complete reply at buf[pos, end). Returns the position after it, NEED_MORE or FATAL. */
  parseResponse(buf: Uint8Array, pos: number, end: number, rsp: Rsp): number;

  /** Write the sub-request of a split request that carries the keys order[from, from + n)
   *  (indexes into req's key list, ascending). */
  buildFragment(buf: Uint8Array, req: Req, order: Int32Array, from: number, n: number, w: ByteWriter): void;

  /** Retrievals whose CommandSpec has a `join` kind may go upstream on the command line of the
   *  retrieval of that kind sent just before them on the same connection (memcached, whose
   *  every retrieval command costs a send of its own; null: never). The reply parser then
   *  divides the line's reply by keys (Rsp.joined). */
  readonly join: {
    /** The length of the line end of the command line line[start, end) when more keys may go
     *  onto it (taking that line end off), else 0. */
    openLineEnd(line: Uint8Array, start: number, end: number): number;
    /** Write ` <key>...` and the line end for the keys order[from, from + n) (as buildFragment),
     *  after a line whose line end was taken off. */
    appendKeys(buf: Uint8Array, req: Req, order: Int32Array, from: number, n: number, w: ByteWriter): void;
    /** The same for all of req's keys, as they stand in buf. */
    appendAllKeys(buf: Uint8Array, req: Req, w: ByteWriter): void;
    /** A record of the keys on a command line (one per server connection): no key may go onto
     *  a line twice for two requests. */
    lineKeys(): LineKeySet;
    /** What a reply that ended before its terminator (Rsp.open) lacks. */
    readonly end: Uint8Array;
  } | null;

  /** Write the request as it must go upstream when it cannot be forwarded byte for byte
   *  (a memcached request with `noreply`: sent without it). */
  buildForward(buf: Uint8Array, req: Req, w: ByteWriter): void;

  /** The client's reply to a split request whose fragments all replied: appended to `out`
   *  (null returned), or, when it is a reply of its own (a fragment's error, a constant), returned
   *  with `out` left as it was. */
  merge(split: Split, out: ByteWriter): Uint8Array | null;

  /** A proxy-made error reply: redis "-ERR <reason>\r\n", memcached "SERVER_ERROR <reason>\r\n". */
  errorReply(reason: string): Uint8Array;

  /** Bytes to send on every new server connection before any client request (redis AUTH and
   *  SELECT), and how many replies they produce; null when none. */
  handshake(pool: PoolConfig): { bytes: Uint8Array; replies: number } | null;

  /** Local replies (redis only; memcached never routes to Ping/Auth). */
  readonly pong: Uint8Array;
  readonly authOk: Uint8Array;
  readonly authInvalid: Uint8Array;
  readonly authNotSet: Uint8Array;
  readonly noAuth: Uint8Array;
}
