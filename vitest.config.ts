import { defineConfig } from 'vitest/config';
import { junitReporting } from './scripts/ci/vitest-junit.ts';

/**
 * The fast inner loop (`npm test`): every suite that needs no server outside
 * this process. In-process servers (aedes on a loopback port, the embedded bus,
 * the directory registry) are fine here.
 *
 * Speed: two worker processes (the default is one on a 2-core machine, and most
 * suites wait on sockets, child processes and timers rather than compute), and
 * files share each worker's module cache (`isolate: false`: TensorFlow.js,
 * zod schemas and the rest load once per worker, not once per file). Files
 * that need a module graph of their own — a module mock, a process-wide
 * singleton observed from its first use — run isolated.
 */
const ALL = [
  'tests/unit/**/*.test.ts',
  'tests/integration/**/*.test.ts',
  'tests/e2e/**/*.test.ts',
  // Attacks and faults reproduced in-process, and the generated bad-input suites
  // (FUZZ_RUNS cases each; `make test` sets the full count).
  'tests/faults/**/*.test.ts',
  'tests/fuzz/**/*.test.ts',
];
const ISOLATED = [
  // vi.mock('node:crypto') must be in place before the broker's credentials module loads.
  'tests/unit/broker/credentials.test.ts',
  // Asserts what the first loadTf() of the process logs and picks.
  'tests/unit/common/model/tf.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    maxWorkers: 2,
    // JUnit XML for Jenkins when JUNIT or CI is set (scripts/ci/vitest-junit.ts); console output unchanged.
    ...junitReporting('unit'),
    projects: [
      { extends: true, test: { name: 'isolated', include: ISOLATED, isolate: true } },
      { extends: true, test: { name: 'shared', include: ALL, exclude: ISOLATED, isolate: false } },
    ],
  },
});
