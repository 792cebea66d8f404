import { createKafkaClient, ephemeralGroupId } from '../../../common/bus/kafka.ts';
import type { EventBus } from '../../../common/bus/types.ts';
import { KAFKA_BROKERS, kafkaAuth } from '../../external/helpers/kafka-auth.ts';

/** Messages on a (physical) topic, read from its start to its end offsets, and the distinct ids among them. */
export async function countTopic(
  topic: string,
  idOf: (value: unknown) => string,
): Promise<{ messages: number; distinct: number }> {
  const kafka = createKafkaClient({ brokers: KAFKA_BROKERS, ...kafkaAuth(), clientId: 'fault-count' });
  const admin = kafka.admin();
  await admin.connect();
  const ends = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const want = new Map(ends.map((p) => [p.partition, BigInt(p.high)]));
  const done = new Set([...want].filter(([, high]) => high === 0n).map(([p]) => p));
  const ids = new Set<string>();
  let messages = 0;
  if (done.size === want.size) return { messages, distinct: 0 };
  const consumer = kafka.consumer({ groupId: ephemeralGroupId('fault-count', 'read') });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`reading ${topic} timed out`)), 60_000);
    void consumer.run({
      eachMessage: async ({ partition, message }) => {
        const high = want.get(partition) ?? 0n;
        if (BigInt(message.offset) < high) {
          messages++;
          ids.add(idOf(JSON.parse(message.value?.toString('utf8') ?? 'null')));
        }
        if (BigInt(message.offset) + 1n >= high) done.add(partition);
        if (done.size === want.size) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  return { messages, distinct: ids.size };
}

/** The value of one sample of a Prometheus metric in the text exposition (0 when absent). */
export function metricValue(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inner = line.slice(name.length + 1, line.indexOf('}'));
    if (want.every((l) => inner.split(',').includes(l))) return Number(line.slice(line.indexOf('}') + 1));
  }
  return 0;
}

/**
 * A bus that reports a failed publish as delivered: what the edge did before its outbox (the failure
 * logged, the value lost). Used to check that the Kafka fault test can fail.
 */
export function silentOnFailure(bus: EventBus): EventBus {
  return {
    kind: bus.kind,
    publish: (topic, key, value) => bus.publish(topic, key, value).catch(() => undefined),
    subscribe: (topic, options, handler) => bus.subscribe(topic, options, handler),
    close: () => bus.close(),
  };
}
