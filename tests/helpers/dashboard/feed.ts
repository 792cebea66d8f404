import type { MqttClient } from 'mqtt';
import { BUS_TOPICS, type EventBus } from '../../../common/bus/types.ts';
import type { DeadLetterRecord } from '../../../common/deadletter.ts';
import { retrainRequestId } from '../../../common/drift/episode.ts';
import { asymptoticCriticalStatistic } from '../../../common/drift/feature-drift.ts';
import { seedReference } from '../../../common/drift/synthetic.ts';
import {
  modelPromotedSchema,
  retrainRequestSchema,
  type ModelMetrics,
  type RetrainRequest,
} from '../../../common/events/schemas.ts';
import type { ModelRegistry, ModelVersion } from '../../../common/registry/types.ts';
import {
  EFFICIENCY_CLASSES,
  FEATURES,
  OPERATION_MODES,
  SEED_RANGES,
  type Efficiency,
  type Feature,
} from '../../../common/schema/features.ts';
import {
  STATUS_TOPICS,
  type DriftAlarmMessage,
  type DriftWindowMessage,
  type EdgeStatusMessage,
  type Histogram,
} from '../../../common/schema/status.ts';
import { TOPICS, type Label, type Prediction, type Telemetry } from '../../../common/schema/telemetry.ts';
import { ks2samp } from '../../../common/stats/ks.ts';
import { Rng } from '../../../common/util/rng.ts';

/**
 * A scripted stand-in for the devices, the edge worker and the retrainer, for
 * the dashboard's tests, screenshots and benchmark: it publishes telemetry,
 * predictions and labels over MQTT, tests every window of samples against a
 * reference with the real KS test and publishes the results (with histograms)
 * on the status topics exactly as the edge worker's contract says, raises
 * alarms with their retrain requests on the bus, and promotes a challenger.
 * Every message it sends is schema-valid.
 */

const BINS = 20;

export interface ScriptedPipelineOptions {
  /** A client allowed to publish everything (the stack's admin account). */
  client: MqttClient;
  bus: EventBus;
  machineIds: readonly string[];
  modelName: string;
  championVersion: string;
  /** Default `edge-1`. */
  workerId?: string;
  /** Samples per drift window. Default 200. */
  windowSize?: number;
  /** Family-wise significance (Bonferroni over the features). Default 1e-3. */
  alpha?: number;
  /** Drifted windows in a row for an alarm. Default 2. */
  consecutive?: number;
  /** Reference sample size. Default 1000. */
  referenceSize?: number;
  seed?: number;
}

/** The seed data set's labelling rule (speed and error rate decide). */
export function seedRule(row: Pick<Telemetry, 'productionSpeedUph' | 'errorRatePct'>): Efficiency {
  if (row.productionSpeedUph > 400 && row.errorRatePct < 2) return 'High';
  if (row.productionSpeedUph > 200 && row.errorRatePct < 5) return 'Medium';
  return 'Low';
}

function histogram(ref: readonly number[], cur: readonly number[]): Histogram {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const xs of [ref, cur]) {
    for (const v of xs) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (!(hi > lo)) hi = lo + 1;
  const edges = Array.from(
    { length: BINS + 1 },
    (_, i) => Math.round((lo + ((hi - lo) * i) / BINS) * 1e4) / 1e4,
  );
  const count = (xs: readonly number[]): number[] => {
    const c = new Array<number>(BINS).fill(0);
    for (const v of xs) {
      const i = Math.min(BINS - 1, Math.max(0, Math.floor(((v - lo) / (hi - lo)) * BINS)));
      c[i] = (c[i] ?? 0) + 1;
    }
    return c;
  };
  return { edges, reference: count(ref), current: count(cur) };
}

function round3(v: number): number {
  return Math.round(v * 1000) / 1000;
}

export class ScriptedPipeline {
  readonly workerId: string;
  championVersion: string;
  /** The retrain request of the open drift episode, once raised. */
  retrainRequest: RetrainRequest | undefined;
  private readonly o: ScriptedPipelineOptions;
  private readonly rng: Rng;
  private reference: Record<Feature, number[]>;
  private readonly window: Record<Feature, number[]>;
  private readonly windowSize: number;
  private readonly threshold: number;
  private readonly consecutive: number;
  private readonly seqs = new Map<string, number>();
  private shift: { feature: Feature; delta: number } | undefined;
  private readonly stuck = new Map<string, { feature: Feature; value: number }>();
  private sampleIndex = 0;
  private windowStart = { sampleIndex: 0, ts: Date.now() };
  private windowIndex = 0;
  private readonly streaks = new Map<
    Feature,
    { count: number; onset: { sampleIndex: number; ts: number } }
  >();
  private labelled: boolean[] = [];
  private readonly mix = { Low: 0, Medium: 0, High: 0 };
  private published = 0;
  private lastStatus = { at: Date.now(), published: 0 };

  constructor(options: ScriptedPipelineOptions) {
    this.o = options;
    this.workerId = options.workerId ?? 'edge-1';
    this.championVersion = options.championVersion;
    this.rng = new Rng(options.seed ?? 7);
    this.windowSize = options.windowSize ?? 200;
    this.threshold = (options.alpha ?? 1e-3) / FEATURES.length;
    this.consecutive = options.consecutive ?? 2;
    this.reference = seedReference(options.seed ?? 7, options.referenceSize ?? 1000).features;
    this.window = Object.fromEntries(FEATURES.map((f) => [f, []])) as unknown as Record<Feature, number[]>;
  }

  /** From now on, `feature` is shifted by `delta` (a covariate drift); undefined ends it. */
  setShift(feature: Feature | undefined, delta = 0): void {
    this.shift = feature === undefined ? undefined : { feature, delta };
  }

  /** `machineId`'s `feature` sensor reports `value` from now on (a stuck sensor); undefined repairs it. */
  setStuck(machineId: string, feature: Feature | undefined, value = 0): void {
    if (feature === undefined) this.stuck.delete(machineId);
    else this.stuck.set(machineId, { feature, value });
  }

  /** Publishes what the edge's dead-letter sink publishes for a message it refused. */
  async publishDeadLetter(machineId: string, reason: string, detail: string, payload: string): Promise<void> {
    const record: DeadLetterRecord = {
      source: 'edge-inference',
      topic: TOPICS.telemetry(machineId),
      reason,
      detail,
      rejectedAt: Date.now(),
      payload: payload.slice(0, 1024),
      payloadBytes: Buffer.byteLength(payload),
    };
    await this.o.client.publishAsync(TOPICS.deadLetter, JSON.stringify(record), { qos: 1 });
  }

  private row(machineId: string): Telemetry {
    const seq = (this.seqs.get(machineId) ?? -1) + 1;
    this.seqs.set(machineId, seq);
    const values = {} as Record<Feature, number>;
    for (const f of FEATURES) {
      const [lo, hi] = SEED_RANGES[f];
      let v = this.rng.uniform(lo, hi);
      if (this.shift?.feature === f) v += this.shift.delta;
      values[f] = round3(v);
    }
    const stuck = this.stuck.get(machineId);
    if (stuck !== undefined) values[stuck.feature] = stuck.value;
    const mode = OPERATION_MODES[this.rng.weighted([0.7, 0.2, 0.1])] ?? 'Active';
    return { machineId, seq, ts: Date.now(), operationMode: mode, ...values };
  }

  private predict(t: Telemetry): Prediction {
    const truth = seedRule(t);
    // About 8% wrong (more under drift), so live accuracy looks like a real model's.
    const wrong = this.rng.next() < (this.shift ? 0.2 : 0.08);
    const efficiency = wrong
      ? (EFFICIENCY_CLASSES[(EFFICIENCY_CLASSES.indexOf(truth) + 1) % 3] as Efficiency)
      : truth;
    const p = 0.7 + this.rng.next() * 0.25;
    const rest = (1 - p) / 2;
    const probabilities = { Low: rest, Medium: rest, High: rest };
    probabilities[efficiency] = p;
    this.mix[efficiency]++;
    this.labelled.push(!wrong);
    if (this.labelled.length > 500) this.labelled = this.labelled.slice(-500);
    return {
      machineId: t.machineId,
      seq: t.seq,
      ts: t.ts,
      predictedAt: Date.now(),
      efficiency,
      probabilities,
      modelVersion: this.championVersion,
      latencyMs: round3(0.4 + this.rng.next() * 2),
    };
  }

  /**
   * Publishes `n` samples round-robin over the machines (telemetry, prediction, label), testing windows as
   * they fill.
   */
  async publishSamples(n: number): Promise<void> {
    const { client } = this.o;
    let batch: Promise<unknown>[] = [];
    for (let i = 0; i < n; i++) {
      const id = this.o.machineIds[this.sampleIndex % this.o.machineIds.length] as string;
      const t = this.row(id);
      const label: Label = { machineId: id, seq: t.seq, efficiency: seedRule(t) };
      batch.push(
        client.publishAsync(TOPICS.telemetry(id), JSON.stringify(t), { qos: 1 }),
        client.publishAsync(TOPICS.prediction(id), JSON.stringify(this.predict(t)), { qos: 1 }),
        client.publishAsync(TOPICS.label(id), JSON.stringify(label), { qos: 1 }),
      );
      for (const f of FEATURES) this.window[f].push(t[f]);
      this.sampleIndex++;
      this.published++;
      if (this.window[FEATURES[0]].length >= this.windowSize) {
        await Promise.all(batch);
        batch = [];
        await this.testWindow(t.ts);
      } else if (batch.length >= 300) {
        await Promise.all(batch);
        batch = [];
      }
    }
    await Promise.all(batch);
  }

  private async testWindow(ts: number): Promise<void> {
    this.windowIndex++;
    const features: DriftWindowMessage['features'] = [];
    const histograms: NonNullable<DriftWindowMessage['histograms']> = {};
    const rejected: Feature[] = [];
    for (const f of FEATURES) {
      const ref = this.reference[f];
      const cur = this.window[f];
      const r = ks2samp(ref, cur);
      const drifted = r.pvalue <= this.threshold;
      if (drifted) rejected.push(f);
      features.push({
        feature: f,
        statistic: r.statistic,
        pvalue: r.pvalue,
        threshold: this.threshold,
        criticalStatistic: asymptoticCriticalStatistic(this.threshold, ref.length, cur.length),
        drifted,
      });
      histograms[f] = histogram(ref, cur);
    }
    const to = { sampleIndex: this.sampleIndex - 1, ts };
    const msg: DriftWindowMessage = {
      workerId: this.workerId,
      groupKey: 'all',
      windowIndex: this.windowIndex,
      publishedAt: Date.now(),
      modelVersion: this.championVersion,
      from: this.windowStart,
      to,
      features,
      rejected,
      histograms,
    };
    await this.o.client.publishAsync(STATUS_TOPICS.driftWindow, JSON.stringify(msg), { qos: 1 });
    for (const f of FEATURES) {
      if (rejected.includes(f)) {
        const s = this.streaks.get(f) ?? { count: 0, onset: this.windowStart };
        s.count++;
        this.streaks.set(f, s);
      } else this.streaks.delete(f);
    }
    const alarming = [...this.streaks.entries()].filter(([, s]) => s.count >= this.consecutive);
    if (alarming.length > 0 && this.retrainRequest === undefined) {
      const onset =
        alarming.map(([, s]) => s.onset).sort((a, b) => a.sampleIndex - b.sampleIndex)[0] ?? this.windowStart;
      await this.alarm(
        features
          .filter((f) => f.drifted && f.statistic !== null && f.pvalue !== null)
          .sort((a, b) => (a.pvalue ?? 1) - (b.pvalue ?? 1)),
        onset,
        to,
      );
    }
    for (const f of FEATURES) this.window[f] = [];
    this.windowStart = { sampleIndex: this.sampleIndex, ts: Date.now() };
  }

  private liveAccuracy(): number | null {
    if (this.labelled.length === 0) return null;
    return this.labelled.filter(Boolean).length / this.labelled.length;
  }

  private async alarm(
    evidence: DriftWindowMessage['features'],
    onset: { sampleIndex: number; ts: number },
    at: { sampleIndex: number; ts: number },
  ): Promise<void> {
    const requestId = retrainRequestId(this.o.modelName, this.championVersion, onset);
    const correlationId = `drift-${requestId.slice(0, 16)}`;
    const features = evidence
      .slice(0, 3)
      .map((f) => ({ feature: f.feature, statistic: f.statistic as number, pvalue: f.pvalue as number }));
    const alarm: DriftAlarmMessage = {
      workerId: this.workerId,
      kind: 'covariate',
      groupKey: 'all',
      publishedAt: Date.now(),
      modelVersion: this.championVersion,
      correlationId,
      requestId,
      at,
      onset,
      features,
      liveAccuracy: this.liveAccuracy(),
    };
    await this.o.client.publishAsync(STATUS_TOPICS.alarm, JSON.stringify(alarm), { qos: 1 });
    const request = retrainRequestSchema.parse({
      type: 'retrain-request',
      requestId,
      correlationId,
      modelName: this.o.modelName,
      championVersion: this.championVersion,
      kind: 'covariate',
      requestedAt: Date.now(),
      sampleIndex: at.sampleIndex,
      features,
      window: {
        fromTs: onset.ts,
        toTs: Math.max(onset.ts, at.ts),
        sampleFrom: onset.sampleIndex,
        sampleTo: at.sampleIndex,
      },
      liveAccuracy: this.liveAccuracy(),
      validationAccuracy: 0.91,
      groupKey: 'all',
    });
    this.retrainRequest = request;
    await this.o.bus.publish(BUS_TOPICS.retrainRequests, this.o.modelName, request);
  }

  /** Publishes the worker status the edge sends periodically. */
  async publishStatus(extra: Partial<EdgeStatusMessage> = {}): Promise<void> {
    const now = Date.now();
    const dt = Math.max(0.001, (now - this.lastStatus.at) / 1000);
    const rate = (this.published - this.lastStatus.published) / dt;
    this.lastStatus = { at: now, published: this.published };
    const total = this.mix.Low + this.mix.Medium + this.mix.High || 1;
    const msg: EdgeStatusMessage = {
      workerId: this.workerId,
      publishedAt: now,
      ready: true,
      modelVersion: this.championVersion,
      backend: 'tensorflow',
      validationAccuracy: 0.91,
      liveAccuracy: this.liveAccuracy(),
      labelled: Math.min(this.published, 500),
      predictedMix: {
        Low: this.mix.Low / total,
        Medium: this.mix.Medium / total,
        High: this.mix.High / total,
      },
      messagesInPerSec: round3(rate),
      predictionsOutPerSec: round3(rate),
      meanBatchSize: 12.4,
      latencyMs: { p50: 1.2, p95: 3.8, p99: 6.1 },
      queueDepth: 3,
      deadLetters: { out_of_range: 2, not_json: 1 },
      bus: this.o.bus.kind,
      registry: 'directory .driftline/registry',
      ...extra,
    };
    await this.o.client.publishAsync(STATUS_TOPICS.edgeStatus(this.workerId), JSON.stringify(msg), {
      qos: 1,
    });
  }

  /**
   * What the retrainer and the edge do after a promotion: the edge serves
   * `version` and its reference becomes the new data (so windows stop drifting).
   */
  hotSwap(version: string): void {
    this.championVersion = version;
    this.reference = seedReference((this.o.seed ?? 7) + 1, this.o.referenceSize ?? 1000).features;
    if (this.shift !== undefined) {
      const { feature, delta } = this.shift;
      this.reference[feature] = this.reference[feature].map((v) => v + delta);
    }
    this.streaks.clear();
    this.retrainRequest = undefined;
  }
}

export interface PromoteOptions {
  registry: ModelRegistry;
  bus: EventBus;
  modelName: string;
  /** Registers the challenger's artifact; returns its registry version. */
  register(metrics: ModelMetrics, info: { requestId: string; correlationId: string }): Promise<ModelVersion>;
  challenger: ModelMetrics;
  champion: ModelMetrics;
}

/**
 * What the retrainer does when a challenger wins: registers it, moves the
 * champion alias and publishes `model-promoted` (joined to the request by its id).
 */
export async function promoteChallenger(p: ScriptedPipeline, o: PromoteOptions): Promise<ModelVersion> {
  const request = p.retrainRequest;
  if (request === undefined) throw new Error('promoteChallenger: no retrain request raised yet');
  const v = await o.register(o.challenger, {
    requestId: request.requestId,
    correlationId: request.correlationId,
  });
  const reason = `challenger macro-F1 ${o.challenger.macroF1.toFixed(3)} >= champion ${o.champion.macroF1.toFixed(3)} + 0.010 on the drift window`;
  await o.registry.setChampion(o.modelName, v.version, {
    by: 'retrainer',
    reason,
    correlationId: request.correlationId,
  });
  const event = modelPromotedSchema.parse({
    type: 'model-promoted',
    modelName: o.modelName,
    correlationId: request.correlationId,
    requestId: request.requestId,
    reason,
    at: Date.now(),
    version: v.version,
    previousVersion: request.championVersion,
    metrics: o.challenger,
    previousMetrics: o.champion,
  });
  await o.bus.publish(BUS_TOPICS.modelEvents, o.modelName, event);
  p.hotSwap(v.version);
  return v;
}
