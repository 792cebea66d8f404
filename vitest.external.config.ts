import { defineConfig } from 'vitest/config';

/**
 * Suites that need real servers or tools installed by `scripts/setup-test-deps.sh`
 * and started by `scripts/services` (Mosquitto, scipy, Chromium, Kafka, MLflow).
 * `make test` runs them after `npm test`. They fail, never skip, when a dependency
 * is missing.
 */
export default defineConfig({
  test: {
    include: ['tests/external/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
