/**
 * The handshake as the connection code sees it: what a dialler says first and checks in the
 * answer, and what an acceptor checks and answers. The exchange is the same for both protocols:
 *
 *   dialler → acceptor   hello (the dialler's identity and a fresh nonce)
 *   acceptor → dialler   hello (its own identity, its nonce and its proof) or a closed connection
 *   dialler → acceptor   auth (the dialler's proof), before anything else
 *
 * Two protocols fill in the identities: a replica's (`replica-handshake.ts`: cluster, group and
 * Raft ids, spoken by `PeerTransport`) and a node's (`node-handshake.ts`: cluster and node
 * addresses, spoken by `NodeTransport`). Both prove the cluster secret the same way (`peer-auth.ts`).
 */
import type { NodeId } from '../raft/index.js';
import type { BufferWriter } from './buffer-writer.js';
import type { Frame } from './frame.js';
import type { ConnectionPurpose } from './hello.js';

/** A handshake step's outcome: accepted, or refused with a reason (a metric label) and what was said. */
export type HandshakeVerdict<Accepted> =
  | { readonly accepted: Accepted; readonly refusal?: undefined }
  | { readonly refusal: string; readonly hello: unknown };

export interface DiallerHandshake {
  readonly purpose: ConnectionPurpose;
  /** The kind of the hello frames of this protocol. */
  readonly helloKind: 'hello' | 'nodeHello';
  /** Writes the dialler's hello frame, carrying `nonce`, into `writer`. */
  writeHello(writer: BufferWriter, nonce: Uint8Array): void;
  /**
   * Checks the acceptor's answer (identity, purpose and proof); when accepted, returns the proof
   * the dialler sends in its `auth` frame. Throws `PeerFrameMalformedError` for bytes that do not
   * decode or a frame of another kind.
   */
  checkAnswer(frame: Frame, nonce: Uint8Array): HandshakeVerdict<{ readonly proof: Uint8Array }>;
}

/** A dialler the acceptor took: what it is called, and what its `auth` frame must carry. */
export interface AcceptedHello {
  readonly purpose: ConnectionPurpose;
  /** The dialler as metrics and logs name it: a Raft id, or a node's `host:port`. */
  readonly peerLabel: string;
  /** The dialler's Raft id, on a replica connection. */
  readonly peerId?: NodeId;
  readonly awaitedProof: Uint8Array;
}

export interface AcceptorHandshake {
  /**
   * Checks a dialler's hello; when accepted, writes the answer (a hello frame) into `writer`.
   * Throws `PeerFrameMalformedError` for bytes that do not decode or a frame of another kind.
   */
  answer(frame: Frame, writer: BufferWriter): HandshakeVerdict<AcceptedHello>;
}
