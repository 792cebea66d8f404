import { Registry } from 'prom-client';
import { DEFAULT_BOOTSTRAP_DIR, ensureBootstrapArtifact } from '../../common/registry/bootstrap.ts';
import { InProcessBus } from '../../common/bus/in-process.ts';
import { createLogger } from '../../common/logging/logger.ts';
import { loadArtifact } from '../../common/model/artifact.ts';
import { loadTf } from '../../common/model/tf.ts';
import { createEdgeWorker, type EdgeWorker } from '../../edge-inference/src/worker.ts';
import { selfUsage, serve, settledUsage } from './ipc.ts';

/**
 * The edge worker in its own process, as `npm run edge` runs it: MQTT ingest
 * (persistent session, QoS 1), micro-batches, the bootstrap champion on the
 * best tfjs backend, the drift detector and accuracy monitor, predictions
 * published at QoS 1. The bus is in-process (labelled samples and retrain
 * requests stay here); there is no HTTP server.
 */

export interface EdgeInit {
  url: string;
  username: string;
  password: string;
  clientId: string;
}

let worker: EdgeWorker | undefined;
let backend = 'unknown';
const registry = new Registry();

/** Broker connections the worker lost (`driftline_edge_mqtt_disconnects_total`, both roles). */
async function disconnects(): Promise<number> {
  const m = registry.getSingleMetric('driftline_edge_mqtt_disconnects_total');
  if (!m) return 0;
  return (await m.get()).values.reduce((sum, v) => sum + v.value, 0);
}

serve({
  async start(raw) {
    const init = raw as EdgeInit;
    const logger = createLogger({
      service: 'edge-inference',
      level: 'warn',
      format: 'json',
      stream: process.stderr,
    });
    const tf = await loadTf(logger);
    backend = tf.backend;
    const dir = await ensureBootstrapArtifact(DEFAULT_BOOTSTRAP_DIR, logger);
    const model = await loadArtifact(dir, tf.tf);
    worker = createEdgeWorker({
      bus: new InProcessBus(),
      logger,
      metricsRegistry: registry,
      initialModel: model,
      initialModelVersion: '1',
      mqtt: {
        url: init.url,
        clientId: init.clientId,
        username: init.username,
        password: init.password,
        // A/B switch of the benchmark (the edge's own setting, read here because the role builds the worker).
        publishConnection: process.env.EDGE_MQTT_PUBLISH_CONNECTION === 'shared' ? 'shared' : 'separate',
      },
      http: false,
      backend,
      workerId: init.clientId,
      // The edge's batching settings, read here for the same reason (A/B of latency against throughput).
      ...(process.env.EDGE_BATCH_MAX_WAIT_MS
        ? { batchMaxWaitMs: Number(process.env.EDGE_BATCH_MAX_WAIT_MS) }
        : {}),
      ...(process.env.EDGE_BATCH_SIZE ? { batchSize: Number(process.env.EDGE_BATCH_SIZE) } : {}),
    });
    await worker.start();
    return { backend };
  },
  stats: async () => {
    const s = worker?.stats();
    return s === undefined
      ? undefined
      : {
          predictions: s.predictions,
          batches: s.batches,
          queued: s.queued,
          labelJoin: s.labelJoin,
          deadLetters: s.deadLetters,
          disconnects: await disconnects(),
          backend,
        };
  },
  usage: () => selfUsage(),
  settledUsage: () => settledUsage(5_000),
  async stop() {
    await worker?.stop();
  },
});
