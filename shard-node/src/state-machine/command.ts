/**
 * Commands: what a normal Raft entry carries for the key-value state machine.
 *
 * Binary layout (all integers big-endian):
 *
 *   u8  version (1)
 *   u8  operation: 1 put, 2 delete, 3 consistency check, 4 consistency verdict
 *   u8  request id length (0 to 64), then the request id bytes
 *   u16 key length (1 to 65535), then the key (UTF-8)          (put and delete only)
 *   u32 value length, then the value                           (put only)
 *   u64 the check's index, u8 hash length (1 to 64), the hash  (verdict only)
 *
 * A consistency check changes no user key: every replica that applies it hashes its state as of
 * that entry's index, so that the leader can compare the replicas (`consistency-hash.ts`). A
 * verdict, proposed by the leader once a majority of voters agreed on a hash, carries that hash:
 * a replica whose own hash at the check's index differs knows that it diverged.
 *
 * The request id makes a retried write idempotent: the state machine applies a given id once,
 * however many entries carry it (see `state-machine.ts`). An empty id opts out of that.
 */

export type Command =
  | {
      readonly operation: 'put';
      readonly requestId: Uint8Array;
      readonly key: string;
      readonly value: Uint8Array;
    }
  | { readonly operation: 'delete'; readonly requestId: Uint8Array; readonly key: string }
  | { readonly operation: 'consistency-check'; readonly requestId: Uint8Array }
  | {
      readonly operation: 'consistency-verdict';
      readonly requestId: Uint8Array;
      /** The index of the consistency-check entry judged. */
      readonly checkIndex: number;
      /** The hash a majority of the group's voters computed at `checkIndex`. */
      readonly hash: Uint8Array;
    };

const commandVersion = 1;
const operationPut = 1;
const operationDelete = 2;
const operationConsistencyCheck = 3;
const operationConsistencyVerdict = 4;
const verdictHashBytesMax = 64;
export const requestIdBytesMax = 64;
/** The longest key a command carries: its length is stored in 16 bits. */
export const commandKeyBytesMax = 0xffff;

/**
 * Whether `data` is a consistency-check command. The apply loop asks this of every entry, so it
 * peeks at the two header bytes and decodes only what they say is a check.
 */
export function isConsistencyCheckCommand(data: Uint8Array): boolean {
  return (
    data[0] === commandVersion &&
    data[1] === operationConsistencyCheck &&
    decodeCommand(data)?.operation === 'consistency-check'
  );
}

/** The verdict a normal entry carries, if it carries one (peeks at the header first, as above). */
export function consistencyVerdictOf(
  data: Uint8Array,
): Extract<Command, { operation: 'consistency-verdict' }> | undefined {
  if (data[0] !== commandVersion || data[1] !== operationConsistencyVerdict) return undefined;
  const command = decodeCommand(data);
  return command?.operation === 'consistency-verdict' ? command : undefined;
}

/**
 * The bytes of a put command with a key of `keyBytes` and a value of `valueBytes` (UTF-8 and raw
 * bytes) and a request id of `requestIdBytes`: what one Raft entry carries for it.
 */
export function putCommandBytes(keyBytes: number, valueBytes: number, requestIdBytes: number): number {
  return 3 + requestIdBytes + 2 + keyBytes + 4 + valueBytes;
}

export function encodeCommand(command: Command): Buffer {
  if (command.requestId.byteLength > requestIdBytesMax) throw new Error('request id too long');
  if (command.operation === 'consistency-verdict') {
    const hashBytes = command.hash.byteLength;
    if (hashBytes === 0 || hashBytes > verdictHashBytesMax)
      throw new Error(`invalid hash length ${hashBytes}`);
    if (!Number.isSafeInteger(command.checkIndex) || command.checkIndex < 1)
      throw new Error(`invalid check index ${command.checkIndex}`);
    const verdict = Buffer.allocUnsafe(3 + command.requestId.byteLength + 8 + 1 + hashBytes);
    verdict[0] = commandVersion;
    verdict[1] = operationConsistencyVerdict;
    verdict[2] = command.requestId.byteLength;
    let offset = 3;
    verdict.set(command.requestId, offset);
    offset += command.requestId.byteLength;
    verdict.writeBigUInt64BE(BigInt(command.checkIndex), offset);
    offset += 8;
    verdict[offset++] = hashBytes;
    verdict.set(command.hash, offset);
    return verdict;
  }
  if (command.operation === 'consistency-check') {
    const check = Buffer.allocUnsafe(3 + command.requestId.byteLength);
    check[0] = commandVersion;
    check[1] = operationConsistencyCheck;
    check[2] = command.requestId.byteLength;
    check.set(command.requestId, 3);
    return check;
  }
  const keyBytes = Buffer.byteLength(command.key, 'utf8');
  if (keyBytes === 0 || keyBytes > commandKeyBytesMax) throw new Error(`invalid key length ${keyBytes}`);
  const valueBytes = command.operation === 'put' ? command.value.byteLength : 0;
  const size =
    command.operation === 'put'
      ? putCommandBytes(keyBytes, valueBytes, command.requestId.byteLength)
      : 3 + command.requestId.byteLength + 2 + keyBytes;
  const buffer = Buffer.allocUnsafe(size);
  let offset = 0;
  buffer[offset++] = commandVersion;
  buffer[offset++] = command.operation === 'put' ? operationPut : operationDelete;
  buffer[offset++] = command.requestId.byteLength;
  buffer.set(command.requestId, offset);
  offset += command.requestId.byteLength;
  buffer.writeUInt16BE(keyBytes, offset);
  offset += 2;
  offset += buffer.write(command.key, offset, 'utf8');
  if (command.operation === 'put') {
    buffer.writeUInt32BE(valueBytes, offset);
    offset += 4;
    buffer.set(command.value, offset);
    offset += valueBytes;
  }
  if (offset !== size) throw new Error('command encoding size mismatch');
  return buffer;
}

/**
 * Decodes a command, or answers `undefined` for bytes that are not one. Every replica decodes the
 * same bytes the same way, so treating a bad entry as a no-op keeps them identical.
 */
export function decodeCommand(data: Uint8Array): Command | undefined {
  const buffer = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buffer.length < 3 || buffer[0] !== commandVersion) return undefined;
  const operation = buffer[1];
  const requestIdBytes = buffer[2] ?? 0;
  if (requestIdBytes > requestIdBytesMax) return undefined;
  if (operation === operationConsistencyCheck) {
    return buffer.length === 3 + requestIdBytes
      ? { operation: 'consistency-check', requestId: buffer.subarray(3) }
      : undefined;
  }
  if (operation === operationConsistencyVerdict) {
    const indexAt = 3 + requestIdBytes;
    if (buffer.length < indexAt + 9) return undefined;
    const checkIndex = buffer.readBigUInt64BE(indexAt);
    const hashBytes = buffer[indexAt + 8] ?? 0;
    if (checkIndex < 1n || checkIndex > BigInt(Number.MAX_SAFE_INTEGER)) return undefined;
    if (hashBytes === 0 || hashBytes > verdictHashBytesMax || buffer.length !== indexAt + 9 + hashBytes)
      return undefined;
    return {
      operation: 'consistency-verdict',
      requestId: buffer.subarray(3, indexAt),
      checkIndex: Number(checkIndex),
      hash: buffer.subarray(indexAt + 9),
    };
  }
  if (buffer.length < 6) return undefined;
  let offset = 3;
  if (offset + requestIdBytes + 2 > buffer.length) return undefined;
  const requestId = buffer.subarray(offset, offset + requestIdBytes);
  offset += requestIdBytes;
  const keyBytes = buffer.readUInt16BE(offset);
  offset += 2;
  if (keyBytes === 0 || offset + keyBytes > buffer.length) return undefined;
  const key = buffer.toString('utf8', offset, offset + keyBytes);
  offset += keyBytes;
  if (operation === operationDelete) {
    return offset === buffer.length ? { operation: 'delete', requestId, key } : undefined;
  }
  if (operation !== operationPut || offset + 4 > buffer.length) return undefined;
  const valueBytes = buffer.readUInt32BE(offset);
  offset += 4;
  if (offset + valueBytes !== buffer.length) return undefined;
  return { operation: 'put', requestId, key, value: buffer.subarray(offset, offset + valueBytes) };
}
