/**
 * The node transport's handshake (`NodeTransport`): the hello names the cluster and the two nodes
 * by their advertised peer addresses (`node-hello.ts`); the proofs are bound to them
 * (`nodeProofOf`). Any node of the cluster that holds the secret may dial: which groups a node
 * hosts changes at run time, so the check that a message is for a replica hosted here is made per
 * message, when it is dispatched (`node-transport.ts`).
 */
import type { BufferWriter } from './buffer-writer.js';
import { PeerFrameMalformedError } from './errors.js';
import type { Frame } from './frame.js';
import type { AcceptorHandshake, DiallerHandshake } from './handshake.js';
import type { ConnectionPurpose } from './hello.js';
import { decodeNodeHello, encodeNodeHelloFrame, nodeProtocolVersion, refuseNodeHello } from './node-hello.js';
import { newNonce, nodeProofOf, proofMatches, type NodeConnectionIdentity } from './peer-auth.js';

/** Who a node transport is. */
export interface NodeIdentity {
  readonly clusterId: string;
  /** The node's advertised peer address, `host:port`: what its peers' member directories list. */
  readonly address: string;
  /** The cluster secret (empty: none) that proofs are keyed by. */
  readonly secret: Uint8Array;
}

const noProof = new Uint8Array(0);

/** The dialler's side of a connection from `self` to the node at `peerAddress`. */
export function nodeDiallerHandshake(
  self: NodeIdentity,
  peerAddress: string,
  purpose: ConnectionPurpose,
): DiallerHandshake {
  const identity: NodeConnectionIdentity = {
    clusterId: self.clusterId,
    purpose,
    diallerAddress: self.address,
    acceptorAddress: peerAddress,
  };
  return {
    purpose,
    helloKind: 'nodeHello',
    writeHello(writer: BufferWriter, nonce: Uint8Array): void {
      encodeNodeHelloFrame(writer, {
        protocolVersion: nodeProtocolVersion,
        purpose,
        clusterId: self.clusterId,
        senderAddress: self.address,
        receiverAddress: peerAddress,
        nonce,
        proof: noProof,
      });
    },
    checkAnswer(frame: Frame, nonce: Uint8Array) {
      if (frame.kind !== 'nodeHello') {
        throw new PeerFrameMalformedError('kind', `${frame.kind} frame instead of the node hello answer`);
      }
      const hello = decodeNodeHello(frame.payload);
      const refusal =
        refuseNodeHello(hello, {
          clusterId: self.clusterId,
          selfAddress: self.address,
          expectedSenderAddress: peerAddress,
        }) ??
        (hello.purpose !== purpose ? 'purpose' : undefined) ??
        (proofMatches(nodeProofOf(self.secret, 'acceptor', identity, nonce, hello.nonce), hello.proof)
          ? undefined
          : 'authentication');
      if (refusal !== undefined) return { refusal, hello };
      return { accepted: { proof: nodeProofOf(self.secret, 'dialler', identity, nonce, hello.nonce) } };
    },
  };
}

/** The acceptor's side: any node of the cluster may dial `self` at its advertised address. */
export function nodeAcceptorHandshake(self: NodeIdentity): AcceptorHandshake {
  return {
    answer(frame: Frame, writer: BufferWriter) {
      if (frame.kind !== 'nodeHello') {
        throw new PeerFrameMalformedError('kind', `${frame.kind} frame before the node hello`);
      }
      const hello = decodeNodeHello(frame.payload);
      const refusal = refuseNodeHello(hello, { clusterId: self.clusterId, selfAddress: self.address });
      if (refusal !== undefined) return { refusal, hello };
      const identity: NodeConnectionIdentity = {
        clusterId: self.clusterId,
        purpose: hello.purpose,
        diallerAddress: hello.senderAddress,
        acceptorAddress: self.address,
      };
      const nonce = newNonce();
      encodeNodeHelloFrame(writer, {
        protocolVersion: nodeProtocolVersion,
        purpose: hello.purpose,
        clusterId: self.clusterId,
        senderAddress: self.address,
        receiverAddress: hello.senderAddress,
        nonce,
        proof: nodeProofOf(self.secret, 'acceptor', identity, hello.nonce, nonce),
      });
      return {
        accepted: {
          purpose: hello.purpose,
          peerLabel: hello.senderAddress,
          awaitedProof: nodeProofOf(self.secret, 'dialler', identity, hello.nonce, nonce),
        },
      };
    },
  };
}
