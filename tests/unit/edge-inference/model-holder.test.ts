import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { ArtifactError } from '../../../common/errors.ts';
import type { LoadedModel } from '../../../common/model/types.ts';
import { createEdgeMetrics } from '../../../edge-inference/src/metrics.ts';
import { ModelHolder } from '../../../edge-inference/src/model-holder.ts';
import { fakeModel, makeTelemetry } from '../../../edge-inference/src/testing/fakes.ts';

describe('ModelHolder', () => {
  it('a batch keeps the model it started with; the old model is disposed after it', () => {
    const holder = new ModelHolder();
    const v1 = fakeModel('v1');
    const v2 = fakeModel('v2');
    holder.swap(v1);
    const lease = holder.acquire();
    expect(lease?.version).toBe('v1');
    holder.swap(v2);
    // the in-flight batch still predicts with v1, which is not disposed yet
    expect(lease?.model.predict([makeTelemetry('m', 1)])).toHaveLength(1);
    expect(v1.disposed).toBe(false);
    expect(holder.acquire()?.model).toBe(v2);
    lease?.release();
    expect(v1.disposed).toBe(true);
    expect(v2.disposed).toBe(false);
  });

  it('disposes at once when no batch holds the old model', () => {
    const holder = new ModelHolder();
    const v1 = fakeModel('v1');
    holder.swap(v1);
    holder.swap(fakeModel('v2'));
    expect(v1.disposed).toBe(true);
  });

  it('reports the registry version when given one', () => {
    const holder = new ModelHolder();
    holder.swap(fakeModel('bootstrap'), '3');
    expect(holder.version).toBe('3');
    expect(holder.acquire()?.version).toBe('3');
  });

  it('refuses a corrupt artifact, keeps the old model and counts the refusal', async () => {
    const registry = new Registry();
    const metrics = createEdgeMetrics(registry);
    const good = fakeModel('1');
    const holder = new ModelHolder({
      metrics,
      loader: async (dir) => {
        if (dir === '/corrupt') throw new ArtifactError('weights.bin: sha256 mismatch');
        if (dir === '/missing') throw new Error('ENOENT: no such file or directory');
        if (dir === '/wrong-classes') return fakeModel('9', { classes: ['High', 'Medium', 'Low'] });
        return good;
      },
    });
    expect((await holder.load('/good', { version: '1' })).ok).toBe(true);
    const refused = await holder.load('/corrupt', { version: '2' });
    expect(refused).toMatchObject({ ok: false, reason: 'artifact_invalid' });
    expect(holder.version).toBe('1');
    expect(holder.current).toBe(good);
    expect(good.disposed).toBe(false);
    expect(await holder.load('/wrong-classes')).toMatchObject({ ok: false, reason: 'artifact_invalid' });
    expect(await holder.load('/missing')).toMatchObject({ ok: false, reason: 'load_failed' });
    expect(holder.version).toBe('1');
    expect(holder.refusedLoads).toBe(3);
    const text = await registry.metrics();
    expect(text).toContain('driftline_edge_model_loads_refused_total{reason="artifact_invalid"} 2');
    expect(text).toContain('driftline_edge_model_info{name="driftline-efficiency",version="1"} 1');
  });

  it('keeps predicting while a slow load runs, and the later of two loads wins', async () => {
    const resolvers = new Map<string, (m: LoadedModel) => void>();
    const holder = new ModelHolder({ loader: (dir) => new Promise((r) => resolvers.set(dir, r)) });
    holder.swap(fakeModel('1'));
    const a = holder.load('/2', { version: '2' });
    const b = holder.load('/3', { version: '3' });
    // the stream is not paused: the current model serves meanwhile
    expect(holder.acquire()?.version).toBe('1');
    const m3 = fakeModel('3');
    const m2 = fakeModel('2');
    resolvers.get('/3')?.(m3);
    expect((await b).ok).toBe(true);
    resolvers.get('/2')?.(m2);
    expect(await a).toMatchObject({ ok: false, reason: 'superseded' });
    expect(m2.disposed).toBe(true);
    expect(holder.version).toBe('3');
  });

  it('close() waits for in-flight batches, then disposes everything', async () => {
    const holder = new ModelHolder();
    const v1 = fakeModel('1');
    holder.swap(v1);
    const lease = holder.acquire();
    let closed = false;
    const closing = holder.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 5));
    expect(closed).toBe(false);
    lease?.release();
    await closing;
    expect(v1.disposed).toBe(true);
  });
});
