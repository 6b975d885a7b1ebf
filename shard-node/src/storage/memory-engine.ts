import assert from 'node:assert/strict';

import { BaseEngine } from './base-engine.js';
import type { EntryCursor, KeyBatchOperation, KeyRange, SnapshotView } from './base-engine.js';
import type { Entry } from './engine.js';
import { OrderedIndex } from './ordered-index.js';

/**
 * An engine that keeps everything in memory: for tests, simulations and benchmarks that must not
 * touch a disk. Nothing survives `close()`.
 *
 * Keys are stored as latin1 strings: one code unit per byte, so JavaScript's string order is the
 * unsigned byte order of the keys, and the string is usable as a `Map` key. Point operations use
 * the `Map`; scans walk the `OrderedIndex` (a B+tree), so no scan sorts.
 *
 * Snapshots copy nothing when they are taken. Instead, each write records the pre-image (the
 * value before the first write since the snapshot, or its absence) of the key in every open
 * snapshot that has not recorded it yet. A snapshot reads its pre-image when it has one and the
 * live data otherwise. The cost is one map lookup per open snapshot per write, and memory in
 * proportion to the keys written while snapshots are open.
 */

/**
 * Value bytes gathered into one chunk of an iteration before it is handed out (a chunk may pass
 * it by one value), so that a scan over large values copies a bounded amount at a time.
 */
export const memoryChunkBytesMax = 256 * 1024;
/** Keys taken from the index at a time when counting a range. */
const countChunkKeysMax = 4096;

/** The recorded pre-images of one point in time, shared by every snapshot taken at that point. */
interface View {
  /** Key to its value when the view was taken; `undefined` when it was absent then. */
  readonly preImages: Map<string, Buffer | undefined>;
  /** The keys of `preImages` that had a value: live data may have lost them since. */
  readonly preImageKeys: OrderedIndex;
  /** Snapshots and iterations that read through this view; it is dropped at zero. */
  referenceCount: number;
}

export class MemoryEngine extends BaseEngine {
  readonly #values = new Map<string, Buffer>();
  readonly #index = new OrderedIndex();
  readonly #openViews = new Set<View>();
  /**
   * The view taken most recently, as long as no write has happened since: a new snapshot or
   * iteration shares it instead of recording the same pre-images again.
   */
  #currentView: View | undefined;

  constructor() {
    super('memory');
  }

  protected override async _get(key: Buffer): Promise<Buffer | undefined> {
    return copyOf(this.#values.get(key.toString('latin1')));
  }

  protected override async _hasMany(keys: readonly Buffer[]): Promise<boolean[]> {
    return keys.map((key) => this.#values.has(key.toString('latin1')));
  }

  protected override async _put(key: Buffer, value: Buffer): Promise<void> {
    this.#write(key.toString('latin1'), value);
  }

  protected override async _delete(key: Buffer): Promise<void> {
    this.#write(key.toString('latin1'), undefined);
  }

  /** Atomic because it runs synchronously: no read can observe half of it. */
  protected override async _batch(operations: readonly KeyBatchOperation[]): Promise<void> {
    for (const operation of operations) {
      this.#write(operation.key.toString('latin1'), operation.type === 'put' ? operation.value : undefined);
    }
  }

  protected override _iterate(range: KeyRange): EntryCursor {
    // An iteration reads through a view of its own, so that writes made while it runs stay out.
    const view = this.#acquireView();
    const cursor = this.#cursor(view, range);
    let released = false;
    return {
      nextChunk: (countMax) => cursor.nextChunk(countMax),
      close: async () => {
        assert.ok(!released, 'an iteration cursor is closed once');
        released = true;
        this.#releaseView(view);
      },
    };
  }

  protected override async _snapshot(): Promise<SnapshotView> {
    const view = this.#acquireView();
    return {
      get: async (key) => copyOf(this.#valueIn(view, key.toString('latin1'))),
      cursor: (range) => this.#cursor(view, range),
      close: async () => this.#releaseView(view),
    };
  }

  /** Exact: the size of the map for the whole engine, a walk of the index for a range. */
  protected override async _countKeys(range: KeyRange): Promise<number> {
    assert.equal(this.#values.size, this.#index.size, 'the map and the index hold the same keys');
    if (range.start === undefined && range.end === undefined) return this.#values.size;
    const end = range.end?.toString('latin1');
    let from = range.start?.toString('latin1');
    let inclusive = true;
    let count = 0;
    for (;;) {
      const keys = this.#index.keysFrom(from, inclusive, end, countChunkKeysMax);
      count += keys.length;
      if (keys.length < countChunkKeysMax) return count;
      from = keys.at(-1);
      inclusive = false;
    }
  }

  /** Nothing is on disk: nothing to make durable. */
  protected override async _sync(): Promise<void> {}

  protected override async _flush(): Promise<void> {}

  protected override async _close(): Promise<void> {
    assert.equal(this.#openViews.size, 0, 'every snapshot and iteration is closed before the engine');
    this.#values.clear();
    this.#index.clear();
  }

  /** Puts (`value` defined) or deletes one key, recording its pre-image in every open view first. */
  #write(key: string, value: Buffer | undefined): void {
    const previous = this.#values.get(key);
    if (previous === undefined && value === undefined) return;
    this.#currentView = undefined;
    for (const view of this.#openViews) {
      if (view.preImages.has(key)) continue;
      view.preImages.set(key, previous);
      if (previous !== undefined) view.preImageKeys.insert(key);
    }
    if (value === undefined) {
      this.#values.delete(key);
      this.#index.delete(key);
    } else {
      this.#values.set(key, value);
      if (previous === undefined) this.#index.insert(key);
    }
  }

  #acquireView(): View {
    if (this.#currentView !== undefined) {
      this.#currentView.referenceCount += 1;
      return this.#currentView;
    }
    const view: View = { preImages: new Map(), preImageKeys: new OrderedIndex(), referenceCount: 1 };
    this.#openViews.add(view);
    this.#currentView = view;
    return view;
  }

  #releaseView(view: View): void {
    assert.ok(view.referenceCount > 0 && this.#openViews.has(view), 'a view is released while open');
    view.referenceCount -= 1;
    if (view.referenceCount > 0) return;
    this.#openViews.delete(view);
    if (this.#currentView === view) this.#currentView = undefined;
  }

  #valueIn(view: View, key: string): Buffer | undefined {
    return view.preImages.has(key) ? view.preImages.get(key) : this.#values.get(key);
  }

  /**
   * A cursor over a view. Each chunk re-seeks after the last key it returned, in both the live
   * index and the view's pre-image keys, so writes between chunks cannot disturb it. Keys come
   * from both: a key written after the view was taken is in the live index but has an absent
   * pre-image (skipped); a key deleted since is only in the pre-image keys.
   */
  #cursor(view: View, range: KeyRange): EntryCursor {
    const start = range.start?.toString('latin1');
    const end = range.end?.toString('latin1');
    let lastKey: string | undefined;
    let exhausted = false;
    return {
      nextChunk: async (countMax) => {
        const entries: Entry[] = [];
        let valueBytes = 0;
        while (!exhausted && entries.length < countMax && valueBytes < memoryChunkBytesMax) {
          const from = lastKey ?? start;
          const fromInclusive = lastKey === undefined;
          const wanted = countMax - entries.length;
          const liveKeys = this.#index.keysFrom(from, fromInclusive, end, wanted);
          const savedKeys = view.preImageKeys.keysFrom(from, fromInclusive, end, wanted);
          // A list that came back full may have more keys after its last one, so only keys up to
          // the smaller of those last keys are known to be complete in the merge.
          let bound: string | undefined;
          if (liveKeys.length === wanted) bound = liveKeys.at(-1);
          if (savedKeys.length === wanted) {
            const savedLast = savedKeys.at(-1) as string;
            if (bound === undefined || savedLast < bound) bound = savedLast;
          }
          if (bound === undefined) exhausted = true;
          for (const key of mergeSortedUnique(liveKeys, savedKeys)) {
            if (bound !== undefined && key > bound) break;
            lastKey = key;
            const value = this.#valueIn(view, key);
            if (value === undefined) continue;
            entries.push({ key: Buffer.from(key, 'latin1'), value: Buffer.from(value) });
            valueBytes += value.byteLength;
            if (entries.length === countMax || valueBytes >= memoryChunkBytesMax) {
              // Stopped early: keys after `lastKey` may still come; the next chunk re-seeks to learn.
              exhausted = false;
              break;
            }
          }
        }
        return entries;
      },
      close: async () => {},
    };
  }
}

function copyOf(value: Buffer | undefined): Buffer | undefined {
  return value === undefined ? undefined : Buffer.from(value);
}

/** Merges two ascending lists into one ascending list without duplicates. */
function mergeSortedUnique(left: readonly string[], right: readonly string[]): string[] {
  const merged: string[] = [];
  let leftIndex = 0;
  let rightIndex = 0;
  while (leftIndex < left.length || rightIndex < right.length) {
    const leftKey = left[leftIndex];
    const rightKey = right[rightIndex];
    if (rightKey === undefined || (leftKey !== undefined && leftKey < rightKey)) {
      merged.push(leftKey as string);
      leftIndex += 1;
    } else if (leftKey === undefined || rightKey < leftKey) {
      merged.push(rightKey);
      rightIndex += 1;
    } else {
      merged.push(leftKey);
      leftIndex += 1;
      rightIndex += 1;
    }
  }
  return merged;
}
