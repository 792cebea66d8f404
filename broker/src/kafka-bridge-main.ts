import { readFile } from 'node:fs/promises';
import { loadConfig, summarizeConfig } from '../../common/config/env.ts';
import { ConfigError, describeError } from '../../common/errors.ts';
import { createLogger } from '../../common/logging/logger.ts';
import { runMain } from '../../common/main.ts';
import { onShutdown } from '../../common/util/shutdown.ts';
import { VERSION } from '../../common/version.ts';
import { bridgeConfigSpec, bridgeOptionsFromConfig, startKafkaBridge } from './kafka-bridge.ts';

/**
 * `npm run bridge`: forwards MQTT telemetry and labels to the Kafka topic
 * `driftline.telemetry` (keyed by machine id) for edge workers running with
 * EDGE_INGEST=kafka as one consumer group. Needs KAFKA_BROKERS.
 */
runMain(async () => {
  const config = loadConfig(bridgeConfigSpec);
  if (config.kafkaBrokers.length === 0)
    throw new ConfigError(
      'Invalid configuration: KAFKA_BROKERS is required (host:port,…): the bridge forwards MQTT to Kafka',
    );
  const logger = createLogger({ service: 'kafka-bridge', version: VERSION });
  logger.info('starting kafka bridge', {
    version: VERSION,
    config: summarizeConfig(bridgeConfigSpec, config),
  });
  let ca: Buffer | undefined;
  if (config.mqttCaFile !== undefined) {
    try {
      ca = await readFile(config.mqttCaFile);
    } catch (err) {
      throw new ConfigError(
        `Invalid configuration: BRIDGE_MQTT_CA_FILE=${JSON.stringify(config.mqttCaFile)} cannot be read: ${describeError(err)}`,
      );
    }
  }
  if (config.mqttPassword === undefined)
    logger.warn(
      'BRIDGE_MQTT_PASSWORD is not set: the broker will refuse the login unless it allows this user without one',
    );
  const bridge = await startKafkaBridge(bridgeOptionsFromConfig(config, { logger, ...(ca ? { ca } : {}) }));
  onShutdown(logger, () => bridge.close());
});
