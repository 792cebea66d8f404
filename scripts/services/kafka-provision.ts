import { Kafka, logLevel } from 'kafkajs';
import {
  applyKafkaAcls,
  kafkaAclRules,
  localKafkaPassword,
  provisionKafkaTopics,
} from '../../common/bus/kafka-security.ts';
import { silentLogger } from '../../common/logging/logger.ts';

/**
 * Run by `scripts/services/kafka.sh start` once the local broker answers: as
 * the `admin` super user, creates the Driftline topics (so no service needs
 * CREATE) and the per-service ACLs of common/bus/kafka-security.ts for
 * KAFKA_TOPIC_PREFIX (default none). Idempotent.
 *
 *   KAFKA_PORT=9092 node --import tsx scripts/services/kafka-provision.ts
 */
const port = process.env.KAFKA_PORT || '9092';
const prefix = process.env.KAFKA_TOPIC_PREFIX ?? '';
const kafka = new Kafka({
  clientId: 'kafka-sh-provision',
  brokers: [`127.0.0.1:${port}`],
  sasl: { mechanism: 'scram-sha-512', username: 'admin', password: localKafkaPassword('admin') },
  logLevel: logLevel.NOTHING,
  connectionTimeout: 5000,
  retry: { retries: 5 },
});
const admin = kafka.admin();
try {
  await admin.connect();
  const topics = await provisionKafkaTopics(admin, { prefix, logger: silentLogger() });
  const acls = await applyKafkaAcls(admin, kafkaAclRules({ prefix }));
  console.log(
    `kafka-provision: ${topics.length} topics, ${acls} ACL bindings for users edge, retrainer, bridge, dashboard`,
  );
} catch (err) {
  console.error(`kafka-provision: failed: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  await admin.disconnect().catch(() => undefined);
}
