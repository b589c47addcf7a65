// The twelve twemproxy hash functions by id. Ids follow twemproxy's hash_type_t enum order,
// which is HASH_NAMES in src/conf/types.ts.

import { oneAtATime } from "./hash/one_at_a_time";
import { md5, md5A } from "./hash/md5";
import { crc16 } from "./hash/crc16";
import { crc32 } from "./hash/crc32";
import { crc32a } from "./hash/crc32a";
import { fnv1_64 } from "./hash/fnv1_64";
import { fnv1a_64 } from "./hash/fnv1a_64";
import { fnv1_32 } from "./hash/fnv1_32";
import { fnv1a_32 } from "./hash/fnv1a_32";
import { hsieh } from "./hash/hsieh";
import { murmur } from "./hash/murmur";
import { jenkins } from "./hash/jenkins";

export function hashBytes(id: u32, key: usize, len: u32): u32 {
  switch (id) {
    case 0: return oneAtATime(key, len);
    case 1: md5(key, len); return md5A;
    case 2: return crc16(key, len);
    case 3: return crc32(key, len);
    case 4: return crc32a(key, len);
    case 5: return fnv1_64(key, len);
    case 6: return fnv1a_64(key, len);
    case 7: return fnv1_32(key, len);
    case 8: return fnv1a_32(key, len);
    case 9: return hsieh(key, len);
    case 10: return murmur(key, len);
    default: return jenkins(key, len);
  }
}
