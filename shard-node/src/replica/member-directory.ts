import type { NodeId } from '../raft/index.js';

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
 * The group's members and their addresses. Membership itself is the Raft configuration's; the
 * directory only says where each member is, and it follows the configuration: a member added by a
 * committed change is reached at the addresses its entry carries, a removed one is forgotten (its
 * messages are then refused), and a snapshot's directory replaces the whole one. The state machine
 * stores the directory with each change, so every replica, and every snapshot, knows every peer.
 */
export class MemberDirectory {
  private readonly members = new Map<NodeId, MemberSpec>();
  private links: PeerLinks | undefined;

  constructor(
    private readonly selfId: NodeId,
    initial: readonly MemberSpec[],
  ) {
    for (const member of initial) this.members.set(member.raftId, member);
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
    this.members.set(member.raftId, member);
    const links = this.links;
    if (member.raftId === this.selfId || links === undefined) return;
    const address = { host: member.peerHost, port: member.peerPort };
    if (!links.hasPeer(member.raftId)) links.addPeer(member.raftId, address);
    else if (previous?.peerHost !== member.peerHost || previous.peerPort !== member.peerPort)
      links.updatePeer(member.raftId, address);
  }

  /** Forgets a member that left: its messages are refused and the transport stops reaching it. */
  forget(raftId: NodeId): void {
    this.members.delete(raftId);
    if (raftId !== this.selfId) this.links?.removePeer(raftId);
  }

  /**
   * Takes a snapshot's directory in place of this one: the membership changes it covers never pass
   * through this replica's log. Without it, a replica that caught up by snapshot kept refusing the
   * members added meanwhile (`unknownPeer`), both ways, and its group lost its quorum as soon as
   * the one member it still reached stopped.
   */
  adopt(directory: readonly MemberSpec[]): void {
    const kept = new Set(directory.map((member) => member.raftId));
    for (const raftId of [...this.members.keys()]) if (!kept.has(raftId)) this.forget(raftId);
    for (const member of directory) this.reach(member);
  }

  /** The directory as the state machine stores it. */
  encode(): Buffer {
    return Buffer.from(JSON.stringify(this.values()));
  }
}

/** The member directory the state machine keeps (written with each membership change). */
export function decodeMembersRecord(record: Buffer): MemberSpec[] {
  return JSON.parse(record.toString('utf8')) as MemberSpec[];
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
