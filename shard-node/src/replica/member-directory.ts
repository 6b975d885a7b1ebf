import type { NodeId } from '../raft/index.js';
import type { MemberRecords } from '../state-machine/index.js';

/** One member of the group, as the replica knows it. */
export interface MemberSpec {
  readonly raftId: NodeId;
  readonly replicaId: string;
  /** Base URL of the member's client API (for leader hints). */
  readonly url: string;
  readonly peerHost: string;
  readonly peerPort: number;
}

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

/** What the directory needs of the transport: a link per member, kept at its address. */
export interface PeerLinks {
  hasPeer(raftId: NodeId): boolean;
  addPeer(raftId: NodeId, address: PeerAddress): void;
  updatePeer(raftId: NodeId, address: PeerAddress): void;
  removePeer(raftId: NodeId): void;
}

/**
 * The most Raft ids a directory remembers as removed. An id removed longer ago (this many removals
 * later) is forgotten: its messages are then treated as an unknown sender's (still never a vote).
 */
export const removedMembersMax = 1024;

/**
 * The most senders a replica answers at once without knowing them as members (`reachProvisionally`).
 * Only a leader of a term this replica has not seen the membership of is one, and only until the
 * replica applies the change or snapshot that names it: a few at most.
 */
export const provisionalPeersMax = 8;

/**
 * The group's members and their addresses. Membership itself is the Raft configuration's; the
 * directory only says where each member is, and it follows the configuration: a member added by a
 * committed change is reached at the addresses its entry carries, a removed one is forgotten (its
 * messages are then refused) and remembered as removed, and a snapshot's directory replaces the
 * whole one. The state machine stores the directory with each change (members and removed ids, two
 * records), so every replica, and every snapshot, knows every peer and every removed id.
 *
 * A replica cut off while its group changed may hear from a leader its directory does not name yet.
 * It answers that leader at the address the sender's connection proved (`reachProvisionally`),
 * never in place of a member's address, until the directory learns the member (then the replicated
 * address wins) or its removal (docs/decisions/0014-answer-unknown-leaders.md).
 */
export class MemberDirectory {
  private readonly members = new Map<NodeId, MemberSpec>();
  /** Removed Raft ids, oldest first (a Set keeps insertion order), at most `removedMembersMax`. */
  private readonly removed = new Set<NodeId>();
  /** Senders answered without being members, at the address their connection proved. */
  private readonly provisional = new Map<NodeId, PeerAddress>();
  private links: PeerLinks | undefined;

  constructor(
    private readonly selfId: NodeId,
    initial: readonly MemberSpec[],
    removed: readonly NodeId[] = [],
  ) {
    for (const member of initial) this.members.set(member.raftId, member);
    for (const raftId of removed) if (!this.members.has(raftId)) this.remember(raftId);
  }

  /** From now on, the transport follows the directory (it starts with `peerAddresses()`). */
  attach(links: PeerLinks): void {
    this.links = links;
  }

  get(raftId: NodeId): MemberSpec | undefined {
    return this.members.get(raftId);
  }

  has(raftId: NodeId): boolean {
    return this.members.has(raftId);
  }

  /** Whether `raftId` was removed from the group (as far as this replica applied, or a snapshot said). */
  isRemoved(raftId: NodeId): boolean {
    return this.removed.has(raftId);
  }

  values(): MemberSpec[] {
    return [...this.members.values()];
  }

  byReplicaId(replicaId: string): MemberSpec | undefined {
    return this.values().find((member) => member.replicaId === replicaId);
  }

  /** Every other member's peer address, by Raft id. */
  peerAddresses(): Map<NodeId, PeerAddress> {
    return new Map(
      this.values()
        .filter((member) => member.raftId !== this.selfId)
        .map((member) => [member.raftId, { host: member.peerHost, port: member.peerPort }]),
    );
  }

  /** Records a member's addresses, and has the transport reach it at them. */
  reach(member: MemberSpec): void {
    const previous = this.members.get(member.raftId);
    const provisional = this.provisional.get(member.raftId);
    this.provisional.delete(member.raftId);
    // Membership is the configuration's: an id it names again is a member, whatever was said before.
    this.removed.delete(member.raftId);
    this.members.set(member.raftId, member);
    const links = this.links;
    if (member.raftId === this.selfId || links === undefined) return;
    const address = { host: member.peerHost, port: member.peerPort };
    const linked =
      previous === undefined ? provisional : { host: previous.peerHost, port: previous.peerPort };
    // The replicated address replaces whatever a provisional link used.
    if (!links.hasPeer(member.raftId)) links.addPeer(member.raftId, address);
    else if (linked?.host !== address.host || linked.port !== address.port)
      links.updatePeer(member.raftId, address);
  }

  /**
   * Forgets a member that left (a committed removal): its messages are refused from now on
   * (`isRemoved`), and the transport stops reaching it, nor a sender answered provisionally as it.
   */
  forget(raftId: NodeId): void {
    this.drop(raftId);
    this.remember(raftId);
  }

  /**
   * Answers `raftId`, a sender this directory does not know (a leader added while this replica was
   * cut off), at `address`, the sender's address as its authenticated connection proved it. Never
   * for a member (its replicated address stays), a removed id or this replica; a newer proven
   * address replaces an older one. Returns whether the sender can be answered (false for a member,
   * a removed id, or when `provisionalPeersMax` other senders are answered already).
   */
  reachProvisionally(raftId: NodeId, address: PeerAddress): boolean {
    if (raftId === this.selfId || this.members.has(raftId) || this.removed.has(raftId)) return false;
    const links = this.links;
    const previous = this.provisional.get(raftId);
    if (previous === undefined) {
      if (this.provisional.size >= provisionalPeersMax) return false;
      this.provisional.set(raftId, address);
      if (links !== undefined && !links.hasPeer(raftId)) links.addPeer(raftId, address);
      return true;
    }
    if (previous.host !== address.host || previous.port !== address.port) {
      this.provisional.set(raftId, address);
      links?.updatePeer(raftId, address);
    }
    return true;
  }

  /** The senders answered provisionally, by Raft id (for tests and diagnostics). */
  provisionalPeers(): Map<NodeId, PeerAddress> {
    return new Map(this.provisional);
  }

  /**
   * Takes a snapshot's directory in place of this one: the membership changes it covers never pass
   * through this replica's log. Without it, a replica that caught up by snapshot kept refusing the
   * members added meanwhile (`unknownPeer`), both ways, and its group lost its quorum as soon as
   * the one member it still reached stopped. The snapshot's removed ids are remembered too. An id
   * only this directory names is dropped but not taken for removed: a joiner's first directory is
   * the operator's list, which may name a replica not added yet. A provisional sender the snapshot
   * does not name is dropped too: if it leads, its next message brings it back.
   */
  adopt(directory: readonly MemberSpec[], removed: readonly NodeId[] = []): void {
    const kept = new Set(directory.map((member) => member.raftId));
    for (const raftId of removed) if (!kept.has(raftId)) this.forget(raftId);
    for (const raftId of [...this.members.keys(), ...this.provisional.keys()])
      if (!kept.has(raftId)) this.drop(raftId);
    for (const member of directory) this.reach(member);
  }

  /**
   * The directory as the state machine stores it: the members (a plain list, as every version
   * reads it) and the removed ids (a record of their own, see `removedMembersKey`).
   */
  records(): MemberRecords {
    return {
      members: Buffer.from(JSON.stringify(this.values())),
      removed: Buffer.from(JSON.stringify([...this.removed])),
    };
  }

  /** Stops reaching `raftId`, a member or a provisional sender, without taking it for removed. */
  private drop(raftId: NodeId): void {
    const linked = this.members.has(raftId) || this.provisional.has(raftId);
    this.members.delete(raftId);
    this.provisional.delete(raftId);
    if (raftId !== this.selfId && linked) this.links?.removePeer(raftId);
  }

  /** Remembers `raftId` as removed, forgetting the oldest beyond `removedMembersMax`. */
  private remember(raftId: NodeId): void {
    this.removed.delete(raftId);
    this.removed.add(raftId);
    if (this.removed.size <= removedMembersMax) return;
    const oldest = this.removed.values().next().value as NodeId;
    this.removed.delete(oldest);
  }
}

/** The member directory the state machine keeps (written with each membership change). */
export function decodeMembersRecord(record: Buffer): MemberSpec[] {
  return JSON.parse(record.toString('utf8')) as MemberSpec[];
}

/**
 * The removed ids the state machine keeps, written with each membership change since this record
 * exists (decision 0014; absent in a state written before it, which knows none). Ids that are not
 * positive safe integers are skipped.
 */
export function decodeRemovedRecord(record: Buffer | undefined): NodeId[] {
  if (record === undefined) return [];
  const value = JSON.parse(record.toString('utf8')) as unknown;
  if (!Array.isArray(value)) return [];
  return value.filter((id): id is NodeId => Number.isSafeInteger(id) && (id as number) > 0);
}

export function isMemberSpec(value: unknown): value is MemberSpec {
  const candidate = value as Partial<MemberSpec> | undefined;
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.raftId === 'number' &&
    typeof candidate.replicaId === 'string' &&
    typeof candidate.url === 'string' &&
    typeof candidate.peerHost === 'string' &&
    typeof candidate.peerPort === 'number'
  );
}
