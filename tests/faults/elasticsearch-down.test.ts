import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { Client } from '@elastic/elasticsearch';
import TransportStream from 'winston-transport';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../common/bus/in-process.ts';
import {
  ElasticsearchTransport,
  type ShipperReporter,
} from '../../common/logging/elasticsearch-transport.ts';
import { createLogger } from '../../common/logging/logger.ts';
import { FakeIngest, fakeModel, makeTelemetry } from '../../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker } from '../../edge-inference/src/worker.ts';
import { service, waitFor } from './helpers/services.ts';

/**
 * Fault: Elasticsearch (scripts/services/elasticsearch.sh) is stopped while a service logs through the
 * shipper, then started again.
 *
 * Promise: the service keeps running (every telemetry message is still predicted); log documents wait in a
 * buffer of at most `maxBuffer`; what does not fit is dropped oldest-first and counted
 * (driftline_log_shipper_dropped_total{reason="buffer_full"}); when Elasticsearch is back the buffer is
 * shipped. Nothing is lost silently: every document logged is either in Elasticsearch or counted as dropped.
 */
const PORT = process.env.ELASTICSEARCH_PORT ?? '9200';
const URL = `http://127.0.0.1:${PORT}`;
const RUN = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const PREFIX = `driftline-fault-${RUN}`;
const MAX_BUFFER = 500;

/** Counts every log entry the logger hands its transports (what the shipper received). */
class Counting extends TransportStream {
  n = 0;
  override log(_info: unknown, next: () => void): void {
    this.n++;
    next();
  }
}

let client: Client;
beforeAll(async () => {
  await service('elasticsearch', 'start');
  client = new Client({ node: URL, requestTimeout: 30_000 });
}, 300_000);

afterAll(async () => {
  // Leave the node running for the other suites.
  await service('elasticsearch', 'start');
  await client?.indices
    .delete({ index: `${PREFIX}-*`, ignore_unavailable: true, allow_no_indices: true })
    .catch(() => undefined);
  await client?.indices.deleteIndexTemplate({ name: PREFIX }).catch(() => undefined);
  await client?.close();
}, 300_000);

describe('fault: Elasticsearch stopped while services log', () => {
  it('keeps the service running, buffers logs up to the cap, counts drops, ships the rest when back', async () => {
    const reporterLines: string[] = [];
    const reporter: ShipperReporter = {
      warn: (m) => reporterLines.push(m),
      error: (m) => reporterLines.push(m),
    };
    const shipper = new ElasticsearchTransport({
      service: { name: 'edge-inference', version: 'fault-test' },
      node: URL,
      indexPrefix: PREFIX,
      flushDocs: 50,
      flushMs: 100,
      maxBuffer: MAX_BUFFER,
      // Retry through the outage: what is lost is lost to the cap, counted as buffer_full.
      maxRetries: 1000,
      backoffBaseMs: 100,
      backoffMaxMs: 1000,
      requestTimeoutMs: 2000,
      closeTimeoutMs: 30_000,
      reportIntervalMs: 0,
      template: { replicas: 0 },
      reporter,
    });
    const counting = new Counting();
    const logger = createLogger({
      service: 'edge-inference',
      format: 'json',
      level: 'info',
      stream: new PassThrough(),
      transports: [shipper, counting],
    });
    const idle = (): boolean => shipper.stats().buffered === 0 && shipper.stats().inFlight === 0;

    // Up: shipped as it comes.
    for (let i = 0; i < 100; i++) logger.info('before the outage', { phase: 'before', i });
    await waitFor(() => shipper.stats().shipped >= 100 && idle(), 60_000, '100 documents shipped');

    // Down: the edge worker keeps predicting while its logs pile up.
    await service('elasticsearch', 'stop');
    const ingest = new FakeIngest();
    const worker = createEdgeWorker({
      bus: new InProcessBus(),
      ingest,
      logger,
      initialModel: fakeModel('1'),
      http: false,
      statusIntervalMs: 0,
      drift: false,
      accuracy: false,
      batchMaxWaitMs: 1,
    });
    await worker.start();
    let maxHeld = 0;
    for (let i = 0; i < 3000; i++) {
      logger.info('during the outage', { phase: 'during', i });
      if (i % 10 === 0) await ingest.telemetry(makeTelemetry('m-000', i / 10));
      const s = shipper.stats();
      maxHeld = Math.max(maxHeld, s.buffered + s.inFlight);
    }
    await waitFor(() => ingest.predictions.length === 300, 30_000, '300 predictions during the outage');
    await worker.stop();
    const during = shipper.stats();
    expect(during.dropped.buffer_full).toBeGreaterThan(0);
    expect(maxHeld).toBeLessThanOrEqual(MAX_BUFFER + 50);

    // Back: the buffer drains into Elasticsearch.
    await service('elasticsearch', 'start');
    await shipper.flush();
    await waitFor(idle, 120_000, 'the buffer to drain');
    await shipper.close(30_000);
    const after = shipper.stats();
    await client.indices.refresh({ index: `${PREFIX}-*` });
    const inEs = (await client.count({ index: `${PREFIX}-*` })).count;
    console.log(
      JSON.stringify({
        fault: 'elasticsearch-down',
        logged: counting.n,
        shipped: after.shipped,
        inElasticsearch: inEs,
        dropped: after.dropped,
        maxHeldWhileDown: maxHeld,
        predictionsWhileDown: ingest.predictions.length,
        failedBatches: after.failedBatches,
      }),
    );
    expect(inEs).toBe(after.shipped);
    // Conservation: every document is in Elasticsearch or counted as dropped.
    expect(after.shipped + after.droppedTotal).toBe(counting.n);
    expect(after.droppedTotal).toBe(after.dropped.buffer_full);
    expect(after.shipped).toBeGreaterThanOrEqual(100 + MAX_BUFFER);
  }, 600_000);
});
