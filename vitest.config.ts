import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

// Tests import workspace packages from their TypeScript sources, so `vitest` needs no build for
// unit tests. Integration tests spawn the built processes (`npm run build` first; `npm test` does).
const alias = {
  '@impulse/common': here('./common/src/index.ts'),
  '@impulse/shard-node': here('./shard-node/src/index.ts'),
  '@impulse/gateway': here('./gateway/src/index.ts'),
  '@impulse/loadtest': here('./loadtest/src/index.ts'),
  '@impulse/local-cluster': here('./deploy/local/src/index.ts'),
};

export default defineConfig({
  resolve: { alias },
  test: {
    projects: [
      {
        resolve: { alias },
        test: {
          name: 'unit',
          include: [
            '{common,shard-node,gateway,loadtest,deploy/local}/{src,test}/**/*.test.ts',
            'test/docs/**/*.test.ts',
            'test/deploy/**/*.test.ts',
            'test/chaos-history/**/*.test.ts',
          ],
          testTimeout: 30_000,
        },
      },
      {
        resolve: { alias },
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // Multi-process tests start real clusters; running them one file at a time keeps a
          // 2-core machine from timing out elections and health checks.
          fileParallelism: false,
        },
      },
    ],
  },
});
