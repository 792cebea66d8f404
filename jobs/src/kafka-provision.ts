import { int, loadConfig, str, summarizeConfig } from '../../common/config/env.ts';
import { busConfigSpec, kafkaConnectionFromConfig } from '../../common/bus/factory.ts';
import { createKafkaClient } from '../../common/bus/kafka.ts';
import { applyKafkaAcls, kafkaAclRules, provisionKafkaTopics } from '../../common/bus/kafka-security.ts';
import { ConfigError, describeError } from '../../common/errors.ts';
import { createServiceLogger } from '../../common/logging/service-logger.ts';
import { runMain } from '../../common/main.ts';
import { sleep } from '../../common/util/sleep.ts';
import { VERSION } from '../../common/version.ts';
import { flushLogs } from './logs.ts';

/**
 * The cluster's Kafka provisioning (a Kubernetes Job, k8s/base/kafka-provision.yaml): as the `admin`
 * super user (KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD from the vault), creates the Driftline topics
 * and the per-service ACLs of common/bus/kafka-security.ts (docs/kafka-security.md) for the
 * deployment's KAFKA_TOPIC_PREFIX — what `scripts/services/kafka.sh` does for the local broker with
 * scripts/services/kafka-provision.ts. No service user may create topics, so the services start only
 * once this ran. Idempotent: existing topics and bindings are left as they are. Waits for the broker
 * (PROVISION_WAIT_S, default 300 s) before giving up.
 *
 *   node --import tsx jobs/src/kafka-provision.ts
 */
const spec = {
  ...busConfigSpec,
  waitSeconds: int('PROVISION_WAIT_S', {
    description: 'How long the Kafka provisioning job waits for the broker, seconds',
    default: 300,
    min: 1,
    max: 3600,
  }),
  telemetryPartitions: int('BRIDGE_TOPIC_PARTITIONS', {
    description: 'Partitions of driftline.telemetry: the most edge workers that can share the load',
    default: 12,
    min: 1,
    max: 10_000,
  }),
  retrainerClientId: str('RETRAINER_KAFKA_CLIENT_ID', {
    description: "KAFKA_CLIENT_ID of the retrainer (its sample reader's consumer groups start with it)",
    default: 'driftline-retrainer',
  }),
  edgeIngestGroup: str('EDGE_KAFKA_GROUP', {
    description: 'Consumer group of the edge workers',
    default: 'driftline-edge',
  }),
};

runMain(async () => {
  const config = loadConfig(spec);
  if (config.kafkaBrokers.length === 0)
    throw new ConfigError('Invalid configuration: KAFKA_BROKERS is required (host:port,…)');
  const logger = createServiceLogger({ service: 'kafka-provision', version: VERSION });
  logger.info('provisioning Kafka topics and ACLs', { config: summarizeConfig(spec, config) });
  const connection = kafkaConnectionFromConfig(config, { clientId: 'driftline-kafka-provision', logger });
  const admin = createKafkaClient({ ...connection, retries: 2 }).admin();
  const deadline = Date.now() + config.waitSeconds * 1000;
  for (let attempt = 1; ; attempt++) {
    try {
      await admin.connect();
      break;
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`Kafka did not answer within ${config.waitSeconds} s: ${describeError(err)}`);
      logger.info('waiting for Kafka', { attempt, err: describeError(err) });
      await sleep(3000);
    }
  }
  try {
    const prefix = config.kafkaTopicPrefix;
    const topics = await provisionKafkaTopics(admin, {
      prefix,
      partitions: config.kafkaTopicPartitions,
      telemetryPartitions: config.telemetryPartitions,
      retentionMs: config.kafkaRetentionMs,
      logger,
    });
    const rules = kafkaAclRules({
      prefix,
      retrainerClientId: config.retrainerClientId,
      edgeIngestGroup: config.edgeIngestGroup,
    });
    const bindings = await applyKafkaAcls(admin, rules);
    logger.info(`Kafka provisioned: ${topics.length} topics, ${bindings} ACL bindings`, {
      action: 'kafka-provisioned',
      topics,
      bindings,
    });
  } finally {
    await admin.disconnect().catch(() => undefined);
    await flushLogs(logger);
  }
});
