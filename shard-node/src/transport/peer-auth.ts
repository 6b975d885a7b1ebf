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

/** The proof that the side in `role` holds `secret`, for this connection and these nonces. */
export function proofOf(
  secret: Uint8Array,
  role: 'dialler' | 'acceptor',
  identity: ConnectionIdentity,
  diallerNonce: Uint8Array,
  acceptorNonce: Uint8Array,
): Buffer {
  const hmac = createHmac('sha256', secret);
  // JSON keeps the fields apart whatever bytes the ids hold; the nonces have a fixed length.
  hmac.update(
    JSON.stringify([
      'impulse-peer-auth-1',
      role,
      identity.clusterId,
      identity.groupId,
      identity.purpose,
      identity.diallerId,
      identity.acceptorId,
    ]),
  );
  hmac.update(diallerNonce);
  hmac.update(acceptorNonce);
  return hmac.digest();
}

/** Whether `received` is `expected`, in constant time. */
export function proofMatches(expected: Uint8Array, received: Uint8Array): boolean {
  return received.byteLength === expected.byteLength && timingSafeEqual(expected, received);
}
