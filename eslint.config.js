// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Syntax that names the core's planted bugs (Config.mutants). */
const raftMutantSyntax = [
  {
    selector: "Property[key.name='mutants'], MemberExpression[property.name=/^(mutants?|raftMutants)$/]",
    message: 'Planted bugs (Config.mutants) are for the simulator and tests only.',
  },
  {
    selector: 'Identifier[name=/^(RaftMutant|raftMutants|isRaftMutant)$/]',
    message: 'Planted bugs (Config.mutants) are for the simulator and tests only.',
  },
];

/** Syntax that names the coalescer's planted bugs. */
const coalescerMutantSyntax = [
  {
    selector: 'Identifier[name=/^(CoalescerMutant|coalescerMutants|nodeResponsesTo)$/]',
    message: "The coalescer's planted bugs are for the node simulator and tests only.",
  },
];

export default tseslint.config(
  {
    ignores: ['**/dist/**', '**/node_modules/**', 'data/**', 'results/**', 'coverage/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        URL: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        queueMicrotask: 'readonly',
        structuredClone: 'readonly',
        fetch: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      eqeqeq: ['error', 'always'],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@impulse/*/*', '!@impulse/*/package.json'],
              message: 'Import a package only through its index (no deep imports across packages).',
            },
          ],
        },
      ],
    },
  },
  {
    // The core's planted bugs (shard-node/src/raft/mutants.ts) and the coalescer's
    // (shard-node/src/transport/coalesced-heartbeats.ts) are for the simulators and tests only: no
    // production code may name them (shard-node/test/raft-sim/mutants-production.test.ts checks
    // the same from the other side).
    files: ['{common,gateway,shard-node,loadtest,deploy/local}/src/**/*.ts'],
    ignores: ['shard-node/src/raft/**', 'shard-node/src/raft-sim/**'],
    rules: {
      'no-restricted-syntax': ['error', ...raftMutantSyntax, ...coalescerMutantSyntax],
    },
  },
  {
    // The coalescer defines its planted bugs, and the transport's index exports them (to the node
    // simulator); neither may name the core's.
    files: ['shard-node/src/transport/coalesced-heartbeats.ts', 'shard-node/src/transport/index.ts'],
    rules: {
      'no-restricted-syntax': ['error', ...raftMutantSyntax],
    },
  },
  {
    // The Raft core is a pure, deterministic state machine: no I/O, no clocks, no randomness.
    files: ['shard-node/src/raft/**/*.ts'],
    ignores: ['shard-node/src/raft/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'The Raft core does no I/O: no node: imports.' },
            {
              group: [
                'fs',
                'net',
                'http',
                'https',
                'os',
                'path',
                'crypto',
                'child_process',
                'dgram',
                'timers',
                'worker_threads',
              ],
              message: 'The Raft core does no I/O.',
            },
            {
              group: ['../*', '!../raft', '@impulse/*'],
              message: 'The Raft core depends on nothing outside shard-node/src/raft/.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'setTimeout', message: 'Time enters the Raft core only through tick().' },
        { name: 'setInterval', message: 'Time enters the Raft core only through tick().' },
        { name: 'setImmediate', message: 'Time enters the Raft core only through tick().' },
        { name: 'process', message: 'The Raft core does no I/O.' },
        { name: 'performance', message: 'Time enters the Raft core only through tick().' },
        { name: 'fetch', message: 'The Raft core does no I/O.' },
        { name: 'require', message: 'The Raft core does no I/O.' },
        { name: 'console', message: 'Log through the injected logger.' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'Time enters the Raft core only through tick().' },
        { object: 'Math', property: 'random', message: 'Randomness is injected (a seeded generator).' },
        { object: 'crypto', property: 'randomUUID', message: 'Randomness is injected.' },
      ],
      'no-restricted-syntax': [
        'error',
        {
          selector: "NewExpression[callee.name='Date']",
          message: 'Time enters the Raft core only through tick().',
        },
      ],
    },
  },
);
