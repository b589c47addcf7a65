// Building the replies the proxy makes in the client's protocol: RESP2 for a client that never
// sent `HELLO 3`, RESP3 after it. Each function writes one value the way redis-server writes it
// for that protocol: a RESP3 null is `_` where RESP2 has `$-1`, a map is `%n` where RESP2 has a
// flat array of 2n values, a verbatim string `=len txt:...` a bulk string. (Replies from servers
// are never converted: a RESP3 client's requests go to RESP3 server connections.)

import { ascii, type ByteWriter } from "../../lib/bytes.ts";
import { COLON, DOLLAR, EQUALS, MINUS, PERCENT, PLUS, STAR, UNDERSCORE } from "./resp.ts";

/** The protocol a client speaks: 2 until it says `HELLO 3`. */
export type Proto = 2 | 3;

export function writeNull(w: ByteWriter, proto: Proto): void {
  if (proto === 3) {
    w.byte(UNDERSCORE);
    w.crlf();
  } else {
    w.byte(DOLLAR);
    w.int(-1);
    w.crlf();
  }
}

function header(w: ByteWriter, type: number, n: number): void {
  w.byte(type);
  w.int(n);
  w.crlf();
}

export function writeArrayHeader(w: ByteWriter, n: number): void {
  header(w, STAR, n);
}

/** A map of n pairs; its 2n keys and values follow. */
export function writeMapHeader(w: ByteWriter, proto: Proto, n: number): void {
  if (proto === 3) header(w, PERCENT, n);
  else header(w, STAR, 2 * n);
}

export function writeBulk(w: ByteWriter, bytes: Uint8Array, start = 0, end = bytes.length): void {
  header(w, DOLLAR, end - start);
  w.bytes(bytes, start, end);
  w.crlf();
}

export function writeBulkText(w: ByteWriter, text: string): void {
  writeBulk(w, ascii(text));
}

/** `+text` (no CR or LF in text). */
export function writeSimple(w: ByteWriter, text: string): void {
  w.byte(PLUS);
  w.text(text);
  w.crlf();
}

/** `-text`: text starts with the error code (`ERR ...`, `NOPROTO ...`). */
export function writeError(w: ByteWriter, text: string): void {
  w.byte(MINUS);
  w.text(text.replace(/[\r\n]/g, " "));
  w.crlf();
}

export function writeInteger(w: ByteWriter, n: number): void {
  header(w, COLON, n);
}

/** A text (INFO, CLIENT INFO) as a verbatim string of format `format` (3 letters) in RESP3. */
export function writeVerbatim(w: ByteWriter, proto: Proto, text: string, format = "txt"): void {
  const bytes = ascii(text);
  if (proto === 2) {
    writeBulk(w, bytes);
    return;
  }
  header(w, EQUALS, bytes.length + 4);
  w.text(format);
  w.byte(COLON);
  w.bytes(bytes);
  w.crlf();
}
