import { localKafkaPassword } from '../../../common/bus/kafka-security.ts';

/**
 * How the real-server suites log in to Kafka. `scripts/services/kafka.sh`
 * runs SASL/SCRAM-SHA-512 only; the suites use its `admin` super user (they
 * create topics under a per-run prefix) unless KAFKA_SASL_MECHANISM,
 * KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD say otherwise
 * (KAFKA_SASL_MECHANISM=none for a broker without authentication).
 */

type Credentials = { username: string; password: string };
/** kafkajs' SASL options (a union by mechanism), also accepted by Driftline's Kafka options. */
export type KafkaSasl =
  | ({ mechanism: 'plain' } & Credentials)
  | ({ mechanism: 'scram-sha-256' } & Credentials)
  | ({ mechanism: 'scram-sha-512' } & Credentials);

export const KAFKA_BROKERS = (process.env.KAFKA_BROKERS || `127.0.0.1:${process.env.KAFKA_PORT || '9092'}`)
  .split(',')
  .map((s) => s.trim());

/** SASL settings for `user` (default: KAFKA_SASL_USERNAME or admin); undefined with KAFKA_SASL_MECHANISM=none. */
export function kafkaSasl(user?: string): KafkaSasl | undefined {
  const mechanism = (process.env.KAFKA_SASL_MECHANISM || 'scram-sha-512') as KafkaSasl['mechanism'] | 'none';
  if (mechanism === 'none') return undefined;
  const username = user ?? (process.env.KAFKA_SASL_USERNAME || 'admin');
  const password =
    user === undefined && process.env.KAFKA_SASL_PASSWORD
      ? process.env.KAFKA_SASL_PASSWORD
      : localKafkaPassword(username);
  return { mechanism, username, password } as KafkaSasl;
}

/** `{ sasl }` to spread into kafkajs or Driftline Kafka options ({} without SASL). */
export function kafkaAuth(user?: string): { sasl?: KafkaSasl } {
  const sasl = kafkaSasl(user);
  return sasl ? { sasl } : {};
}

/** The KAFKA_SASL_* variables for a Driftline process using `user`. */
export function kafkaAuthEnv(user?: string): Record<string, string> {
  const sasl = kafkaSasl(user);
  return sasl
    ? {
        KAFKA_SASL_MECHANISM: sasl.mechanism,
        KAFKA_SASL_USERNAME: sasl.username,
        KAFKA_SASL_PASSWORD: sasl.password,
      }
    : { KAFKA_SASL_MECHANISM: 'none' };
}
