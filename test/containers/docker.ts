import { getContainerRuntimeClient, type ContainerRuntimeClient } from 'testcontainers';

/** The image under test; `npm run test:containers` builds it first. */
export const imageUnderTest = process.env['IMPULSE_TEST_IMAGE'] ?? 'impulse:local';

/** Every container and volume the suite creates carries this label, so a sweep can find leftovers. */
export const suiteLabel = 'org.impulse.test-suite';
export const suiteLabelValue = 'containers';
/** And this one, unique per cluster, so that a cluster removes exactly what it created. */
export const runLabel = 'org.impulse.test-run';

/** Networks are named with this prefix, for the same reason (testcontainers sets their labels). */
export const networkNamePrefix = 'impulse-test-';

/**
 * The Docker client, or an error that says what to do. The suite never skips when Docker is
 * missing: a green run must mean the containers really ran.
 */
export async function dockerClient(): Promise<ContainerRuntimeClient> {
  try {
    return await getContainerRuntimeClient();
  } catch (error) {
    throw new Error(
      'The container tests need a running Docker engine and found none ' +
        `(DOCKER_HOST=${process.env['DOCKER_HOST'] ?? 'unset'}). Install it and start it, for example: ` +
        "'apt-get install -y docker.io iptables && dockerd > /tmp/dockerd.log 2>&1 &', then wait for " +
        "'docker info'. See docs/deploy.md.",
      { cause: error },
    );
  }
}

/** Removes whatever a crashed or interrupted run left behind: containers, volumes, networks. */
export async function sweepLeftovers(client: ContainerRuntimeClient): Promise<number> {
  const docker = client.container.dockerode;
  const filters = JSON.stringify({ label: [`${suiteLabel}=${suiteLabelValue}`] });
  let removed = 0;
  for (const info of await docker.listContainers({ all: true, filters })) {
    const container = docker.getContainer(info.Id);
    // A paused container cannot be removed on older engines; unpause it first.
    if (info.State === 'paused') await container.unpause().catch(() => undefined);
    await container.remove({ force: true, v: true });
    removed += 1;
  }
  for (const volume of (await docker.listVolumes({ filters })).Volumes ?? []) {
    await docker.getVolume(volume.Name).remove();
    removed += 1;
  }
  for (const network of await docker.listNetworks({
    filters: JSON.stringify({ name: [networkNamePrefix] }),
  })) {
    if (!network.Name.startsWith(networkNamePrefix)) continue;
    await docker.getNetwork(network.Id).remove();
    removed += 1;
  }
  return removed;
}
