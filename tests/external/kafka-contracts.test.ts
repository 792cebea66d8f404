/**
 * The EventBus and LabelledSampleStore contracts (tests/contracts/) on Kafka:
 * `KafkaBus` and `KafkaSampleStore` against the real broker of
 * `scripts/services/kafka.sh` (KAFKA_BROKERS, default 127.0.0.1:9092). The same
 * suites run on the in-process implementations in `npm test`. Every test uses
 * its own topic prefix; the topics and groups are deleted afterwards.
 */
import { randomBytes } from 'node:crypto';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { afterAll } from 'vitest';
import { KafkaBus, ensureTopics, type KafkaSubscription } from '../../common/bus/kafka.ts';
import { BUS_TOPICS, type Subscription } from '../../common/bus/types.ts';
import { describeError, isRetriable } from '../../common/errors.ts';
import { silentLogger } from '../../common/logging/logger.ts';
import { retry } from '../../common/util/retry.ts';
import { openKafkaSampleStore } from '../../common/samples/kafka-store.ts';
import { CONTRACT_TOPICS, eventBusContract } from '../contracts/event-bus.ts';
import { sampleStoreContract } from '../contracts/sample-store.ts';
import { KAFKA_BROKERS, kafkaAuth } from './helpers/kafka-auth.ts';

const BROKERS = KAFKA_BROKERS;
const RUN = `dl-contract-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
let counter = 0;
const prefix = (test: string): string => `${RUN}.${test}-${++counter}.`;

const admin: Admin = new Kafka({
  clientId: 'driftline-contract-admin',
  brokers: BROKERS,
  ...kafkaAuth(),
  logLevel: logLevel.NOTHING,
  connectionTimeout: 3000,
  retry: { retries: 1 },
}).admin();
let reachable: Promise<void> | undefined;

/** Every test opens through this: an unreachable broker fails each test by name (never a skip). */
function kafkaUp(): Promise<void> {
  reachable ??= (async () => {
    try {
      await admin.connect();
      await admin.describeCluster();
    } catch (err) {
      throw new Error(
        `Kafka is not reachable at ${BROKERS.join(',')}: run scripts/services/kafka.sh start (${describeError(err)})`,
      );
    }
  })();
  return reachable;
}

afterAll(async () => {
  const up = await kafkaUp().then(
    () => true,
    () => false,
  );
  if (!up) return;
  const topics = (await admin.listTopics().catch(() => [] as string[])).filter((t) =>
    t.startsWith(`${RUN}.`),
  );
  if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
  const groups = (await admin.listGroups().catch(() => ({ groups: [] as { groupId: string }[] }))).groups
    .map((g) => g.groupId)
    .filter((g) => g.startsWith(`${RUN}.`));
  if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
  await admin.disconnect();
});

/** Resolves once each group's members share all partitions of its topic. */
async function joined(subscriptions: readonly Subscription[]): Promise<void> {
  const subs = subscriptions as readonly KafkaSubscription[];
  const partitions = new Map<string, number>();
  for (const s of subs) {
    if (partitions.has(s.topic)) continue;
    const meta = await admin.fetchTopicMetadata({ topics: [s.topic] });
    partitions.set(s.topic, meta.topics[0]?.partitions.length ?? 0);
  }
  const deadline = Date.now() + 60_000;
  for (;;) {
    const groups = new Map<string, { topic: string; members: KafkaSubscription[] }>();
    for (const s of subs) {
      const g = groups.get(s.groupId) ?? { topic: s.topic, members: [] };
      g.members.push(s);
      groups.set(s.groupId, g);
    }
    const ready = [...groups.values()].every(({ topic, members }) => {
      const assigned = members.map((m) => m.assignedPartitions());
      const all = new Set(assigned.flat());
      const total = partitions.get(topic) ?? 0;
      const sum = assigned.reduce((n, a) => n + a.length, 0);
      return (
        all.size === total && sum === total && assigned.every((a) => a.length > 0 || total < members.length)
      );
    });
    if (ready) return;
    if (Date.now() > deadline) throw new Error('consumer groups did not get their partitions within 60 s');
    await new Promise((r) => setTimeout(r, 50));
  }
}

eventBusContract(
  'KafkaBus',
  async (test) => {
    await kafkaUp();
    const bus = new KafkaBus({
      brokers: BROKERS,
      ...kafkaAuth(),
      clientId: 'driftline-contract',
      topicPrefix: prefix(test),
      partitions: 3,
      sessionTimeoutMs: 10_000,
      heartbeatIntervalMs: 500,
      maxWaitTimeMs: 200,
      redeliveryDelayMs: 20,
      maxRedeliveries: 5,
    });
    // The suite's topics exist before it runs, as the bus topics do in a deployment. A broker under
    // load may answer "does not host this topic-partition" right after creating a topic: retried.
    const topics = [...CONTRACT_TOPICS, BUS_TOPICS.deadLetter].map((t) => ({
      topic: bus.topicName(t),
      partitions: t === BUS_TOPICS.deadLetter ? 1 : 3,
      retentionMs: 3_600_000,
    }));
    await retry(() => ensureTopics(admin, topics, silentLogger()), {
      attempts: 10,
      initialDelayMs: 200,
      maxDelayMs: 2_000,
      shouldRetry: (err) => isRetriable(err) || (err as { retriable?: unknown }).retriable === true,
    });
    await retry(() => bus.connect(), { attempts: 10, initialDelayMs: 200, maxDelayMs: 2_000 });
    return { bus, joined };
  },
  { timeoutMs: 60_000, quietMs: 1_000 },
);

sampleStoreContract('KafkaSampleStore', async (test) => {
  await kafkaUp();
  const store = await openKafkaSampleStore({
    brokers: BROKERS,
    ...kafkaAuth(),
    clientId: 'driftline-contract',
    topicPrefix: prefix(test),
    partitions: 3,
  });
  return { store };
});
