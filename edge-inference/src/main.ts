import { readFile } from 'node:fs/promises';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { InProcessBus } from '../../common/bus/in-process.ts';
import { loadConfig, summarizeConfig } from '../../common/config/env.ts';
import { ConfigError, describeError } from '../../common/errors.ts';
import { createLogger } from '../../common/logging/logger.ts';
import { runMain } from '../../common/main.ts';
import { loadArtifact } from '../../common/model/artifact.ts';
import { loadTf } from '../../common/model/tf.ts';
import { createRegistry } from '../../common/registry/factory.ts';
import { onShutdown } from '../../common/util/shutdown.ts';
import { VERSION } from '../../common/version.ts';
import { accuracyConfigOf, driftConfigOf, edgeConfigSpec } from './config.ts';
import { createEdgeWorker } from './worker.ts';

/**
 * `npm run edge`: the edge inference worker as its own process. Loads the
 * champion from the registry (waits, not ready, until there is one), consumes
 * telemetry and labels from the broker, publishes predictions, and asks for
 * retraining when the data drifts. SIGINT/SIGTERM drain and stop it.
 *
 * Bus: this process uses the in-process bus, so its retrain requests and
 * labelled samples reach only consumers in this process (`npm start` runs the
 * retrainer alongside); new champions are still picked up across processes by
 * watching the registry (EDGE_CHAMPION_POLL_MS).
 */
runMain(async () => {
  const config = loadConfig(edgeConfigSpec);
  const driftConfig = driftConfigOf(config);
  const accuracyConfig = accuracyConfigOf(config);
  const logger = createLogger({ service: 'edge-inference', version: VERSION });
  logger.info('starting edge inference worker', { version: VERSION, config: summarizeConfig(edgeConfigSpec, config) });

  let ca: Buffer | undefined;
  if (config.mqttCaFile !== undefined) {
    try {
      ca = await readFile(config.mqttCaFile);
    } catch (err) {
      throw new ConfigError(`Invalid configuration: EDGE_MQTT_CA_FILE=${JSON.stringify(config.mqttCaFile)} cannot be read: ${describeError(err)}`);
    }
  }
  if (config.mqttPassword === undefined) logger.warn('EDGE_MQTT_PASSWORD is not set: the broker will refuse the login unless it allows this user without one');

  // loadTf logs the backend it picked (tensorflow, wasm or cpu).
  const { tf } = await loadTf(logger);

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const modelRegistry = createRegistry({
    registryDir: config.registryDir,
    // '' selects the directory registry: the config already read MLFLOW_TRACKING_URI.
    mlflowTrackingUri: config.mlflowTrackingUri ?? '',
    logger,
  });
  logger.info(`model registry: ${modelRegistry.kind}`, { registry: modelRegistry.kind, model: config.modelName });
  const bus = new InProcessBus({ logger });

  const worker = createEdgeWorker({
    bus,
    logger,
    registry,
    modelRegistry,
    modelName: config.modelName,
    loader: (dir) => loadArtifact(dir, tf),
    mqtt: {
      url: config.mqttUrl,
      clientId: config.clientId,
      username: config.mqttUsername,
      ...(config.mqttPassword !== undefined ? { password: config.mqttPassword } : {}),
      ...(ca !== undefined ? { ca } : {}),
    },
    batchSize: config.batchSize,
    batchMaxWaitMs: config.batchMaxWaitMs,
    ...(config.maxQueue > 0 ? { maxQueue: Math.max(config.maxQueue, config.batchSize) } : {}),
    championPollMs: config.championPollMs,
    driftConfig,
    accuracyConfig,
    episodeTtlSamples: config.episodeTtlSamples,
    labelJoinMaxPending: config.labelJoinMaxPending,
    http: { host: config.httpHost, port: config.httpPort, maxRows: config.predictMaxRows },
    busGroup: `edge-${config.clientId}`,
  });

  onShutdown(logger, async () => {
    await worker.stop();
    await bus.close();
    await modelRegistry.close();
  });
  await worker.start();
});
