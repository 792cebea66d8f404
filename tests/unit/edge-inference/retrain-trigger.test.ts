import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../common/logging/logger.ts';
import { InProcessBus } from '../../../common/bus/in-process.ts';
import { BUS_TOPICS } from '../../../common/bus/types.ts';
import { parseRetrainRequest, type RetrainRequest } from '../../../common/events/schemas.ts';
import type { LoadedModel } from '../../../common/model/types.ts';
import {
  STATUS_TOPICS,
  driftAlarmMessageSchema,
  referenceUpdatedMessageSchema,
  dataQualityMessageSchema,
  type DataQualityMessage,
  type DriftAlarmMessage,
  type ReferenceUpdatedMessage,
} from '../../../common/schema/status.ts';
import type { ChampionRef, RegistryPort } from '../../../edge-inference/src/ports.ts';
import { SeedStream, seedReference } from '../../../common/drift/synthetic.ts';
import { labelledSampleSchema } from '../../../common/samples/types.ts';
import { FEATURES } from '../../../common/schema/features.ts';
import {
  FakeIngest,
  fakeModel,
  makeTelemetry,
  ruleLabel,
} from '../../../edge-inference/src/testing/fakes.ts';
import { createEdgeWorker, type EdgeWorker } from '../../../edge-inference/src/worker.ts';

const workers: EdgeWorker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.stop()));
});

/** Multi-scale detector on the fake model's 200-row reference: one scale of 100 every 50. */
const DRIFT = {
  detector: 'multiscale',
  scales: [{ windowSize: 100, hop: 50, share: 1 }],
  falseAlarmsPerSample: 1e-6,
  cooldownSamples: 200,
  adoptionSize: 200,
  settleSamples: 300,
} as const;

const registry: RegistryPort = {
  async getChampion(name: string): Promise<ChampionRef | undefined> {
    return { name, version: '1' };
  },
  async fetchArtifact(_name: string, version: string): Promise<string> {
    return `/registry/${version}`;
  },
  async getVersion() {
    return {}; // signatures are not checked here (no modelTrust)
  },
};

async function setup(
  logger?: ReturnType<typeof createLogger>,
): Promise<{ worker: EdgeWorker; ingest: FakeIngest; bus: InProcessBus }> {
  const bus = new InProcessBus();
  const ingest = new FakeIngest();
  const worker = createEdgeWorker({
    ...(logger ? { logger } : {}),
    http: false,
    championPollMs: 0,
    ingest,
    bus,
    modelRegistry: registry,
    loader: async (dir): Promise<LoadedModel> => fakeModel(dir.split('/').pop() as string),
    batchSize: 50,
    batchMaxWaitMs: 1,
    driftConfig: DRIFT,
    driftWindowMinIntervalMs: 60_000,
  });
  workers.push(worker);
  await worker.start();
  return { worker, ingest, bus };
}

/** Rows seq from..to-1 of machine m1, temperature raised by `shift` °C (and vibration by `vibration` Hz). */
async function feed(
  ingest: FakeIngest,
  from: number,
  to: number,
  shift: number,
  vibration = 0,
): Promise<void> {
  for (let seq = from; seq < to; seq++) {
    const t = makeTelemetry('m1', seq);
    await ingest.telemetry({
      ...t,
      temperatureC: t.temperatureC + shift,
      vibrationHz: t.vibrationHz + vibration,
    });
  }
  await new Promise((r) => setTimeout(r, 20));
}

function alarms(ingest: FakeIngest): DriftAlarmMessage[] {
  return ingest.status
    .filter((s) => s.topic === STATUS_TOPICS.alarm)
    .map((s) => driftAlarmMessageSchema.parse(s.body));
}

function referenceUpdates(ingest: FakeIngest): ReferenceUpdatedMessage[] {
  return ingest.status
    .filter((s) => s.topic === STATUS_TOPICS.referenceUpdated)
    .map((s) => referenceUpdatedMessageSchema.parse(s.body));
}

function requests(bus: InProcessBus): RetrainRequest[] {
  return bus.retained(BUS_TOPICS.retrainRequests).flatMap((m) => {
    const r = parseRetrainRequest(m.value);
    return r.ok ? [r.value] : [];
  });
}

function rejected(request: RetrainRequest, championAccuracy: number): Record<string, unknown> {
  return {
    type: 'model-rejected',
    modelName: request.modelName,
    correlationId: request.correlationId,
    requestId: request.requestId,
    reason: 'challenger did not beat the champion',
    at: Date.now(),
    version: '2',
    championVersion: '1',
    metrics: { samples: 500, accuracy: 0.88, macroF1: 0.88 },
    championMetrics: { samples: 500, accuracy: championAccuracy, macroF1: championAccuracy },
  };
}

/**
 * +30 °C from sample 300 (the alarm at 399 asks for a retrain), then the retrainer rejects its challenger
 * with the champion at `championAccuracy`; returns the request.
 */
async function shiftThenReject(
  ingest: FakeIngest,
  bus: InProcessBus,
  championAccuracy: number,
): Promise<RetrainRequest | undefined> {
  await feed(ingest, 0, 300, 0);
  await feed(ingest, 300, 600, 30);
  const [request] = requests(bus);
  await bus.publish(
    BUS_TOPICS.modelEvents,
    'driftline-efficiency',
    rejected(request as RetrainRequest, championAccuracy),
  );
  await bus.idle();
  return request;
}

describe('retrain trigger: a covariate shift the champion handles ends (issue 13, part 3)', () => {
  it('adopts the shift after a rejected challenger whose champion kept its accuracy, then finds a second shift', async () => {
    const { worker, ingest, bus } = await setup();
    await feed(ingest, 0, 300, 0);
    await feed(ingest, 300, 600, 30);
    // +30 °C from sample 300: alarm at 399 (the request), again at 599 after the cooldown.
    expect(alarms(ingest).map((a) => [a.at.sampleIndex, a.requestId !== undefined])).toEqual([
      [399, true],
      [599, false],
    ]);
    const [request] = requests(bus);
    expect(request?.kind).toBe('covariate');
    await bus.publish(
      BUS_TOPICS.modelEvents,
      'driftline-efficiency',
      rejected(request as RetrainRequest, 0.9),
    );
    await bus.idle();
    expect(worker.stats().adoption).toEqual({ shiftsAccepted: 1, referenceUpdates: 0 });

    await feed(ingest, 600, 2_000, 30);
    // The 200 rows after the last alarm become the reference: one reference-updated, with its evidence.
    const [update, ...more] = referenceUpdates(ingest);
    expect(more).toHaveLength(0);
    expect(update).toMatchObject({
      type: 'reference-updated',
      reason: 'accepted',
      groupKey: 'all',
      modelVersion: '1',
      correlationId: request?.correlationId,
      requestId: request?.requestId,
      championAccuracy: 0.9,
      samples: 200,
      at: { sampleIndex: 799 },
      from: { sampleIndex: 600 },
      to: { sampleIndex: 799 },
    });
    expect(update?.features[0]?.feature).toBe('temperatureC');
    expect(update?.features[0]?.pvalue).toBeLessThan(1e-6);
    expect((update?.features[0]?.new.mean ?? 0) - (update?.features[0]?.old.mean ?? 0)).toBeCloseTo(30, 0);
    // 0 further alarms in the rest of the shifted phase (1,400 samples, 7 cooldowns).
    expect(alarms(ingest)).toHaveLength(2);
    expect(worker.stats().adoption).toEqual({ shiftsAccepted: 1, referenceUpdates: 1 });

    // A second shift (another +60 °C from sample 2,000) is a new episode against the adopted reference.
    await feed(ingest, 2_000, 2_600, 90);
    const later = alarms(ingest).slice(2);
    expect(later.map((a) => [a.at.sampleIndex, a.requestId !== undefined])).toEqual([
      [2_049, true],
      [2_249, false],
      [2_449, false],
    ]);
    expect(requests(bus)).toHaveLength(2);
    expect(requests(bus)[1]?.features.map((f) => f.feature)).toContain('temperatureC');
  });

  it('logs why settling ended: a change on another feature while settling is a new change, and alarms', async () => {
    const out = new PassThrough();
    const lines: Record<string, unknown>[] = [];
    out.on('data', (d: Buffer) => {
      for (const l of d.toString().split('\n'))
        if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
    });
    const logger = createLogger({ service: 'edge-inference', level: 'info', format: 'json', stream: out });
    const { ingest, bus } = await setup(logger);
    await shiftThenReject(ingest, bus, 0.9);
    // The adoption completes at 799; settling (300 samples) runs to 1,099. Vibration moves at 900.
    await feed(ingest, 600, 900, 30);
    expect(referenceUpdates(ingest).map((u) => u.at.sampleIndex)).toEqual([799]);
    await feed(ingest, 900, 1_100, 30, 5);
    type Line = {
      message?: string;
      event?: { action?: string; reason?: string };
      driftline?: Record<string, unknown>;
    };
    const checks = (lines as Line[]).filter((l) => l.event?.action === 'settle-check');
    expect(checks.length).toBeGreaterThan(0);
    const [first] = checks;
    expect(first?.event?.reason).toBe('feature-did-not-move');
    expect(first?.driftline).toMatchObject({
      verdict: 'new-change',
      groupKey: 'all',
      feature: 'vibrationHz',
    });
    expect(first?.message).toMatch(/settling ended \(group all\): a new change/);
    // …and the new change alarms at the same sample.
    const at = first?.driftline?.at as number;
    expect(alarms(ingest).map((a) => a.at.sampleIndex)).toContain(at);
  });

  it('keeps its reference (and keeps alarming) when the rejected challenger’s champion lost accuracy', async () => {
    const { worker, ingest, bus } = await setup();
    // Validation accuracy 0.9, maxDrop 0.05: the floor is 0.85.
    await shiftThenReject(ingest, bus, 0.84);
    await feed(ingest, 600, 2_000, 30);
    expect(worker.stats().adoption).toEqual({ shiftsAccepted: 0, referenceUpdates: 0 });
    expect(referenceUpdates(ingest)).toHaveLength(0);
    expect(alarms(ingest).map((a) => a.at.sampleIndex)).toEqual([
      399, 599, 799, 999, 1_199, 1_399, 1_599, 1_799, 1_999,
    ]);
  });

  it('ignores a rejection that answers another request, or none', async () => {
    const { worker, ingest, bus } = await setup();
    await feed(ingest, 0, 300, 0);
    await feed(ingest, 300, 600, 30);
    const request = requests(bus)[0] as RetrainRequest;
    await bus.publish(BUS_TOPICS.modelEvents, 'driftline-efficiency', {
      ...rejected(request, 0.9),
      requestId: 'another-request',
    });
    await bus.publish(BUS_TOPICS.modelEvents, 'driftline-efficiency', {
      ...rejected(request, 0.9),
      requestId: null,
    });
    await bus.idle();
    expect(worker.stats().adoption.shiftsAccepted).toBe(0);
  });
});

describe('retrain trigger: one faulty sensor is not fleet drift (issue 13, part 4)', () => {
  /**
   * Four machines in turn (sample i is machine m-00{i % 4}, seq i / 4, as the simulator does), seed streams
   * against a 5,000-row seed reference, labels right after each reading. m-002's temperature
   * is stuck at 85 °C (scenarios/sensor-fault.json's faults; here from sample 2,000) and its vibration spikes by ±4 Hz on 5 %.
   */
  it('names m-002 within 1,000 samples, keeps its readings out of training, and retrains nothing', async () => {
    const bus = new InProcessBus();
    const ingest = new FakeIngest();
    const model = Object.assign(fakeModel('1', { accuracy: 0.9 }), { reference: seedReference(1, 5_000) });
    const worker = createEdgeWorker({
      http: false,
      championPollMs: 0,
      ingest,
      bus,
      initialModel: model,
      batchSize: 50,
      batchMaxWaitMs: 1,
      driftWindowMinIntervalMs: 60_000,
      sampleBatchMaxWaitMs: 1,
    });
    workers.push(worker);
    await worker.start();
    const stream = new SeedStream({ seed: 8 });
    let spikes = 0;
    for (let i = 0; i < 6_000; i++) {
      const row = { ...stream.next() };
      for (const f of FEATURES) row[f] = Math.round(row[f] * 1e4) / 1e4;
      const machineId = `m-00${i % 4}`;
      const seq = Math.floor(i / 4);
      const efficiency = ruleLabel(row);
      if (i >= 2_000 && machineId === 'm-002') {
        row.temperatureC = 85;
        if (++spikes % 20 === 0) row.vibrationHz += spikes % 40 === 0 ? 4 : -4;
      }
      await ingest.telemetry({ machineId, seq, ts: 1_700_000_000_000 + i, ...row });
      await ingest.label({ machineId, seq, efficiency });
    }
    await worker.stop();
    const quality: DataQualityMessage[] = ingest.status
      .filter((s) => s.topic === STATUS_TOPICS.dataQuality)
      .map((s) => dataQualityMessageSchema.parse(s.body));
    // Named at 2,022: the sixth stuck reading of m-002 (every 4th sample from 2,002). No other machine is named.
    expect(quality.map((q) => [q.state, q.machineId, q.feature, q.check, q.at.sampleIndex])).toEqual([
      ['fault', 'm-002', 'temperatureC', 'stuck', 2_022],
      // The first block test after the onset (2,000-sample blocks) confirms both faults.
      ['fault', 'm-002', 'temperatureC', 'machine-vs-fleet', 3_999],
      ['fault', 'm-002', 'vibrationHz', 'spikes', 3_999],
    ]);
    expect(quality[0]?.evidence).toMatchObject({ value: 85, run: 6 });
    // Its later readings stay out of the pooled detector: no covariate alarm, no retrain request.
    expect(worker.stats().alarms).toEqual({ covariate: 0, concept: 0 });
    expect(requests(bus)).toHaveLength(0);
    expect(worker.stats().dataQuality).toMatchObject({ alarms: 3, rowsExcluded: 995 });
    expect(worker.stats().dataQuality.faults.map((f) => f.machineId)).toEqual(['m-002', 'm-002', 'm-002']);
    // Retraining data: every reading of the other machines, m-002's only up to the fault's detection.
    const samples = bus
      .retained(BUS_TOPICS.labelledSamples)
      .flatMap((m) => (m.value as { samples: unknown[] }).samples.map((x) => labelledSampleSchema.parse(x)));
    const m2 = samples.filter((x) => x.machineId === 'm-002');
    expect(samples.length - m2.length).toBe(4_500);
    expect(m2).toHaveLength(505);
    expect(Math.max(...m2.map((x) => x.sampleIndex ?? -1))).toBe(2_018);
  });
});

describe('retrain trigger: the sequential label test (issue 13, part 2)', () => {
  /** m1 readings, each labelled at once; from seq 1,000 the labels of seq % 10 < 3 disagree (30 % wrong). */
  async function conceptRun(
    cusum: boolean,
  ): Promise<{ alarms: DriftAlarmMessage[]; requests: RetrainRequest[] }> {
    const bus = new InProcessBus();
    const ingest = new FakeIngest();
    const worker = createEdgeWorker({
      http: false,
      championPollMs: 0,
      ingest,
      bus,
      initialModel: fakeModel('1', { accuracy: 0.9 }),
      drift: false,
      dataQualityConfig: false,
      batchSize: 10,
      batchMaxWaitMs: 1,
      sampleBatchMaxWaitMs: 1,
      ...(cusum ? {} : { accuracyCusumConfig: false as const }),
    });
    workers.push(worker);
    await worker.start();
    for (let seq = 0; seq < 1_600; seq++) {
      const t = makeTelemetry('m1', seq);
      await ingest.telemetry(t);
      const right = ruleLabel(t);
      const wrong = seq >= 1_000 && seq % 10 < 3;
      await ingest.label({
        machineId: 'm1',
        seq,
        efficiency: wrong ? (right === 'Low' ? 'High' : 'Low') : right,
      });
    }
    await worker.stop();
    return { alarms: alarms(ingest), requests: requests(bus) };
  }

  it('alarms sooner than the window test on a 30-point drop, dates its onset, and asks for one retrain', async () => {
    const window = await conceptRun(false);
    const both = await conceptRun(true);
    // The window test (250 labels, maxDrop 0.05, alpha 1e-4): alarm at 1,200, its window reaching back to 951.
    expect(window.alarms.map((a) => [a.at.sampleIndex, a.onset.sampleIndex])).toEqual([[1_200, 951]]);
    // With the CUSUMs: alarm at 1,191, dated at the change (1,000); the window test's alarm joins the episode.
    expect(
      both.alarms.map((a) => [a.at.sampleIndex, a.onset.sampleIndex, a.requestId !== undefined]),
    ).toEqual([
      [1_191, 1_000, true],
      [1_200, 951, false],
    ]);
    expect(both.requests).toHaveLength(1);
    expect(both.requests[0]).toMatchObject({
      kind: 'concept',
      window: { sampleFrom: 1_000, sampleTo: 1_191 },
    });
  });
});

describe('retrain trigger: the label test trusts a champion as far as its validation set vouches (issue 13)', () => {
  /** A champion validated at 99 % on `validationSamples`; from seq 1,000 every 20th label disagrees (a 4-point drop). */
  async function firstConceptAlarm(validationSamples: number): Promise<number | undefined> {
    const ingest = new FakeIngest();
    const worker = createEdgeWorker({
      http: false,
      championPollMs: 0,
      ingest,
      bus: new InProcessBus(),
      initialModel: fakeModel('1', { accuracy: 0.99, validationSamples }),
      drift: false,
      dataQualityConfig: false,
      batchSize: 50,
      batchMaxWaitMs: 1,
      sampleBatchMaxWaitMs: 1,
    });
    workers.push(worker);
    await worker.start();
    for (let seq = 0; seq < 4_000; seq++) {
      const t = makeTelemetry('m1', seq);
      await ingest.telemetry(t);
      const right = ruleLabel(t);
      const wrong = seq >= 1_000 && seq % 20 === 0;
      await ingest.label({
        machineId: 'm1',
        seq,
        efficiency: wrong ? (right === 'Low' ? 'High' : 'Low') : right,
      });
    }
    await worker.stop();
    return alarms(ingest).find((a) => a.kind === 'concept')?.at.sampleIndex;
  }

  it('finds a 4-point drop in half the labels when 8,000 validation samples back the champion, not when 100 do', async () => {
    // Margin 0.75 points (the floor; the Wilson bound at z = 3 over 8,000 samples is under it) vs 1.5 (the ceiling).
    expect(await firstConceptAlarm(8_000)).toBe(1_880);
    expect(await firstConceptAlarm(100)).toBe(2_860);
  });
});

describe('retrain trigger: a rejected concept retrain is asked for again with more data (issue 13, part 2)', () => {
  it('waits for the stage-2 follow-up, then re-requests with twice the samples, at most CONCEPT_REREQUEST_MAX times', async () => {
    const bus = new InProcessBus();
    const ingest = new FakeIngest();
    const worker = createEdgeWorker({
      http: false,
      championPollMs: 0,
      ingest,
      bus,
      modelRegistry: registry,
      loader: async (dir): Promise<LoadedModel> =>
        fakeModel(dir.split('/').pop() as string, { accuracy: 0.9 }),
      drift: false,
      dataQualityConfig: false,
      batchSize: 10,
      batchMaxWaitMs: 1,
      sampleBatchMaxWaitMs: 1,
      conceptReRequests: 1,
    });
    workers.push(worker);
    await worker.start();
    for (let seq = 0; seq < 1_300; seq++) {
      const t = makeTelemetry('m1', seq);
      await ingest.telemetry(t);
      const right = ruleLabel(t);
      const wrong = seq >= 1_000 && seq % 10 < 3;
      await ingest.label({
        machineId: 'm1',
        seq,
        efficiency: wrong ? (right === 'Low' ? 'High' : 'Low') : right,
      });
    }
    await new Promise((r) => setTimeout(r, 50));
    const [first] = requests(bus);
    expect(first).toMatchObject({ kind: 'concept', window: { sampleFrom: 1_000 } });
    expect(first?.minSamples).toBeUndefined();
    const reject = (requestId: string, extra: Record<string, unknown>): Promise<void> =>
      bus.publish(BUS_TOPICS.modelEvents, 'driftline-efficiency', {
        ...rejected(first as RetrainRequest, 0.7),
        requestId,
        ...extra,
      });
    // Stage 1 lost; the retrainer queued stage 2: nothing to ask.
    const followUp = 'f'.repeat(64);
    await reject((first as RetrainRequest).requestId, {
      stage: 1,
      followUpRequestId: followUp,
      trainedSamples: 700,
    });
    await bus.idle();
    expect(requests(bus)).toHaveLength(1);
    // Stage 2 (2,000 samples) lost too: ask again at once for 4,000, same episode and correlation id.
    await reject(followUp, { stage: 2, trainedSamples: 2_000 });
    await bus.idle();
    const again = requests(bus)[1] as RetrainRequest;
    expect(again).toMatchObject({
      kind: 'concept',
      stage: 2,
      minSamples: 4_000,
      correlationId: (first as RetrainRequest).correlationId,
      window: { sampleFrom: 1_000 },
    });
    expect(again.requestId).not.toBe((first as RetrainRequest).requestId);
    expect(again.window.sampleTo).toBeGreaterThanOrEqual(1_290);
    // The one re-request allowed is used: a third rejection asks nothing; nor does one of another request.
    await reject(again.requestId, { trainedSamples: 4_000 });
    await reject('e'.repeat(64), { trainedSamples: 4_000 });
    await bus.idle();
    expect(requests(bus)).toHaveLength(2);
    expect(worker.stats().retrainRequests).toBe(2);
  });

  it('does not re-request when nothing was trained (not enough data)', async () => {
    const bus = new InProcessBus();
    const ingest = new FakeIngest();
    const worker = createEdgeWorker({
      http: false,
      championPollMs: 0,
      ingest,
      bus,
      modelRegistry: registry,
      loader: async (dir): Promise<LoadedModel> =>
        fakeModel(dir.split('/').pop() as string, { accuracy: 0.9 }),
      drift: false,
      dataQualityConfig: false,
      batchSize: 10,
      batchMaxWaitMs: 1,
      sampleBatchMaxWaitMs: 1,
    });
    workers.push(worker);
    await worker.start();
    for (let seq = 0; seq < 1_300; seq++) {
      const t = makeTelemetry('m1', seq);
      await ingest.telemetry(t);
      const right = ruleLabel(t);
      const wrong = seq >= 1_000 && seq % 10 < 3;
      await ingest.label({
        machineId: 'm1',
        seq,
        efficiency: wrong ? (right === 'Low' ? 'High' : 'Low') : right,
      });
    }
    await new Promise((r) => setTimeout(r, 50));
    const [first] = requests(bus);
    await bus.publish(BUS_TOPICS.modelEvents, 'driftline-efficiency', rejected(first as RetrainRequest, 0.7));
    await bus.idle();
    expect(requests(bus)).toHaveLength(1);
  });
});
