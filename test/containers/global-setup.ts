import { dockerClient, imageUnderTest, sweepLeftovers } from './docker.js';

/**
 * Runs once before the container suite: fails the whole run (never skips) when Docker or the
 * image is missing, and removes what an earlier, interrupted run left behind.
 */
export async function setup(): Promise<void> {
  process.env['TESTCONTAINERS_RYUK_DISABLED'] ??= 'true';
  const client = await dockerClient();
  try {
    await client.container.dockerode.getImage(imageUnderTest).inspect();
  } catch (error) {
    throw new Error(
      `The image ${imageUnderTest} is missing. 'npm run test:containers' builds it; or run ` +
        'deploy/docker/build-image.sh (see docs/deploy.md).',
      { cause: error },
    );
  }
  const removed = await sweepLeftovers(client);
  if (removed > 0) console.warn(`containers: removed ${removed} leftovers of an earlier run`);
}

export async function teardown(): Promise<void> {
  const removed = await sweepLeftovers(await dockerClient());
  // Each test removes its own containers; anything found here means a cleanup path failed.
  if (removed > 0) console.warn(`containers: swept ${removed} leftovers after the run`);
}
