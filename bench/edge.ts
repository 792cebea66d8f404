import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { InProcessBus } from '../common/bus/in-process.ts';
import { describeError } from '../common/errors.ts';
import { loadArtifact, saveArtifact } from '../common/model/artifact.ts';
import { trainClassifier } from '../common/model/classifier.ts';
import { loadTf } from '../common/model/tf.ts';
import type { LabelledRow, LoadedModel } from '../common/model/types.ts';
import type { Telemetry } from '../common/schema/telemetry.ts';
import { MicroBatcher } from '../edge-inference/src/batcher.ts';
import { predictTelemetry } from '../edge-inference/src/predict.ts';
import { FakeIngest } from '../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker } from '../edge-inference/src/worker.ts';
import { generateStream } from '../common/scenario/generator.ts';
import { defaultScenario } from '../common/scenario/scenario.ts';

/**
 * Edge worker figures (`npm run bench -- edge`): messages per second and
 * enqueue→prediction latency percentiles through the micro-batcher and a real
 * model artifact (a small network trained here on simulator data), per batch
 * size; latency at a paced arrival rate with batches of 64 / 20 ms (the default wait until 6 December; it is 10 ms now);
 * and throughput of the whole worker path (batcher, model, drift detector, label
 * join, accuracy monitor) on an in-memory transport. MQTT is not included: the
 * broker's own figures are in its benchmark.
 */

const BATCH_SIZES = [1, 16, 64, 256] as const;
const SATURATED_MESSAGES = 20_000;
const PACED_RATES = [1_000, 5_000] as const;
const PACED_SECONDS = 2;

function streamOf(n: number, seed: number): { telemetry: Telemetry[]; labelled: LabelledRow[] } {
  const telemetry: Telemetry[] = [];
  const labelled: LabelledRow[] = [];
  for (const s of generateStream(defaultScenario({ machines: 8, profile: 'seed', seed }))) {
    telemetry.push(s.telemetry);
    labelled.push({ row: s.telemetry, label: s.label.efficiency });
    if (telemetry.length >= n) break;
  }
  return { telemetry, labelled };
}

function percentiles(values: number[]): { p50: number; p95: number; p99: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number): number =>
    round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN, 2);
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: round(sorted.at(-1) ?? Number.NaN, 2) };
}

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** Pushes `rows` through a batcher + model; returns messages/s and latency percentiles (ms). */
async function throughBatcher(
  model: LoadedModel,
  rows: readonly Telemetry[],
  batchSize: number,
  maxWaitMs: number,
  ratePerSecond?: number,
): Promise<Record<string, unknown>> {
  const enqueuedAt = new Float64Array(rows.length);
  const latencies: number[] = [];
  let batches = 0;
  const index = new Map<Telemetry, number>();
  rows.forEach((r, i) => index.set(r, i));
  const batcher = new MicroBatcher<Telemetry>({
    maxBatchSize: batchSize,
    maxWaitMs,
    maxQueue: batchSize * 16,
    process: (batch) => {
      predictTelemetry(model, batch, 'bench');
      const now = performance.now();
      batches++;
      for (const t of batch) latencies.push(now - (enqueuedAt[index.get(t) ?? 0] as number));
    },
  });
  const started = performance.now();
  for (let i = 0; i < rows.length; i++) {
    if (ratePerSecond) {
      const due = started + (i * 1000) / ratePerSecond;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    }
    enqueuedAt[i] = performance.now();
    const backpressure = batcher.push(rows[i] as Telemetry);
    if (backpressure) await backpressure;
  }
  await batcher.close();
  const seconds = (performance.now() - started) / 1000;
  return {
    messages: rows.length,
    messagesPerSecond: Math.round(rows.length / seconds),
    batches,
    meanBatch: round(rows.length / batches),
    latencyMs: percentiles(latencies),
  };
}

/** The whole worker on an in-memory transport: batcher, model, drift detector, label join, accuracy monitor. */
async function throughWorker(
  model: LoadedModel,
  rows: readonly Telemetry[],
  labels: readonly LabelledRow[],
): Promise<Record<string, unknown>> {
  const ingest = new FakeIngest();
  const bus = new InProcessBus();
  const worker = createEdgeWorker({
    bus,
    ingest,
    initialModel: model,
    initialModelVersion: 'bench',
    http: false,
    championPollMs: 0,
    batchSize: 64,
    batchMaxWaitMs: 20,
  });
  await worker.start();
  const started = performance.now();
  for (let i = 0; i < rows.length; i++) {
    await ingest.telemetry(rows[i] as Telemetry);
    // labels arrive 500 messages later
    const j = i - 500;
    const lt = rows[j];
    const ll = labels[j];
    if (lt && ll) await ingest.label({ machineId: lt.machineId, seq: lt.seq, efficiency: ll.label });
  }
  const stats = worker.stats();
  // stop() drains the batcher: the time includes the last predictions.
  const ingestDone = performance.now();
  await worker.stop();
  const seconds = (performance.now() - started) / 1000;
  await bus.close();
  return {
    messages: rows.length,
    messagesPerSecond: Math.round(rows.length / seconds),
    drainMs: round(performance.now() - ingestDone),
    predictions: ingest.predictions.length,
    liveAccuracy: stats.liveAccuracy === null ? null : round(stats.liveAccuracy, 3),
    labelJoin: worker.stats().labelJoin,
    alarms: stats.alarms,
  };
}

/** Runs the edge benchmark; see the module comment. */
export async function run(): Promise<Record<string, unknown>> {
  const { tf, backend } = await loadTf();
  const dir = await mkdtemp(path.join(tmpdir(), 'driftline-bench-edge-'));
  let model: LoadedModel;
  try {
    const train = streamOf(4_000, 11);
    const trained = await trainClassifier(tf, train.labelled, { epochs: 5, referenceSize: 2_000, seed: 5 });
    await saveArtifact(path.join(dir, 'model'), trained, { version: 'bench', source: { bench: 'edge' } });
    trained.model.dispose();
    model = await loadArtifact(path.join(dir, 'model'), tf);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    return { backend, available: false, reason: `no real model could be built: ${describeError(err)}` };
  }
  try {
    const { telemetry, labelled } = streamOf(SATURATED_MESSAGES, 12);
    const saturated: Record<string, unknown> = {};
    for (const b of BATCH_SIZES) saturated[`batch${b}`] = await throughBatcher(model, telemetry, b, 20);
    const paced: Record<string, unknown> = {};
    for (const rate of PACED_RATES)
      paced[`${rate}PerSecond`] = await throughBatcher(
        model,
        telemetry.slice(0, rate * PACED_SECONDS),
        64,
        20,
        rate,
      );
    const worker = await throughWorker(model, telemetry, labelled);
    return {
      backend,
      available: true,
      note:
        'saturated: pushed as fast as backpressure allows (latency ' +
        'includes queueing); paced: fixed arrival rate, batch 64 / 20 ms',
      saturated,
      paced,
      worker,
    };
  } finally {
    model.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run(), null, 2));
}
