import { defineConfig } from 'vitest/config';
import { junitReporting } from './scripts/ci/vitest-junit.ts';

/**
 * Suites that need real servers or tools installed by `scripts/setup-test-deps.sh`
 * and started by `scripts/services` (Mosquitto, scipy, Chromium, Kafka, MLflow).
 * `make test` runs them after `npm test`. They fail, never skip, when a dependency
 * is missing.
 */
export default defineConfig({
  test: {
    // tests/faults/: servers stopped, killed and restarted under load; each test counts what was lost.
    include: ['tests/external/**/*.test.ts', 'tests/faults/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // JUnit XML for Jenkins when JUNIT or CI is set (scripts/ci/vitest-junit.ts); console output unchanged.
    ...junitReporting('external'),
    fileParallelism: false,
  },
});
