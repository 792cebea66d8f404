/**
 * `@elastic/elasticsearch` (with undici and OpenTelemetry, ~400 modules, ~0.45 s of CPU at start-up) is
 * loaded only by a process that ships logs: every service creates its logger through
 * `createServiceLogger`, and most run without `ELASTICSEARCH_URL`. Observed from a child process with a
 * module-resolution hook that reports each `@elastic/elasticsearch` import on stderr.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess, type ProcessResult } from '../../../helpers/run-process.ts';

let dir: string;
let register: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'driftline-lazy-es-'));
  const hooks = path.join(dir, 'hooks.mjs');
  await writeFile(
    hooks,
    `import { writeSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  if (specifier.startsWith('@elastic/elasticsearch')) writeSync(2, 'LOADED ' + specifier + '\\n');
  return next(specifier, context);
}
`,
  );
  register = path.join(dir, 'register.mjs');
  await writeFile(
    register,
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`,
  );
}, 30_000);
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Creates a service logger in a child process with `env`, logs a line, exits 0.5 s later; its stderr. */
function run(env: NodeJS.ProcessEnv): Promise<ProcessResult> {
  const script = `
    const { createServiceLogger } = await import(${JSON.stringify(pathToFileURL(path.resolve('common/logging/service-logger.ts')).href)});
    const logger = createServiceLogger({ service: 'lazy-test', level: 'info', format: 'json', stream: process.stdout });
    logger.info('hello');
    await new Promise((resolve) => setTimeout(resolve, 500));
    process.exit(0);
  `;
  return runProcess(
    process.execPath,
    ['--import', 'tsx', '--import', register, '--input-type=module', '-e', script],
    {
      env: { ...process.env, ...env },
    },
  );
}

describe('the Elasticsearch client is loaded only when logs are shipped', () => {
  it('without ELASTICSEARCH_URL the package is never imported', async () => {
    const r = await run({ ELASTICSEARCH_URL: '' });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/LOADED @elastic\/elasticsearch/);
  });

  it('with ELASTICSEARCH_URL it is imported when the first batch is sent', async () => {
    // Nothing listens on port 9: the batch fails (and is retried until the exit); the import is what is observed.
    const r = await run({ ELASTICSEARCH_URL: 'http://127.0.0.1:9', ELASTICSEARCH_FLUSH_MS: '10' });
    expect(r.stderr).toMatch(/^LOADED @elastic\/elasticsearch$/m);
  });
});
