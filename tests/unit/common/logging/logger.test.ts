import { PassThrough } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../../../common/errors.ts';
import { createLogger } from '../../../../common/logging/logger.ts';

function capture(format: 'json' | 'pretty'): {
  lines: () => string[];
  logger: ReturnType<typeof createLogger>;
} {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c.toString()));
  const logger = createLogger({
    service: 'edge-inference',
    version: '1.2.3',
    format,
    stream,
    level: 'debug',
  });
  return { logger, lines: () => chunks.join('').split('\n').filter(Boolean) };
}

describe('logger', () => {
  it('refuses a LOG_LEVEL or LOG_FORMAT it cannot honour with a one-line configuration error', () => {
    // Before: an unknown level logged nothing at all, an unknown format fell back to JSON, both silently.
    vi.stubEnv('LOG_LEVEL', 'loud');
    vi.stubEnv('LOG_FORMAT', 'xml');
    try {
      expect(() => createLogger({ service: 's' })).toThrow(ConfigError);
      expect(() => createLogger({ service: 's' })).toThrow(
        'Invalid configuration: LOG_LEVEL="loud" is invalid: expected error, warn, info or debug; ' +
          'LOG_FORMAT="xml" is invalid: expected json, pretty or auto',
      );
      vi.stubEnv('LOG_LEVEL', 'debug');
      vi.stubEnv('LOG_FORMAT', 'json');
      expect(createLogger({ service: 's' }).level).toBe('debug');
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('writes ECS JSON with service, level, correlation id as trace.id', async () => {
    const { logger, lines } = capture('json');
    logger
      .child({ correlationId: 'abc-123' })
      .info('drift alarm', { machineId: 'm-1', action: 'drift-alarm', features: ['vibrationHz'] });
    await new Promise((r) => setImmediate(r));
    const doc = JSON.parse(lines()[0] ?? '{}') as Record<string, unknown>;
    expect(doc['log.level']).toBe('info');
    expect(doc.message).toBe('drift alarm');
    expect(doc.service).toEqual({ name: 'edge-inference', version: '1.2.3' });
    expect(doc.trace).toEqual({ id: 'abc-123' });
    expect(doc.event).toEqual({ action: 'drift-alarm' });
    expect(doc.labels).toEqual({ machine_id: 'm-1' });
    expect(doc.driftline).toEqual({ features: ['vibrationHz'] });
    expect(typeof doc['@timestamp']).toBe('string');
    expect(doc.ecs).toBeDefined();
  });

  it('writes ECS error fields', async () => {
    const { logger, lines } = capture('json');
    logger.error('load failed', { err: new TypeError('bad checksum') });
    await new Promise((r) => setImmediate(r));
    const doc = JSON.parse(lines()[0] ?? '{}') as { error: { type: string; message: string } };
    expect(doc.error.type).toBe('TypeError');
    expect(doc.error.message).toBe('bad checksum');
  });

  it('writes readable lines in pretty mode', async () => {
    const { logger, lines } = capture('pretty');
    logger.warn('slow', { durationMs: 12 });
    await new Promise((r) => setImmediate(r));
    expect(lines()[0]).toMatch(/warn +\[edge-inference\] slow {2}durationMs=12/);
  });
});
