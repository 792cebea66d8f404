import { defineConfig } from 'vitest/config';
import { junitReporting } from './scripts/ci/vitest-junit.ts';

/**
 * The fast inner loop (`npm test`): every suite that needs no server outside
 * this process. In-process servers (aedes on a loopback port, the embedded bus,
 * the directory registry) are fine here.
 */
export default defineConfig({
  test: {
    include: [
      'tests/unit/**/*.test.ts',
      'tests/integration/**/*.test.ts',
      'tests/e2e/**/*.test.ts',
      // Attacks and faults reproduced in-process, and the generated bad-input suites
      // (FUZZ_RUNS cases each; `make test` sets the full count).
      'tests/faults/**/*.test.ts',
      'tests/fuzz/**/*.test.ts',
    ],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // JUnit XML for Jenkins when JUNIT or CI is set (scripts/ci/vitest-junit.ts); console output unchanged.
    ...junitReporting('unit'),
  },
});
