import { bool, int, list, oneOf, optionalStr, str, type ConfigOf } from '../config/env.ts';
import { ConfigError } from '../errors.ts';
import type { Logger } from '../logging/logger.ts';
import { InProcessBus, type InProcessBusOptions } from './in-process.ts';
import { KafkaBus, type KafkaBusOptions, type KafkaConnectionOptions } from './kafka.ts';
import type { EventBus } from './types.ts';

/**
 * Picks the event bus: the Kafka bus when brokers are configured
 * (`KAFKA_BROKERS`), otherwise the embedded in-process bus. Services spread
 * {@link busConfigSpec} into their own config spec and pass the result through
 * {@link busOptionsFromConfig}, so setting `KAFKA_BROKERS` switches every
 * service to Kafka with no code change.
 */

/** Environment fields of the bus; spread into a service's config spec. */
export const busConfigSpec = {
  /** Kafka bootstrap brokers; empty selects the in-process bus. */
  kafkaBrokers: list('KAFKA_BROKERS', {
    description: 'Kafka brokers host:port,…; unset uses the embedded in-process bus',
    pattern: /^[^\s,]+:\d+$/,
    allowed: 'host:port,host:port',
  }),
  /** Kafka client id; unset: a per-service default. */
  kafkaClientId: optionalStr('KAFKA_CLIENT_ID', {
    description: 'Kafka client id (default: driftline-<service>)',
  }),
  /** Partitions of each bus topic the service creates. */
  kafkaTopicPartitions: int('KAFKA_TOPIC_PARTITIONS', {
    description: 'partitions of each Driftline topic created at start-up',
    default: 3,
    min: 1,
    max: 10_000,
  }),
  /** retention.ms of each bus topic the service creates. */
  kafkaRetentionMs: int('KAFKA_RETENTION_MS', {
    description: 'retention.ms of each Driftline topic created at start-up (-1: forever)',
    default: 7 * 24 * 3600 * 1000,
    min: -1,
  }),
  /** Prefix of every topic and consumer group (shared clusters, isolated environments). */
  kafkaTopicPrefix: str('KAFKA_TOPIC_PREFIX', {
    description: 'prefix of every Driftline topic and consumer group',
    default: '',
    pattern: /^[A-Za-z0-9._-]{0,100}$/,
    allowed: "letters, digits, '.', '_' and '-'",
  }),
  /** TLS to the brokers. */
  kafkaSsl: bool('KAFKA_SSL', { description: 'connect to the Kafka brokers over TLS', default: false }),
  /** SASL mechanism; `none` disables SASL. */
  kafkaSaslMechanism: oneOf(
    'KAFKA_SASL_MECHANISM',
    ['none', 'plain', 'scram-sha-256', 'scram-sha-512'] as const,
    {
      description:
        'SASL mechanism for Kafka: scram-sha-512 with the per-service users of docs/kafka-security.md (scripts/services/kafka.sh requires it)',
      default: 'none',
    },
  ),
  /** SASL user. */
  kafkaSaslUsername: optionalStr('KAFKA_SASL_USERNAME', {
    description: 'SASL user name for Kafka: the service’s own user (edge, retrainer, bridge, dashboard)',
  }),
  /** SASL password. */
  kafkaSaslPassword: optionalStr('KAFKA_SASL_PASSWORD', {
    description: 'SASL password for Kafka',
    secret: true,
  }),
};

/** The bus settings a service read from the environment. */
export type BusConfig = ConfigOf<typeof busConfigSpec>;

/** Options of {@link createBus}. */
export interface CreateBusOptions extends Omit<KafkaBusOptions, 'brokers' | 'logger'> {
  /** Kafka brokers; empty or unset: the in-process bus. */
  kafkaBrokers?: readonly string[];
  /** Logger of the bus (and kafkajs). */
  logger?: Logger;
  /** Options of the in-process bus when it is picked. */
  inProcess?: Omit<InProcessBusOptions, 'logger'>;
}

/** The SASL part of a bus config; a mechanism without credentials is a `ConfigError`. */
function saslOf(config: BusConfig): KafkaConnectionOptions['sasl'] {
  if (config.kafkaSaslMechanism === 'none') return undefined;
  if (config.kafkaSaslUsername === undefined || config.kafkaSaslPassword === undefined) {
    throw new ConfigError(
      `Invalid configuration: KAFKA_SASL_MECHANISM=${config.kafkaSaslMechanism} ` +
        `needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD`,
    );
  }
  return {
    mechanism: config.kafkaSaslMechanism,
    username: config.kafkaSaslUsername,
    password: config.kafkaSaslPassword,
  };
}

/** Connection settings (for the bus and the Kafka sample store) from a bus config. */
export function kafkaConnectionFromConfig(
  config: BusConfig,
  defaults: { clientId: string; logger?: Logger },
): KafkaConnectionOptions & { topicPrefix: string } {
  const sasl = saslOf(config);
  return {
    brokers: config.kafkaBrokers,
    clientId: config.kafkaClientId ?? defaults.clientId,
    ssl: config.kafkaSsl,
    ...(sasl ? { sasl } : {}),
    topicPrefix: config.kafkaTopicPrefix,
    ...(defaults.logger ? { logger: defaults.logger } : {}),
  };
}

/** {@link createBus} options from a bus config; `clientId` is the default when KAFKA_CLIENT_ID is unset. */
export function busOptionsFromConfig(
  config: BusConfig,
  defaults: { clientId: string; logger?: Logger },
): CreateBusOptions {
  const { brokers, ...connection } = kafkaConnectionFromConfig(config, defaults);
  return {
    ...connection,
    kafkaBrokers: brokers,
    partitions: config.kafkaTopicPartitions,
    retentionMs: config.kafkaRetentionMs,
  };
}

/** True when `options` select the Kafka bus. */
export function usesKafka(options: { kafkaBrokers?: readonly string[] }): boolean {
  return (options.kafkaBrokers?.length ?? 0) > 0;
}

/**
 * The Kafka bus (connected, topics created) when brokers are given, else the
 * in-process bus. Invalid Kafka settings are a `ConfigError`; an unreachable
 * cluster a `TransportError`.
 */
export async function createBus(options: CreateBusOptions = {}): Promise<EventBus> {
  const { kafkaBrokers, inProcess, logger, ...kafka } = options;
  if (!kafkaBrokers || kafkaBrokers.length === 0)
    return new InProcessBus({ ...(inProcess ?? {}), ...(logger ? { logger } : {}) });
  const bus = new KafkaBus({ ...kafka, brokers: kafkaBrokers, ...(logger ? { logger } : {}) });
  await bus.connect();
  return bus;
}
