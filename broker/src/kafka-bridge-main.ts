import { readFile } from 'node:fs/promises';
import { loadConfig, summarizeConfig } from '../../common/config/env.ts';
import { ConfigError, describeError } from '../../common/errors.ts';
import { Counter, Gauge, Registry } from 'prom-client';
import { startOpsServer } from '../../common/http/ops-server.ts';
import { createServiceLogger } from '../../common/logging/service-logger.ts';
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
  const logger = createServiceLogger({ service: 'kafka-bridge', version: VERSION });
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
  // /healthz, /readyz (MQTT connected) and /metrics for probes and Prometheus; counts read at scrape time.
  const registry = new Registry();
  let last = bridge.stats();
  const forwarded = new Counter({
    name: 'driftline_bridge_forwarded_total',
    help: 'MQTT messages forwarded to Kafka and acknowledged, by kind (telemetry, label)',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      const now = bridge.stats();
      this.inc({ kind: 'telemetry' }, now.forwarded.telemetry - last.forwarded.telemetry);
      this.inc({ kind: 'label' }, now.forwarded.label - last.forwarded.label);
      last = { ...last, forwarded: now.forwarded };
    },
  });
  forwarded.inc({ kind: 'telemetry' }, 0);
  new Gauge({
    name: 'driftline_bridge_connected',
    help: '1 while the bridge is connected to the MQTT broker',
    registers: [registry],
    collect() {
      this.set(bridge.connected ? 1 : 0);
    },
  });
  new Gauge({
    name: 'driftline_bridge_kafka_retries',
    help: 'Kafka sends that failed and were retried since the start',
    registers: [registry],
    collect() {
      this.set(bridge.stats().retries);
    },
  });
  const ops = await startOpsServer({
    port: config.httpPort,
    host: config.httpHost,
    registry,
    health: () => ({ service: 'kafka-bridge', forwarded: bridge.stats().forwarded }),
    ready: () => ({ ready: bridge.connected, detail: { mqttConnected: bridge.connected } }),
  });
  logger.info('kafka bridge ops server listening', { port: ops.port, host: config.httpHost });
  onShutdown(logger, async () => {
    await bridge.close();
    await ops.close();
  });
});
