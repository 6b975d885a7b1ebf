import { fnvHash64 } from './fnv-hash.js';

/** YCSB's key names with hashed inserts: "user" and the FNV-64 hash of the key number. */
export function keyName(keyNumber: number): string {
  return `user${fnvHash64(keyNumber)}`;
}
