/** A key byte as x86_64 C `char`: bytes >= 0x80 sign-extended to 32 bits. */
export function signedByte(b: number): number {
  return (b << 24) >> 24;
}
