import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { DeadLetterSink, type DeadLetterRecord } from '../../../common/deadletter.ts';
import { silentLogger } from '../../../common/logging/logger.ts';

describe('DeadLetterSink', () => {
  it('counts by reason, publishes a record and exports a Prometheus counter', async () => {
    const registry = new Registry();
    const published: { topic: string; record: DeadLetterRecord }[] = [];
    const sink = new DeadLetterSink({
      source: 'test',
      logger: silentLogger(),
      registry,
      publish: (topic, record) => void published.push({ topic, record }),
    });
    await sink.reject('factory/m-1/telemetry', '{bad', 'not_json', 'payload is not JSON');
    await sink.reject('factory/m-1/telemetry', '{}', 'missing_field', 'missing field seq');
    await sink.reject('factory/m-2/telemetry', 'x', 'not_json', 'payload is not JSON');
    expect(sink.countsByReason()).toEqual({ not_json: 2, missing_field: 1 });
    expect(sink.total).toBe(3);
    expect(published).toHaveLength(3);
    expect(published[0]?.topic).toBe('driftline/dead-letter');
    expect(published[0]?.record).toMatchObject({
      source: 'test',
      reason: 'not_json',
      payload: '{bad',
      payloadBytes: 4,
    });
    const metrics = await registry.metrics();
    expect(metrics).toContain('driftline_dead_letters_total{reason="not_json"} 2');
  });

  it('never throws when publishing fails, and counts the failure', async () => {
    const sink = new DeadLetterSink({
      source: 'test',
      logger: silentLogger(),
      publish: () => Promise.reject(new Error('broker down')),
    });
    await expect(sink.reject('t', 'x', 'not_json', 'd')).resolves.toMatchObject({ reason: 'not_json' });
    expect(sink.failedPublishes).toBe(1);
    expect(sink.total).toBe(1);
  });

  it('keeps only a bounded preview of large payloads', async () => {
    const sink = new DeadLetterSink({ source: 'test', logger: silentLogger() });
    const r = await sink.reject('t', Buffer.alloc(10_000, 0x61), 'payload_too_large', 'big');
    expect(r.payload).toHaveLength(1024);
    expect(r.payloadBytes).toBe(10_000);
  });
});
