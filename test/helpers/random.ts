// Deterministic pseudo-random data (mulberry32), so a failing case can be replayed exactly.

export interface Rng {
  /** Uniform float in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  pick<T>(items: readonly T[]): T;
  /** `n` random bytes (any value 0-255). */
  bytes(n: number): Buffer;
}

export function makeRng(seed: number): Rng {
  let state = seed >>> 0;
  const nextU32 = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const next = () => nextU32() / 4294967296;
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (items) => items[Math.floor(next() * items.length)]!,
    bytes(n) {
      const out = Buffer.allocUnsafe(n);
      const whole = n - (n % 4);
      for (let i = 0; i < whole; i += 4) out.writeUInt32LE(nextU32(), i);
      for (let i = whole; i < n; i++) out[i] = nextU32() & 0xff;
      return out;
    },
  };
}

/**
 * `n` followed by 8 hex digits scrambled from it. Keys that differ only in a trailing counter
 * cluster on few servers under twemproxy's 32-bit fnv1a_64; this suffix spreads them.
 */
export const spread = (n: number): string => `${n}.${(Math.imul(n + 1, 0x9e3779b1) >>> 0).toString(16).padStart(8, "0")}`;
