// Latency histogram in microseconds with about 3% resolution: exact below 64 us, then 32
// sub-buckets per power of two (the HdrHistogram idea). Recording is an index computation and
// one increment in a preallocated array; histograms of several processes merge by addition.

const EXACT = 64;
const SUB = 32;
const MAX_EXPONENT = 31; // 2^32 us is over an hour, far beyond any bounded run
const SIZE = EXACT + (MAX_EXPONENT - 6 + 1) * SUB;

export const newHistogram = (): Float64Array => new Float64Array(SIZE);

function indexOf(micros: number): number {
  const v = Math.min(Math.floor(micros), 2 ** 32 - 1);
  if (v < EXACT) return v < 0 ? 0 : v;
  const exponent = 31 - Math.clz32(v);
  const mantissa = Math.floor(v / 2 ** (exponent - 5)); // in [32, 64)
  return EXACT + (exponent - 6) * SUB + (mantissa - SUB);
}

/** Midpoint of the bucket, microseconds. */
function valueOf(index: number): number {
  if (index < EXACT) return index + 0.5;
  const exponent = 6 + Math.floor((index - EXACT) / SUB);
  const mantissa = SUB + ((index - EXACT) % SUB);
  return (mantissa + 0.5) * 2 ** (exponent - 5);
}

export function record(histogram: Float64Array, micros: number, count = 1): void {
  histogram[indexOf(micros)]! += count;
}

export function merge(into: Float64Array, from: ArrayLike<number>): void {
  for (let i = 0; i < SIZE; i++) into[i]! += from[i] ?? 0;
}

/** The `q` quantile (0..1) in microseconds, NaN when empty. */
export function quantile(histogram: Float64Array, q: number): number {
  let total = 0;
  for (let i = 0; i < SIZE; i++) total += histogram[i]!;
  if (total === 0) return NaN;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < SIZE; i++) {
    seen += histogram[i]!;
    if (seen >= rank) return valueOf(i);
  }
  return valueOf(SIZE - 1);
}
