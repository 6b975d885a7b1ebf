import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

// The container suite is separate from `npm test`: it needs a Docker engine and the project image.
// `npm run test:containers` builds the image (deploy/docker/build-image.sh) and then runs this.
export default defineConfig({
  root: here('../..'),
  resolve: {
    alias: {
      '@impulse/common': here('../../common/src/index.ts'),
    },
  },
  test: {
    name: 'containers',
    include: ['test/containers/**/*.test.ts'],
    globalSetup: [here('./global-setup.ts')],
    env: {
      // Ryuk (testcontainers' reaper) is an image that would have to be pulled; the suite removes
      // its own containers, volumes and networks instead (each test, then a sweep at the end).
      TESTCONTAINERS_RYUK_DISABLED: process.env['TESTCONTAINERS_RYUK_DISABLED'] ?? 'true',
    },
    testTimeout: 90_000,
    hookTimeout: 90_000,
    // Every test starts its own cluster of containers; one file at a time keeps a 2-core machine
    // from missing the timeouts the fault tests measure.
    fileParallelism: false,
  },
});
