import type { Engine, EngineName } from './engine.js';
import { EngineError } from './engine-error.js';
import { LevelDbEngine } from './leveldb-engine.js';
import { MemoryEngine } from './memory-engine.js';

export interface OpenEngineOptions {
  readonly name: EngineName;
  /** The data directory; required for leveldb, created with its parents; ignored by memory. */
  readonly directory?: string;
  /**
   * Whether each write is fsynced before it is acknowledged (leveldb); ignored by memory.
   * Defaults to true, the safe choice; see `LevelDbEngineOptions.sync` for when false is enough.
   */
  readonly sync?: boolean;
}

/** Opens the engine named in the options; rejects with an `EngineError` when it cannot. */
export async function openEngine(options: OpenEngineOptions): Promise<Engine> {
  const name = options.name;
  switch (name) {
    case 'memory':
      return new MemoryEngine();
    case 'leveldb':
      if (options.directory === undefined) {
        throw new EngineError('ENGINE_INVALID_ARGUMENT', 'leveldb: a directory is required');
      }
      return LevelDbEngine.open({ directory: options.directory, sync: options.sync ?? true });
    default: {
      // The name may come from untyped configuration, so an unknown one is answered, not asserted.
      const unknownName: never = name;
      throw new EngineError('ENGINE_INVALID_ARGUMENT', `unknown engine ${String(unknownName)}`);
    }
  }
}
