import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { logLevel } from 'kafkajs';
import winston from 'winston';
import Transport from 'winston-transport';
import { describe, expect, it } from 'vitest';
import { busConfigSpec, busOptionsFromConfig, createBus } from '../../../../common/bus/factory.ts';
import { InProcessBus } from '../../../../common/bus/in-process.ts';
import {
  KafkaBus,
  deadLetterRecord,
  decodeValue,
  encodeValue,
  ensureTopics,
  kafkaLogCreator,
  redeliveryDelay,
  resolveKafkaBusOptions,
} from '../../../../common/bus/kafka.ts';
import { BUS_TOPICS } from '../../../../common/bus/types.ts';
import { silentLogger } from '../../../../common/logging/logger.ts';
import { loadConfig } from '../../../../common/config/env.ts';
import { ConfigError, ValidationError } from '../../../../common/errors.ts';
import { createSampleStore } from '../../../../common/samples/factory.ts';

const message = (value: Buffer | null, key = 'm-1') => ({
  key: Buffer.from(key),
  value,
  offset: '41',
  timestamp: '1700000000000',
});

describe('Kafka bus: encoding', () => {
  it('round-trips JSON values and refuses what JSON cannot carry', () => {
    const value = { a: 1, b: ['x', null], c: { d: true } };
    expect(decodeValue(Buffer.from(encodeValue(value)))).toEqual({ ok: true, value });
    expect(() => encodeValue(undefined)).toThrow(ValidationError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => encodeValue(cyclic)).toThrow(ValidationError);
  });

  it('decodes non-JSON and empty values to a reason, not an exception', () => {
    const bad = decodeValue(Buffer.from('{not json'));
    expect(bad.ok).toBe(false);
    expect(!bad.ok && bad.reason).toMatch(/^malformed message: not JSON \(SyntaxError: /);
    expect(decodeValue(null)).toEqual({ ok: false, reason: 'malformed message: no value (tombstone)' });
  });
});

describe('Kafka bus: dead-letter records', () => {
  const base = {
    topic: BUS_TOPICS.retrainRequests,
    partition: 2,
    group: 'retrainer',
    attempts: 1,
    maxBytes: 1024,
    now: 1_700_000_001_000,
  };

  it('carries the decoded value, the reason and where the message came from', () => {
    const r = deadLetterRecord({
      ...base,
      message: message(Buffer.from('{"n":1}')),
      cause: 'rejected',
      reason: 'ValidationError: bad',
    });
    expect(r).toEqual({
      topic: BUS_TOPICS.retrainRequests,
      partition: 2,
      offset: '41',
      group: 'retrainer',
      key: 'm-1',
      cause: 'rejected',
      reason: 'ValidationError: bad',
      attempts: 1,
      publishedAt: 1_700_000_000_000,
      failedAt: 1_700_000_001_000,
      value: { n: 1 },
      valueBytes: 7,
    });
  });

  it('keeps a malformed value as text, or base64 when it is not UTF-8, and only references a large one', () => {
    const text = deadLetterRecord({
      ...base,
      message: message(Buffer.from('not json at all')),
      cause: 'malformed',
      reason: 'x',
      attempts: 0,
    });
    expect(text.raw).toEqual({ encoding: 'utf8', data: 'not json at all' });
    expect(text.value).toBeUndefined();
    const binary = Buffer.from([0xff, 0xfe, 0x00, 0x80]);
    expect(
      deadLetterRecord({ ...base, message: message(binary), cause: 'malformed', reason: 'x' }).raw,
    ).toEqual({ encoding: 'base64', data: binary.toString('base64') });
    const big = deadLetterRecord({
      ...base,
      message: message(Buffer.from(JSON.stringify('y'.repeat(2000)))),
      cause: 'retries-exhausted',
      reason: 'x',
    });
    expect(big).toMatchObject({ truncated: true, valueBytes: 2002, offset: '41', partition: 2 });
    expect(big.value).toBeUndefined();
    expect(big.raw).toBeUndefined();
  });
});

describe('Kafka bus: options', () => {
  it('fills defaults', () => {
    const o = resolveKafkaBusOptions({ brokers: ['127.0.0.1:9092'] });
    expect(o).toMatchObject({
      clientId: 'driftline',
      topicPrefix: '',
      partitions: 3,
      retentionMs: 604_800_000,
      maxRedeliveries: 5,
      sessionTimeoutMs: 30_000,
      heartbeatIntervalMs: 3000,
    });
  });

  it('names every invalid setting in one ConfigError', () => {
    let err: unknown;
    try {
      resolveKafkaBusOptions({
        brokers: ['nohost', 'h:99999'],
        partitions: 0,
        retentionMs: 5,
        topicPrefix: 'bad prefix!',
        heartbeatIntervalMs: 20_000,
        sasl: { mechanism: 'plain', username: '', password: '' },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = (err as Error).message;
    for (const part of [
      '"nohost" is not host:port',
      '"h:99999" is not host:port',
      'partitions must be',
      'retentionMs must be',
      'topicPrefix',
      'heartbeatIntervalMs',
      'sasl plain needs',
    ])
      expect(text).toContain(part);
    expect(() => resolveKafkaBusOptions({ brokers: [] })).toThrow(/at least one host:port/);
  });

  it('prefixes topics and groups, and describes itself (no connection is made by the constructor)', async () => {
    const bus = new KafkaBus({
      brokers: ['127.0.0.1:1'],
      topicPrefix: 'run42.',
      topicPartitions: { [BUS_TOPICS.deadLetter]: 1 },
    });
    expect(bus.kind).toBe('kafka 127.0.0.1:1 (prefix run42.)');
    expect(bus.topicName(BUS_TOPICS.retrainRequests)).toBe('run42.driftline.retrain-requests');
    expect(bus.groupName('retrainer')).toBe('run42.retrainer');
    expect(bus.topicSpec(BUS_TOPICS.deadLetter)).toEqual({
      topic: 'run42.driftline.dead-letter',
      partitions: 1,
      retentionMs: 604_800_000,
    });
    await bus.close();
    await expect(bus.publish('t', 'k', 1)).rejects.toThrow('bus is closed');
  });

  it('backs off exponentially within bounds', () => {
    expect(redeliveryDelay(1, 200, 10_000, () => 0)).toBe(100);
    expect(redeliveryDelay(1, 200, 10_000, () => 1)).toBe(200);
    expect(redeliveryDelay(4, 200, 10_000, () => 1)).toBe(1600);
    expect(redeliveryDelay(30, 200, 10_000, () => 1)).toBe(10_000);
  });
});

describe('bus factory and config', () => {
  it('reads KAFKA_* and maps them to bus options', () => {
    const config = loadConfig(busConfigSpec, {
      KAFKA_BROKERS: 'a:9092, b:9093',
      KAFKA_TOPIC_PARTITIONS: '6',
      KAFKA_RETENTION_MS: '3600000',
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: 'u',
      KAFKA_SASL_PASSWORD: 'p',
      KAFKA_SSL: 'true',
    });
    expect(busOptionsFromConfig(config, { clientId: 'driftline-test' })).toEqual({
      kafkaBrokers: ['a:9092', 'b:9093'],
      clientId: 'driftline-test',
      ssl: true,
      sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'p' },
      topicPrefix: '',
      partitions: 6,
      retentionMs: 3_600_000,
    });
    expect(
      busOptionsFromConfig(loadConfig(busConfigSpec, { KAFKA_CLIENT_ID: 'mine' }), { clientId: 'x' })
        .clientId,
    ).toBe('mine');
    expect(() => loadConfig(busConfigSpec, { KAFKA_BROKERS: 'nohost', KAFKA_TOPIC_PARTITIONS: '0' })).toThrow(
      /KAFKA_BROKERS=.*KAFKA_TOPIC_PARTITIONS=/,
    );
    expect(() =>
      busOptionsFromConfig(loadConfig(busConfigSpec, { KAFKA_SASL_MECHANISM: 'plain' }), { clientId: 'x' }),
    ).toThrow(ConfigError);
  });

  it('gives the in-process bus and the file store without brokers', async () => {
    const bus = await createBus({});
    expect(bus).toBeInstanceOf(InProcessBus);
    await bus.close();
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'driftline-store-factory-'));
    const store = await createSampleStore({ dir, kafkaBrokers: [] });
    expect(store.kind).toMatch(/^file /);
    await store.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('routes kafkajs logging into winston: warnings and errors as warn, routine request errors and the rest as debug', () => {
    const seen: { level: string; message: string }[] = [];
    const sink = new (class extends Transport {
      override log(info: { level: string; message: string }, next: () => void): void {
        seen.push({ level: info.level, message: info.message });
        next();
      }
    })();
    const logger = winston.createLogger({ level: 'debug', transports: [sink] });
    const log = kafkaLogCreator(logger)();
    const entry = (level: logLevel, namespace: string, message: string) => ({
      level,
      namespace,
      label: '',
      log: { timestamp: '', message },
    });
    log(entry(logLevel.ERROR, 'Consumer', 'Crash: boom'));
    log(entry(logLevel.ERROR, 'Connection', 'Response CreateTopics(key: 19, version: 3)'));
    log(
      entry(
        logLevel.WARN,
        'Producer',
        'Limiting retries for the idempotent producer may invalidate EoS guarantees',
      ),
    );
    log(entry(logLevel.INFO, 'Consumer', 'Starting'));
    expect(seen).toEqual([
      { level: 'warn', message: 'kafkajs: [Consumer] Crash: boom' },
      { level: 'debug', message: 'kafkajs: [Connection] Response CreateTopics(key: 19, version: 3)' },
      {
        level: 'debug',
        message:
          'kafkajs: [Producer] Limiting retries for the idempotent producer may invalidate EoS guarantees',
      },
      { level: 'debug', message: 'kafkajs: [Consumer] Starting' },
    ]);
  });
});

describe('ensureTopics on a broker that is still settling', () => {
  /** An Admin stand-in: topics exist; the metadata request fails like a loaded broker's, then answers. */
  function settlingAdmin(failures: number, retriable = true) {
    let calls = 0;
    const admin = {
      listTopics: async () => ['t'],
      createTopics: async () => true,
      fetchTopicMetadata: async () => {
        calls++;
        if (calls <= failures)
          throw Object.assign(new Error('This server does not host this topic-partition'), {
            name: 'KafkaJSProtocolError',
            retriable,
            code: 3,
          });
        return { topics: [{ name: 't', partitions: [{ partitionId: 0, leader: 1 }] }] };
      },
    };
    return { admin: admin as unknown as Parameters<typeof ensureTopics>[0], calls: () => calls };
  }

  it('retries a retriable metadata failure ("does not host this topic-partition") and returns the counts', async () => {
    const { admin, calls } = settlingAdmin(3);
    const counts = await ensureTopics(
      admin,
      [{ topic: 't', partitions: 1, retentionMs: 1000 }],
      silentLogger(),
    );
    expect(counts.get('t')).toBe(1);
    expect(calls()).toBe(4);
  });

  it('a creation that fails while the broker settles waits for the metadata instead of failing', async () => {
    // kafkajs' createTopics({ waitForLeaders }) can answer code 3 for a topic it has just created, and
    // listTopics does not show it yet either (a CI run failed a subscribe this way).
    let created = false;
    let metadataCalls = 0;
    const notHosted = () =>
      Object.assign(new Error('This server does not host this topic-partition'), {
        name: 'KafkaJSProtocolError',
        retriable: true,
        code: 3,
      });
    const admin = {
      listTopics: async () => [],
      createTopics: async () => {
        created = true;
        throw notHosted();
      },
      fetchTopicMetadata: async () => {
        if (++metadataCalls <= 2) throw notHosted();
        return {
          topics: [{ name: 'new', partitions: [0, 1].map((partitionId) => ({ partitionId, leader: 1 })) }],
        };
      },
    } as unknown as Parameters<typeof ensureTopics>[0];
    const counts = await ensureTopics(
      admin,
      [{ topic: 'new', partitions: 2, retentionMs: 1000 }],
      silentLogger(),
    );
    expect(created).toBe(true);
    expect(counts.get('new')).toBe(2);
    expect(metadataCalls).toBe(3);
  });

  it('does not retry a non-retriable one', async () => {
    const { admin, calls } = settlingAdmin(1, false);
    await expect(
      ensureTopics(admin, [{ topic: 't', partitions: 1, retentionMs: 1000 }], silentLogger()),
    ).rejects.toThrow(/does not host/);
    expect(calls()).toBe(1);
  });
});
