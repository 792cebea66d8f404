/**
 * The SAST half of ESLint (eslint.config.js): eslint-plugin-security's rules and
 * ESLint's own code-from-strings rules are errors for code that ships, so
 * `npm run lint` and `npm run sast` fail on a finding; tests are exempt.
 */
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint({ cwd: process.cwd() });

const SNIPPET = [
  "import { readFile } from 'node:fs/promises';",
  'export function run(userInput: string, secret: string, given: string): unknown {',
  '  const re = new RegExp(userInput);',
  '  const unsafe = /^(a+)+$/;',
  '  if (given === secret) return re.test(given) && unsafe.test(given);',
  '  void readFile(userInput);',
  '  return eval(userInput);',
  '}',
  '',
].join('\n');

async function errors(filePath: string): Promise<string[]> {
  const [result] = await eslint.lintText(SNIPPET, { filePath });
  return (result?.messages ?? []).filter((m) => m.severity === 2).map((m) => m.ruleId ?? m.message);
}

describe('ESLint security rules', () => {
  it('fail code that ships on each kind of finding', async () => {
    const found = await errors('common/sast-probe.ts');
    expect(found).toEqual(
      expect.arrayContaining([
        'security/detect-non-literal-regexp',
        'security/detect-unsafe-regex',
        'security/detect-possible-timing-attacks',
        'security/detect-eval-with-expression',
        'no-eval',
      ]),
    );
    // Off on purpose, with the reason in eslint.config.js.
    expect(found).not.toContain('security/detect-non-literal-fs-filename');
  });

  it('apply to scripts too, not to tests', async () => {
    expect(await errors('scripts/sast-probe.ts')).toContain('no-eval');
    expect(await errors('tests/unit/sast-probe.test.ts')).not.toContain('security/detect-unsafe-regex');
  });
});
