/**
 * The replica transport's handshake (`PeerTransport`): the hello names the cluster, the group, the
 * dialler's and the acceptor's Raft ids (`hello.ts`); the proofs are bound to all of them
 * (`peer-auth.ts`). Neither side ever exchanges Raft messages with a process of another group, or
 * with another replica that happens to listen on a reused port.
 */
import type { NodeId } from '../raft/index.js';
import type { BufferWriter } from './buffer-writer.js';
import { PeerFrameMalformedError } from './errors.js';
import type { Frame } from './frame.js';
import type { AcceptorHandshake, DiallerHandshake } from './handshake.js';
import {
  decodeHello,
  encodeHelloFrame,
  protocolVersion,
  refuseHello,
  type ConnectionPurpose,
} from './hello.js';
import { newNonce, proofMatches, proofOf, type ConnectionIdentity } from './peer-auth.js';

/** Who a replica transport is. */
export interface ReplicaIdentity {
  readonly clusterId: string;
  readonly groupId: string;
  readonly selfId: NodeId;
  /** The cluster secret (empty: none) that proofs are keyed by. */
  readonly secret: Uint8Array;
}

const noProof = new Uint8Array(0);

/** The dialler's side of a connection from `self` to the replica `peerId`. */
export function replicaDiallerHandshake(
  self: ReplicaIdentity,
  peerId: NodeId,
  purpose: ConnectionPurpose,
): DiallerHandshake {
  const identity: ConnectionIdentity = {
    clusterId: self.clusterId,
    groupId: self.groupId,
    purpose,
    diallerId: self.selfId,
    acceptorId: peerId,
  };
  return {
    purpose,
    helloKind: 'hello',
    writeHello(writer: BufferWriter, nonce: Uint8Array): void {
      encodeHelloFrame(writer, {
        protocolVersion,
        purpose,
        clusterId: self.clusterId,
        groupId: self.groupId,
        senderId: self.selfId,
        receiverId: peerId,
        nonce,
        proof: noProof,
      });
    },
    checkAnswer(frame: Frame, nonce: Uint8Array) {
      if (frame.kind !== 'hello') {
        throw new PeerFrameMalformedError('kind', `${frame.kind} frame instead of the hello answer`);
      }
      const hello = decodeHello(frame.payload);
      const refusal =
        refuseHello(hello, {
          clusterId: self.clusterId,
          groupId: self.groupId,
          selfId: self.selfId,
          expectedSenderId: peerId,
          isKnownPeer: (id) => id === peerId,
        }) ??
        (hello.purpose !== purpose ? 'purpose' : undefined) ??
        (proofMatches(proofOf(self.secret, 'acceptor', identity, nonce, hello.nonce), hello.proof)
          ? undefined
          : 'authentication');
      if (refusal !== undefined) return { refusal, hello };
      return { accepted: { proof: proofOf(self.secret, 'dialler', identity, nonce, hello.nonce) } };
    },
  };
}

/** The acceptor's side: any known peer of the group may dial `self`. */
export function replicaAcceptorHandshake(
  self: ReplicaIdentity,
  isKnownPeer: (id: NodeId) => boolean,
): AcceptorHandshake {
  return {
    answer(frame: Frame, writer: BufferWriter) {
      if (frame.kind !== 'hello') {
        throw new PeerFrameMalformedError('kind', `${frame.kind} frame before the hello`);
      }
      const hello = decodeHello(frame.payload);
      const refusal = refuseHello(hello, {
        clusterId: self.clusterId,
        groupId: self.groupId,
        selfId: self.selfId,
        isKnownPeer,
      });
      if (refusal !== undefined) return { refusal, hello };
      const identity: ConnectionIdentity = {
        clusterId: self.clusterId,
        groupId: self.groupId,
        purpose: hello.purpose,
        diallerId: hello.senderId,
        acceptorId: self.selfId,
      };
      const nonce = newNonce();
      encodeHelloFrame(writer, {
        protocolVersion,
        purpose: hello.purpose,
        clusterId: self.clusterId,
        groupId: self.groupId,
        senderId: self.selfId,
        receiverId: hello.senderId,
        nonce,
        proof: proofOf(self.secret, 'acceptor', identity, hello.nonce, nonce),
      });
      return {
        accepted: {
          purpose: hello.purpose,
          peerLabel: String(hello.senderId),
          peerId: hello.senderId,
          awaitedProof: proofOf(self.secret, 'dialler', identity, hello.nonce, nonce),
        },
      };
    },
  };
}
