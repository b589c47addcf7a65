// Redis Cluster key slots: the slot (0..16383) of a key, computed in the WASM hashkit
// (assembly/key_slot.ts: CRC-16/XMODEM and the cluster's `{...}` hash-tag rule, whatever the
// pool's own hash_tag). One KeySlots per user owns a hashkit instance (its key buffer).

import { Hashkit } from "./hashkit.ts";

/** Slots in a Redis Cluster. */
export const SLOT_COUNT = 16384;

export class KeySlots {
  private readonly kit = new Hashkit();
  private readonly keySlot = this.kit.wasm.keySlot;

  /** The slot of the key buf[start, end). */
  slot(buf: Uint8Array, start: number, end: number): number {
    return this.keySlot(this.kit.putKey(buf, start, end));
  }
}
