// Reply comparisons with messages a person can act on (a 10,000-reply array diff is not one).

const show = (b: Uint8Array): string => {
  const text = JSON.stringify(Buffer.from(b.subarray(0, 200)).toString("latin1"));
  return b.length > 200 ? `${text}... (${b.length} bytes)` : text;
};

/**
 * Throws unless `actual[i]` equals `expected[i]` byte for byte for every i (and the counts
 * match), naming the first differing reply and its request.
 */
export function expectReplies(actual: readonly Uint8Array[], expected: readonly Uint8Array[], labels?: readonly string[]): void {
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    if (!Buffer.from(actual[i]!).equals(Buffer.from(expected[i]!))) {
      const what = labels?.[i] === undefined ? "" : ` (request: ${labels[i]!.slice(0, 120)})`;
      throw new Error(`reply ${i} of ${expected.length} differs${what}\n  expected ${show(expected[i]!)}\n  actual   ${show(actual[i]!)}`);
    }
  }
  if (actual.length !== expected.length) throw new Error(`got ${actual.length} replies, expected ${expected.length}`);
}

/** Decodes bytes as latin1 (one char per byte), for readable equality checks on text replies. */
export const latin1 = (b: Uint8Array): string => Buffer.from(b).toString("latin1");
