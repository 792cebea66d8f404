import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { FEATURES } from '../../../common/schema/features.ts';
import { startEdgeHttp, validatePredictRow, type EdgeHttp } from '../../../edge-inference/src/http.ts';
import { ModelHolder } from '../../../edge-inference/src/model-holder.ts';
import { fakeModel, makeTelemetry } from '../../../edge-inference/src/testing/fakes.ts';

function row(seq = 1): Record<string, unknown> {
  const { machineId: _m, seq: _s, ts: _t, ...rest } = makeTelemetry('m1', seq);
  return rest;
}

describe('POST /predict', () => {
  let server: EdgeHttp | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  async function start(
    holder: ModelHolder,
    extra: { maxRows?: number; maxBodyBytes?: number } = {},
  ): Promise<string> {
    server = await startEdgeHttp({
      port: 0,
      registry: new Registry(),
      holder,
      ready: () => ({ ready: holder.current !== undefined }),
      ...extra,
    });
    return `http://127.0.0.1:${server.port}`;
  }

  async function post(
    base: string,
    body: unknown,
  ): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(`${base}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  it('predicts one row', async () => {
    const holder = new ModelHolder();
    holder.swap(fakeModel('bootstrap'), '4');
    const base = await start(holder);
    const r = await post(base, { ...row(), machineId: 'press-1' });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ modelVersion: '4', machineId: 'press-1' });
    expect(['Low', 'Medium', 'High']).toContain(r.json.efficiency);
    expect(Object.keys(r.json.probabilities as object).sort()).toEqual(['High', 'Low', 'Medium']);
  });

  it('predicts many rows in one call, in order', async () => {
    const holder = new ModelHolder();
    const model = fakeModel('2');
    holder.swap(model);
    const base = await start(holder);
    const rows = Array.from({ length: 25 }, (_, i) => row(i));
    const r = await post(base, rows);
    expect(r.status).toBe(200);
    expect(r.json.count).toBe(25);
    expect(r.json.predictions as unknown[]).toHaveLength(25);
    expect(model.calls).toHaveLength(1);
    // a full telemetry message is accepted as is (seq and ts ignored)
    expect((await post(base, makeTelemetry('m1', 3))).status).toBe(200);
  });

  it('answers 400 with the reason and the field for bad rows', async () => {
    const holder = new ModelHolder();
    holder.swap(fakeModel('1'));
    const base = await start(holder);
    const missing = row();
    delete missing.powerKw;
    let r = await post(base, missing);
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ reason: 'missing_field', field: 'powerKw' });
    r = await post(base, [row(1), { ...row(2), temperatureC: 9999 }]);
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ reason: 'out_of_range', field: 'temperatureC', index: 1 });
    r = await post(base, { ...row(), vibrationHz: 'fast' });
    expect(r.json).toMatchObject({ reason: 'invalid_type', field: 'vibrationHz' });
    r = await post(base, { ...row(), operationMode: 'Turbo' });
    expect(r.json).toMatchObject({ reason: 'invalid_value', field: 'operationMode' });
    r = await post(base, { ...row(), temprature: 1 });
    expect(r.json).toMatchObject({ reason: 'unknown_fields', field: 'temprature' });
    r = await post(base, '{nope');
    expect(r).toMatchObject({ status: 400, json: { reason: 'not_json' } });
    r = await post(base, []);
    expect(r).toMatchObject({ status: 400, json: { reason: 'empty' } });
    r = await post(base, 42);
    expect(r).toMatchObject({ status: 400, json: { reason: 'not_object' } });
  });

  it('answers 413 for too many rows or too large a body', async () => {
    const holder = new ModelHolder();
    holder.swap(fakeModel('1'));
    const base = await start(holder, { maxRows: 10, maxBodyBytes: 4096 });
    expect(
      (
        await post(
          base,
          Array.from({ length: 11 }, (_, i) => row(i)),
        )
      ).status,
    ).toBe(413);
    expect((await post(base, { ...row(), machineId: 'x'.repeat(5000) })).status).toBe(413);
  });

  it('answers 503 without a model, and /readyz says not ready', async () => {
    const base = await start(new ModelHolder());
    const r = await post(base, row());
    expect(r).toMatchObject({ status: 503, json: { reason: 'no_model' } });
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    expect((await fetch(`${base}/predict`)).status).toBe(405);
  });

  it('validatePredictRow rejects non-finite numbers', () => {
    const r = validatePredictRow({ ...row(), [FEATURES[0]]: Number.NaN });
    expect(r).toMatchObject({ ok: false, error: { reason: 'non_finite', field: FEATURES[0] } });
  });
});
