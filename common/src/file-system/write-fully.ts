import { assert } from './assert.js';
import type { FileHandle } from './file-system.js';

/**
 * Writes all of `bytes` at `position` of `file`, as many writes as it takes: a positioned write
 * may write less than asked (node's `FileHandle.write` makes one `pwrite`), and a caller that
 * fills a file in order (a streamed image, a whole small file) wants every byte or an error.
 * Answers the position after the last byte, where the next write in order goes.
 */
export async function writeFully(file: FileHandle, bytes: Uint8Array, position: number): Promise<number> {
  let written = 0;
  while (written < bytes.byteLength) {
    const bytesWritten = await file.write(bytes, written, bytes.byteLength - written, position + written);
    // A regular file answers at least one byte or an error; zero would loop forever.
    assert(bytesWritten > 0, `a write of ${bytes.byteLength - written} bytes wrote none`);
    written += bytesWritten;
  }
  return position + written;
}
