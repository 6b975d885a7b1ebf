import {
  slotForKey,
  slotTableOf,
  type ClusterConfig,
  type GroupSpec,
  type ReplicaSpec,
  type SlotTable,
} from '@impulse/common';

export interface Route {
  readonly slot: number;
  readonly group: GroupSpec;
  readonly replica: ReplicaSpec;
}

/**
 * Key → slot → group → replica, from the cached cluster map. Each group has one replica in this
 * version; with replication the router picks the cached leader of the group.
 */
export class ClusterRouter {
  readonly slotTable: SlotTable;
  private readonly groupsById: ReadonlyMap<string, GroupSpec>;

  constructor(readonly cluster: ClusterConfig) {
    this.slotTable = slotTableOf(cluster);
    this.groupsById = new Map(cluster.groups.map((group) => [group.id, group]));
  }

  route(key: string): Route {
    const slot = slotForKey(key);
    const group = this.groupsById.get(this.slotTable.groupForSlot(slot));
    const replica = group?.replicas[0];
    if (group === undefined || replica === undefined)
      throw new Error(`slot ${slot} maps to an unknown group`);
    return { slot, group, replica };
  }
}
