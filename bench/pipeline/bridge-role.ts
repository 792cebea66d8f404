import { KafkaBridge } from '../../broker/src/kafka-bridge.ts';
import type { KafkaConnectionOptions } from '../../common/bus/kafka.ts';
import { createLogger } from '../../common/logging/logger.ts';
import { selfUsage, serve } from './ipc.ts';

/** One MQTT → Kafka bridge (`npm run bridge`) in its own process. */

export interface BridgeInit {
  mqtt: { url: string; clientId: string; username: string; password: string };
  kafka: KafkaConnectionOptions & { topicPrefix: string };
  partitions: number;
}

let bridge: KafkaBridge | undefined;

serve({
  async start(raw) {
    const init = raw as BridgeInit;
    const logger = createLogger({
      service: 'kafka-bridge',
      level: 'warn',
      format: 'json',
      stream: process.stderr,
    });
    bridge = new KafkaBridge({
      mqtt: init.mqtt,
      kafka: { ...init.kafka, logger },
      partitions: init.partitions,
      retentionMs: 3600_000,
      logger,
    });
    await bridge.start();
    return { topic: bridge.topic };
  },
  stats: () => bridge?.stats(),
  usage: () => selfUsage(),
  async stop() {
    await bridge?.close();
  },
});
