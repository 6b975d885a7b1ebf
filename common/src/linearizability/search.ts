import type { Operation } from './history.js';
import { stepRegister, type RegisterState } from './register-model.js';

export type CheckResult = 'linearizable' | 'not-linearizable' | 'unknown';

export interface SearchLimits {
  /** Search steps (entries visited) before giving up with 'unknown'. */
  readonly stepsMax: number;
  /** Called every few thousand steps; `true` stops the search with 'unknown'. */
  readonly isPastDeadline?: () => boolean;
}

export interface SearchOutcome {
  readonly result: CheckResult;
  readonly steps: number;
  /**
   * When not linearizable: the longest sequence of operations (ids, in linearization order) the
   * search managed to linearize. The operation after it could not be placed.
   */
  readonly longestLinearization: readonly number[];
}

/** One node of the doubly linked list of call and return events (Lowe's improved Wing–Gong). */
interface Entry {
  readonly isCall: boolean;
  readonly index: number;
  readonly time: number;
  match: Entry | undefined;
  previous: Entry | undefined;
  next: Entry | undefined;
}

const deadlineCheckPeriodSteps = 4096;

/**
 * Decides whether the operations on ONE key can be linearized (Wing & Gong's search with Lowe's
 * memoization, as in porcupine). Operations with status `info` return at +infinity, so they may
 * be placed anywhere after their invocation; once every operation with a known outcome is placed,
 * the remaining `info` operations are deemed never to have taken effect.
 */
export function searchLinearization(
  operations: readonly Operation[],
  limits: SearchLimits,
  initialState: RegisterState = null,
): SearchOutcome {
  const head = buildEntries(operations);
  const linearized = new LinearizedSet(operations.length);
  // (set of linearized operations, state) pairs already explored: reaching one again cannot
  // lead anywhere new, which turns the exponential search into a tractable one in practice.
  const cache = new Map<number, CacheEntry[]>();
  const stack: { entry: Entry; state: RegisterState }[] = [];
  // Indeterminate deletes all have the same effect, so which of them takes effect at a given
  // point does not matter: without loss of generality they take effect in invocation order.
  // Trying only the next one in that order collapses 2^k subsets into k + 1 prefixes.
  const infoDeleteRank = rankIndeterminateDeletes(operations);
  let infoDeletesLinearized = 0;
  let state = initialState;
  let steps = 0;
  let longest: number[] = [];
  let entry = head.next;

  while (entry !== undefined) {
    steps += 1;
    if (steps > limits.stepsMax) return { result: 'unknown', steps, longestLinearization: [] };
    if (steps % deadlineCheckPeriodSteps === 0 && limits.isPastDeadline?.() === true) {
      return { result: 'unknown', steps, longestLinearization: [] };
    }
    if (entry.isCall) {
      const op = operations[entry.index]!;
      const deleteRank = infoDeleteRank[entry.index]!;
      if (deleteRank >= 0 && deleteRank !== infoDeletesLinearized) {
        entry = entry.next;
        continue;
      }
      const nextState = stepRegister(state, op);
      if (nextState !== undefined) {
        linearized.add(entry.index);
        if (cacheAdd(cache, linearized, nextState)) {
          stack.push({ entry, state });
          state = nextState;
          if (deleteRank >= 0) infoDeletesLinearized += 1;
          lift(entry);
          if (stack.length > longest.length) longest = stack.map((frame) => frame.entry.index);
          entry = head.next;
          continue;
        }
        linearized.remove(entry.index);
      }
      entry = entry.next;
      continue;
    }
    if (entry.time === Infinity) {
      // Everything before the first return at +infinity is placed: only `info` operations are
      // left, and they may all be deemed not to have happened.
      return { result: 'linearizable', steps, longestLinearization: [] };
    }
    const frame = stack.pop();
    if (frame === undefined) {
      return {
        result: 'not-linearizable',
        steps,
        longestLinearization: longest.map((index) => operations[index]!.id),
      };
    }
    state = frame.state;
    linearized.remove(frame.entry.index);
    if (infoDeleteRank[frame.entry.index]! >= 0) infoDeletesLinearized -= 1;
    unlift(frame.entry);
    entry = frame.entry.next;
  }
  return { result: 'linearizable', steps, longestLinearization: [] };
}

/** For each operation: its rank among indeterminate deletes by invocation time, or -1. */
function rankIndeterminateDeletes(operations: readonly Operation[]): Int32Array {
  const ranks = new Int32Array(operations.length).fill(-1);
  const deletes = operations
    .map((op, index) => ({ op, index }))
    .filter(({ op }) => op.status === 'info' && op.f === 'delete')
    .sort((a, b) => a.op.invokeTime - b.op.invokeTime || a.index - b.index);
  deletes.forEach(({ index }, rank) => {
    ranks[index] = rank;
  });
  return ranks;
}

interface CacheEntry {
  readonly words: Uint32Array;
  readonly state: RegisterState;
}

function cacheAdd(
  cache: Map<number, CacheEntry[]>,
  linearized: LinearizedSet,
  state: RegisterState,
): boolean {
  const bucket = cache.get(linearized.hash);
  if (bucket === undefined) {
    cache.set(linearized.hash, [{ words: linearized.snapshot(), state }]);
    return true;
  }
  for (const cached of bucket) {
    if (cached.state === state && linearized.equals(cached.words)) return false;
  }
  bucket.push({ words: linearized.snapshot(), state });
  return true;
}

/**
 * A bitset of linearized operations with an incrementally maintained hash (Zobrist: the XOR of
 * one fixed random word per member), so that a cache lookup costs O(1) until the final equality
 * check, instead of hashing the whole set each step.
 */
class LinearizedSet {
  private readonly words: Uint32Array;
  private readonly keys: Uint32Array;
  hash = 0;

  constructor(size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32));
    this.keys = new Uint32Array(size);
    // A fixed generator (splitmix32): hashes only need to spread, not to be unpredictable.
    let seed = 0x9e3779b9;
    for (let index = 0; index < size; index += 1) {
      seed = (seed + 0x9e3779b9) >>> 0;
      let z = seed;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.keys[index] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  add(index: number): void {
    this.words[index >>> 5]! |= 1 << (index & 31);
    this.hash = (this.hash ^ this.keys[index]!) >>> 0;
  }

  remove(index: number): void {
    this.words[index >>> 5]! &= ~(1 << (index & 31));
    this.hash = (this.hash ^ this.keys[index]!) >>> 0;
  }

  snapshot(): Uint32Array {
    return this.words.slice();
  }

  equals(words: Uint32Array): boolean {
    for (let i = 0; i < words.length; i += 1) if (words[i] !== this.words[i]) return false;
    return true;
  }
}

/**
 * Builds the event list sorted by time. At equal times calls come first: two operations whose
 * return and invocation share a timestamp are treated as concurrent, which never reports a
 * violation that a finer clock could have explained.
 */
function buildEntries(operations: readonly Operation[]): Entry {
  const entries: Entry[] = [];
  operations.forEach((op, index) => {
    const call: Entry = {
      isCall: true,
      index,
      time: op.invokeTime,
      match: undefined,
      previous: undefined,
      next: undefined,
    };
    const ret: Entry = {
      isCall: false,
      index,
      time: op.returnTime,
      match: call,
      previous: undefined,
      next: undefined,
    };
    call.match = ret;
    entries.push(call, ret);
  });
  entries.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall) || a.index - b.index);
  const head: Entry = {
    isCall: false,
    index: -1,
    time: -Infinity,
    match: undefined,
    previous: undefined,
    next: undefined,
  };
  let tail = head;
  for (const entry of entries) {
    tail.next = entry;
    entry.previous = tail;
    tail = entry;
  }
  return head;
}

/** Removes a call and its return from the list (the operation is linearized). */
function lift(call: Entry): void {
  call.previous!.next = call.next;
  if (call.next !== undefined) call.next.previous = call.previous;
  const ret = call.match!;
  ret.previous!.next = ret.next;
  if (ret.next !== undefined) ret.next.previous = ret.previous;
}

/** Puts back what `lift` removed; entries are restored in reverse order of removal. */
function unlift(call: Entry): void {
  const ret = call.match!;
  ret.previous!.next = ret;
  if (ret.next !== undefined) ret.next.previous = ret;
  call.previous!.next = call;
  if (call.next !== undefined) call.next.previous = call;
}
