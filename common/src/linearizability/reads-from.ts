/**
 * The reads-from reduction: when every value is written by one operation at most, each read names
 * the write it saw, and linearizability of one key becomes a question about blocks of operations
 * instead of a search over orders of operations.
 *
 * A value's block is its write and every read of it. In any linearization the block is contiguous
 * (no other write can come between the write and a read of its value, since nothing writes that
 * value again), so block A must come before block B exactly when some member of A returned before
 * some member of B was invoked: `A.firstReturnTime < B.lastInvokeTime`. A history whose reads all
 * name their write is linearizable iff no two blocks must each come before the other (a cycle of
 * this relation always contains such a pair: the block of the cycle that returns first must come
 * before every other block of the cycle, including the one that must come before it), and no read
 * returned before its write was invoked (Gibbons and Korach's zones, 1997, in other words).
 *
 * Deletes all write the same "value", absence. A read of null reads from the initial absence or from
 * one delete, and which one is a choice: it is made by a backtracking search over those reads
 * alone, split into independent parts first, in which every value block is fixed. That search is
 * exponential only in tangles of reads of null whose candidate deletes overlap, and has a budget.
 */
import type { Operation } from './history.js';
import type { CheckResult, SearchLimits } from './search.js';

export interface ReadsFromOutcome {
  /**
   * `not-applicable` when a value has two writers or a `cas` is present (the caller must search);
   * `unknown` when the search over reads of null ran out of budget.
   */
  readonly result: CheckResult | 'not-applicable';
  readonly steps: number;
  /** When not linearizable for a reason that few operations show: those operations, a witness alone. */
  readonly witness?: readonly Operation[];
  /** When not linearizable: the rule that fails, in words. */
  readonly reason?: string;
}

/**
 * Bounds of a set of operations that must be contiguous in any linearization: it starts at or before
 * its first return and ends at or after its last invocation.
 */
interface Bounds {
  readonly firstReturnTime: number;
  readonly lastInvokeTime: number;
}

interface Block extends Bounds {
  /** The member that returns first and the member invoked last (for witnesses). */
  readonly firstReturning: Operation;
  readonly lastInvoked: Operation;
  readonly members: readonly Operation[];
  /** What the block holds, for messages: a value in quotes, or "a delete". */
  readonly label: string;
}

/** Each of two contiguous sets must come before the other: no linearization exists. */
function isConflict(a: Bounds, b: Bounds): boolean {
  return a.firstReturnTime < b.lastInvokeTime && b.firstReturnTime < a.lastInvokeTime;
}

const deadlineCheckPeriodSteps = 4096;

/**
 * Decides one key's operations by reads-from when every value has one writer and no `cas` is
 * present; otherwise answers `not-applicable`, after rejecting what single-writer values alone
 * prove (a read of a value nobody wrote, a read from the future, a value seen again after it was
 * overwritten). Expects the operations of one key with unobserved indeterminate writes dropped.
 */
export function decideByReadsFrom(operations: readonly Operation[], limits: SearchLimits): ReadsFromOutcome {
  const writersByValue = new Map<string, Operation[]>();
  let hasCas = false;
  for (const op of operations) {
    if (op.f === 'cas') hasCas = true;
    if ((op.f === 'put' || op.f === 'cas') && op.input !== null) {
      const writers = writersByValue.get(op.input);
      if (writers === undefined) writersByValue.set(op.input, [op]);
      else writers.push(op);
    }
  }
  const steps = operations.length;
  const refutation = refuteBySingleWriters(operations, writersByValue);
  if (refutation !== undefined) return { result: 'not-linearizable', steps, ...refutation };
  if (hasCas || [...writersByValue.values()].some((writers) => writers.length > 1)) {
    return { result: 'not-applicable', steps };
  }
  return decideUniqueWrites(operations, writersByValue, limits, steps);
}

interface Refutation {
  readonly witness: readonly Operation[];
  readonly reason: string;
}

/**
 * Rules that hold whatever the other values are: a value must have been written to be read; a
 * value with one writer cannot be read before that writer was invoked; and a value with one writer
 * cannot be read after a write that certainly took effect (`ok`) came between: that write must
 * take effect after some member of the value's block returned and before another was invoked.
 */
function refuteBySingleWriters(
  operations: readonly Operation[],
  writersByValue: ReadonlyMap<string, readonly Operation[]>,
): Refutation | undefined {
  const readersByValue = new Map<string, Operation[]>();
  for (const op of operations) {
    const observed = op.f === 'get' ? op.output : op.f === 'cas' && op.status === 'ok' ? op.expected : null;
    if (observed === null) continue;
    if (!writersByValue.has(observed)) {
      const verb = op.f === 'get' ? 'read' : 'expected (and its cas succeeded)';
      return {
        witness: [op],
        reason: `#${op.id} ${verb} ${JSON.stringify(observed)}, which no operation writes`,
      };
    }
    if (op.f !== 'get') continue;
    const readers = readersByValue.get(observed);
    if (readers === undefined) readersByValue.set(observed, [op]);
    else readers.push(op);
  }

  // Writes that certainly took effect, by invocation time, with the earliest return from each on.
  const forcedWrites = operations
    .filter((op) => op.status === 'ok' && op.f !== 'get')
    .sort((a, b) => a.invokeTime - b.invokeTime);
  const earliestReturnFrom = new Array<Operation | undefined>(forcedWrites.length + 1).fill(undefined);
  for (let index = forcedWrites.length - 1; index >= 0; index -= 1) {
    const later = earliestReturnFrom[index + 1];
    const op = forcedWrites[index]!;
    earliestReturnFrom[index] = later !== undefined && later.returnTime <= op.returnTime ? later : op;
  }

  for (const [value, writers] of writersByValue) {
    if (writers.length !== 1) continue;
    const writer = writers[0]!;
    const readers = readersByValue.get(value) ?? [];
    for (const reader of readers) {
      if (reader.returnTime < writer.invokeTime) {
        return {
          witness: [writer, reader],
          reason: `#${reader.id} read ${JSON.stringify(value)} and returned before #${writer.id}, its only writer, was invoked`,
        };
      }
    }
    const block = blockOf([writer, ...readers], JSON.stringify(value));
    const overwrite = earliestReturnFrom[firstIndexInvokedAfter(forcedWrites, block.firstReturnTime)];
    if (overwrite !== undefined && overwrite !== writer && overwrite.returnTime < block.lastInvokeTime) {
      const before = block.firstReturning;
      const after = block.lastInvoked;
      return {
        witness: sortById([writer, before, overwrite, after]),
        reason:
          `${JSON.stringify(value)} is written only by #${writer.id}, yet #${overwrite.id} (${overwrite.f}) ` +
          `overwrote it after #${before.id} returned and before #${after.id}, which reads it, was invoked`,
      };
    }
  }
  return undefined;
}

/** Index of the first operation invoked strictly after `time` (operations sorted by invocation). */
function firstIndexInvokedAfter(sorted: readonly Operation[], time: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (sorted[middle]!.invokeTime > time) high = middle;
    else low = middle + 1;
  }
  return low;
}

function blockOf(members: readonly Operation[], label: string): Block {
  let firstReturning = members[0]!;
  let lastInvoked = members[0]!;
  for (const op of members) {
    if (op.returnTime < firstReturning.returnTime) firstReturning = op;
    if (op.invokeTime > lastInvoked.invokeTime) lastInvoked = op;
  }
  return {
    firstReturnTime: firstReturning.returnTime,
    lastInvokeTime: lastInvoked.invokeTime,
    firstReturning,
    lastInvoked,
    members,
    label,
  };
}

function sortById(operations: readonly Operation[]): Operation[] {
  return [...new Set(operations)].sort((a, b) => a.id - b.id);
}

/**
 * Blocks sorted by first return, with the two largest last invocations of every prefix: finds a
 * block in conflict with given bounds in O(log n).
 */
class BlockIndex {
  private readonly sorted: Block[];
  private readonly best: (Block | undefined)[] = [];
  private readonly second: (Block | undefined)[] = [];

  constructor(blocks: readonly Block[]) {
    this.sorted = [...blocks].sort((a, b) => a.firstReturnTime - b.firstReturnTime);
    let best: Block | undefined;
    let second: Block | undefined;
    for (const block of this.sorted) {
      if (best === undefined || block.lastInvokeTime > best.lastInvokeTime) {
        second = best;
        best = block;
      } else if (second === undefined || block.lastInvokeTime > second.lastInvokeTime) {
        second = block;
      }
      this.best.push(best);
      this.second.push(second);
    }
  }

  /** A block other than `exclude` that conflicts with `bounds`, if any. */
  conflicting(bounds: Bounds, exclude?: Block): Block | undefined {
    // Blocks that must come before `bounds`: a prefix of the order by first return.
    let low = 0;
    let high = this.sorted.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.sorted[middle]!.firstReturnTime < bounds.lastInvokeTime) low = middle + 1;
      else high = middle;
    }
    if (low === 0) return undefined;
    const best = this.best[low - 1];
    const candidate = best === exclude ? this.second[low - 1] : best;
    return candidate !== undefined && bounds.firstReturnTime < candidate.lastInvokeTime
      ? candidate
      : undefined;
  }
}

function conflictRefutation(a: Block, b: Block): Refutation {
  const first = a.firstReturning.id < b.firstReturning.id ? [a, b] : [b, a];
  const [x, y] = first as [Block, Block];
  return {
    witness: sortById([
      ...writersOf(x),
      x.firstReturning,
      x.lastInvoked,
      ...writersOf(y),
      y.firstReturning,
      y.lastInvoked,
    ]),
    reason:
      `the operations on ${x.label} and on ${y.label} must each come before the other: ` +
      `#${x.firstReturning.id} returned before #${y.lastInvoked.id} was invoked, and ` +
      `#${y.firstReturning.id} returned before #${x.lastInvoked.id} was invoked`,
  };
}

/** The write of a block (its first member), which a witness needs for the reads to mean anything. */
function writersOf(block: Block): Operation[] {
  return [block.members[0]!];
}

function decideUniqueWrites(
  operations: readonly Operation[],
  writersByValue: ReadonlyMap<string, readonly Operation[]>,
  limits: SearchLimits,
  stepsSoFar: number,
): ReadsFromOutcome {
  const readersByValue = new Map<string, Operation[]>();
  const nullReads: Operation[] = [];
  const deletes: Operation[] = [];
  const indeterminateDeletes: Operation[] = [];
  for (const op of operations) {
    if (op.f === 'get') {
      if (op.output === null) {
        nullReads.push(op);
        continue;
      }
      const readers = readersByValue.get(op.output);
      if (readers === undefined) readersByValue.set(op.output, [op]);
      else readers.push(op);
    } else if (op.f === 'delete') {
      (op.status === 'ok' ? deletes : indeterminateDeletes).push(op);
    }
  }

  const valueBlocks: Block[] = [];
  for (const [value, [writer]] of writersByValue) {
    const readers = readersByValue.get(value) ?? [];
    // An indeterminate write nobody saw is free not to take effect, and taking effect cannot help.
    if (writer!.status === 'info' && readers.length === 0) continue;
    valueBlocks.push(blockOf([writer!, ...readers], JSON.stringify(value)));
  }
  const valueIndex = new BlockIndex(valueBlocks);
  let steps = stepsSoFar + valueBlocks.length;
  for (const block of valueBlocks) {
    const other = valueIndex.conflicting(block, block);
    if (other !== undefined)
      return { result: 'not-linearizable', steps, ...conflictRefutation(block, other) };
  }
  const deleteBlocks = deletes.map((op) => blockOf([op], 'a delete'));
  for (const block of deleteBlocks) {
    const other = valueIndex.conflicting(block);
    if (other !== undefined)
      return { result: 'not-linearizable', steps, ...conflictRefutation(other, block) };
  }
  steps += deleteBlocks.length;
  if (nullReads.length === 0) return { result: 'linearizable', steps };

  const search = new NullReadSearch(valueIndex, deletes, indeterminateDeletes, limits, steps);
  return search.decide(nullReads);
}

/** Where a read of null may read from: the initial absence, a delete, or an indeterminate delete. */
interface Source {
  readonly index: number;
  /** `undefined` for the initial absence. */
  readonly operation: Operation | undefined;
  readonly invokeTime: number;
  readonly isIndeterminate: boolean;
  /** Bounds with no read assigned (an indeterminate delete returns at +infinity). */
  readonly base: Bounds;
  /** Bounds with every candidate read assigned: sources whose widest bounds never meet are independent. */
  widest: Bounds;
}

/**
 * Assigns every read of null to the initial absence or to one delete so that no two blocks (value
 * blocks, fixed, and the blocks of absence this builds) must each come before the other. A delete
 * with no read assigned is a block of its own (an indeterminate one is then deemed not to have taken
 * effect). Indeterminate deletes are interchangeable but for their invocation times, so without loss
 * of generality the ones that took effect are the earliest invoked: only the next one in invocation
 * order is ever tried as a new source (as the general search does).
 */
class NullReadSearch {
  private readonly sources: Source[];
  private readonly deleteIndex: BlockIndex;
  private readonly deleteBlockBySource = new Map<number, Block>();
  /** All work, for the report; polynomial but for the backtracking. */
  private steps: number;
  /** Sources tried by the backtracking: what the budget bounds (the rest is polynomial). */
  private searchSteps = 0;
  private exhausted = false;
  // The bounds every source has now, and how many reads it has.
  private readonly firstReturnTime: Float64Array;
  private readonly lastInvokeTime: Float64Array;
  private readonly readCount: Int32Array;

  constructor(
    private readonly valueIndex: BlockIndex,
    deletes: readonly Operation[],
    indeterminateDeletes: readonly Operation[],
    private readonly limits: SearchLimits,
    stepsSoFar: number,
  ) {
    this.steps = stepsSoFar;
    const initial: Bounds = { firstReturnTime: -Infinity, lastInvokeTime: -Infinity };
    this.sources = [
      {
        index: 0,
        operation: undefined,
        invokeTime: -Infinity,
        isIndeterminate: false,
        base: initial,
        widest: initial,
      },
    ];
    const deleteBlocks: Block[] = [];
    // The fixed order of sources (the canonical rule prefers earlier ones, and they are tried in
    // this order): the initial absence, the deletes from the most recently invoked (a read of null
    // most often saw the latest delete), then the indeterminate deletes from the earliest invoked
    // (the ones that took effect are the earliest, see above).
    for (const op of [...deletes].sort((a, b) => b.invokeTime - a.invokeTime || a.id - b.id)) {
      const block = blockOf([op], 'a delete');
      const source = this.addSource(op, false, block);
      this.deleteBlockBySource.set(source.index, block);
      deleteBlocks.push(block);
    }
    for (const op of [...indeterminateDeletes].sort((a, b) => a.invokeTime - b.invokeTime || a.id - b.id)) {
      this.addSource(op, true, { firstReturnTime: Infinity, lastInvokeTime: op.invokeTime });
    }
    this.deleteIndex = new BlockIndex(deleteBlocks);
    this.firstReturnTime = Float64Array.from(this.sources, (source) => source.base.firstReturnTime);
    this.lastInvokeTime = Float64Array.from(this.sources, (source) => source.base.lastInvokeTime);
    this.readCount = new Int32Array(this.sources.length);
  }

  private addSource(operation: Operation, isIndeterminate: boolean, base: Bounds): Source {
    const source = {
      index: this.sources.length,
      operation,
      invokeTime: operation.invokeTime,
      isIndeterminate,
      base,
      widest: base,
    };
    this.sources.push(source);
    return source;
  }

  decide(nullReads: readonly Operation[]): ReadsFromOutcome {
    // Candidates: sources invoked before the read returned whose block, with only this read added,
    // meets no value block and no other delete. Adding reads only widens a block, so a source
    // refused here stays refused.
    const candidates = new Map<Operation, Source[]>();
    for (const read of nullReads) {
      const list: Source[] = [];
      for (const source of this.sources) {
        this.steps += 1;
        if (source.invokeTime > read.returnTime) continue;
        const bounds = widen(source.base, read);
        if (this.valueIndex.conflicting(bounds) !== undefined) continue;
        if (this.deleteIndex.conflicting(bounds, this.deleteBlockBySource.get(source.index)) !== undefined)
          continue;
        list.push(source);
        source.widest = widen(source.widest, read);
      }
      if (list.length === 0) {
        return {
          result: 'not-linearizable',
          steps: this.steps,
          reason: `#${read.id} read null, but neither the initial absence nor any delete can come just before it`,
        };
      }
      candidates.set(read, list); // in the fixed order of sources
    }

    for (const part of this.independentParts(nullReads, candidates)) {
      const found = this.searchPart(part.sources, part.reads, candidates);
      if (this.exhausted) return { result: 'unknown', steps: this.steps };
      if (!found) {
        return {
          result: 'not-linearizable',
          steps: this.steps,
          reason:
            `the reads of null ${describeIds(part.reads)} cannot each follow the initial absence or a delete ` +
            `with no write in between`,
        };
      }
    }
    return { result: 'linearizable', steps: this.steps };
  }

  /**
   * Splits the reads of null and the sources into parts that cannot affect each other: two sources
   * are in one part when a read may read from both, or when their widest bounds conflict.
   */
  private independentParts(
    nullReads: readonly Operation[],
    candidates: ReadonlyMap<Operation, readonly Source[]>,
  ): { sources: Source[]; reads: Operation[] }[] {
    const parent = Int32Array.from(this.sources, (_, index) => index);
    const find = (index: number): number => {
      while (parent[index] !== index) {
        parent[index] = parent[parent[index]!]!;
        index = parent[index]!;
      }
      return index;
    };
    const union = (a: number, b: number): void => {
      parent[find(a)] = find(b);
    };
    for (const read of nullReads) {
      const list = candidates.get(read)!;
      for (const source of list) union(source.index, list[0]!.index);
    }
    for (let a = 0; a < this.sources.length; a += 1) {
      for (let b = a + 1; b < this.sources.length; b += 1) {
        this.steps += 1;
        if (isConflict(this.sources[a]!.widest, this.sources[b]!.widest)) union(a, b);
      }
    }
    const parts = new Map<number, { sources: Source[]; reads: Operation[] }>();
    const partOf = (index: number): { sources: Source[]; reads: Operation[] } => {
      const root = find(index);
      let part = parts.get(root);
      if (part === undefined) {
        part = { sources: [], reads: [] };
        parts.set(root, part);
      }
      return part;
    };
    for (const source of this.sources) partOf(source.index).sources.push(source);
    for (const read of nullReads) partOf(candidates.get(read)![0]!.index).reads.push(read);
    return [...parts.values()]
      .filter((part) => part.reads.length > 0)
      .map((part) => ({
        sources: part.sources,
        reads: part.reads.sort(
          (a, b) => a.invokeTime - b.invokeTime || a.returnTime - b.returnTime || a.id - b.id,
        ),
      }));
  }

  /**
   * Backtracking over the reads of one part, in invocation order.
   *
   * Only canonical assignments are searched. Moving a read to a source whose block already spans
   * it (`covers`: the block returns first no later than the read returns and is invoked last no
   * earlier than the read is) leaves that block as it was and can only narrow the one it left, so
   * whenever an assignment works, one works in which no read sits in a source while a source
   * earlier in the fixed order of sources covers it and may take it: move such reads until none is
   * left (each move narrows a block or lowers a read's source, so the moves end). A partial
   * assignment that already breaks this breaks it in every completion (blocks only widen), and is
   * dropped. In particular the reads of the initial absence are a prefix of the reads.
   *
   * (No memo of failed states: whether a state fails depends on which source each earlier read
   * sits in, through this rule, not only on the bounds, so a memo keyed by bounds would be wrong.)
   */
  private searchPart(
    sources: readonly Source[],
    reads: readonly Operation[],
    candidates: ReadonlyMap<Operation, readonly Source[]>,
  ): boolean {
    const indeterminate = sources.filter((source) => source.isIndeterminate);
    let indeterminateUsed = 0;
    const assigned: Source[] = [];
    const candidateSets = new Map<Operation, Set<Source>>(
      reads.map((read) => [read, new Set(candidates.get(read)!)]),
    );
    const assign = (depth: number): boolean => {
      if (depth === reads.length) return true;
      const read = reads[depth]!;
      const ordered = candidates.get(read)!;
      for (const source of ordered) {
        const index = source.index;
        const isNewIndeterminate = source.isIndeterminate && this.readCount[index] === 0;
        if (isNewIndeterminate && indeterminate[indeterminateUsed] !== source) continue;
        this.steps += 1;
        this.searchSteps += 1;
        if (this.searchSteps > this.limits.stepsMax) this.exhausted = true;
        if (this.searchSteps % deadlineCheckPeriodSteps === 0 && this.limits.isPastDeadline?.() === true) {
          this.exhausted = true;
        }
        if (this.exhausted) return false;
        // Not canonical: an earlier source already covers this read.
        if (ordered.some((other) => other.index < index && covers(this.boundsOf(other.index), read)))
          continue;
        const bounds = widen(this.boundsOf(index), read);
        // Not canonical: the widened block covers a read placed in a later source.
        let breaksCanonical = false;
        for (let earlier = 0; earlier < depth && !breaksCanonical; earlier += 1) {
          const other = reads[earlier]!;
          breaksCanonical =
            assigned[earlier]!.index > index &&
            covers(bounds, other) &&
            candidateSets.get(other)!.has(source);
        }
        if (breaksCanonical) continue;
        if (this.valueIndex.conflicting(bounds) !== undefined) continue;
        if (sources.some((other) => other !== source && isConflict(bounds, this.boundsOf(other.index))))
          continue;
        const saved = this.boundsOf(index);
        this.firstReturnTime[index] = bounds.firstReturnTime;
        this.lastInvokeTime[index] = bounds.lastInvokeTime;
        this.readCount[index]! += 1;
        if (isNewIndeterminate) indeterminateUsed += 1;
        assigned[depth] = source;
        if (assign(depth + 1)) return true;
        if (isNewIndeterminate) indeterminateUsed -= 1;
        this.readCount[index]! -= 1;
        this.firstReturnTime[index] = saved.firstReturnTime;
        this.lastInvokeTime[index] = saved.lastInvokeTime;
        if (this.exhausted) return false;
      }
      return false;
    };
    return assign(0);
  }

  private boundsOf(index: number): Bounds {
    return { firstReturnTime: this.firstReturnTime[index]!, lastInvokeTime: this.lastInvokeTime[index]! };
  }
}

/** Adding `op` to a block with these bounds would leave them as they are. */
function covers(bounds: Bounds, op: Operation): boolean {
  return bounds.firstReturnTime <= op.returnTime && bounds.lastInvokeTime >= op.invokeTime;
}

function widen(bounds: Bounds, op: Operation): Bounds {
  return {
    firstReturnTime: Math.min(bounds.firstReturnTime, op.returnTime),
    lastInvokeTime: Math.max(bounds.lastInvokeTime, op.invokeTime),
  };
}

function describeIds(operations: readonly Operation[]): string {
  const ids = operations.slice(0, 8).map((op) => `#${op.id}`);
  return operations.length > 8 ? `${ids.join(', ')}, ...` : ids.join(', ');
}
