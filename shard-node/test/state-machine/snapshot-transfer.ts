import { expect } from 'vitest';
import type { ReplicaStateMachine } from '../../src/state-machine/index.js';

/**
 * Streams a snapshot of `from` into a new generation of `to` and installs it, as a follower's
 * replica does, and checks that the installed state carries the streamed snapshot's metadata.
 */
export async function transferSnapshot(from: ReplicaStateMachine, to: ReplicaStateMachine): Promise<void> {
  const snapshot = await from.openSnapshot();
  const install = await to.beginInstall();
  try {
    for await (const chunk of snapshot.chunks()) await install.write(chunk);
  } finally {
    await snapshot.close();
  }
  const metadata = await to.install(install);
  expect(metadata).toEqual(snapshot.metadata);
}
