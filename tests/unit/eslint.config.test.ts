import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

/**
 * The service boundaries of `eslint.config.js`, run through ESLint itself on
 * imports placed in each folder: a service imports only `common/` and itself,
 * `common/` imports no service, `bin/` may import every service, `tests/`
 * anything.
 */

const eslint = new ESLint({ cwd: process.cwd() });

/** The `no-restricted-imports` messages of `import` placed in the file `file`. */
async function restricted(file: string, specifier: string): Promise<string[]> {
  const code = `import { x } from '${specifier}';\nexport const y = x;\n`;
  const [result] = await eslint.lintText(code, { filePath: file });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('service boundaries (eslint.config.js)', () => {
  it('refuses an import of another service from a service, at any depth', async () => {
    expect(await restricted('edge-inference/src/x.ts', '../../simulator/src/publisher.ts')).toEqual([
      expect.stringMatching(/edge-inference\/ may import only common\/ and its own folder/),
    ]);
    expect(
      await restricted('dashboard/src/client/views/x.ts', '../../../../broker/src/broker.ts'),
    ).toHaveLength(1);
    expect(
      await restricted('retrainer/src/testing/x.ts', '../../../tests/helpers/dashboard/stack.ts'),
    ).toHaveLength(1);
    expect(await restricted('simulator/src/x.ts', '../../bin/lib/start.ts')).toHaveLength(1);
  });

  it('lets a service import common/ and its own modules', async () => {
    expect(await restricted('edge-inference/src/x.ts', '../../common/drift/feature-drift.ts')).toEqual([]);
    expect(await restricted('edge-inference/src/x.ts', './worker.ts')).toEqual([]);
    expect(await restricted('dashboard/src/client/views/x.ts', '../../shared/view.ts')).toEqual([]);
  });

  it('refuses any service (and bin/, tests/) from common/', async () => {
    expect(await restricted('common/drift/x.ts', '../../retrainer/src/config.ts')).toEqual([
      expect.stringMatching(/common\/ is shared by every service and imports none of them/),
    ]);
    expect(await restricted('common/model/x.ts', '../../tests/helpers/dashboard/feed.ts')).toHaveLength(1);
    expect(await restricted('common/model/x.ts', '../schema/features.ts')).toEqual([]);
  });

  it('lets bin/ import every service but not the tests; tests/ import anything', async () => {
    for (const service of ['broker', 'edge-inference', 'retrainer', 'dashboard', 'simulator'])
      expect(await restricted('bin/lib/x.ts', `../../${service}/src/config.ts`)).toEqual([]);
    expect(await restricted('bin/lib/x.ts', '../../tests/helpers/dashboard/stack.ts')).toHaveLength(1);
    expect(await restricted('tests/unit/x.test.ts', '../../broker/src/broker.ts')).toEqual([]);
    expect(await restricted('bench/x.ts', '../tests/external/helpers/dashboard-browser.ts')).toEqual([]);
  });
});
