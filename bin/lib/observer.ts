import type { MqttClient } from 'mqtt';
import type { EventBus, Subscription } from '../../common/bus/types.ts';
import { BUS_TOPICS } from '../../common/bus/types.ts';
import { HealingTracker, type PhaseHealing, type PhaseSpan } from '../../common/eval/healing.ts';
import { parseModelEvent, parseRetrainRequest } from '../../common/events/schemas.ts';
import { connectMqtt } from '../../common/mqtt/connect.ts';
import type { Efficiency } from '../../common/schema/features.ts';
import {
  STATUS_TOPICS,
  dataQualityMessageSchema,
  driftAlarmMessageSchema,
  referenceUpdatedMessageSchema,
} from '../../common/schema/status.ts';
import { TOPICS, parseTopic, validateMessage } from '../../common/schema/telemetry.ts';

/**
 * Watches a live run from outside, as a plant engineer would: joins the edge's
 * predictions with the inspection labels on MQTT and follows retrain requests
 * and model events on the bus, to measure accuracy per phase and how long the
 * loop takes to heal on the wall clock (`npm start -- --exit-after-phases`).
 */

export interface LiveRetrain {
  correlationId: string;
  requestId: string;
  kind: string;
  requestedAt: string;
  /** Seconds from the start of the run. */
  requestedAtSec: number;
  outcome?: 'model-promoted' | 'model-rejected';
  version?: string;
  reason?: string;
  decidedAtSec?: number;
  champion?: { accuracy: number; macroF1: number };
  challenger?: { accuracy: number; macroF1: number };
  /**
   * Every model event of the episode (same correlation id), in order: a two-stage concept retrain reports
   * stage 1 and stage 2, a re-request its own; the fields above are the last one's.
   */
  outcomes?: {
    stage: 1 | 2 | null;
    requestId: string | null;
    outcome: 'model-promoted' | 'model-rejected';
    version: string;
    decidedAtSec: number;
    challengerAccuracy: number;
    championAccuracy: number | null;
    trainedSamples: number | null;
  }[];
}

/** A drift alarm or an adopted reference as the edge published it (sample index on the edge's clock). */
export interface LiveDriftEvent {
  type: 'covariate' | 'concept' | 'reference-updated' | 'data-quality';
  sampleIndex: number;
  atSec: number;
  /** Alarms: set when the alarm opened an episode (asked for a retrain). */
  requestId?: string;
  /** reference-updated: rows adopted and the most changed feature. */
  samples?: number;
  feature?: string;
  /** data-quality: the machine named, the check, and whether the fault was raised or cleared. */
  machineId?: string;
  check?: string;
  state?: 'fault' | 'cleared';
}

export interface LiveObserverOptions {
  mqttUrl: string;
  username: string;
  password?: string;
  bus: EventBus;
  phases: readonly PhaseSpan[];
  /** Machine ids in the scenario's round-robin order: sample i is machine i % n, seq floor(i / n). */
  machineIds: readonly string[];
  /** Predictions, and labels, kept waiting for their partner at most (the oldest is evicted, counted). */
  maxPending?: number;
}

/** How the observer's join of predictions and labels went. */
export interface ObserverJoinStats {
  /** Prediction messages received (a redelivered one counts again). */
  predictions: number;
  /** Label messages received. */
  labels: number;
  /** Labels joined with their prediction: `labelled`. */
  joined: number;
  /** Labels that arrived before their prediction (the edge lagged), joined when it came. */
  labelsFirst: number;
  /** Predictions evicted from the bounded buffer before their label arrived. */
  evictedPredictions: number;
  /** Labels evicted before their prediction arrived. */
  evictedLabels: number;
  /** Labels still waiting for their prediction (never predicted, or not yet). */
  pendingLabels: number;
}

const DEFAULT_MAX_PENDING = 200_000;

export class LiveObserver {
  readonly healing: HealingTracker;
  readonly retrains: LiveRetrain[] = [];
  readonly driftEvents: LiveDriftEvent[] = [];
  private readonly started = Date.now();
  private readonly predictions = new Map<string, Efficiency>();
  /** Labels that overtook their prediction, waiting for it. */
  private readonly labels = new Map<string, { machineId: string; seq: number; efficiency: Efficiency }>();
  private readonly machineIndex: Map<string, number>;
  private readonly maxPending: number;
  private readonly counts = {
    predictions: 0,
    labels: 0,
    labelsFirst: 0,
    evictedPredictions: 0,
    evictedLabels: 0,
  };
  private client: MqttClient | undefined;
  private subs: Subscription[] = [];
  labelled = 0;
  correct = 0;

  constructor(private readonly options: LiveObserverOptions) {
    this.healing = new HealingTracker(options.phases);
    this.machineIndex = new Map(options.machineIds.map((id, i) => [id, i]));
    this.maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
  }

  async start(): Promise<void> {
    this.client = await connectMqtt({
      url: this.options.mqttUrl,
      clientId: `driftline-observer-${process.pid}`,
      username: this.options.username,
      ...(this.options.password ? { password: this.options.password } : {}),
    });
    this.client.on('message', (topic, payload) => this.onMessage(topic, payload));
    await this.client.subscribeAsync(
      [
        TOPICS.predictionWildcard,
        TOPICS.labelWildcard,
        STATUS_TOPICS.alarm,
        STATUS_TOPICS.referenceUpdated,
        STATUS_TOPICS.dataQuality,
      ],
      { qos: 1 },
    );
    const group = `observer-${process.pid}`;
    this.subs.push(
      await this.options.bus.subscribe(
        BUS_TOPICS.retrainRequests,
        { group: `${group}-requests`, fromBeginning: false },
        async (m) => {
          const r = parseRetrainRequest(m.value);
          if (!r.ok) return;
          if (this.retrains.some((x) => x.requestId === r.value.requestId)) return;
          this.retrains.push({
            correlationId: r.value.correlationId,
            requestId: r.value.requestId,
            kind: r.value.kind,
            requestedAt: new Date(r.value.requestedAt).toISOString(),
            requestedAtSec: this.seconds(),
          });
        },
      ),
      await this.options.bus.subscribe(
        BUS_TOPICS.modelEvents,
        { group: `${group}-model-events`, fromBeginning: false },
        async (m) => {
          const e = parseModelEvent(m.value);
          if (!e.ok || e.value.type === 'model-rolled-back') return;
          const ev = e.value;
          const entry = this.retrains.find((x) => x.correlationId === ev.correlationId);
          if (!entry) return;
          entry.outcome = ev.type;
          entry.version = ev.version;
          entry.reason = ev.reason;
          entry.decidedAtSec = this.seconds();
          entry.challenger = { accuracy: ev.metrics.accuracy, macroF1: ev.metrics.macroF1 };
          const champion = ev.type === 'model-promoted' ? ev.previousMetrics : ev.championMetrics;
          if (champion) entry.champion = { accuracy: champion.accuracy, macroF1: champion.macroF1 };
          (entry.outcomes ??= []).push({
            stage: ev.stage ?? null,
            requestId: ev.requestId,
            outcome: ev.type,
            version: ev.version,
            decidedAtSec: entry.decidedAtSec,
            challengerAccuracy: ev.metrics.accuracy,
            championAccuracy: champion?.accuracy ?? null,
            trainedSamples: ev.trainedSamples ?? null,
          });
        },
      ),
    );
  }

  private seconds(): number {
    return Math.round((Date.now() - this.started) / 100) / 10;
  }

  private onDriftMessage(topic: string, payload: Buffer): void {
    let data: unknown;
    try {
      data = JSON.parse(payload.toString('utf8'));
    } catch {
      return;
    }
    if (topic === STATUS_TOPICS.alarm) {
      const r = driftAlarmMessageSchema.safeParse(data);
      if (!r.success) return;
      this.driftEvents.push({
        type: r.data.kind,
        sampleIndex: r.data.at.sampleIndex,
        atSec: this.seconds(),
        ...(r.data.requestId !== undefined ? { requestId: r.data.requestId } : {}),
      });
      return;
    }
    if (topic === STATUS_TOPICS.dataQuality) {
      const q = dataQualityMessageSchema.safeParse(data);
      if (!q.success) return;
      this.driftEvents.push({
        type: 'data-quality',
        sampleIndex: q.data.at.sampleIndex,
        atSec: this.seconds(),
        machineId: q.data.machineId,
        feature: q.data.feature,
        check: q.data.check,
        state: q.data.state,
      });
      return;
    }
    const r = referenceUpdatedMessageSchema.safeParse(data);
    if (!r.success) return;
    this.driftEvents.push({
      type: 'reference-updated',
      sampleIndex: r.data.at.sampleIndex,
      atSec: this.seconds(),
      samples: r.data.samples,
      ...(r.data.features[0] ? { feature: r.data.features[0].feature } : {}),
    });
  }

  /**
   * One message: a drift event, a prediction or a label. Predictions and labels meet in either order: a label is
   * published a fixed delay after its telemetry, so when the edge lags by more
   * than that delay the label arrives first and waits for its prediction.
   */
  onMessage(topic: string, payload: Buffer): void {
    if (
      topic === STATUS_TOPICS.alarm ||
      topic === STATUS_TOPICS.referenceUpdated ||
      topic === STATUS_TOPICS.dataQuality
    )
      return this.onDriftMessage(topic, payload);
    const t = parseTopic(topic);
    if (!t) return;
    const text = payload.toString('utf8');
    if (t.kind === 'prediction') {
      let p: { machineId?: unknown; seq?: unknown; efficiency?: unknown };
      try {
        p = JSON.parse(text) as typeof p;
      } catch {
        return; // not ours to judge: the edge validated it
      }
      if (typeof p.machineId !== 'string' || typeof p.seq !== 'number' || typeof p.efficiency !== 'string')
        return;
      this.counts.predictions++;
      const key = `${p.machineId}\u0000${p.seq}`;
      const waiting = this.labels.get(key);
      if (waiting !== undefined) {
        this.labels.delete(key);
        this.record(waiting.machineId, waiting.seq, p.efficiency as Efficiency, waiting.efficiency);
        return;
      }
      this.predictions.set(key, p.efficiency as Efficiency);
      if (this.predictions.size > this.maxPending) {
        this.predictions.delete(this.predictions.keys().next().value as string);
        this.counts.evictedPredictions++;
      }
      return;
    }
    const v = validateMessage('label', topic, text);
    if (!v.ok) return;
    this.counts.labels++;
    const { machineId, seq, efficiency } = v.value;
    const key = `${machineId}\u0000${seq}`;
    const predicted = this.predictions.get(key);
    if (predicted === undefined) {
      this.counts.labelsFirst++;
      this.labels.set(key, { machineId, seq, efficiency });
      if (this.labels.size > this.maxPending) {
        this.labels.delete(this.labels.keys().next().value as string);
        this.counts.evictedLabels++;
      }
      return;
    }
    this.predictions.delete(key);
    this.record(machineId, seq, predicted, efficiency);
  }

  private record(machineId: string, seq: number, predicted: Efficiency, label: Efficiency): void {
    const m = this.machineIndex.get(machineId);
    if (m === undefined) return;
    const index = seq * this.options.machineIds.length + m;
    const ok = predicted === label;
    this.labelled++;
    if (ok) this.correct++;
    this.healing.record(index, ok, Date.now());
  }

  /** How the join of predictions and labels went (see {@link ObserverJoinStats}). */
  joinStats(): ObserverJoinStats {
    return {
      ...this.counts,
      joined: this.labelled,
      pendingLabels: this.labels.size,
    };
  }

  /** Marks the wall-clock start of a phase (the simulator's onPhase). */
  phaseStarted(index: number): void {
    this.healing.markPhaseStart(index, Date.now());
  }

  summary(): {
    labelled: number;
    accuracy: number | null;
    phases: PhaseHealing[];
    preDriftAccuracy: number | null;
    retrains: LiveRetrain[];
    driftEvents: LiveDriftEvent[];
  } {
    return {
      labelled: this.labelled,
      accuracy: this.labelled > 0 ? this.correct / this.labelled : null,
      phases: this.healing.summary(),
      preDriftAccuracy: this.healing.preDriftAccuracy,
      retrains: this.retrains,
      driftEvents: this.driftEvents,
    };
  }

  async close(): Promise<void> {
    for (const s of this.subs) await s.close();
    await this.client?.endAsync();
  }
}
