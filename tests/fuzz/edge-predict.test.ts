import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../common/bus/in-process.ts';
import { silentLogger } from '../../common/logging/logger.ts';
import { FEATURES } from '../../common/schema/features.ts';
import { FakeIngest, fakeModel, makeTelemetry } from '../../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker, type EdgeWorker } from '../../edge-inference/src/worker.ts';
import { FUZZ_RUNS, FUZZ_SEED } from './runs.ts';

/**
 * Bad `POST /predict` requests against the edge worker's HTTP server (issue 10, "Bad input"): FUZZ_RUNS
 * generated bodies, methods and query strings. Promised, and asserted: each gets a 4xx with a JSON `error`
 * (never a 2xx, never a 5xx, never a dropped connection); a good request interleaved after every bad one is
 * answered 200 with one prediction per row; the worker stays ready.
 */

const goodRow = (seq: number): Record<string, unknown> => {
  const { machineId, seq: s, ts, operationMode, ...features } = makeTelemetry('m-000', seq);
  return { machineId, seq: s, ts, operationMode, ...features };
};

const notANumber = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.string({ maxLength: 10 }),
  fc.constantFrom('NaN', 'Infinity', '1e999', ''),
  fc.constantFrom(1e308, -1e308),
  fc.array(fc.integer(), { maxLength: 2 }),
  fc.object({ maxDepth: 1, maxKeys: 2 }),
);

/** A row with one field broken: missing, not a number, out of range, unknown mode, or an extra field. */
const badRow: fc.Arbitrary<Record<string, unknown>> = fc
  .tuple(
    fc.nat({ max: 10_000 }),
    fc.constantFrom('operationMode', ...FEATURES),
    fc.nat({ max: 5 }),
    notANumber,
  )
  .map(([seq, field, how, value]) => {
    const row = goodRow(seq);
    if (how === 0) delete row[field];
    else if (how === 1) row.unexpected = value;
    else if (how === 2 && field === 'operationMode') row.operationMode = 'Turbo';
    else if (how === 3) row.seq = -1;
    else row[field] = value;
    return row;
  });

const badBody: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
  badRow.map((r) => JSON.stringify(r)),
  fc
    .tuple(fc.array(fc.nat({ max: 1000 }), { maxLength: 5 }), badRow, fc.nat({ max: 5 }))
    .map(([seqs, bad, at]) => {
      const rows: unknown[] = seqs.map(goodRow);
      rows.splice(Math.min(at, rows.length), 0, bad);
      return JSON.stringify(rows);
    }),
  fc.constantFrom('[]', '{}', 'null', '"row"', '[[]]', '[null]', '{"rows":[]}'),
  fc.nat({ max: 1000 }).map((n) => JSON.stringify(goodRow(n)).slice(0, -2)),
);

const request = fc.record({
  method: fc.constantFrom('POST', 'POST', 'POST', 'PUT', 'GET', 'DELETE', 'PATCH'),
  query: fc.oneof(
    fc.constant(''),
    fc.string({ maxLength: 30 }).map((s) => `?${encodeURIComponent(s)}`),
    fc.constantFrom('?rows=999999', '?%', '?a=1&a=2'),
  ),
  body: badBody,
  contentType: fc.constantFrom('application/json', 'text/plain', '', 'application/x-www-form-urlencoded'),
});

let worker: EdgeWorker;
let base: string;

beforeAll(async () => {
  worker = createEdgeWorker({
    bus: new InProcessBus(),
    ingest: new FakeIngest(),
    logger: silentLogger(),
    initialModel: fakeModel('1'),
    http: { host: '127.0.0.1', port: 0, maxRows: 100 },
    statusIntervalMs: 0,
    drift: false,
    accuracy: false,
  });
  await worker.start();
  base = `http://127.0.0.1:${worker.httpPort}/predict`;
});

afterAll(async () => {
  await worker?.stop();
});

describe(`POST /predict with bad requests (${FUZZ_RUNS} generated)`, () => {
  it('answers each with a 4xx and a JSON error, and every interleaved good request in full', async () => {
    const statuses = new Map<number, number>();
    let good = 0;
    await fc.assert(
      fc.asyncProperty(request, fc.integer({ min: 1, max: 5 }), async (r, k) => {
        const method = r.method === 'GET' && r.body !== '' ? 'POST' : r.method;
        const res = await fetch(`${base}${r.query}`, {
          method,
          ...(method === 'GET' ? {} : { body: r.body }),
          headers: r.contentType ? { 'content-type': r.contentType } : {},
        });
        const text = await res.text();
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        expect(res.status, text).toBeGreaterThanOrEqual(400);
        expect(res.status, text).toBeLessThan(500);
        expect(typeof (JSON.parse(text) as { error?: unknown }).error).toBe('string');

        const ok = await fetch(base, {
          method: 'POST',
          body: JSON.stringify(Array.from({ length: k }, (_, i) => goodRow(i))),
          headers: { 'content-type': 'application/json' },
        });
        expect(ok.status).toBe(200);
        const out = (await ok.json()) as unknown[] | { predictions: unknown[] };
        expect(Array.isArray(out) ? out : out.predictions).toHaveLength(k);
        good++;
      }),
      { numRuns: FUZZ_RUNS, seed: FUZZ_SEED },
    );
    expect(good).toBeGreaterThanOrEqual(FUZZ_RUNS);
    expect(worker.ready()).toBe(true);
    expect([...statuses.keys()].every((s) => s >= 400 && s < 500)).toBe(true);
  }, 600_000);
});
