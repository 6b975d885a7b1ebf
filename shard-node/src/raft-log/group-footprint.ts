/**
 * What the node log knows of one group's records on disk, as of the records written so far: the
 * group's state there (what the next segment's checkpoint records for it), its bytes, and which
 * segments it pins.
 *
 * A group pins a segment while the segment holds an entry of the group above the group's
 * compacted index (its base). The rule is the one a replica log deletes its own segments by, per
 * group, and it is what makes replay from any later segment exact: every entry in a deleted
 * segment is at or below the base the group reaches by the end of the replay, so the gap replay
 * finds before the group's first surviving entry is covered by a later compaction or snapshot
 * record, or by a checkpoint (see `replay.ts`). Entries replaced by a later write (a conflicting
 * suffix) still pin their segment until the group compacts past them: a replay that started after
 * the replacing write but before them would otherwise miss entries it needs.
 */
import type { Checkpoint } from './state-codec.js';

interface Pin {
  readonly sequence: number;
  /** The highest index of the group's entries written to the segment. */
  maxEntryIndex: number;
}

export class GroupFootprint {
  /** The group's state after its records written so far. */
  written: Checkpoint;
  /** The bytes of the group's records in the segments that remain (checkpoints aside). */
  bytes = 0;
  /** The segments holding entries above the base, oldest first. */
  private pins: Pin[] = [];

  constructor(
    readonly groupId: string,
    written: Checkpoint,
  ) {
    this.written = written;
  }

  /** Entries up to `maxEntryIndex` were written to segment `sequence`, the newest. */
  wroteEntries(sequence: number, maxEntryIndex: number): void {
    const last = this.pins[this.pins.length - 1];
    if (last?.sequence === sequence) {
      last.maxEntryIndex = Math.max(last.maxEntryIndex, maxEntryIndex);
    } else if (maxEntryIndex > this.written.baseIndex) {
      this.pins.push({ sequence, maxEntryIndex });
    }
  }

  /** The group's state after its latest written record. The base only grows, so released pins stay released. */
  wroteState(state: Checkpoint): void {
    const baseChanged = state.baseIndex !== this.written.baseIndex;
    this.written = state;
    if (baseChanged) {
      this.pins = this.pins.filter((pin) => pin.maxEntryIndex > state.baseIndex);
    }
  }

  /** The oldest segment the group pins, or undefined. */
  oldestSequence(): number | undefined {
    return this.pins[0]?.sequence;
  }

  /**
   * The index the group must compact through to release every segment before `sequence`, or
   * undefined when it pins none of them. The highest of their entries, not the last one's: a
   * later segment may hold a replacing suffix that ends lower.
   */
  pinIndexBefore(sequence: number): number | undefined {
    let index: number | undefined;
    for (const pin of this.pins) {
      if (pin.sequence >= sequence) break;
      index = Math.max(index ?? 0, pin.maxEntryIndex);
    }
    return index;
  }

  /** The group's first live index, as of its written records. */
  firstIndex(): number {
    return this.written.baseIndex + 1;
  }
}
