const offsetBasis64 = 0xcbf29ce484222325n;
const prime64 = 1099511628211n;
const mask64 = (1n << 64n) - 1n;
const sign64 = 1n << 63n;

/**
 * YCSB's `fnvhash64`: FNV-1a over the 8 little-endian bytes of a long, as a non-negative value.
 * Used to scramble zipfian ranks over the key space and to name keys, exactly as YCSB does, so
 * that hot keys are spread over the key space (and over the shard groups) instead of being
 * neighbours.
 */
export function fnvHash64(value: number): bigint {
  let rest = BigInt(value);
  let hash = offsetBasis64;
  for (let index = 0; index < 8; index++) {
    hash ^= rest & 0xffn;
    rest >>= 8n;
    hash = (hash * prime64) & mask64;
  }
  // Java's Math.abs on the signed 64-bit result.
  return hash >= sign64 ? (1n << 64n) - hash : hash;
}
