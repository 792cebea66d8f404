import { Kafka, logLevel } from 'kafkajs';
import { TELEMETRY_TOPIC } from '../../common/bus/kafka-security.ts';
import { BUS_TOPICS } from '../../common/bus/types.ts';
import { flags, report } from './lib.ts';

/**
 * Whoever reaches the Kafka port tries to inject, without credentials, a
 * poisoned record into every Driftline topic: telemetry, labelled samples (the
 * holdout the promotion gate scores on), retrain requests, model events.
 * Reports, per topic, whether the broker took it.
 *
 *   npx tsx scripts/attacks/kafka-inject.ts [--brokers 127.0.0.1:9092] [--prefix '']
 */

const f = flags();
const brokers = (f.brokers ?? process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
const prefix = f.prefix ?? '';
const kafka = new Kafka({
  clientId: 'intruder',
  brokers,
  logLevel: logLevel.NOTHING,
  connectionTimeout: 3000,
  retry: { retries: 0 },
});
const outcome: Record<string, string> = {};
for (const topic of [TELEMETRY_TOPIC, ...Object.values(BUS_TOPICS)]) {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  try {
    await producer.connect();
    await producer.send({
      topic: `${prefix}${topic}`,
      messages: [{ key: 'm1', value: JSON.stringify({ injected: true, samples: [{ label: 'poison' }] }) }],
    });
    outcome[topic] = 'written';
  } catch (err) {
    outcome[topic] = `refused (${(err as Error).name}: ${(err as Error).message.slice(0, 60)})`;
  } finally {
    await producer.disconnect().catch(() => undefined);
  }
}
const written = Object.values(outcome).filter((o) => o === 'written').length;
report('kafka-inject', {
  brokers: brokers.join(','),
  written,
  refused: Object.keys(outcome).length - written,
  outcome,
});
