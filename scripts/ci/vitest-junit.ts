/**
 * JUnit XML from vitest for CI (Jenkins' `junit` step), next to the normal
 * console output: both vitest configs spread {@link junitReporting} into `test`.
 *
 *   JUNIT=1 npm test                    → test-results/junit/unit.xml
 *   JUNIT=1 npm run test:external       → test-results/junit/external.xml
 *   CI=true make test                   → both (CI turns it on unless JUNIT=0)
 *
 * `JUNIT` (1/true/yes, or 0/false/no) decides when set; otherwise `CI=true|1`
 * turns it on. `JUNIT_DIR` moves the files (default test-results/junit).
 */
import path from 'node:path';

export interface JunitReporting {
  reporters?: string[];
  outputFile?: { junit: string };
}

const ON = new Set(['1', 'true', 'yes', 'on']);
const OFF = new Set(['', '0', 'false', 'no', 'off']);

/** True when JUnit XML is wanted: JUNIT decides when set, else CI. */
export function junitEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  const junit = env.JUNIT?.trim().toLowerCase();
  if (junit !== undefined && (ON.has(junit) || OFF.has(junit))) return ON.has(junit);
  if (junit !== undefined)
    throw new Error(`JUNIT=${JSON.stringify(env.JUNIT)}: expected 1/true/yes or 0/false/no`);
  return ON.has(env.CI?.trim().toLowerCase() ?? '');
}

/** The `reporters`/`outputFile` part of a vitest config for suite `suite` (the file name). */
export function junitReporting(suite: string, env: NodeJS.ProcessEnv = process.env): JunitReporting {
  if (!junitEnabled(env)) return {};
  const dir = env.JUNIT_DIR?.trim() || path.join('test-results', 'junit');
  return { reporters: ['default', 'junit'], outputFile: { junit: path.join(dir, `${suite}.xml`) } };
}
