import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryFileSystem, nodeFileSystem } from '@impulse/common';
import { describeFileSystemConformance } from './file-system-conformance.js';

describeFileSystemConformance('nodeFileSystem', async () => {
  const root = await mkdtemp(join(tmpdir(), 'impulse-file-system-'));
  return { fs: nodeFileSystem, root, cleanUp: () => rm(root, { recursive: true, force: true }) };
});

describeFileSystemConformance('MemoryFileSystem', async () => {
  // The same folder name as on the disk, so that paths and messages read alike.
  const fs = new MemoryFileSystem();
  const root = join(tmpdir(), 'impulse-file-system-memory');
  await fs.mkdir(root, { recursive: true });
  return { fs, root, cleanUp: async () => undefined };
});
