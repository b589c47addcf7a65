// Latency histogram for the hot path: fixed power-of-two buckets in a typed array, so recording
// is one Math.clz32 and two additions, with no allocation. Bucket i counts the values in
// (LATENCY_BOUNDS_US[i-1], LATENCY_BOUNDS_US[i]] µs; the last slot counts everything above.

/** Upper bound of the first bucket: 2^4 = 16 µs. */
const FIRST_EXPONENT = 4;
/** Upper bound of the last finite bucket: 2^25 µs ≈ 33.5 s (above any sane request timeout). */
const LAST_EXPONENT = 25;
const FINITE_BUCKETS = LAST_EXPONENT - FIRST_EXPONENT + 1;
const MAX_BOUND_US = 2 ** LAST_EXPONENT;

/** The finite upper bounds, µs, ascending (the +Inf bucket is implicit). */
export const LATENCY_BOUNDS_US: readonly number[] = Object.freeze(
  Array.from({ length: FINITE_BUCKETS }, (_, i) => 2 ** (FIRST_EXPONENT + i)),
);

export class Histogram {
  /** Per-bucket (not cumulative) counts; index FINITE_BUCKETS is the +Inf overflow. */
  readonly buckets = new Float64Array(FINITE_BUCKETS + 1);
  count = 0;
  sumMicros = 0;

  /** Records one duration in microseconds (fractions allowed). */
  observe(micros: number): void {
    // ceil(log2(v)) = 32 - clz32(v - 1) for integer v >= 1; v <= 16 lands in bucket 0.
    const v = Math.ceil(micros);
    const slot =
      v > MAX_BOUND_US
        ? FINITE_BUCKETS
        : v <= 1 << FIRST_EXPONENT
          ? 0
          : 32 - Math.clz32(v - 1) - FIRST_EXPONENT;
    this.buckets[slot]!++;
    this.count++;
    this.sumMicros += micros;
  }
}
