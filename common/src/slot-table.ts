import HashRing from 'hashring';
import { assertSlot, slotCount, slotForKey } from './slot.js';

/**
 * The slot table: slot → shard group, computed with consistent hashing (`hashring`, ketama-style,
 * with virtual nodes) over the group ids, and versioned by an epoch.
 *
 * Each slot `s` is placed on the ring at the point of the string `slot:<s>`; its owner is the group
 * whose virtual node follows that point. Because of this, adding group N+1 moves only the slots
 * that the new group's virtual nodes capture (about 1/(N+1) of them), and never moves a slot
 * between two groups that were already there.
 */

export const virtualNodesPerGroupDefault = 160;

export interface SlotTableOptions {
  /** Virtual nodes per group on the ring (ketama places 4 points per virtual node). */
  readonly virtualNodesPerGroup?: number;
}

export class SlotTable {
  readonly epoch: number;
  /** Group ids in ascending order. */
  readonly groupIds: readonly string[];
  /** `owners[slot]` is the index in `groupIds` of the slot's owner. */
  private readonly owners: Uint16Array;

  private constructor(epoch: number, groupIds: readonly string[], owners: Uint16Array) {
    this.epoch = epoch;
    this.groupIds = groupIds;
    this.owners = owners;
  }

  static fromGroups(groupIds: readonly string[], epoch: number, options: SlotTableOptions = {}): SlotTable {
    if (groupIds.length === 0) throw new Error('a slot table needs at least one group');
    if (new Set(groupIds).size !== groupIds.length) throw new Error('group ids must be unique');
    if (!Number.isSafeInteger(epoch) || epoch < 0) throw new Error(`invalid epoch: ${epoch}`);
    const virtualNodes = options.virtualNodesPerGroup ?? virtualNodesPerGroupDefault;
    const sorted = [...groupIds].sort();
    const servers: Record<string, { vnodes: number }> = {};
    for (const id of sorted) servers[id] = { vnodes: virtualNodes };
    // The LRU cache of hashring would only hold lookups we never repeat: keep it tiny.
    const ring = new HashRing(servers, 'md5', { 'max cache size': 1 });
    const indexOf = new Map(sorted.map((id, index) => [id, index]));
    const owners = new Uint16Array(slotCount);
    for (let slot = 0; slot < slotCount; slot++) {
      const owner = indexOf.get(ring.get(`slot:${slot}`));
      if (owner === undefined) throw new Error(`hashring returned an unknown group for slot ${slot}`);
      owners[slot] = owner;
    }
    return new SlotTable(epoch, Object.freeze(sorted), owners);
  }

  groupForSlot(slot: number): string {
    assertSlot(slot);
    const id = this.groupIds[this.owners[slot] ?? -1];
    if (id === undefined) throw new Error(`slot ${slot} has no owner`);
    return id;
  }

  groupForKey(key: string | Uint8Array): string {
    return this.groupForSlot(slotForKey(key));
  }

  /** Number of slots each group owns. */
  slotCountsByGroup(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const id of this.groupIds) counts[id] = 0;
    for (const owner of this.owners) {
      const id = this.groupIds[owner];
      if (id !== undefined) counts[id] = (counts[id] ?? 0) + 1;
    }
    return counts;
  }

  /** Slots whose owner differs between this table and `next`, with both owners. */
  movedSlots(next: SlotTable): { slot: number; from: string; to: string }[] {
    const moved: { slot: number; from: string; to: string }[] = [];
    for (let slot = 0; slot < slotCount; slot++) {
      const from = this.groupForSlot(slot);
      const to = next.groupForSlot(slot);
      if (from !== to) moved.push({ slot, from, to });
    }
    return moved;
  }
}
