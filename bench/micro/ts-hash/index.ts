// Plain-TypeScript ports of twemproxy's hash functions: the yardstick the WASM hashkit is
// benchmarked against (bench only; the proxy never uses them).

import type { HashName } from "../../../src/conf/types.ts";
import { crc16 } from "./crc16.ts";
import { crc32 } from "./crc32.ts";
import { crc32a } from "./crc32a.ts";
import { fnv1_32 } from "./fnv1_32.ts";
import { fnv1_64 } from "./fnv1_64.ts";
import { fnv1a_32 } from "./fnv1a_32.ts";
import { fnv1a_64 } from "./fnv1a_64.ts";
import { hsieh } from "./hsieh.ts";
import { jenkins } from "./jenkins.ts";
import { md5 } from "./md5.ts";
import { murmur } from "./murmur.ts";
import { oneAtATime } from "./one_at_a_time.ts";

export const TS_HASHES: Readonly<Record<HashName, (key: Uint8Array) => number>> = {
  one_at_a_time: oneAtATime,
  md5,
  crc16,
  crc32,
  crc32a,
  fnv1_64,
  fnv1a_64,
  fnv1_32,
  fnv1a_32,
  hsieh,
  murmur,
  jenkins,
};
