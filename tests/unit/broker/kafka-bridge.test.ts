import { describe, expect, it } from 'vitest';
import { canPublish, canSubscribe } from '../../../broker/src/acl.ts';
import {
  BRIDGE_TOPIC,
  bridgeConfigSpec,
  bridgeOptionsFromConfig,
  bridgeRecord,
} from '../../../broker/src/kafka-bridge.ts';
import { loadConfig } from '../../../common/config/env.ts';
import { EDGE_KAFKA_TOPIC, decodeBridgedRecord } from '../../../edge-inference/src/kafka-ingest.ts';

describe('kafka bridge record', () => {
  it('keys telemetry and labels by the machine id of their topic and keeps the payload text', () => {
    const r = bridgeRecord('factory/m-007/telemetry', Buffer.from('{"seq":1}'), 123);
    expect(r).toEqual({
      key: 'm-007',
      value: { kind: 'telemetry', topic: 'factory/m-007/telemetry', payload: '{"seq":1}', receivedAt: 123 },
    });
    expect(bridgeRecord('factory/m-007/label', 'not json', 5)?.value.kind).toBe('label');
    // Not validated: the edge dead-letters it.
    expect(bridgeRecord('factory/m-007/label', 'not json', 5)?.value.payload).toBe('not json');
  });

  it('drops topics that are not factory/<id>/telemetry|label', () => {
    expect(bridgeRecord('factory/m-1/prediction', '{}')).toBeUndefined();
    expect(bridgeRecord('driftline/x', '{}')).toBeUndefined();
    expect(bridgeRecord('factory/a/b/telemetry', '{}')).toBeUndefined();
  });

  it('writes what the edge Kafka ingest reads (same topic, same record shape)', () => {
    expect(EDGE_KAFKA_TOPIC).toBe(BRIDGE_TOPIC);
    const r = bridgeRecord('factory/m-1/telemetry', '{"a":1}', 9);
    const decoded = decodeBridgedRecord(Buffer.from(JSON.stringify(r?.value)));
    expect(decoded).toEqual({ ok: true, record: r?.value });
    expect(decodeBridgedRecord(Buffer.from('nope')).ok).toBe(false);
    expect(decodeBridgedRecord(Buffer.from('{"kind":"other","topic":"t","payload":"p"}')).ok).toBe(false);
    expect(decodeBridgedRecord(null).ok).toBe(false);
  });
});

describe('bridge role', () => {
  const bridge = { username: 'bridge', role: 'bridge' as const };
  it('subscribes to telemetry and labels and publishes nothing', () => {
    expect(canSubscribe(bridge, 'factory/+/telemetry').allowed).toBe(true);
    expect(canSubscribe(bridge, 'factory/+/label').allowed).toBe(true);
    expect(canSubscribe(bridge, 'factory/#').allowed).toBe(false);
    expect(canSubscribe(bridge, 'driftline/#').allowed).toBe(false);
    expect(canPublish(bridge, 'factory/m-1/prediction').allowed).toBe(false);
    expect(canPublish(bridge, 'factory/m-1/telemetry').allowed).toBe(false);
  });
});

describe('bridge config', () => {
  it('reads MQTT, client id, partitions and the KAFKA_* fields', () => {
    const config = loadConfig(bridgeConfigSpec, {
      KAFKA_BROKERS: '127.0.0.1:9092',
      BRIDGE_MQTT_PASSWORD: 's3cret',
      KAFKA_TOPIC_PREFIX: 'dev-',
    });
    const o = bridgeOptionsFromConfig(config);
    expect(o.mqtt).toMatchObject({
      url: 'mqtt://127.0.0.1:1883',
      clientId: 'driftline-kafka-bridge',
      username: 'bridge',
      password: 's3cret',
    });
    expect(o.kafka).toMatchObject({ brokers: ['127.0.0.1:9092'], topicPrefix: 'dev-' });
    expect(o.partitions).toBe(12);
    expect(() => loadConfig(bridgeConfigSpec, { BRIDGE_CLIENT_ID: 'bad id' })).toThrow(/BRIDGE_CLIENT_ID/);
  });
});
