import type { MqttClient } from 'mqtt';
import { TransportError } from '../../common/errors.ts';

/**
 * Publishes `body` as JSON; resolves when the broker acknowledged it (QoS 1) or
 * it was written (QoS 0). Failures, and a missing client, are retriable
 * TransportErrors. Shared by the MQTT and the Kafka ingest (both publish predictions over MQTT).
 */
export function publishJson(
  client: MqttClient | undefined,
  topic: string,
  body: unknown,
  qos: 0 | 1 = 1,
): Promise<void> {
  if (!client) return Promise.reject(new TransportError('not connected'));
  return new Promise<void>((resolve, reject) => {
    client.publish(topic, JSON.stringify(body), { qos, retain: false }, (err) =>
      err
        ? reject(new TransportError(`publish to ${topic} failed: ${err.message}`, { cause: err }))
        : resolve(),
    );
  });
}
