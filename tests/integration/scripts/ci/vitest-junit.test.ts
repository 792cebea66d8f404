/**
 * JUnit XML for Jenkins from vitest (scripts/ci/vitest-junit.ts, wired into both
 * vitest configs): a real vitest run with JUNIT=1 writes the XML and still prints
 * the default console report; the switch follows JUNIT, then CI.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { junitEnabled, junitReporting } from '../../../../scripts/ci/vitest-junit.ts';
import { runProcess, type ProcessResult } from '../../../helpers/run-process.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<ProcessResult> =>
  runProcess(cmd, args, { env });

describe('JUnit reporting switch', () => {
  it('follows JUNIT when set, else CI', () => {
    expect(junitEnabled({})).toBe(false);
    expect(junitEnabled({ CI: 'true' })).toBe(true);
    expect(junitEnabled({ CI: 'true', JUNIT: '0' })).toBe(false);
    expect(junitEnabled({ JUNIT: '1' })).toBe(true);
    expect(junitEnabled({ CI: 'false', JUNIT: 'yes' })).toBe(true);
    expect(() => junitEnabled({ JUNIT: 'maybe' })).toThrow(/JUNIT="maybe"/);
    expect(junitReporting('unit', {})).toEqual({});
    expect(junitReporting('external', { JUNIT: '1', JUNIT_DIR: '/tmp/x' })).toEqual({
      reporters: ['default', 'junit'],
      outputFile: { junit: '/tmp/x/external.xml' },
    });
  });
});

describe('a real vitest run with JUNIT=1', () => {
  it('writes JUnit XML and keeps the console report', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'driftline-junit-'));
    dirs.push(dir);
    const env: NodeJS.ProcessEnv = { ...process.env, JUNIT: '1', JUNIT_DIR: dir, NO_COLOR: '1' };
    for (const k of Object.keys(env)) if (k.startsWith('VITEST')) delete env[k];
    const { code, out } = await run(
      process.execPath,
      [
        path.resolve('node_modules/vitest/vitest.mjs'),
        'run',
        '--config',
        'vitest.config.ts',
        'tests/unit/eslint.config.security.test.ts',
      ],
      env,
    );
    expect(code, out).toBe(0);
    expect(out).toMatch(/Test Files\s+1 passed/);
    expect(out).toMatch(/Tests\s+2 passed/);
    const xml = await readFile(path.join(dir, 'unit.xml'), 'utf8');
    expect(xml).toMatch(/^<\?xml/);
    expect(xml).toMatch(/<testsuites [^>]*tests="2" failures="0"/);
    expect(xml).toContain('classname="tests/unit/eslint.config.security.test.ts"');
    expect(xml).toMatch(
      /<testcase [^>]*name="ESLint security rules &gt; fail code that ships on each kind of finding"/,
    );
  }, 120_000);
});
