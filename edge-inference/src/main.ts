import { readFile } from 'node:fs/promises';
import { Registry, collectDefaultMetrics } from 'prom-client';
import {
  busConfigSpec,
  busOptionsFromConfig,
  createBus,
  kafkaConnectionFromConfig,
  usesKafka,
} from '../../common/bus/factory.ts';
import { loadConfig, summarizeConfig } from '../../common/config/env.ts';
import { ConfigError, describeError } from '../../common/errors.ts';
import { createServiceLogger as createLogger } from '../../common/logging/service-logger.ts';
import { runMain } from '../../common/main.ts';
import { loadArtifact } from '../../common/model/artifact.ts';
import { resolveTrust } from '../../common/model/signature.ts';
import { loadTf } from '../../common/model/tf.ts';
import { createRegistry } from '../../common/registry/factory.ts';
import { onShutdown } from '../../common/util/shutdown.ts';
import { VERSION } from '../../common/version.ts';
import { accuracyConfigOf, driftConfigOf, edgeConfigSpec } from './config.ts';
import { KafkaIngest } from './kafka-ingest.ts';
import { createEdgeWorker } from './worker.ts';

/**
 * `npm run edge`: the edge inference worker as its own process. Loads the
 * champion from the registry (waits, not ready, until there is one), consumes
 * telemetry and labels from the broker, publishes predictions, and asks for
 * retraining when the data drifts. SIGINT/SIGTERM drain and stop it.
 *
 * Bus: with KAFKA_BROKERS set, the Kafka bus: retrain requests and labelled
 * samples go to the cluster, where a retrainer in another process (or on
 * another host) consumes them, and model events come back from it. Without
 * it, the in-process bus: they reach only consumers in this process (`npm
 * start` runs the retrainer alongside). Either way new champions are also
 * picked up by watching the registry (EDGE_CHAMPION_POLL_MS).
 */
const spec = { ...edgeConfigSpec, ...busConfigSpec };

runMain(async () => {
  const config = loadConfig(spec);
  const driftConfig = driftConfigOf(config);
  const accuracyConfig = accuracyConfigOf(config);
  if (config.ingest === 'kafka' && !usesKafka(config))
    throw new ConfigError('Invalid configuration: EDGE_INGEST=kafka needs KAFKA_BROKERS (host:port,…)');
  const logger = createLogger({ service: 'edge-inference', version: VERSION });
  logger.info('starting edge inference worker', { version: VERSION, config: summarizeConfig(spec, config) });

  let ca: Buffer | undefined;
  if (config.mqttCaFile !== undefined) {
    try {
      ca = await readFile(config.mqttCaFile);
    } catch (err) {
      throw new ConfigError(
        `Invalid configuration: EDGE_MQTT_CA_FILE=${JSON.stringify(config.mqttCaFile)} ` +
          `cannot be read: ${describeError(err)}`,
      );
    }
  }
  if (config.mqttPassword === undefined)
    logger.warn(
      'EDGE_MQTT_PASSWORD is not set: the broker will refuse the login unless it allows this user without one',
    );

  // loadTf logs the backend it picked (tensorflow, wasm or cpu).
  const { tf, backend } = await loadTf(logger);

  // Which keys sign models: MODEL_VERIFY_KEYS, or the embedded default key pair under MODEL_KEYS_DIR.
  const modelTrust = await resolveTrust(config.verifyKeys, config.keysDir);
  logger.info(`model signatures: accepting key ${modelTrust.keyIds.join(', ')}`, {
    keyIds: modelTrust.keyIds,
    ...(config.verifyKeys.length === 0 ? { keysDir: config.keysDir } : {}),
  });

  const metricsRegistry = new Registry();
  collectDefaultMetrics({ register: metricsRegistry });
  const modelRegistry = createRegistry({
    registryDir: config.registryDir,
    // '' selects the directory registry: the config already read MLFLOW_TRACKING_URI.
    mlflowTrackingUri: config.mlflowTrackingUri ?? '',
    logger,
  });
  logger.info(`model registry: ${modelRegistry.kind}`, {
    registry: modelRegistry.kind,
    model: config.modelName,
  });
  const bus = await createBus(busOptionsFromConfig(config, { clientId: config.clientId, logger }));
  logger.info(`event bus: ${bus.kind}`, { bus: bus.kind });
  if (!usesKafka(config))
    logger.info(
      'in-process bus: retrain requests and labelled samples reach only ' +
        'this process (set KAFKA_BROKERS to reach a separate retrainer)',
    );

  const mqtt = {
    url: config.mqttUrl,
    clientId: config.clientId,
    username: config.mqttUsername,
    ...(config.mqttPassword !== undefined ? { password: config.mqttPassword } : {}),
    ...(ca !== undefined ? { ca } : {}),
  };
  // EDGE_INGEST=kafka: telemetry from driftline.telemetry (npm run bridge) in the shared consumer group;
  // predictions still go out over MQTT.
  const ingest =
    config.ingest === 'kafka'
      ? new KafkaIngest({
          kafka: kafkaConnectionFromConfig(config, { clientId: `driftline-edge-${config.clientId}`, logger }),
          group: config.kafkaGroup,
          mqtt,
          logger,
        })
      : undefined;
  logger.info(`ingest: ${config.ingest}`, {
    ingest: config.ingest,
    ...(ingest ? { topic: ingest.topic, groupId: ingest.groupId } : {}),
  });

  const worker = createEdgeWorker({
    bus,
    logger,
    metricsRegistry,
    modelRegistry,
    modelName: config.modelName,
    loader: (dir) => loadArtifact(dir, tf),
    modelTrust,
    mqtt: { ...mqtt, publishConnection: config.publishConnection },
    ...(ingest ? { ingest } : {}),
    batchSize: config.batchSize,
    batchMaxWaitMs: config.batchMaxWaitMs,
    ...(config.maxQueue > 0 ? { maxQueue: Math.max(config.maxQueue, config.batchSize) } : {}),
    championPollMs: config.championPollMs,
    driftConfig,
    accuracyConfig,
    ...(config.accuracyCusum === 'off' ? { accuracyCusumConfig: false as const } : {}),
    ...(config.dataQuality === 'off' ? { dataQualityConfig: false as const } : {}),
    episodeTtlSamples: config.episodeTtlSamples,
    conceptReRequests: config.conceptReRequests,
    labelJoinMaxPending: config.labelJoinMaxPending,
    labelJoinMaxEarly: config.labelJoinMaxEarly,
    labelJoinEarlyMaxAgeMs: config.labelJoinEarlyMaxAgeMs,
    dedupWindow: config.dedupWindow,
    outboxMaxSamples: config.outboxMaxSamples,
    stopGraceMs: config.stopGraceMs,
    http: { host: config.httpHost, port: config.httpPort, maxRows: config.predictMaxRows },
    busGroup: `edge-${config.clientId}`,
    workerId: config.clientId,
    backend,
    statusIntervalMs: config.statusIntervalMs,
  });

  onShutdown(logger, async () => {
    await worker.stop();
    await bus.close();
    await modelRegistry.close();
  });
  await worker.start();
});
