import fc from 'fast-check';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InProcessBus } from '../../common/bus/in-process.ts';
import { BUS_TOPICS } from '../../common/bus/types.ts';
import { silentLogger } from '../../common/logging/logger.ts';
import { connectMqtt } from '../../common/mqtt/connect.ts';
import { FEATURES } from '../../common/schema/features.ts';
import { MAX_PAYLOAD_BYTES, TOPICS, type Prediction } from '../../common/schema/telemetry.ts';
import { fakeModel, makeTelemetry, ruleLabel } from '../../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker, type EdgeWorker } from '../../edge-inference/src/worker.ts';
import { startTestBroker, USERS, type TestBroker } from '../integration/broker/helpers.ts';
import { FUZZ_RUNS, FUZZ_SEED } from './runs.ts';

/**
 * Bad telemetry and label payloads through the real path (issue 10, "Bad input"): a device (`m1`) and the
 * inspection station publish FUZZ_RUNS generated bad payloads each at QoS 1 to the aedes broker; the edge
 * worker (real MQTT ingest) reads them while good telemetry and labels of machine `m2` are interleaved.
 * Promised, and asserted:
 *
 * - every bad payload gets exactly one dead-letter record with a reason (counted in
 *   driftline_dead_letters_total), none is predicted or joined;
 * - every good telemetry message is predicted exactly once and every good label becomes one labelled sample;
 * - the worker stays up and ready.
 *
 * Bad by construction: arbitrary bytes and JSON values, and valid messages with one field broken (missing,
 * wrong type, out of range, NaN/Infinity spelled as strings, unknown mode or class, another machine's id).
 */

const BAD_MACHINE = 'm1';
const GOOD_MACHINE = 'm2';
const isBig = (s: string): boolean => Buffer.byteLength(s) > MAX_PAYLOAD_BYTES - 64;

/** A valid telemetry object of m1 with one field broken. */
const brokenTelemetry: fc.Arbitrary<string> = fc
  .tuple(
    fc.nat({ max: 1_000_000 }),
    fc.constantFrom('machineId', 'seq', 'ts', 'operationMode', ...FEATURES),
    fc.oneof(
      fc.constant(undefined),
      fc.constant(null),
      fc.constantFrom('NaN', 'Infinity', '-1', '', '1e400', 'true'),
      fc.constantFrom(-1, 1.5, -1e9, 1e300, Number.MAX_SAFE_INTEGER + 2),
      fc.string({ maxLength: 20 }),
      fc.array(fc.integer(), { maxLength: 3 }),
      fc.object({ maxDepth: 1, maxKeys: 3 }),
    ),
  )
  .map(([seq, key, value]) => {
    const t: Record<string, unknown> = { ...makeTelemetry(BAD_MACHINE, seq) };
    if (value === undefined) delete t[key];
    else t[key] = value;
    return JSON.stringify(t);
  })
  // A few replacements are still valid (e.g. a number in range for a feature): keep only broken ones.
  .filter((s) => {
    const t = JSON.parse(s) as Record<string, unknown>;
    if (t.machineId !== BAD_MACHINE) return true;
    if (!Number.isInteger(t.seq) || (t.seq as number) < 0 || (t.seq as number) > Number.MAX_SAFE_INTEGER)
      return true;
    if (!Number.isInteger(t.ts) || (t.ts as number) < 0 || (t.ts as number) > 8.64e15) return true;
    if (typeof t.operationMode !== 'string' || !['Idle', 'Active', 'Maintenance'].includes(t.operationMode))
      return true;
    return FEATURES.some((f) => typeof t[f] !== 'number');
  });

const badTelemetryPayload: fc.Arbitrary<string> = fc
  .oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.json({ maxDepth: 3 }),
    fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
    brokenTelemetry,
    fc.nat().map((seq) => JSON.stringify({ ...makeTelemetry('m9', seq) })), // another machine's id
    fc.nat().map((seq) => JSON.stringify(makeTelemetry(BAD_MACHINE, seq)).slice(0, -1)), // truncated
    fc.nat().map((seq) => `${JSON.stringify(makeTelemetry(BAD_MACHINE, seq))}x`),
  )
  .filter((s) => !isBig(s) && !(s.startsWith('{"machineId":"m1"') && isValidTelemetryOfM1(s)));

/** The one oracle a generator could hit by chance: a well-formed telemetry of m1 (excluded above). */
function isValidTelemetryOfM1(s: string): boolean {
  try {
    const t = JSON.parse(s) as Record<string, unknown>;
    return (
      t.machineId === BAD_MACHINE &&
      Number.isInteger(t.seq) &&
      FEATURES.every((f) => typeof t[f] === 'number' && Number.isFinite(t[f]))
    );
  } catch {
    return false;
  }
}

const badLabelPayload: fc.Arbitrary<string> = fc
  .oneof(
    fc.string({ unit: 'binary', maxLength: 100 }),
    fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
    fc
      .record({
        machineId: fc.constantFrom(BAD_MACHINE, 'm9', '', 'm1/x'),
        seq: fc.oneof(fc.constantFrom(-1, 0.5, 'x', null), fc.nat()),
        efficiency: fc.oneof(
          fc.constantFrom('low', 'HIGH', '', null, 3),
          fc.constantFrom('Low', 'Medium', 'High'),
        ),
      })
      .map((r) => JSON.stringify(r)),
  )
  .filter((s) => {
    if (isBig(s)) return false;
    try {
      const l = JSON.parse(s) as Record<string, unknown>;
      const validSeq = Number.isInteger(l.seq) && (l.seq as number) >= 0;
      const validClass = ['Low', 'Medium', 'High'].includes(l.efficiency as string);
      return !(l.machineId === BAD_MACHINE && validSeq && validClass && Object.keys(l).length === 3);
    } catch {
      return true;
    }
  });

let t: TestBroker;
let worker: EdgeWorker;
let bus: InProcessBus;
const clients: MqttClient[] = [];
const predictions: Prediction[] = [];

beforeAll(async () => {
  t = await startTestBroker();
  bus = new InProcessBus();
  worker = createEdgeWorker({
    bus,
    logger: silentLogger(),
    mqtt: { url: `mqtt://127.0.0.1:${t.broker.port}`, clientId: 'fuzz-edge-payloads', ...USERS.edge },
    initialModel: fakeModel('1'),
    http: false,
    statusIntervalMs: 0,
    accuracy: false,
    drift: false,
    batchMaxWaitMs: 2,
    sampleBatchMaxWaitMs: 5,
  });
  await worker.start();
  const watcher = await connectMqtt({
    url: `mqtt://127.0.0.1:${t.broker.port}`,
    clientId: 'fuzz-watch',
    ...USERS.admin,
  });
  clients.push(watcher);
  await watcher.subscribeAsync({ [TOPICS.predictionWildcard]: { qos: 1 } });
  watcher.on('message', (_topic, payload) => predictions.push(JSON.parse(payload.toString()) as Prediction));
}, 30_000);

afterAll(async () => {
  for (const c of clients) await c.endAsync(true).catch(() => undefined);
  await worker?.stop();
  await bus?.close();
  await t?.close();
});

async function client(user: { username: string; password: string }, id: string): Promise<MqttClient> {
  const c = await connectMqtt({ url: `mqtt://127.0.0.1:${t.broker.port}`, clientId: id, ...user });
  clients.push(c);
  return c;
}

async function deadLetters(): Promise<number> {
  const m = (await worker.metrics.registry.getMetricsAsJSON()).find(
    (x) => x.name === 'driftline_dead_letters_total',
  );
  return (m?.values ?? []).reduce((s, v) => s + v.value, 0);
}

describe(`bad telemetry and label payloads (${FUZZ_RUNS} generated each)`, () => {
  it('dead-letters every bad payload once, predicts and joins all interleaved good traffic, stays up', async () => {
    const badTelemetry = fc.sample(badTelemetryPayload, { numRuns: FUZZ_RUNS, seed: FUZZ_SEED });
    const badLabels = fc.sample(badLabelPayload, { numRuns: FUZZ_RUNS, seed: FUZZ_SEED + 1 });
    const m1 = await client(USERS.device, 'fuzz-m1');
    const m2 = await client(USERS.device2, 'fuzz-m2');
    const inspection = await client(USERS.inspection, 'fuzz-inspection');
    const goodEvery = 10;
    let good = 0;
    for (let i = 0; i < FUZZ_RUNS; i++) {
      await Promise.all([
        m1.publishAsync(TOPICS.telemetry(BAD_MACHINE), badTelemetry[i] ?? '', { qos: 1 }),
        inspection.publishAsync(TOPICS.label(BAD_MACHINE), badLabels[i] ?? '', { qos: 1 }),
      ]);
      if (i % goodEvery === 0) {
        const tel = makeTelemetry(GOOD_MACHINE, good);
        await m2.publishAsync(TOPICS.telemetry(GOOD_MACHINE), JSON.stringify(tel), { qos: 1 });
        await inspection.publishAsync(
          TOPICS.label(GOOD_MACHINE),
          JSON.stringify({ machineId: GOOD_MACHINE, seq: good, efficiency: ruleLabel(tel) }),
          { qos: 1 },
        );
        good++;
      }
    }
    const expectedDead = 2 * FUZZ_RUNS;
    const until = Date.now() + 60_000;
    while (
      ((await deadLetters()) < expectedDead ||
        predictions.filter((p) => p.machineId === GOOD_MACHINE).length < good) &&
      Date.now() < until
    )
      await new Promise((r) => setTimeout(r, 50));
    const samples = (): { machineId: string }[] =>
      bus
        .retained(BUS_TOPICS.labelledSamples)
        .flatMap((m) => (m.value as { samples: { machineId: string }[] }).samples);
    while (samples().length < good && Date.now() < until) await new Promise((r) => setTimeout(r, 50));

    expect(await deadLetters()).toBe(expectedDead);
    expect(predictions.filter((p) => p.machineId !== GOOD_MACHINE)).toEqual([]);
    const seqs = predictions.map((p) => p.seq);
    expect(seqs).toHaveLength(good);
    expect(new Set(seqs).size).toBe(good);
    expect(samples().filter((s) => s.machineId === GOOD_MACHINE)).toHaveLength(good);
    expect(samples().filter((s) => s.machineId !== GOOD_MACHINE)).toEqual([]);
    expect(worker.ready()).toBe(true);
  }, 600_000);
});
