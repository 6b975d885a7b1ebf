/**
 * How user keys map to engine keys. The engine holds more than user data (later: the applied
 * Raft index, slot fences), so every user key lives under the data prefix, and other records
 * under prefixes of their own. User keys keep their byte order, so a range scan over user keys is
 * a range scan over the data prefix.
 */
const dataPrefix = 0x64; // 'd'

export function dataKey(userKey: string): Buffer {
  const keyBytes = Buffer.byteLength(userKey, 'utf8');
  const key = Buffer.allocUnsafe(1 + keyBytes);
  key[0] = dataPrefix;
  key.write(userKey, 1, 'utf8');
  return key;
}

export function userKeyOf(engineKey: Uint8Array): string {
  if (engineKey[0] !== dataPrefix) throw new Error('not a data key');
  return Buffer.from(engineKey.buffer, engineKey.byteOffset + 1, engineKey.byteLength - 1).toString('utf8');
}

/** The bounds of the whole data keyspace, for scans. */
export const dataRange = { start: Buffer.from([dataPrefix]), end: Buffer.from([dataPrefix + 1]) } as const;
