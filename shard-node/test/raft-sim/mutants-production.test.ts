import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ConfigError, createLogger } from '@impulse/common';

import { MemoryStorage, RawNode, raftMutants, type Message, type Raft } from '../../src/raft/index.js';
import { coalescerMutants, nodeResponsesTo } from '../../src/transport/index.js';
import { ShardNode, parseShardNodeConfig, shardNodeOptions } from '../../src/index.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** Every TypeScript source file of a production package, as paths relative to the repository. */
async function sourceFiles(directory: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(join(root, directory), { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.ts')) {
      files.push(relative(root, join(entry.parentPath, entry.name)));
    }
  }
  return files;
}

function plantedOf(raft: Raft): string[] {
  return raftMutants.filter((name) => raft.mutant[name]);
}

// The planted bugs of the core (`shard-node/src/raft/mutants.ts`) are reachable only from the
// simulator and tests: production never sets `Config.mutants`, and cannot be told to. Nor does it
// reach the coalescer's (`coalescerMutants`, `nodeResponsesTo`), which only the node simulator's
// network plants.
describe('planted bugs never reach production', () => {
  it('a core built without the field has none, and an unknown mutant is refused', () => {
    const node = new RawNode({ id: 1, storage: new MemoryStorage(), random: () => 0.5 });
    expect(plantedOf(node.raft)).toEqual([]);
    expect(node.raft.config.mutants).toEqual([]);
    expect(
      () =>
        new RawNode({
          id: 1,
          storage: new MemoryStorage(),
          random: () => 0.5,
          mutants: ['no-such-bug' as never],
        }),
    ).toThrow(/config.mutants/);
  });

  it('the shard node has no option that could set one', () => {
    expect(Object.keys(shardNodeOptions).filter((name) => /mutant/i.test(name))).toEqual([]);
    for (const flag of ['--mutants=commit-earlier-term', '--mutant=commit-earlier-term']) {
      expect(() => parseShardNodeConfig({ argv: [flag], env: {} })).toThrow(ConfigError);
    }
  });

  it('no production source outside the core, the coalescer and the simulator names them', async () => {
    const allowed = [
      'shard-node/src/raft/',
      'shard-node/src/raft-sim/',
      // The coalescer's planted bugs, defined and exported for the node simulator.
      'shard-node/src/transport/coalesced-heartbeats.ts',
      'shard-node/src/transport/index.ts',
    ];
    const offenders: string[] = [];
    for (const directory of [
      'common/src',
      'gateway/src',
      'shard-node/src',
      'loadtest/src',
      'deploy/local/src',
    ]) {
      for (const file of await sourceFiles(directory)) {
        if (allowed.some((prefix) => file.startsWith(prefix))) continue;
        if (/mutant|nodeResponsesTo/i.test(await readFile(join(root, file), 'utf8'))) offenders.push(file);
      }
    }
    expect(offenders).toEqual([]);
  });

  it('the coalescer answers for no replica unless a bug is planted, and the node transport never plants one', async () => {
    const heartbeat: Message = {
      type: 'MsgHeartbeat',
      from: 1,
      to: 2,
      term: 5,
      logTerm: 0,
      index: 17,
      entries: [],
      commit: 3,
      reject: false,
      rejectHint: 0,
      context: Buffer.from('read-context'),
    };
    expect(nodeResponsesTo([{ groupId: 'g1', message: heartbeat }], undefined)).toEqual([]);
    // Planted, the node answers in the heartbeat's term, echoing its stamp and context.
    expect(nodeResponsesTo([{ groupId: 'g1', message: heartbeat }], coalescerMutants[0])).toEqual([
      {
        groupId: 'g1',
        message: { ...heartbeat, type: 'MsgHeartbeatResp', from: 2, to: 1, commit: 0 },
      },
    ]);
    const transport = await readFile(join(root, 'shard-node/src/transport/node-transport.ts'), 'utf8');
    expect(transport).not.toMatch(/nodeResponsesTo|coalescerMutants|CoalescerMutant/);
  });

  it('a replica started as in production runs a core with none planted', async () => {
    const directory = await mkdtemp(join(tmpdir(), 'impulse-mutants-production-'));
    const config = parseShardNodeConfig({
      argv: ['--port=0', '--engine=memory', `--data-dir=${directory}`, '--bootstrap', '--log-level=silent'],
      env: {},
    });
    const node = await ShardNode.start(config, createLogger({ service: 'shard-node', level: 'silent' }));
    try {
      // White box: the replica keeps its core private; this test is the one place that looks.
      const raft = (node.replica as unknown as { readonly rawNode: RawNode }).rawNode.raft;
      expect(raft.config.mutants).toEqual([]);
      expect(plantedOf(raft)).toEqual([]);
    } finally {
      await node.stop();
      await rm(directory, { recursive: true, force: true });
    }
  });
});
