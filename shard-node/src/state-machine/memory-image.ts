import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import {
  StartupError,
  nodeFileSystem,
  replaceFileDurablyWith,
  writeFully,
  type FileHandle,
  type FileSystem,
} from '@impulse/common';
import type { Engine } from '../storage/index.js';
import { receivedRecordOperations } from './slot-index.js';
import { decodeSnapshotChunk } from './snapshot-codec.js';

/**
 * The durable image of a memory-engine state machine: what lets a replica on the memory engine
 * restart on its data directory. The memory engine keeps nothing across a restart, while the Raft
 * log on disk does, and is compacted behind every snapshot; so at each point where a LevelDB state
 * machine is made durable (founding, before the log is compacted, a snapshot installed from the
 * leader) the whole memory state is written here, and a restart loads it and replays the log
 * from there, as a LevelDB replica replays from its applied index.
 *
 * Format: the magic `IMPMEM01`, then frames of `u32 length, u32 crc32, chunk` (big-endian), where
 * each chunk is one snapshot-stream chunk of whole records (`snapshot-codec.ts`), then an end
 * frame of length 0 whose crc field holds the number of chunk frames. It is written to a temporary
 * file, fsynced, renamed over the previous image and the folder fsynced: a crash leaves the old
 * image or the new one.
 */

export const memoryImageFileName = 'memory-image';
const magic = Buffer.from('IMPMEM01', 'latin1');
const frameHeaderBytes = 8;

/**
 * Writes a whole state, as the chunks of a snapshot stream (`StateMachineSnapshot.chunks()`), as
 * the image in `directory`. One write at a time: the caller serialises them.
 */
export async function writeMemoryImage(
  directory: string,
  snapshotChunks: AsyncIterable<Buffer>,
  fs: FileSystem = nodeFileSystem,
): Promise<void> {
  await replaceFileDurablyWith(
    join(directory, memoryImageFileName),
    async (file) => {
      // The handle writes at positions: the image is written in order, from 0.
      let position = await writeFully(file, magic, 0);
      let chunks = 0;
      for await (const chunk of snapshotChunks) {
        const header = Buffer.allocUnsafe(frameHeaderBytes);
        header.writeUInt32BE(chunk.byteLength, 0);
        header.writeUInt32BE(crc32(chunk), 4);
        position = await writeFully(file, header, position);
        position = await writeFully(file, chunk, position);
        chunks++;
      }
      const end = Buffer.alloc(frameHeaderBytes);
      end.writeUInt32BE(chunks, 4);
      await writeFully(file, end, position);
    },
    undefined,
    fs,
  );
}

/**
 * Loads the image in `directory` into an empty `engine`, a frame at a time; answers false when there
 * is none. Like a snapshot stream, the image holds no slot index: each data record brings its index
 * record into the same batch as it is loaded. A damaged image (bad magic, checksum or framing, or no end frame) is refused with
 * `DATA_DIRECTORY_DAMAGED`: starting from part of a state would serve a state that never was.
 */
export async function loadMemoryImage(
  directory: string,
  engine: Engine,
  fs: FileSystem = nodeFileSystem,
): Promise<boolean> {
  const path = join(directory, memoryImageFileName);
  let file: FileHandle;
  try {
    file = await fs.open(path, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
  const damaged = (reason: string): StartupError =>
    new StartupError('DATA_DIRECTORY_DAMAGED', `memory-engine image ${path} is damaged: ${reason}`);
  try {
    const fileBytes = await file.size();
    let offset = 0;
    const readExactly = async (bytes: number): Promise<Buffer> => {
      if (offset + bytes > fileBytes) throw damaged(`truncated at byte ${offset}`);
      const buffer = Buffer.allocUnsafe(bytes);
      const bytesRead = await file.read(buffer, 0, bytes, offset);
      if (bytesRead !== bytes) throw damaged(`truncated at byte ${offset}`);
      offset += bytes;
      return buffer;
    };
    if (!(await readExactly(magic.length)).equals(magic)) throw damaged('it does not start with the magic');
    let chunks = 0;
    for (;;) {
      const header = await readExactly(frameHeaderBytes);
      const length = header.readUInt32BE(0);
      const checksum = header.readUInt32BE(4);
      if (length === 0) {
        if (checksum !== chunks) throw damaged(`the end frame counts ${checksum} chunks, not ${chunks}`);
        if (offset !== fileBytes) throw damaged('bytes after the end frame');
        return true;
      }
      const chunk = await readExactly(length);
      if (crc32(chunk) !== checksum) throw damaged(`checksum mismatch in the chunk before byte ${offset}`);
      const records = decodeSnapshotChunk(chunk);
      await engine.batch(receivedRecordOperations(records));
      chunks++;
    }
  } finally {
    await file.close();
  }
}
