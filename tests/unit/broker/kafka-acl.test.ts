import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import {
  kafkaAclEntries,
  kafkaAclMarkdown,
  kafkaAclRules,
  localKafkaPassword,
} from '../../../common/bus/kafka-security.ts';

/** The Kafka ACL matrix (the real-broker check is tests/external/kafka-security.test.ts). */

const norm = (s: string): string =>
  s
    .split('\n')
    .map((l) =>
      l
        .replace(/\s*\|\s*/g, '|')
        .replace(/-{3,}/g, '---')
        .trim(),
    )
    .join('\n');

describe('Kafka ACL matrix', () => {
  it('is documented verbatim in docs/kafka-security.md', async () => {
    const doc = await readFile(new URL('../../../docs/kafka-security.md', import.meta.url), 'utf8');
    const start = doc.indexOf('<!-- acl-table:start');
    const end = doc.indexOf('<!-- acl-table:end');
    const embedded = doc.slice(doc.indexOf('\n', start) + 1, end).trim();
    expect(norm(embedded)).toBe(norm(kafkaAclMarkdown()));
  });

  it('grants no service CREATE, ALTER or cluster rights, and only the bridge writes telemetry', () => {
    const rules = kafkaAclRules();
    const ops = new Set(rules.flatMap((r) => r.operations));
    expect([...ops].sort()).toEqual(['DELETE', 'DESCRIBE', 'READ', 'WRITE']);
    expect(rules.filter((r) => r.operations.includes('DELETE')).map((r) => [r.user, r.resource])).toEqual([
      ['retrainer', 'group'],
    ]);
    const writers = (topic: string): string[] =>
      rules
        .filter((r) => r.resource === 'topic' && r.name === topic && r.operations.includes('WRITE'))
        .map((r) => r.user)
        .sort();
    expect(writers('driftline.telemetry')).toEqual(['bridge']);
    expect(writers('driftline.labelled-samples')).toEqual(['edge']);
    expect(writers('driftline.retrain-requests')).toEqual(['edge']);
    expect(writers('driftline.model-events')).toEqual(['dashboard', 'retrainer']);
  });

  it('puts the deployment prefix on topics and bus groups', () => {
    const rules = kafkaAclRules({ prefix: 'prod.', retrainerClientId: 'rt-1' });
    expect(
      rules.filter((r) => r.resource === 'topic').every((r) => r.name.startsWith('prod.driftline.')),
    ).toBe(true);
    expect(rules.find((r) => r.pattern === 'prefixed' && r.user === 'retrainer')?.name).toBe(
      'rt-1-sample-reader-',
    );
    expect(kafkaAclEntries(rules).every((e) => e.principal.startsWith('User:') && e.host === '*')).toBe(true);
  });

  it('derives local development passwords, overridable per user', () => {
    expect(localKafkaPassword('edge', {})).toBe('driftline-dev-edge');
    expect(localKafkaPassword('edge', { KAFKA_DEV_PASSWORD: 'x' })).toBe('x-edge');
    expect(localKafkaPassword('edge', { KAFKA_EDGE_PASSWORD: 'secret' })).toBe('secret');
  });
});
