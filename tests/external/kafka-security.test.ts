import { randomBytes } from 'node:crypto';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  applyKafkaAcls,
  deleteKafkaAcls,
  KAFKA_SERVICE_USERS,
  kafkaAclRules,
  provisionKafkaTopics,
  TELEMETRY_TOPIC,
  type KafkaServiceUser,
} from '../../common/bus/kafka-security.ts';
import { KafkaBus } from '../../common/bus/kafka.ts';
import { BUS_TOPICS, type BusMessage } from '../../common/bus/types.ts';
import { silentLogger } from '../../common/logging/logger.ts';
import { openKafkaSampleStore } from '../../common/samples/kafka-store.ts';
import { makeSamples } from '../../retrainer/src/testing/fakes.ts';
import { BRIDGE_TOPIC } from '../../broker/src/kafka-bridge.ts';
import { EDGE_KAFKA_TOPIC } from '../../edge-inference/src/kafka-ingest.ts';
import { KAFKA_BROKERS, kafkaAuth, kafkaSasl } from './helpers/kafka-auth.ts';

/**
 * Issue 10: Kafka listened PLAINTEXT without authentication, so anything that
 * reached it bypassed the MQTT ACL and could inject telemetry, labelled samples
 * (poisoning the holdout the promotion gate scores on) or retrain requests.
 * `scripts/services/kafka.sh` now runs SASL/SCRAM-SHA-512 with one user per
 * service and the ACLs of common/bus/kafka-security.ts (docs/kafka-security.md).
 * This suite applies the ACL matrix for a fresh topic prefix and checks it
 * against the real broker: refused without credentials, refused with a wrong
 * password, every (user, topic) write allowed or refused as the matrix says,
 * the reads that matter, and the services working end to end with their users.
 */

const RUN = `dl-sec-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}.`;
const TOPICS = {
  telemetry: `${RUN}${TELEMETRY_TOPIC}`,
  retrain: `${RUN}${BUS_TOPICS.retrainRequests}`,
  events: `${RUN}${BUS_TOPICS.modelEvents}`,
  samples: `${RUN}${BUS_TOPICS.labelledSamples}`,
  dead: `${RUN}${BUS_TOPICS.deadLetter}`,
};
const RULES = kafkaAclRules({ prefix: RUN });

/** Who may write where: derived from the matrix, spelled out here as the promise under test. */
const MAY_WRITE: Record<KafkaServiceUser, (keyof typeof TOPICS)[]> = {
  bridge: ['telemetry'],
  edge: ['retrain', 'samples', 'dead'],
  retrainer: ['events', 'dead'],
  dashboard: ['events', 'dead'],
};

let admin: Admin;

function client(user: KafkaServiceUser | null, password?: string): Kafka {
  const sasl = user === null ? undefined : kafkaSasl(user);
  return new Kafka({
    clientId: `sec-test-${user ?? 'anonymous'}`,
    brokers: KAFKA_BROKERS,
    ...(sasl === undefined ? {} : { sasl: password === undefined ? sasl : { ...sasl, password } }),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    retry: { retries: 0 },
  });
}

async function highWatermark(topic: string): Promise<number> {
  const offsets = await admin.fetchTopicOffsets(topic);
  return offsets.reduce((sum, o) => sum + Number(o.high), 0);
}

/** The Kafka error code of a refusal (kafkajs wraps it in KafkaJSNonRetriableError / retries errors). */
function refusal(err: unknown): string {
  let e = err as { type?: string; name?: string; cause?: unknown; originalError?: unknown } | undefined;
  const first = e?.name ?? 'error';
  for (let depth = 0; e !== undefined && depth < 5; depth++) {
    if (e.type) return e.type;
    if (e.name === 'KafkaJSSASLAuthenticationError') return e.name;
    e = (e.cause ?? e.originalError) as typeof e;
  }
  return first;
}

/** One produce attempt: 'ok' or the refusal's name/type. */
async function tryWrite(kafka: Kafka, topic: string): Promise<string> {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  try {
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: [{ key: 'k', value: '{"injected":true}' }] });
    return 'ok';
  } catch (err) {
    return refusal(err);
  } finally {
    await producer.disconnect().catch(() => undefined);
  }
}

/** One consume attempt from the beginning: 'read' when a message arrives, else the refusal. */
async function tryRead(user: KafkaServiceUser, topic: string, group: string): Promise<string> {
  const consumer = client(user).consumer({ groupId: group, retry: { retries: 0 }, maxWaitTimeInMs: 200 });
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    return await new Promise<string>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), 20_000);
      consumer.on(consumer.events.CRASH, (e) => {
        clearTimeout(timer);
        resolve(refusal(e.payload.error));
      });
      consumer
        .run({
          eachMessage: async () => {
            clearTimeout(timer);
            resolve('read');
          },
        })
        .catch((err: unknown) => {
          clearTimeout(timer);
          resolve(refusal(err));
        });
    });
  } catch (err) {
    return refusal(err);
  } finally {
    await consumer.disconnect().catch(() => undefined);
  }
}

beforeAll(async () => {
  admin = new Kafka({
    clientId: 'sec-test-admin',
    brokers: KAFKA_BROKERS,
    ...kafkaAuth('admin'),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    retry: { retries: 2 },
  }).admin();
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(
      `Kafka is not reachable as admin at ${KAFKA_BROKERS.join(',')}: run scripts/services/kafka.sh start (${String(err)})`,
    );
  }
  await provisionKafkaTopics(admin, { prefix: RUN, logger: silentLogger() });
  await applyKafkaAcls(admin, RULES);
  // Give the authorizer a moment to see the new bindings (they travel through the metadata log).
  await new Promise((r) => setTimeout(r, 1000));
});

afterAll(async () => {
  if (!admin) return;
  await deleteKafkaAcls(admin, RULES).catch(() => undefined);
  await admin.deleteTopics({ topics: Object.values(TOPICS) }).catch(() => undefined);
  const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(RUN));
  if (groups.length) await admin.deleteGroups(groups).catch(() => undefined);
  await admin.disconnect();
});

describe('Kafka authentication', () => {
  it('refuses a producer without credentials, and nothing is written', async () => {
    const before = await highWatermark(TOPICS.telemetry);
    const outcome = await tryWrite(client(null), TOPICS.telemetry);
    expect(outcome).not.toBe('ok');
    expect(await highWatermark(TOPICS.telemetry)).toBe(before);
  });

  it('refuses a service user with a wrong password (SASL authentication failed)', async () => {
    expect(await tryWrite(client('bridge', 'not-the-password'), TOPICS.telemetry)).toBe(
      'KafkaJSSASLAuthenticationError',
    );
  });
});

describe('Kafka ACLs', () => {
  it('the bridge and the edge agree on the telemetry topic the ACLs name', () => {
    expect(BRIDGE_TOPIC).toBe(TELEMETRY_TOPIC);
    expect(EDGE_KAFKA_TOPIC).toBe(TELEMETRY_TOPIC);
  });

  it('lets each service user write exactly the topics the matrix allows (20 attempts)', async () => {
    const before = Object.fromEntries(
      await Promise.all(Object.entries(TOPICS).map(async ([k, t]) => [k, await highWatermark(t)] as const)),
    );
    const outcomes: Record<string, string> = {};
    for (const user of KAFKA_SERVICE_USERS) {
      const kafka = client(user);
      for (const [name, topic] of Object.entries(TOPICS))
        outcomes[`${user} → ${name}`] = await tryWrite(kafka, topic);
    }
    const expected: Record<string, string> = {};
    for (const user of KAFKA_SERVICE_USERS)
      for (const name of Object.keys(TOPICS))
        expected[`${user} → ${name}`] = MAY_WRITE[user].includes(name as keyof typeof TOPICS)
          ? 'ok'
          : 'TOPIC_AUTHORIZATION_FAILED';
    expect(outcomes).toEqual(expected);
    // Exactly the allowed writes landed.
    for (const [name, topic] of Object.entries(TOPICS)) {
      const writers = KAFKA_SERVICE_USERS.filter((u) => MAY_WRITE[u].includes(name as keyof typeof TOPICS));
      expect(await highWatermark(topic)).toBe((before[name] as number) + writers.length);
    }
  });

  it('refuses the reads no service needs: samples to the edge and dashboard, anything to the bridge', async () => {
    expect(await tryRead('edge', TOPICS.samples, `${RUN}edge-reader`)).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await tryRead('dashboard', TOPICS.samples, `${RUN}dashboard`)).toBe('TOPIC_AUTHORIZATION_FAILED');
    expect(await tryRead('bridge', TOPICS.telemetry, `${RUN}bridge`)).not.toBe('read');
    // A consumer group outside the service's own is refused even on a readable topic.
    // (FindCoordinator answers GROUP_AUTHORIZATION_FAILED; kafkajs reports it as "coordinator not found".)
    expect(await tryRead('retrainer', TOPICS.retrain, `${RUN}someone-else`)).toMatch(
      /GROUP_AUTHORIZATION_FAILED|KafkaJSGroupCoordinatorNotFound/,
    );
    // …and its own group reads.
    expect(await tryRead('retrainer', TOPICS.retrain, `${RUN}retrainer`)).toBe('read');
    expect(await tryRead('edge', TOPICS.telemetry, `${RUN}driftline-edge`)).toBe('read');
  });

  it('lets the services run the loop with their own users (edge → retrainer → edge and dashboard)', async () => {
    const bus = (user: KafkaServiceUser): KafkaBus =>
      new KafkaBus({
        brokers: KAFKA_BROKERS,
        ...kafkaAuth(user),
        clientId: `driftline-${user}`,
        topicPrefix: RUN,
        logger: silentLogger(),
        maxWaitTimeMs: 200,
        heartbeatIntervalMs: 500,
        sessionTimeoutMs: 10_000,
      });
    const edge = bus('edge');
    const retrainer = bus('retrainer');
    const dashboard = bus('dashboard');
    const got: Record<string, BusMessage[]> = { retrainer: [], edge: [], dashboard: [] };
    const id = randomBytes(4).toString('hex');
    try {
      await retrainer.subscribe(BUS_TOPICS.retrainRequests, { group: 'retrainer' }, async (m) => {
        got.retrainer!.push(m);
      });
      await edge.subscribe(BUS_TOPICS.modelEvents, { group: 'edge-worker-1' }, async (m) => {
        got.edge!.push(m);
      });
      await dashboard.subscribe(BUS_TOPICS.modelEvents, { group: 'dashboard' }, async (m) => {
        got.dashboard!.push(m);
      });
      await edge.publish(BUS_TOPICS.retrainRequests, 'm', { id, kind: 'retrain-request' });
      await edge.publish(BUS_TOPICS.labelledSamples, 'm1', { samples: [] });
      await retrainer.publish(BUS_TOPICS.modelEvents, 'm', { id, kind: 'model-promoted' });
      const deadline = Date.now() + 60_000;
      const has = (k: string): boolean => got[k]!.some((m) => (m.value as { id?: string }).id === id);
      while (!(has('retrainer') && has('edge') && has('dashboard'))) {
        if (Date.now() > deadline) throw new Error(`not delivered: ${JSON.stringify(got)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      // The retrainer's sample store reads the labelled samples (throw-away group, deleted after).
      const store = await openKafkaSampleStore({
        brokers: KAFKA_BROKERS,
        ...kafkaAuth('retrainer'),
        clientId: 'driftline-retrainer',
        topicPrefix: RUN,
        logger: silentLogger(),
      });
      try {
        const writer = await openKafkaSampleStore({
          brokers: KAFKA_BROKERS,
          ...kafkaAuth('edge'),
          clientId: 'driftline-edge',
          topicPrefix: RUN,
          logger: silentLogger(),
        });
        await writer.append(makeSamples(5, { startTs: Date.now() - 1000, seed: 3 }));
        await writer.close();
        expect((await store.readWindow()).length).toBeGreaterThanOrEqual(5);
      } finally {
        await store.close();
      }
    } finally {
      await Promise.all([edge.close(), retrainer.close(), dashboard.close()]);
    }
  });
});
