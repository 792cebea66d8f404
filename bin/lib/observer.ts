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
}

export class LiveObserver {
  readonly healing: HealingTracker;
  readonly retrains: LiveRetrain[] = [];
  readonly driftEvents: LiveDriftEvent[] = [];
  private readonly started = Date.now();
  private readonly predictions = new Map<string, Efficiency>();
  private readonly machineIndex: Map<string, number>;
  private client: MqttClient | undefined;
  private subs: Subscription[] = [];
  labelled = 0;
  correct = 0;

  constructor(private readonly options: LiveObserverOptions) {
    this.healing = new HealingTracker(options.phases);
    this.machineIndex = new Map(options.machineIds.map((id, i) => [id, i]));
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

  private onMessage(topic: string, payload: Buffer): void {
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
      try {
        const p = JSON.parse(text) as { machineId?: unknown; seq?: unknown; efficiency?: unknown };
        if (typeof p.machineId === 'string' && typeof p.seq === 'number' && typeof p.efficiency === 'string')
          this.predictions.set(`${p.machineId}\u0000${p.seq}`, p.efficiency as Efficiency);
      } catch {
        // not ours to judge: the edge validated it
      }
      if (this.predictions.size > 200_000) this.predictions.clear();
      return;
    }
    const v = validateMessage('label', topic, text);
    if (!v.ok) return;
    const key = `${v.value.machineId}\u0000${v.value.seq}`;
    const predicted = this.predictions.get(key);
    if (predicted === undefined) return;
    this.predictions.delete(key);
    const m = this.machineIndex.get(v.value.machineId);
    if (m === undefined) return;
    const index = v.value.seq * this.options.machineIds.length + m;
    const ok = predicted === v.value.efficiency;
    this.labelled++;
    if (ok) this.correct++;
    this.healing.record(index, ok, Date.now());
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
