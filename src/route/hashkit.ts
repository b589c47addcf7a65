// The WASM hashkit (assembly/, built to build/hashkit.wasm): compiled once per process, one
// instance (and so one linear memory) per user. Hashkit owns the key buffer in that memory.
// The file is imported as an asset: from source it is the path of build/hashkit.wasm, in the
// single executable (`npm run build`) a path inside the executable's embedded files. Without
// build/hashkit.wasm the source does not load ("Cannot find module"): `bun run build:wasm`.

import { readFileSync } from "node:fs";
import WASM_FILE from "../../build/hashkit.wasm" with { type: "file" };

/** Keys up to this length are copied with a loop; longer ones with one set() on a subarray view,
 *  whose allocation costs about as much as copying 120-190 bytes one by one (measured). */
const SHORT_KEY = 128;

/** The exports of assembly/index.ts; addresses are byte offsets into `memory`. */
interface HashkitExports {
  readonly memory: WebAssembly.Memory;
  /** Bytes that must stay addressable after a key in the key buffer. */
  readonly keySlack: WebAssembly.Global;
  reserveServers(count: number, nameBytes: number): number;
  configure(distribution: number, hash: number, tagOpen: number, tagClose: number, seed: number): void;
  build(): number;
  reserveKey(len: number): number;
  route(len: number): number;
  hash(id: number, len: number): number;
  routingPartOffset(len: number): number;
  routingPartLength(): number;
  keySlot(len: number): number;
}

let compiled: WebAssembly.Module | null = null;

function hashkitModule(): WebAssembly.Module {
  if (compiled) return compiled;
  compiled = new WebAssembly.Module(readFileSync(WASM_FILE));
  return compiled;
}

export class Hashkit {
  readonly wasm: HashkitExports;
  private bytes: Uint8Array;
  private keyAt: number;
  /** Bytes available at keyAt before memory must grow. */
  private keyRoom: number;

  constructor() {
    this.wasm = new WebAssembly.Instance(hashkitModule(), {}).exports as unknown as HashkitExports;
    this.bytes = new Uint8Array(this.wasm.memory.buffer);
    this.keyAt = 0;
    this.keyRoom = 0;
    this.keyBufferAt(this.wasm.reserveKey(0));
  }

  /** The instance's memory as bytes; a new view after memory grew. */
  memory(): Uint8Array {
    if (this.bytes.buffer !== this.wasm.memory.buffer) this.bytes = new Uint8Array(this.wasm.memory.buffer);
    return this.bytes;
  }

  /** Records where the key buffer is after a build or reserveKey (0 = out of memory). */
  keyBufferAt(address: number): void {
    if (address === 0) throw new Error("hashkit: out of WASM memory");
    this.keyAt = address >>> 0; // an unsigned address comes back as a signed i32
    this.keyRoom = this.memory().length - this.keyAt - (this.wasm.keySlack.value as number);
  }

  /** Copies buf[start, end) into the key buffer; returns the key length. */
  putKey(buf: Uint8Array, start: number, end: number): number {
    const len = end - start;
    if (len > this.keyRoom) this.keyBufferAt(this.wasm.reserveKey(len));
    const bytes = this.bytes;
    const at = this.keyAt;
    if (len <= SHORT_KEY) {
      for (let i = 0; i < len; i++) bytes[at + i] = buf[start + i]!;
    } else {
      bytes.set(buf.subarray(start, end), at);
    }
    return len;
  }
}
