import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../../common/bus/in-process.ts';
import { BUS_TOPICS } from '../../../common/bus/types.ts';
import { createSigner, createTrust, generateSigningKey } from '../../../common/model/signature.ts';
import type { LoadedModel } from '../../../common/model/types.ts';
import { DirectoryRegistry } from '../../../common/registry/directory.ts';
import { signRegisteredVersion } from '../../../common/registry/sign-version.ts';
import { FakeIngest, fakeModel, makeTelemetry } from '../../../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker, type EdgeWorker } from '../../../edge-inference/src/worker.ts';
import { makeFakeArtifact } from '../../helpers/dashboard/stack.ts';

/**
 * Promise (issue 10, replay of an older signed artifact): someone with registry access re-registers an older,
 * legitimately signed artifact as a NEW version and moves the `champion` alias to it. The edge refuses it —
 * the registry-version signature it carries was made for the original version (`version_mismatch`); one
 * edited to name the new version does not verify (`signature_invalid`); a version with no version signature
 * is refused (`version_unsigned`) — each counted in `driftline_edge_model_loads_refused_total`, and the
 * champion keeps serving. A rollback to the ORIGINAL version (the alias moved back) is followed.
 */
const MODEL = 'driftline-efficiency';
const key = createSigner(generateSigningKey());
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const promoted = (version: string): Record<string, unknown> => ({
  type: 'model-promoted',
  modelName: MODEL,
  version,
  previousVersion: '1',
  metrics: { samples: 10, accuracy: 0.99, macroF1: 0.99 },
  correlationId: `promote-${version}`,
  requestId: null,
  reason: 'test',
  at: Date.now(),
});

/** A model per registry version: the loader names it after the version directory. */
const loader = async (dir: string): Promise<LoadedModel> => fakeModel(path.basename(path.dirname(dir)));

describe('edge worker: an older signed artifact registered again', () => {
  it('refuses replayed, edited and version-unsigned versions; follows a rollback to the original', async () => {
    const tmp = await mkdtemp(path.join(os.tmpdir(), 'driftline-replay-'));
    const registry = new DirectoryRegistry({ root: path.join(tmp, 'registry') });
    cleanups.push(
      () => rm(tmp, { recursive: true, force: true }),
      () => registry.close(),
    );
    /** Trains nothing: a fake artifact, signed by the retrainer's key, registered (and version-signed). */
    const register = async (seed: number, versionSigned: boolean): Promise<string> => {
      const dir = await makeFakeArtifact(path.join(tmp, `artifact-${seed}`), seed);
      await key.signArtifact(dir);
      const v = await registry.registerVersion(MODEL, dir, { correlationId: `c${seed}`, metrics: {} });
      if (versionSigned) await signRegisteredVersion(registry, key, v, dir);
      return v.version;
    };
    const bus = new InProcessBus();
    const ingest = new FakeIngest();
    const worker: EdgeWorker = createEdgeWorker({
      bus,
      ingest,
      http: false,
      championPollMs: 0,
      batchMaxWaitMs: 1,
      statusIntervalMs: 0,
      modelName: MODEL,
      modelRegistry: registry,
      loader,
      modelTrust: createTrust([key.publicKey]),
    });
    cleanups.push(() => worker.stop());
    const move = async (version: string): Promise<void> => {
      await registry.setChampion(MODEL, version, { by: 'someone', reason: 'test' });
      await bus.publish(BUS_TOPICS.modelEvents, MODEL, promoted(version));
      await bus.idle();
    };

    expect(await register(1, true)).toBe('1');
    await registry.setChampion(MODEL, '1', { by: 'bootstrap', reason: 'first' });
    await worker.start();
    expect(await register(2, true)).toBe('2');
    await move('2');
    expect(worker.holder.version).toBe('2');

    // The replay: v1's artifact registered again as v3, v1's version signature copied along.
    const v1 = await registry.getVersion(MODEL, '1');
    const v3 = await registry.registerVersion(MODEL, await registry.fetchArtifact(MODEL, '1'), {
      correlationId: 'replay',
      metrics: {},
    });
    expect(v3.checksum).toBe(v1?.checksum);
    await registry.setVersionSignature(MODEL, v3.version, v1?.versionSignature ?? '');
    await move('3');
    expect(worker.holder.version).toBe('2');
    // The same, with the copied signature edited to name version 4.
    const v4 = await registry.registerVersion(MODEL, await registry.fetchArtifact(MODEL, '1'), {
      correlationId: 'replay-edited',
      metrics: {},
    });
    const edited = { ...(JSON.parse(v1?.versionSignature ?? '{}') as object), version: v4.version };
    await registry.setVersionSignature(MODEL, v4.version, JSON.stringify(edited));
    await move('4');
    // A model whose metadata this key signed, promoted without a version signature.
    expect(await register(5, false)).toBe('5');
    await move('5');
    expect(worker.holder.version).toBe('2');
    await ingest.telemetry(makeTelemetry('m1', 1));
    await new Promise((r) => setTimeout(r, 30));
    expect(ingest.predictions.map((p) => p.modelVersion)).toEqual(['2']);
    const metrics = await worker.metrics.registry.metrics();
    expect(metrics).toContain('driftline_edge_model_loads_refused_total{reason="version_mismatch"} 1');
    expect(metrics).toContain('driftline_edge_model_loads_refused_total{reason="signature_invalid"} 1');
    expect(metrics).toContain('driftline_edge_model_loads_refused_total{reason="version_unsigned"} 1');

    // A legitimate rollback: the alias back to the original v1, which carries its own signature.
    await move('1');
    expect(worker.holder.version).toBe('1');
    await ingest.telemetry(makeTelemetry('m1', 2));
    await new Promise((r) => setTimeout(r, 30));
    expect(ingest.predictions.map((p) => p.modelVersion)).toEqual(['2', '1']);
  });
});
