import type { Consumer } from 'kafkajs';
import { createKafkaClient, type KafkaConnectionOptions } from '../../common/bus/kafka.ts';
import { selfUsage, serve } from './ipc.ts';

/**
 * Reads the bridge's Kafka topic from the beginning and checks it: every
 * record counted once per (machine, kind, seq), and per machine and kind the
 * seqs arrive in increasing order (the bridge keeps a machine's messages in
 * one partition, in broker order).
 */

let consumer: Consumer | undefined;
const counts = { records: 0, unique: 0, duplicates: 0, outOfOrder: 0, invalid: 0, firstAt: 0, lastAt: 0 };
const last = new Map<string, number>();
const seen = new Set<string>();

serve({
  async start(raw) {
    const { kafka, topic } = raw as { kafka: KafkaConnectionOptions; topic: string };
    consumer = createKafkaClient(kafka).consumer({
      groupId: `bench-counter-${Date.now()}`,
      maxBytes: 16 << 20,
    });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        const now = Date.now();
        if (counts.firstAt === 0) counts.firstAt = now;
        counts.lastAt = now;
        for (const m of batch.messages) {
          counts.records++;
          try {
            const v = JSON.parse(m.value?.toString('utf8') ?? '') as { kind: string; payload: string };
            const seq = (JSON.parse(v.payload) as { seq: number }).seq;
            const key = `${m.key?.toString('utf8') ?? ''}/${v.kind}`;
            const id = `${key}/${seq}`;
            const duplicate = seen.has(id);
            if (duplicate) counts.duplicates++;
            else {
              seen.add(id);
              counts.unique++;
            }
            // A redelivery repeats an earlier seq; a new seq below the last one is a reordering.
            const prev = last.get(key);
            if (prev !== undefined && seq < prev && !duplicate) counts.outOfOrder++;
            if (prev === undefined || seq > prev) last.set(key, seq);
          } catch {
            counts.invalid++;
          }
        }
      },
    });
    return { topic };
  },
  counts: () => ({ ...counts }),
  usage: () => selfUsage(),
  async stop() {
    await consumer?.disconnect();
  },
});
