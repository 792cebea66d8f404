import { defineConfig } from 'vitest/config';
import { junitReporting } from './scripts/ci/vitest-junit.ts';

/**
 * Suites of the deployment (`make buildtestup`; Jenkins: `make images`, `make smoke`): they need docker
 * with the built images (tests/cluster/images.test.ts) or the deployed Minikube cluster, reached only
 * through `kubectl port-forward` on 127.0.0.1 (the rest). They fail, never skip, when these are missing.
 * One file at a time, in order: they share the cluster.
 */
export default defineConfig({
  test: {
    include: ['tests/cluster/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: 'forks',
    fileParallelism: false,
    ...junitReporting('cluster'),
  },
});
