import { Registry, collectDefaultMetrics } from 'prom-client';
import { InProcessBus } from '../../common/bus/in-process.ts';
import { loadConfig, summarizeConfig } from '../../common/config/env.ts';
import { ConfigError } from '../../common/errors.ts';
import { startOpsServer } from '../../common/http/ops-server.ts';
import { createLogger } from '../../common/logging/logger.ts';
import { runMain } from '../../common/main.ts';
import { loadTf } from '../../common/model/tf.ts';
import { createRegistry } from '../../common/registry/factory.ts';
import { openFileSampleStore } from '../../common/samples/file-store.ts';
import { onShutdown } from '../../common/util/shutdown.ts';
import { VERSION } from '../../common/version.ts';
import { retrainerConfigSpec } from './config.ts';
import { RetrainerMetrics } from './metrics.ts';
import { createRetrainer } from './retrainer.ts';

/**
 * `npm run retrainer`: the retrainer as its own process. Consumes retrain
 * requests and labelled samples from the bus, trains challengers in a worker
 * thread, promotes better ones in the registry and publishes model events.
 * Serves /healthz, /readyz and /metrics on RETRAINER_HTTP_PORT (default 9103).
 * SIGINT/SIGTERM: stop consuming, let the running training finish or time
 * out, close.
 *
 * Bus: this build has only the in-process bus, so a standalone retrainer
 * hears only what this process publishes — `npm start` runs it next to the
 * edge worker. KAFKA_BROKERS is refused until the Kafka bus exists rather
 * than silently ignored.
 */
runMain(async () => {
  const config = loadConfig(retrainerConfigSpec);
  if (config.kafkaBrokers.length > 0) {
    throw new ConfigError(`Invalid configuration: KAFKA_BROKERS=${JSON.stringify(config.kafkaBrokers.join(','))} is set, but this build has no Kafka bus yet; unset it to use the in-process bus`);
  }
  const logger = createLogger({ service: 'retrainer', version: VERSION });
  logger.info('starting retrainer', { version: VERSION, config: summarizeConfig(retrainerConfigSpec, config) });

  const { tf, backend } = await loadTf(logger);
  const promRegistry = new Registry();
  collectDefaultMetrics({ register: promRegistry });
  const metrics = new RetrainerMetrics(promRegistry);

  const registry = createRegistry({
    registryDir: config.registryDir,
    // '' selects the directory registry: the config already read MLFLOW_TRACKING_URI.
    mlflowTrackingUri: config.mlflowTrackingUri ?? '',
    logger,
  });
  const store = await openFileSampleStore({ dir: config.samplesDir, maxSamples: config.samplesMax, logger });
  const bus = new InProcessBus({ logger });
  logger.info('retrainer wiring', { registry: registry.kind, store: store.kind, bus: bus.kind, backend, model: config.modelName });
  logger.warn('standalone retrainer on the in-process bus: it receives only what this process publishes (run `npm start` for the whole loop)');

  const retrainer = createRetrainer({ bus, registry, store, logger, config, tf, metrics });
  let ready = false;
  const ops = await startOpsServer({
    port: config.httpPort,
    host: config.httpHost,
    registry: promRegistry,
    health: () => ({ service: 'retrainer', version: VERSION, ...retrainer.status() }),
    ready: () => {
      const s = retrainer.status();
      return { ready: ready && s.started && !s.closing, detail: { trainer: s.trainer, lanes: s.lanes } };
    },
  });
  logger.info(`ops server on http://${config.httpHost}:${ops.port}`, { port: ops.port });

  // Allow the running training its full time limit, plus time to register and publish.
  onShutdown(
    logger,
    async () => {
      ready = false;
      await retrainer.close();
      await ops.close();
      await store.close();
      await registry.close();
      await bus.close();
    },
    config.timeoutMs + 15_000,
  );
  await retrainer.start();
  ready = true;
  logger.info('retrainer started', { model: config.modelName, stats: await store.stats() });
});
