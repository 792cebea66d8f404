import { readFile } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../common/logging/logger.ts';
import { announceDashboard } from '../../bin/lib/announce.ts';

/**
 * Issue 10: `npm start` logged the generated dashboard operator password at
 * info level, and with ELASTICSEARCH_URL set every log line is shipped to
 * Elasticsearch. The password now goes to the terminal only.
 */

function capturingLogger(): { logger: ReturnType<typeof createLogger>; text: () => string } {
  let out = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out += chunk.toString();
      cb();
    },
  });
  return { logger: createLogger({ service: 'driftline', stream, level: 'debug' }), text: () => out };
}

describe('the generated operator password', () => {
  it('is printed on the terminal and never reaches the logger (and so never Elasticsearch)', async () => {
    const secret = 'Zx9-generated-secret-pw';
    const { logger, text } = capturingLogger();
    let terminal = '';
    announceDashboard({
      log: logger,
      terminal: (t) => (terminal += t),
      url: 'http://127.0.0.1:8080',
      generatedPassword: secret,
    });
    await new Promise((r) => setImmediate(r));
    expect(terminal).toContain(secret);
    expect(text()).toContain('http://127.0.0.1:8080');
    expect(text()).not.toContain(secret);
  });

  it('is announced through announceDashboard by npm start (start.ts never formats it into a message)', async () => {
    const source = await readFile(new URL('../../bin/lib/start.ts', import.meta.url), 'utf8');
    expect(source).toContain('announceDashboard(');
    // The generated password is never interpolated into a message there (the old log.info line did).
    expect(source).not.toMatch(/\$\{generated\}/);
  });
});
