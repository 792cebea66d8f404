import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../common/bus/in-process.ts';
import { BUS_TOPICS } from '../../common/bus/types.ts';
import { parseModelEvent, parseRetrainRequest } from '../../common/events/schemas.ts';
import { openFileSampleStore, type FileSampleStore } from '../../common/samples/file-store.ts';
import type { ChampionRef, RegistryPort } from '../../edge-inference/src/ports.ts';
import { FakeIngest, fakeModel, makeTelemetry } from '../../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker } from '../../edge-inference/src/worker.ts';
import { createRetrainer } from '../../retrainer/src/service.ts';
import {
  FakeTrainer,
  MemoryRegistry,
  loadFakeModel,
  makeRequest,
  makeSamples,
  seedLabel,
} from '../../retrainer/src/testing/fakes.ts';
import { FUZZ_RUNS, FUZZ_SEED } from './runs.ts';

/**
 * Bad retrain requests and model events on the bus (issue 10, "Bad input"), FUZZ_RUNS generated each.
 * Promised, and asserted:
 *
 * - the retrainer refuses every bad request (counted as invalid or wrong-model, dead-lettered by the bus)
 *   and trains the one good request hidden among them exactly once;
 * - the edge worker ignores every bad model event (no registry lookup moves it, no model swap), keeps
 *   predicting interleaved telemetry in full, and still follows a good event afterwards.
 */
const MODEL = 'driftline-efficiency';
const hex = (n: number): string => n.toString(16).padStart(32, '0');

/** A valid value with one field deleted or replaced by something of another type or out of range. */
function broken<T extends Record<string, unknown>>(valid: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc
    .tuple(
      valid,
      fc.nat(),
      fc.oneof(
        fc.constant(undefined),
        fc.constant(null),
        fc.constantFrom(-1, 1.5, 1e308, '', 'x'.repeat(300), true),
        fc.jsonValue({ maxDepth: 1 }),
      ),
    )
    .map(([v, i, value]) => {
      const keys = Object.keys(v);
      const key = keys[i % keys.length] as string;
      const out: Record<string, unknown> = { ...v };
      if (value === undefined) delete out[key];
      else out[key] = value;
      return out;
    });
}

const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.string({ unit: 'binary', maxLength: 100 }),
  fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 5 }),
);

describe(`bad retrain requests (${FUZZ_RUNS} generated)`, () => {
  let dir: string;
  let store: FileSampleStore;
  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'driftline-fuzz-retrain-'));
    store = await openFileSampleStore({ dir: path.join(dir, 'samples') });
    await store.append(makeSamples(1000, { label: (r) => seedLabel(r, 150) }));
  });
  afterAll(async () => {
    await store?.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('refuses each, dead-letters it, and trains the good request among them once', async () => {
    const requestArb = fc
      .nat()
      .map((n) => makeRequest({ requestId: hex(n + 1000) }) as Record<string, unknown>);
    const bad = fc
      .sample(fc.oneof(broken(requestArb), junk), { numRuns: FUZZ_RUNS, seed: FUZZ_SEED })
      .filter((v) => {
        const p = parseRetrainRequest(v);
        return !(p.ok && p.value.modelName === MODEL);
      });
    const bus = new InProcessBus({ redeliveryDelayMs: 1 });
    const registry = new MemoryRegistry();
    await registry.seedChampion(MODEL, { kind: 'oracle' });
    const trainer = new FakeTrainer({ spec: { kind: 'oracle', speedShift: 150 } });
    const retrainer = createRetrainer({
      bus,
      registry,
      store,
      trainer,
      loadModel: loadFakeModel,
      consumeSamples: false,
      config: { stateDir: path.join(dir, 'state'), minSamples: 200, dataRetryMs: 10, timeoutMs: 5000 },
    });
    await retrainer.start();
    const good = makeRequest({ requestId: hex(1) });
    for (const [i, v] of bad.entries()) {
      if (i === Math.floor(bad.length / 2)) await bus.publish(BUS_TOPICS.retrainRequests, MODEL, good);
      await bus.publish(BUS_TOPICS.retrainRequests, MODEL, v as Record<string, unknown>);
    }
    await bus.idle();
    await retrainer.idle();
    const refused = (await retrainer.metrics.registry.getMetricsAsJSON())
      .find((m) => m.name === 'driftline_retrainer_requests_total')
      ?.values.filter((v) => v.labels.result === 'invalid' || v.labels.result === 'wrong-model')
      .reduce((s, v) => s + v.value, 0);
    expect(refused).toBe(bad.length);
    expect(bus.retained(BUS_TOPICS.deadLetter).length).toBe(bad.length);
    expect(trainer.jobs).toHaveLength(1);
    expect(retrainer.record(good.requestId)?.status).toBe('promoted');
    await retrainer.close();
    await bus.close();
    await registry.close();
  }, 600_000);
});

describe(`bad model events (${FUZZ_RUNS} generated)`, () => {
  it('moves nothing, keeps predicting every interleaved message, follows a good event after', async () => {
    const eventArb = fc.nat().map(
      (n) =>
        ({
          type: 'model-promoted',
          modelName: MODEL,
          version: String(n + 2),
          previousVersion: '1',
          metrics: { samples: 10, accuracy: 0.9, macroF1: 0.9 },
          correlationId: `c-${n}`,
          requestId: null,
          reason: 'fuzz',
          at: 1_700_000_000_000,
        }) as Record<string, unknown>,
    );
    const bad = fc
      .sample(fc.oneof(broken(eventArb), junk), { numRuns: FUZZ_RUNS, seed: FUZZ_SEED + 2 })
      .filter((v) => !parseModelEvent(v).ok);
    let lookups = 0;
    const reg: RegistryPort & { champion: string } = {
      champion: '1',
      async getChampion(name: string): Promise<ChampionRef> {
        lookups++;
        return { name, version: reg.champion };
      },
      async fetchArtifact(_name: string, version: string): Promise<string> {
        return `/registry/${version}`;
      },
      async getVersion() {
        return {}; // signatures are not checked here (no modelTrust)
      },
    };
    const bus = new InProcessBus();
    const ingest = new FakeIngest();
    const worker = createEdgeWorker({
      bus,
      ingest,
      modelRegistry: reg,
      loader: async (dir) => fakeModel(path.basename(dir)),
      http: false,
      championPollMs: 0,
      statusIntervalMs: 0,
      drift: false,
      accuracy: false,
      batchMaxWaitMs: 1,
    });
    await worker.start();
    const lookupsAtStart = lookups;
    let seq = 0;
    for (const [i, v] of bad.entries()) {
      await bus.publish(BUS_TOPICS.modelEvents, MODEL, v as Record<string, unknown>);
      if (i % 10 === 0) await ingest.telemetry(makeTelemetry('m-000', seq++));
    }
    await bus.idle();
    const until = Date.now() + 30_000;
    while (ingest.predictions.length < seq && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(worker.holder.version).toBe('1');
    expect(lookups).toBe(lookupsAtStart);
    expect(ingest.predictions.map((p) => p.seq)).toEqual(Array.from({ length: seq }, (_, i) => i));
    expect(worker.ready()).toBe(true);

    reg.champion = '7';
    await bus.publish(BUS_TOPICS.modelEvents, MODEL, {
      type: 'model-promoted',
      modelName: MODEL,
      version: '7',
      previousVersion: '1',
      metrics: { samples: 10, accuracy: 0.9, macroF1: 0.9 },
      correlationId: 'good',
      requestId: null,
      reason: 'fuzz',
      at: 1_700_000_000_000,
    });
    await bus.idle();
    expect(worker.holder.version).toBe('7');
    await worker.stop();
    await bus.close();
  }, 600_000);
});
