/**
 * The conformance suite that every engine passes: it states what `Engine` promises, once. Each
 * engine's test file calls `describeEngineConformance` with a way to open a fresh engine.
 *
 * Keys and values in the hand-written tests are latin1 strings: one character per byte, so that
 * they read as text and still cover every byte value.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import type { BatchOperation, Engine, EngineSnapshot, Entry, RangeOptions } from '../../src/storage/index.js';

export interface EngineUnderTest {
  readonly engine: Engine;
  /** Removes what the engine left behind (a temporary directory); called after `engine.close()`. */
  readonly cleanup: () => Promise<void>;
}

export interface ConformanceOptions {
  /** Runs of the property test; bounded so that the suite stays fast. */
  readonly propertyRuns?: number;
}

/** Bytes of a latin1 string: `bytes('a\u00ff')` is `61 ff`. */
export function bytes(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

/** Drains an iteration into `[key, value]` latin1 pairs. */
export async function pairsOf(iteration: AsyncIterable<Entry>): Promise<Array<[string, string]>> {
  const pairs: Array<[string, string]> = [];
  for await (const entry of iteration)
    pairs.push([entry.key.toString('latin1'), entry.value.toString('latin1')]);
  return pairs;
}

async function putAll(engine: Engine, pairs: ReadonlyArray<readonly [string, string]>): Promise<void> {
  await engine.batch(pairs.map(([key, value]) => ({ type: 'put', key: bytes(key), value: bytes(value) })));
}

/** Expects the promise to reject with an error whose `code` is `code`. */
async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code });
}

export function describeEngineConformance(
  name: string,
  open: () => Promise<EngineUnderTest>,
  options: ConformanceOptions = {},
): void {
  describe(`${name} engine conformance`, () => {
    let engine: Engine;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ engine, cleanup } = await open());
    });

    afterEach(async () => {
      // Tests that close the engine themselves rely on close() being idempotent here.
      await engine.close();
      await cleanup();
    });

    describe('get, put, delete', () => {
      it('resolves undefined for an absent key', async () => {
        expect(await engine.get(bytes('absent'))).toBeUndefined();
      });

      it('returns what was put, as a Buffer, and the last value after an overwrite', async () => {
        await engine.put(bytes('k'), bytes('one'));
        const first = await engine.get(bytes('k'));
        expect(Buffer.isBuffer(first)).toBe(true);
        expect(first).toEqual(bytes('one'));
        await engine.put(bytes('k'), bytes('two'));
        expect(await engine.get(bytes('k'))).toEqual(bytes('two'));
      });

      it('deletes a key, and deleting an absent key succeeds and changes nothing', async () => {
        await engine.put(bytes('k'), bytes('v'));
        await engine.delete(bytes('k'));
        expect(await engine.get(bytes('k'))).toBeUndefined();
        await engine.delete(bytes('never'));
        expect(await pairsOf(engine.iterate())).toEqual([]);
      });

      it('round-trips an empty value as an empty Buffer, not undefined', async () => {
        await engine.put(bytes('empty'), new Uint8Array(0));
        const value = await engine.get(bytes('empty'));
        expect(Buffer.isBuffer(value)).toBe(true);
        expect(value?.byteLength).toBe(0);
        expect(await pairsOf(engine.iterate())).toEqual([['empty', '']]);
      });

      it('keeps what was stored when the caller reuses its arrays or the returned Buffer', async () => {
        const key = Uint8Array.of(1, 2);
        const value = Uint8Array.of(3, 4);
        await engine.put(key, value);
        key[0] = 9;
        value[0] = 9;
        const stored = await engine.get(Uint8Array.of(1, 2));
        expect(stored).toEqual(Buffer.from([3, 4]));
        stored?.fill(7);
        expect(await engine.get(Uint8Array.of(1, 2))).toEqual(Buffer.from([3, 4]));
        expect(await engine.get(key)).toBeUndefined();
      });

      it('accepts a plain Uint8Array as well as a Buffer', async () => {
        await engine.put(new TextEncoder().encode('plain'), Uint8Array.of(0, 1));
        expect(await engine.get(bytes('plain'))).toEqual(Buffer.from([0, 1]));
      });

      it('rejects invalid arguments with ENGINE_INVALID_ARGUMENT and changes nothing', async () => {
        await expectCode(engine.get(new Uint8Array(0)), 'ENGINE_INVALID_ARGUMENT');
        await expectCode(engine.put(new Uint8Array(0), bytes('v')), 'ENGINE_INVALID_ARGUMENT');
        await expectCode(engine.delete(new Uint8Array(0)), 'ENGINE_INVALID_ARGUMENT');
        await expectCode(engine.get('text' as unknown as Uint8Array), 'ENGINE_INVALID_ARGUMENT');
        await expectCode(engine.put(bytes('k'), 'text' as unknown as Uint8Array), 'ENGINE_INVALID_ARGUMENT');
        await expectCode(
          engine.put(bytes('k'), undefined as unknown as Uint8Array),
          'ENGINE_INVALID_ARGUMENT',
        );
        expect(await pairsOf(engine.iterate())).toEqual([]);
      });
    });

    describe('binary keys and values', () => {
      it('stores keys and values with bytes 0x00 and 0xff', async () => {
        const pairs: Array<[string, string]> = [
          ['\u0000', '\u00ff'],
          ['\u00ff', '\u0000'],
          ['\u0000\u0000', ''],
          ['\u00ff\u00ff\u0000', '\u0000\u00ff\u0000'],
        ];
        await putAll(engine, pairs);
        for (const [key, value] of pairs) expect(await engine.get(bytes(key))).toEqual(bytes(value));
      });

      it('orders keys by unsigned bytes, shorter prefix first', async () => {
        const keys = ['\u00ff\u0000', '\u0080', '\u0001', '\u0000\u0000', '\u00ff', '\u007f', '\u0000'];
        await putAll(
          engine,
          keys.map((key) => [key, 'v']),
        );
        const scanned = (await pairsOf(engine.iterate())).map(([key]) => key);
        expect(scanned).toEqual([
          '\u0000',
          '\u0000\u0000',
          '\u0001',
          '\u007f',
          '\u0080',
          '\u00ff',
          '\u00ff\u0000',
        ]);
      });

      it('round-trips UTF-8 multi-byte text and orders it by its bytes, not by UTF-16', async () => {
        // U+FF5E is below U+1F680 in UTF-8 bytes (ef.. < f0..) but above it in UTF-16 units.
        const texts = ['\u{1F680}', '\uFF5E', '日本', 'é', 'z'];
        for (const text of texts)
          await engine.put(Buffer.from(text, 'utf8'), Buffer.from(`value ${text}`, 'utf8'));
        for (const text of texts) {
          expect((await engine.get(Buffer.from(text, 'utf8')))?.toString('utf8')).toBe(`value ${text}`);
        }
        const scanned: string[] = [];
        for await (const entry of engine.iterate()) scanned.push(entry.key.toString('utf8'));
        expect(scanned).toEqual(['z', 'é', '日本', '\uFF5E', '\u{1F680}']);
      });
    });

    describe('batch', () => {
      it('applies puts and deletes together', async () => {
        await putAll(engine, [['gone', 'x']]);
        await engine.batch([
          { type: 'put', key: bytes('a'), value: bytes('1') },
          { type: 'delete', key: bytes('gone') },
          { type: 'put', key: bytes('b'), value: bytes('') },
        ]);
        expect(await pairsOf(engine.iterate())).toEqual([
          ['a', '1'],
          ['b', ''],
        ]);
      });

      it('lets later operations on the same key win', async () => {
        await putAll(engine, [['c', 'old']]);
        await engine.batch([
          { type: 'put', key: bytes('a'), value: bytes('1') },
          { type: 'put', key: bytes('a'), value: bytes('2') },
          { type: 'put', key: bytes('b'), value: bytes('1') },
          { type: 'delete', key: bytes('b') },
          { type: 'delete', key: bytes('c') },
          { type: 'put', key: bytes('c'), value: bytes('new') },
        ]);
        expect(await pairsOf(engine.iterate())).toEqual([
          ['a', '2'],
          ['c', 'new'],
        ]);
      });

      it('accepts an empty batch', async () => {
        await engine.batch([]);
        expect(await pairsOf(engine.iterate())).toEqual([]);
      });

      it('changes nothing when one operation is invalid', async () => {
        await putAll(engine, [['keep', 'v']]);
        const invalidOperations: unknown[] = [
          { type: 'put', key: new Uint8Array(0), value: bytes('v') },
          { type: 'put', key: bytes('x') },
          { type: 'delete', key: 'x' },
          { type: 'merge', key: bytes('x'), value: bytes('v') },
          null,
        ];
        for (const invalid of invalidOperations) {
          const operations = [
            { type: 'put', key: bytes('new'), value: bytes('v') },
            { type: 'delete', key: bytes('keep') },
            invalid,
            { type: 'put', key: bytes('after'), value: bytes('v') },
          ] as BatchOperation[];
          await expectCode(engine.batch(operations), 'ENGINE_INVALID_ARGUMENT');
        }
        await expectCode(
          engine.batch('not an array' as unknown as BatchOperation[]),
          'ENGINE_INVALID_ARGUMENT',
        );
        expect(await pairsOf(engine.iterate())).toEqual([['keep', 'v']]);
      });
    });

    describe('range iteration', () => {
      const keys = ['a', 'ab', 'abc', 'b', 'ba', 'c'];
      const scan = async (range: RangeOptions): Promise<string[]> =>
        (await pairsOf(engine.iterate(range))).map(([key]) => key);

      beforeEach(async () => {
        await putAll(
          engine,
          keys.map((key) => [key, `value of ${key}`]),
        );
      });

      it('returns every entry in order without options', async () => {
        expect(await pairsOf(engine.iterate())).toEqual(keys.map((key) => [key, `value of ${key}`]));
      });

      it('includes start and excludes end', async () => {
        expect(await scan({ start: bytes('ab'), end: bytes('ba') })).toEqual(['ab', 'abc', 'b']);
        expect(await scan({ start: bytes('aa'), end: bytes('bb') })).toEqual(['ab', 'abc', 'b', 'ba']);
        expect(await scan({ start: bytes('b') })).toEqual(['b', 'ba', 'c']);
        expect(await scan({ end: bytes('b') })).toEqual(['a', 'ab', 'abc']);
      });

      it('handles keys that are prefixes of each other', async () => {
        expect(await scan({ start: bytes('a'), end: bytes('ab') })).toEqual(['a']);
        expect(await scan({ start: bytes('ab'), end: bytes('abc') })).toEqual(['ab']);
        expect(await scan({ start: bytes('ab'), end: bytes('ab\u0000') })).toEqual(['ab']);
        expect(await scan({ start: bytes('ab\u0000') })).toEqual(['abc', 'b', 'ba', 'c']);
      });

      it('stops at limit, and returns nothing for limit 0', async () => {
        expect(await scan({ limit: 2 })).toEqual(['a', 'ab']);
        expect(await scan({ start: bytes('b'), limit: 1 })).toEqual(['b']);
        expect(await scan({ limit: 100 })).toEqual(keys);
        expect(await scan({ limit: 0 })).toEqual([]);
      });

      it('returns nothing when start >= end or end is empty', async () => {
        expect(await scan({ start: bytes('b'), end: bytes('b') })).toEqual([]);
        expect(await scan({ start: bytes('c'), end: bytes('a') })).toEqual([]);
        expect(await scan({ end: new Uint8Array(0) })).toEqual([]);
        expect(await scan({ start: new Uint8Array(0) })).toEqual(keys);
        expect(await scan({ start: bytes('d') })).toEqual([]);
      });

      it('rejects invalid options on the first next()', async () => {
        for (const invalid of [
          { limit: -1 },
          { limit: 1.5 },
          { limit: Infinity },
          { start: 'a' },
          { end: 7 },
        ]) {
          await expectCode(
            engine.iterate(invalid as unknown as RangeOptions).next(),
            'ENGINE_INVALID_ARGUMENT',
          );
        }
      });

      it('returns nothing on an empty engine', async () => {
        await engine.batch(keys.map((key) => ({ type: 'delete', key: bytes(key) })));
        expect(await scan({})).toEqual([]);
        expect(await scan({ start: bytes('a'), end: bytes('z'), limit: 5 })).toEqual([]);
      });

      it('scans more entries than fit in one chunk, in order', async () => {
        const many = Array.from({ length: 700 }, (_, index) => `k${String(index).padStart(4, '0')}`);
        await putAll(
          engine,
          many.map((key) => [key, key]),
        );
        expect(await scan({ start: bytes('k'), end: bytes('l') })).toEqual(many);
        expect(await scan({ start: bytes('k0100'), limit: 333 })).toEqual(many.slice(100, 433));
      });

      it('scans values larger than a chunk budget', async () => {
        const large = Buffer.alloc(200 * 1024, 0xab);
        const operations: BatchOperation[] = Array.from({ length: 6 }, (_, index) => ({
          type: 'put',
          key: bytes(`large ${index}`),
          value: large,
        }));
        await engine.batch(operations);
        const scanned: Entry[] = [];
        for await (const entry of engine.iterate({ start: bytes('large'), end: bytes('largf') }))
          scanned.push(entry);
        expect(scanned.map((entry) => entry.key.toString('latin1'))).toEqual(
          operations.map((operation) => operation.key.toString()),
        );
        for (const entry of scanned) expect(entry.value.equals(large)).toBe(true);
      });

      it('releases an iteration left early, and the engine still closes', async () => {
        for await (const entry of engine.iterate()) {
          expect(entry.key.toString('latin1')).toBe('a');
          break;
        }
        const unused = engine.iterate();
        const started = engine.iterate();
        await started.next();
        await engine.put(bytes('later'), bytes('v'));
        await engine.close();
        await expectCode(started.next(), 'ENGINE_CLOSED');
        await expectCode(unused.next(), 'ENGINE_CLOSED');
      });
    });

    describe('snapshots', () => {
      it('hides puts, overwrites and deletes made after it, in get and iterate', async () => {
        await putAll(engine, [
          ['kept', '1'],
          ['overwritten', 'old'],
          ['deleted', 'here'],
        ]);
        const snapshot = await engine.snapshot();
        await engine.put(bytes('added'), bytes('new'));
        await engine.put(bytes('overwritten'), bytes('new'));
        await engine.delete(bytes('deleted'));
        await engine.batch([
          { type: 'put', key: bytes('batched'), value: bytes('new') },
          { type: 'delete', key: bytes('kept') },
        ]);

        expect(await snapshot.get(bytes('added'))).toBeUndefined();
        expect(await snapshot.get(bytes('batched'))).toBeUndefined();
        expect(await snapshot.get(bytes('overwritten'))).toEqual(bytes('old'));
        expect(await snapshot.get(bytes('deleted'))).toEqual(bytes('here'));
        expect(await snapshot.get(bytes('kept'))).toEqual(bytes('1'));
        expect(await pairsOf(snapshot.iterate())).toEqual([
          ['deleted', 'here'],
          ['kept', '1'],
          ['overwritten', 'old'],
        ]);
        expect(await pairsOf(snapshot.iterate({ start: bytes('e'), limit: 1 }))).toEqual([['kept', '1']]);
        expect(await pairsOf(engine.iterate())).toEqual([
          ['added', 'new'],
          ['batched', 'new'],
          ['overwritten', 'new'],
        ]);
        await snapshot.close();
      });

      it('gives each snapshot the state of its own moment', async () => {
        await engine.put(bytes('k'), bytes('1'));
        const first = await engine.snapshot();
        const alsoFirst = await engine.snapshot();
        await engine.put(bytes('k'), bytes('2'));
        const second = await engine.snapshot();
        await engine.delete(bytes('k'));
        const third = await engine.snapshot();
        await engine.put(bytes('k'), bytes('4'));

        expect(await first.get(bytes('k'))).toEqual(bytes('1'));
        expect(await alsoFirst.get(bytes('k'))).toEqual(bytes('1'));
        expect(await second.get(bytes('k'))).toEqual(bytes('2'));
        expect(await third.get(bytes('k'))).toBeUndefined();
        expect(await pairsOf(third.iterate())).toEqual([]);
        await first.close();
        // Closing one snapshot leaves those taken at the same moment intact.
        expect(await pairsOf(alsoFirst.iterate())).toEqual([['k', '1']]);
        expect(await engine.get(bytes('k'))).toEqual(bytes('4'));
        await Promise.all([alsoFirst.close(), second.close(), third.close()]);
      });

      it('keeps an iteration over the engine undisturbed by writes made while it runs', async () => {
        const keys = Array.from({ length: 300 }, (_, index) => `k${String(index).padStart(3, '0')}`);
        await putAll(
          engine,
          keys.map((key) => [key, 'old']),
        );
        const seen: Array<[string, string]> = [];
        let index = 0;
        for await (const entry of engine.iterate()) {
          seen.push([entry.key.toString('latin1'), entry.value.toString('latin1')]);
          // Delete the next keys, overwrite the previous ones, and add keys in between.
          const next = keys[index + 1];
          if (next !== undefined) await engine.delete(bytes(next));
          await engine.put(bytes(`${entry.key.toString('latin1')}+`), bytes('added'));
          await engine.put(entry.key, bytes('new'));
          index += 1;
        }
        expect(seen).toEqual(keys.map((key) => [key, 'old']));
      });

      it('keeps an iteration over a snapshot undisturbed by writes made while it runs', async () => {
        const keys = Array.from({ length: 150 }, (_, index) => `k${String(index).padStart(3, '0')}`);
        await putAll(
          engine,
          keys.map((key) => [key, 'old']),
        );
        const snapshot = await engine.snapshot();
        await engine.delete(bytes('k000'));
        const seen: string[] = [];
        for await (const entry of snapshot.iterate({ start: bytes('k'), end: bytes('l') })) {
          seen.push(entry.key.toString('latin1'));
          await engine.batch(keys.map((key) => ({ type: 'delete', key: bytes(key) })));
          await engine.put(bytes(`${entry.key.toString('latin1')}!`), bytes('added'));
        }
        expect(seen).toEqual(keys);
        expect(await snapshot.get(bytes('k149'))).toEqual(bytes('old'));
        await snapshot.close();
      });

      it('skips runs of keys added after it that are longer than a chunk', async () => {
        await putAll(engine, [
          ['m', 'kept'],
          ['z', 'kept'],
        ]);
        const snapshot = await engine.snapshot();
        // Hidden keys in front of, between and behind the visible ones, many times a chunk long.
        const added = ['a', 'n', '~'].flatMap((prefix) =>
          Array.from({ length: 300 }, (_, index): [string, string] => [`${prefix}${index}`, 'added']),
        );
        await putAll(engine, added);
        const expected = [
          ['m', 'kept'],
          ['z', 'kept'],
        ];
        expect(await pairsOf(snapshot.iterate())).toEqual(expected);
        expect(await pairsOf(snapshot.iterate({ start: bytes('n') }))).toEqual([['z', 'kept']]);
        await engine.delete(bytes('m'));
        expect(await pairsOf(snapshot.iterate())).toEqual(expected);
        await snapshot.close();
      });

      it('rejects operations after close with ENGINE_SNAPSHOT_CLOSED, and closes idempotently', async () => {
        await engine.put(bytes('k'), bytes('v'));
        const snapshot = await engine.snapshot();
        const iteration = snapshot.iterate();
        expect((await iteration.next()).value).toMatchObject({ key: bytes('k') });
        await Promise.all([snapshot.close(), snapshot.close()]);
        await snapshot.close();
        await expectCode(snapshot.get(bytes('k')), 'ENGINE_SNAPSHOT_CLOSED');
        await expectCode(snapshot.iterate().next(), 'ENGINE_SNAPSHOT_CLOSED');
        await expectCode(iteration.next(), 'ENGINE_SNAPSHOT_CLOSED');
        expect(await engine.get(bytes('k'))).toEqual(bytes('v'));
      });

      it('rejects invalid snapshot reads with ENGINE_INVALID_ARGUMENT', async () => {
        const snapshot = await engine.snapshot();
        await expectCode(snapshot.get(new Uint8Array(0)), 'ENGINE_INVALID_ARGUMENT');
        await expectCode(snapshot.iterate({ limit: -2 }).next(), 'ENGINE_INVALID_ARGUMENT');
        await snapshot.close();
      });
    });

    describe('sync', () => {
      it('resolves, changes no user-visible key order, and keeps every write', async () => {
        await engine.put(bytes('a'), bytes('1'));
        await engine.batch([{ type: 'put', key: bytes('b'), value: bytes('2') }]);
        await engine.sync();
        expect((await engine.get(bytes('a')))?.toString()).toBe('1');
        expect((await engine.get(bytes('b')))?.toString()).toBe('2');
        await Promise.all([engine.sync(), engine.sync()]);
      });
    });

    describe('flush', () => {
      it('resolves, and keeps every write readable', async () => {
        await engine.put(bytes('a'), bytes('1'));
        await engine.batch([{ type: 'put', key: bytes('b'), value: bytes('2') }]);
        await engine.flush();
        expect((await engine.get(bytes('a')))?.toString()).toBe('1');
        expect((await engine.get(bytes('b')))?.toString()).toBe('2');
        await Promise.all([engine.flush(), engine.flush()]);
      });
    });

    describe('close', () => {
      it('is idempotent', async () => {
        await Promise.all([engine.close(), engine.close()]);
        await engine.close();
      });

      it('rejects every operation afterwards with ENGINE_CLOSED', async () => {
        await engine.put(bytes('k'), bytes('v'));
        await engine.close();
        await expectCode(engine.get(bytes('k')), 'ENGINE_CLOSED');
        await expectCode(engine.put(bytes('k'), bytes('v')), 'ENGINE_CLOSED');
        await expectCode(engine.delete(bytes('k')), 'ENGINE_CLOSED');
        await expectCode(engine.batch([{ type: 'delete', key: bytes('k') }]), 'ENGINE_CLOSED');
        await expectCode(engine.batch([]), 'ENGINE_CLOSED');
        await expectCode(engine.iterate().next(), 'ENGINE_CLOSED');
        await expectCode(engine.snapshot(), 'ENGINE_CLOSED');
        await expectCode(engine.countKeys(), 'ENGINE_CLOSED');
        await expectCode(engine.hasMany([bytes('k')]), 'ENGINE_CLOSED');
        await expectCode(engine.sync(), 'ENGINE_CLOSED');
        // The closed state wins over invalid arguments: the engine is the first thing wrong.
        await expectCode(engine.get(new Uint8Array(0)), 'ENGINE_CLOSED');
      });

      it('closes open snapshots and iterations with it', async () => {
        await putAll(engine, [
          ['a', '1'],
          ['b', '2'],
        ]);
        const snapshot = await engine.snapshot();
        const iteration = snapshot.iterate();
        await iteration.next();
        await engine.close();
        await expectCode(snapshot.get(bytes('a')), 'ENGINE_CLOSED');
        await expectCode(iteration.next(), 'ENGINE_CLOSED');
        await snapshot.close();
      });

      it('lets operations in flight finish', async () => {
        const writes = Array.from({ length: 20 }, (_, index) => engine.put(bytes(`k${index}`), bytes('v')));
        // Settled into a value at once, so that a refusal is not an unhandled rejection meanwhile.
        const snapshotting = engine.snapshot().catch((error: unknown) => error);
        const closing = engine.close();
        await Promise.all(writes);
        await expectCode(engine.get(bytes('k0')), 'ENGINE_CLOSED');
        await closing;
        // The snapshot either was taken before the close (and is closed with the engine), or was
        // refused: either way nothing is left open.
        const snapshot = await snapshotting;
        if (snapshot instanceof Error) expect(snapshot).toMatchObject({ code: 'ENGINE_CLOSED' });
        else await expectCode((snapshot as EngineSnapshot).get(bytes('k0')), 'ENGINE_CLOSED');
      });
    });

    describe('countKeys', () => {
      it('counts the keys of the engine, or of a range, exactly', async () => {
        expect(await engine.countKeys()).toBe(0);
        await putAll(engine, [
          ['a', '1'],
          ['b', '2'],
          ['c', ''],
          ['d\u00ff', '4'],
        ]);
        await engine.put(bytes('a'), bytes('again'));
        await engine.delete(bytes('b'));
        await engine.delete(bytes('absent'));
        expect(await engine.countKeys()).toBe(3);
        expect(await engine.countKeys({ start: bytes('b') })).toBe(2);
        expect(await engine.countKeys({ start: bytes('a'), end: bytes('d') })).toBe(2);
        expect(await engine.countKeys({ end: bytes('a') })).toBe(0);
        expect(await engine.countKeys({ start: bytes('d'), end: bytes('c') })).toBe(0);
        // A limit is no part of a count.
        expect(await engine.countKeys({ limit: 1 })).toBe(3);
      });

      it('counts past its chunks, over many keys', async () => {
        const many = Array.from(
          { length: 5000 },
          (_, index) => [`k${String(index).padStart(5, '0')}`, ''] as const,
        );
        await putAll(engine, many);
        expect(await engine.countKeys()).toBe(5000);
        expect(await engine.countKeys({ start: bytes('k00100'), end: bytes('k04200') })).toBe(4100);
      });
    });

    describe('hasMany', () => {
      it('answers whether each key is present, in order, duplicates and empty values included', async () => {
        await putAll(engine, [
          ['a', '1'],
          ['empty', ''],
        ]);
        await engine.delete(bytes('a'));
        await engine.put(bytes('b'), bytes('2'));
        expect(
          await engine.hasMany([bytes('a'), bytes('b'), bytes('empty'), bytes('zz'), bytes('b')]),
        ).toEqual([false, true, true, false, true]);
        expect(await engine.hasMany([])).toEqual([]);
      });

      it('answers the same for one key, a few, and more than a LevelDB engine looks up on its own thread', async () => {
        // Every third key present, one deleted, the values of every size up to 64 KiB.
        const present = new Map<string, Buffer>();
        for (let i = 0; i < 60; i += 3) present.set(`k${i}`, Buffer.alloc(i * 1024 + 1, i));
        await engine.batch([...present].map(([key, value]) => ({ type: 'put', key: bytes(key), value })));
        await engine.delete(bytes('k30'));
        present.delete('k30');
        const names = Array.from({ length: 60 }, (_, i) => `k${i}`);
        for (const count of [1, 2, 16, 17, 60]) {
          const asked = names.slice(0, count).reverse();
          expect(await engine.hasMany(asked.map(bytes))).toEqual(asked.map((name) => present.has(name)));
        }
      });

      it('refuses an empty key or a key that is not bytes, like every other call', async () => {
        await expectCode(engine.hasMany([bytes('a'), new Uint8Array(0)]), 'ENGINE_INVALID_ARGUMENT');
        await expectCode(engine.hasMany(['a' as unknown as Uint8Array]), 'ENGINE_INVALID_ARGUMENT');
      });
    });

    describe('against a reference model', () => {
      it('agrees with a sorted-array model on random operation sequences', async () => {
        await fc.assert(
          fc.asyncProperty(fc.array(stepArbitrary, { maxLength: 40 }), async (steps) => {
            await runAgainstModel(engine, steps);
          }),
          { numRuns: options.propertyRuns ?? 150 },
        );
      });
    });
  });
}

// The property test: steps drawn at random, run against the engine and against a model so simple
// that it is obviously right (a Map, sorted with Buffer.compare on every read).

type Mutation =
  | { readonly kind: 'put'; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly kind: 'delete'; readonly key: Uint8Array }
  | { readonly kind: 'batch'; readonly operations: BatchOperation[] };

type Step =
  | Mutation
  | { readonly kind: 'get'; readonly key: Uint8Array }
  | { readonly kind: 'range'; readonly range: RangeOptions }
  | { readonly kind: 'openSnapshot' }
  | {
      readonly kind: 'readSnapshot';
      readonly which: number;
      readonly key: Uint8Array;
      readonly range: RangeOptions;
    }
  | { readonly kind: 'closeSnapshot'; readonly which: number }
  | {
      readonly kind: 'iterateDuringWrites';
      readonly overSnapshot: boolean;
      readonly range: RangeOptions;
      readonly entriesBeforeWrites: number;
      readonly mutations: Mutation[];
    };

/** Few distinct bytes, so that keys collide, share prefixes and sit at both ends of the order. */
const byteArbitrary = fc.constantFrom(0x00, 0x01, 0x61, 0x62, 0x7f, 0x80, 0xfe, 0xff);
const keyArbitrary = fc
  .array(byteArbitrary, { minLength: 1, maxLength: 3 })
  .map((values) => Uint8Array.from(values));
const boundArbitrary = fc.array(byteArbitrary, { maxLength: 3 }).map((values) => Uint8Array.from(values));
const valueArbitrary = fc.uint8Array({ maxLength: 6 });
const rangeArbitrary: fc.Arbitrary<RangeOptions> = fc.record(
  { start: boundArbitrary, end: boundArbitrary, limit: fc.nat(8) },
  { requiredKeys: [] },
);
const batchOperationArbitrary: fc.Arbitrary<BatchOperation> = fc.oneof(
  fc.record({ type: fc.constant('put' as const), key: keyArbitrary, value: valueArbitrary }),
  fc.record({ type: fc.constant('delete' as const), key: keyArbitrary }),
);
const mutationArbitrary: fc.Arbitrary<Mutation> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant('put' as const), key: keyArbitrary, value: valueArbitrary }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('delete' as const), key: keyArbitrary }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('batch' as const),
      operations: fc.array(batchOperationArbitrary, { maxLength: 6 }),
    }),
  },
);
const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: mutationArbitrary },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('get' as const), key: keyArbitrary }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('range' as const), range: rangeArbitrary }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('openSnapshot' as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('readSnapshot' as const),
      which: fc.nat(),
      key: keyArbitrary,
      range: rangeArbitrary,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('closeSnapshot' as const), which: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('iterateDuringWrites' as const),
      overSnapshot: fc.boolean(),
      range: rangeArbitrary,
      entriesBeforeWrites: fc.integer({ min: 1, max: 4 }),
      mutations: fc.array(mutationArbitrary, { minLength: 1, maxLength: 4 }),
    }),
  },
);

/** Hex of the key to the entry; a fresh copy of the engine's state at some moment. */
type Model = Map<string, { readonly key: Buffer; readonly value: Buffer }>;

function applyToModel(model: Model, mutation: Mutation): void {
  const operations: readonly BatchOperation[] =
    mutation.kind === 'batch'
      ? mutation.operations
      : mutation.kind === 'put'
        ? [{ type: 'put', key: mutation.key, value: mutation.value }]
        : [{ type: 'delete', key: mutation.key }];
  for (const operation of operations) {
    const key = Buffer.from(operation.key);
    if (operation.type === 'put')
      model.set(key.toString('hex'), { key, value: Buffer.from(operation.value) });
    else model.delete(key.toString('hex'));
  }
}

async function applyToEngine(engine: Engine, mutation: Mutation): Promise<void> {
  switch (mutation.kind) {
    case 'put':
      return engine.put(mutation.key, mutation.value);
    case 'delete':
      return engine.delete(mutation.key);
    case 'batch':
      return engine.batch(mutation.operations);
  }
}

function modelRange(model: Model, range: RangeOptions): Array<[string, string]> {
  const start = range.start === undefined ? undefined : Buffer.from(range.start);
  const end = range.end === undefined ? undefined : Buffer.from(range.end);
  const entries = [...model.values()]
    .filter((entry) => start === undefined || Buffer.compare(entry.key, start) >= 0)
    .filter((entry) => end === undefined || Buffer.compare(entry.key, end) < 0)
    .sort((left, right) => Buffer.compare(left.key, right.key))
    .map((entry): [string, string] => [entry.key.toString('hex'), entry.value.toString('hex')]);
  return range.limit === undefined ? entries : entries.slice(0, range.limit);
}

function hexPair(entry: Entry): [string, string] {
  return [entry.key.toString('hex'), entry.value.toString('hex')];
}

async function hexPairsOf(iteration: AsyncIterable<Entry>): Promise<Array<[string, string]>> {
  const pairs: Array<[string, string]> = [];
  for await (const entry of iteration) pairs.push(hexPair(entry));
  return pairs;
}

function modelGet(model: Model, key: Uint8Array): string | undefined {
  return model.get(Buffer.from(key).toString('hex'))?.value.toString('hex');
}

async function runAgainstModel(engine: Engine, steps: readonly Step[]): Promise<void> {
  // The engine is shared by every run of the property: start each run from an empty engine.
  const leftover = await hexPairsOf(engine.iterate());
  await engine.batch(leftover.map(([key]) => ({ type: 'delete', key: Buffer.from(key, 'hex') })));
  const model: Model = new Map();
  const snapshots: Array<{ readonly snapshot: EngineSnapshot; readonly model: Model }> = [];
  try {
    for (const step of steps) {
      switch (step.kind) {
        case 'put':
        case 'delete':
        case 'batch':
          await applyToEngine(engine, step);
          applyToModel(model, step);
          break;
        case 'get':
          expect((await engine.get(step.key))?.toString('hex')).toBe(modelGet(model, step.key));
          expect(await engine.hasMany([step.key])).toEqual([modelGet(model, step.key) !== undefined]);
          break;
        case 'range':
          expect(await hexPairsOf(engine.iterate(step.range))).toEqual(modelRange(model, step.range));
          expect(await engine.countKeys(step.range)).toBe(
            modelRange(model, {
              ...(step.range.start === undefined ? {} : { start: step.range.start }),
              ...(step.range.end === undefined ? {} : { end: step.range.end }),
            }).length,
          );
          break;
        case 'openSnapshot':
          snapshots.push({ snapshot: await engine.snapshot(), model: new Map(model) });
          break;
        case 'readSnapshot': {
          const taken = snapshots[step.which % Math.max(snapshots.length, 1)];
          if (taken === undefined) break;
          expect((await taken.snapshot.get(step.key))?.toString('hex')).toBe(modelGet(taken.model, step.key));
          expect(await hexPairsOf(taken.snapshot.iterate(step.range))).toEqual(
            modelRange(taken.model, step.range),
          );
          break;
        }
        case 'closeSnapshot': {
          const [taken] = snapshots.splice(step.which % Math.max(snapshots.length, 1), 1);
          await taken?.snapshot.close();
          break;
        }
        case 'iterateDuringWrites': {
          const taken = step.overSnapshot ? snapshots[0] : undefined;
          const source = taken?.snapshot ?? engine;
          const expected = modelRange(taken?.model ?? model, step.range);
          const iteration = source.iterate(step.range);
          const seen: Array<[string, string]> = [];
          // The view is taken at the first next(), so at least one next() precedes the writes.
          for (let pulled = 0; pulled < step.entriesBeforeWrites; pulled += 1) {
            const result = await iteration.next();
            if (result.done === true) break;
            seen.push(hexPair(result.value));
          }
          for (const mutation of step.mutations) {
            await applyToEngine(engine, mutation);
            applyToModel(model, mutation);
          }
          for await (const entry of iteration) seen.push(hexPair(entry));
          expect(seen).toEqual(expected);
          break;
        }
      }
    }
    expect(await hexPairsOf(engine.iterate())).toEqual(modelRange(model, {}));
    for (const taken of snapshots) {
      expect(await hexPairsOf(taken.snapshot.iterate())).toEqual(modelRange(taken.model, {}));
    }
    expect(await engine.countKeys()).toBe(model.size);
  } finally {
    await Promise.all(snapshots.map((taken) => taken.snapshot.close()));
  }
}
