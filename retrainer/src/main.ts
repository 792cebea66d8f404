import { Registry, collectDefaultMetrics } from 'prom-client';
import {
  busConfigSpec,
  busOptionsFromConfig,
  createBus,
  kafkaConnectionFromConfig,
  usesKafka,
} from '../../common/bus/factory.ts';
import { loadConfig, summarizeConfig } from '../../common/config/env.ts';
import { describeError } from '../../common/errors.ts';
import { startOpsServer } from '../../common/http/ops-server.ts';
import { createServiceLogger as createLogger } from '../../common/logging/service-logger.ts';
import { runMain } from '../../common/main.ts';
import { loadTf } from '../../common/model/tf.ts';
import { createRegistry } from '../../common/registry/factory.ts';
import { createSampleStore } from '../../common/samples/factory.ts';
import { onShutdown } from '../../common/util/shutdown.ts';
import { VERSION } from '../../common/version.ts';
import { retrainerConfigSpec } from './config.ts';
import { RetrainerMetrics } from './metrics.ts';
import { mlflowTrackingFor } from './mlflow-tracking.ts';
import { createRetrainer } from './service.ts';

/**
 * `npm run retrainer`: the retrainer as its own process. Consumes retrain
 * requests and labelled samples from the bus, trains challengers in a worker
 * thread, promotes better ones in the registry and publishes model events.
 * Serves /healthz, /readyz and /metrics on RETRAINER_HTTP_PORT (default 9103).
 * SIGINT/SIGTERM: stop consuming, let the running training finish or time
 * out, close.
 *
 * Bus and samples: with KAFKA_BROKERS set, the Kafka bus (retrain requests
 * from every edge worker, consumer group `retrainer`; an offset is committed
 * once the request is durably queued in the request ledger) and the Kafka
 * sample store: a retrain reads its window straight from the
 * `driftline.labelled-samples` topic, so no sample sink runs. Without it, the
 * in-process bus and the file store fed by the sample sink — a standalone
 * retrainer then hears only what this process publishes (`npm start` runs it
 * next to the edge worker).
 */
const spec = { ...retrainerConfigSpec, ...busConfigSpec };

runMain(async () => {
  const config = loadConfig(spec);
  const logger = createLogger({ service: 'retrainer', version: VERSION });
  logger.info('starting retrainer', { version: VERSION, config: summarizeConfig(spec, config) });
  const kafka = usesKafka(config);

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
  const clientId = 'driftline-retrainer';
  const { brokers: _brokers, topicPrefix, ...connection } = kafkaConnectionFromConfig(config, { clientId });
  const store = await createSampleStore({
    kafkaBrokers: config.kafkaBrokers,
    dir: config.samplesDir,
    maxSamples: config.samplesMax,
    logger,
    ...connection,
    kafka: { topicPrefix, partitions: config.kafkaTopicPartitions, retentionMs: config.kafkaRetentionMs },
  });
  const bus = await createBus(busOptionsFromConfig(config, { clientId, logger }));
  logger.info('retrainer wiring', {
    registry: registry.kind,
    store: store.kind,
    bus: bus.kind,
    backend,
    model: config.modelName,
  });
  if (!kafka)
    logger.warn(
      'standalone retrainer on the in-process bus: it receives only what this ' +
        'process publishes (set KAFKA_BROKERS, or run `npm start` for the whole loop)',
    );

  // On Kafka the store is the labelled-samples topic itself: no sink copies it anywhere.
  // Experiment tracking goes with the registry: MLflow runs for the MLflow registry, none otherwise.
  const retrainer = createRetrainer({
    bus,
    registry,
    store,
    tracking: mlflowTrackingFor(registry, logger),
    logger,
    config,
    tf,
    metrics,
    consumeSamples: !kafka,
  });
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
  logger.info('retrainer started', { model: config.modelName });
  // Reading the stats may scan the whole store (Kafka): log them when ready, without holding up the start.
  store.stats().then(
    (stats) => logger.info('labelled-sample store', { store: store.kind, stats }),
    (err: unknown) =>
      logger.warn('could not read the sample store stats', { store: store.kind, err: describeError(err) }),
  );
});
