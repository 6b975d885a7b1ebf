/**
 * Peer authentication: a mutual challenge–response over the cluster secret, inside the handshake.
 *
 * The dialler's hello carries a fresh random nonce. The acceptor answers with its own hello,
 * carrying its nonce and a proof: HMAC-SHA256, keyed by the secret, over the role ("acceptor"),
 * the connection's identity (cluster, group, purpose, dialler id, acceptor id) and both nonces.
 * The dialler checks it, then sends an `auth` frame with its own proof (role "dialler"). The
 * acceptor takes no other frame before a valid one. So each side proves that it holds the secret
 * to a peer that chose a fresh nonce (no replay), for this very connection (no reuse on another
 * group or replica), and in its own role (a proof cannot be reflected back to its author).
 *
 * A transport with no secret computes its proofs with an empty key: peers without a secret
 * understand each other, a peer with a secret refuses them, and nothing is authenticated (the
 * shard node warns about it at start).
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

import type { NodeId } from '../raft/index.js';
import type { ConnectionPurpose } from './hello.js';

/** The bytes of a handshake nonce. */
export const nonceBytes = 32;
/** The bytes of a proof (an HMAC-SHA256). */
export const proofBytes = 32;

/** What a proof is bound to: one connection between two replicas of one group. */
export interface ConnectionIdentity {
  readonly clusterId: string;
  readonly groupId: string;
  readonly purpose: ConnectionPurpose;
  readonly diallerId: NodeId;
  readonly acceptorId: NodeId;
}

export function newNonce(): Buffer {
  return randomBytes(nonceBytes);
}

/** What a node connection's proof is bound to: one connection between two nodes of one cluster. */
export interface NodeConnectionIdentity {
  readonly clusterId: string;
  readonly purpose: ConnectionPurpose;
  /** The dialler's advertised peer address (`host:port`). */
  readonly diallerAddress: string;
  /** The address the dialler dialled, which is the acceptor's advertised one (`host:port`). */
  readonly acceptorAddress: string;
}

/** The proof that the side in `role` holds `secret`, for this replica connection and these nonces. */
export function proofOf(
  secret: Uint8Array,
  role: 'dialler' | 'acceptor',
  identity: ConnectionIdentity,
  diallerNonce: Uint8Array,
  acceptorNonce: Uint8Array,
): Buffer {
  return hmacProof(
    secret,
    [
      'impulse-peer-auth-1',
      role,
      identity.clusterId,
      identity.groupId,
      identity.purpose,
      identity.diallerId,
      identity.acceptorId,
    ],
    diallerNonce,
    acceptorNonce,
  );
}

/**
 * The proof that the side in `role` holds `secret`, for this node connection and these nonces.
 * Its label differs from a replica connection's, so that no proof made for one protocol is ever
 * taken by the other.
 */
export function nodeProofOf(
  secret: Uint8Array,
  role: 'dialler' | 'acceptor',
  identity: NodeConnectionIdentity,
  diallerNonce: Uint8Array,
  acceptorNonce: Uint8Array,
): Buffer {
  return hmacProof(
    secret,
    [
      'impulse-node-auth-1',
      role,
      identity.clusterId,
      identity.purpose,
      identity.diallerAddress,
      identity.acceptorAddress,
    ],
    diallerNonce,
    acceptorNonce,
  );
}

function hmacProof(
  secret: Uint8Array,
  binding: ReadonlyArray<string | number>,
  diallerNonce: Uint8Array,
  acceptorNonce: Uint8Array,
): Buffer {
  const hmac = createHmac('sha256', secret);
  // JSON keeps the fields apart whatever bytes the ids hold; the nonces have a fixed length.
  hmac.update(JSON.stringify(binding));
  hmac.update(diallerNonce);
  hmac.update(acceptorNonce);
  return hmac.digest();
}

/** Whether `received` is `expected`, in constant time. */
export function proofMatches(expected: Uint8Array, received: Uint8Array): boolean {
  return received.byteLength === expected.byteLength && timingSafeEqual(expected, received);
}
