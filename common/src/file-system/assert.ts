/**
 * Throws a programmer error (a broken precondition or invariant of the file-system code or of its
 * caller: a buffer range outside its buffer, a negative position) when `condition` is false. An
 * operating error (a missing file, a full name) is answered with a `FileSystemError` instead.
 */
export function assert(condition: boolean, message: string): asserts condition {
  if (!condition) {
    throw new Error(`file-system: assertion failed: ${message}`);
  }
}
