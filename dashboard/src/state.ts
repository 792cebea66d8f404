import type { DeadLetterRecord } from '../../common/deadletter.ts';
import type { ModelEvent, RetrainRequest } from '../../common/events/schemas.ts';
import type { AliasChange, ModelVersion } from '../../common/registry/types.ts';
import { EFFICIENCY_CLASSES, FEATURES, type Efficiency, type Feature } from '../../common/schema/features.ts';
import type {
  DataQualityMessage,
  DriftAlarmMessage,
  DriftWindowMessage,
  EdgeStatusMessage,
  ReferenceUpdatedMessage,
} from '../../common/schema/status.ts';
import {
  MACHINE_ID_PATTERN,
  parseTopic,
  type Label,
  type Prediction,
  type Telemetry,
} from '../../common/schema/telemetry.ts';
import type {
  AlarmView,
  ConnectionState,
  ConnectionsView,
  DeadLetterView,
  DeadLettersView,
  DriftGroupView,
  FeatureHistory,
  InvalidView,
  MachineView,
  ModelEventView,
  ReferenceUpdateView,
  ModelView,
  RetrainView,
  Snapshot,
  ThroughputPoint,
  Update,
  WorkerView,
} from './shared/view.ts';

/**
 * The dashboard's in-memory view of the pipeline: every validated message
 * (MQTT and bus) and every registry poll is folded in here, and the SSE hub
 * reads a full {@link Snapshot} for a new stream and an {@link Update} of the
 * sections that changed since the last one, on a timer. Pure logic with an
 * injectable clock; no I/O. Everything is bounded (machines, groups, lists).
 */

/** Options of {@link DashboardStore}. */
export interface DashboardStoreOptions {
  /** Registered model the dashboard follows. */
  modelName: string;
  /** A machine is stale after this long without any message, ms. Default 10 000. */
  staleAfterMs?: number;
  /** A feature reporting the same value in this many consecutive messages is flagged as stuck. Default 20. */
  stuckAfter?: number;
  /** Rejected messages (dead letters) within this window flag the machine as faulty, ms. Default 60 000. */
  faultWindowMs?: number;
  /** Most machines tracked; messages from further machines are counted as invalid (`machine_limit`). Default 5000. */
  maxMachines?: number;
  /** Drift windows kept per group for the sparklines. Default 60. */
  historyWindows?: number;
  /** Drift groups kept (per-machine grouping); the least recently updated is dropped. Default 64. */
  maxGroups?: number;
  /** Alarms kept. Default 200. */
  maxAlarms?: number;
  /** Retrains kept. Default 100. */
  maxRetrains?: number;
  /** Throughput points kept (one per tick). Default 300. */
  throughputPoints?: number;
  /** Labelled predictions in the observed-accuracy window. Default 500. */
  accuracyWindow?: number;
  /** Shown as the targets of the connections. */
  mqttUrl?: string;
  busKind?: string;
  registryKind?: string;
  /** Clock; default Date.now. */
  now?: () => number;
}

const RATE_WINDOW_S = 10;
const MAX_RECENT_DEAD_LETTERS = 50;
const MAX_MODEL_EVENTS = 100;
const MAX_WORKERS = 64;
const MAX_PENDING_JOIN = 50_000;
const MAX_VERSIONS = 50;
const MAX_HISTORY = 100;
const MAX_INVALID_KEYS = 64;

/** Messages per second over the last {@link RATE_WINDOW_S} seconds, in per-second buckets. */
export class RateMeter {
  private readonly counts = new Float64Array(RATE_WINDOW_S);
  private readonly seconds = new Float64Array(RATE_WINDOW_S).fill(-1);
  private first = -1;

  add(now: number, n = 1): void {
    if (this.first < 0) this.first = now;
    const s = Math.floor(now / 1000);
    const i = s % RATE_WINDOW_S;
    if (this.seconds[i] !== s) {
      this.seconds[i] = s;
      this.counts[i] = 0;
    }
    this.counts[i] = (this.counts[i] ?? 0) + n;
  }

  rate(now: number): number {
    if (this.first < 0) return 0;
    const s = Math.floor(now / 1000);
    let sum = 0;
    for (let i = 0; i < RATE_WINDOW_S; i++) {
      const sec = this.seconds[i] ?? -1;
      if (sec > s - RATE_WINDOW_S && sec <= s) sum += this.counts[i] ?? 0;
    }
    const windowMs = (RATE_WINDOW_S - 1) * 1000 + (now % 1000);
    const elapsedMs = Math.max(1000, Math.min(windowMs, now - this.first));
    return sum / (elapsedMs / 1000);
  }
}

interface Rejection {
  at: number;
  reason: string;
}

interface MachineState {
  view: MachineView;
  rate: RateMeter;
  /** Per feature: the last value and how many consecutive messages carried it. */
  lastValues: Float64Array;
  runs: Uint32Array;
  /** Recent dead letters from the edge, and recent messages the dashboard refused, within faultWindowMs. */
  deadLetters: Rejection[];
  refused: Rejection[];
  /** Rejections attributed since start: by the edge (dead letters) and by the dashboard itself. */
  deadLetterTotal: number;
  refusedTotal: number;
  sentRate: number;
  /** Data-quality faults the edge raised on it and has not cleared, by `feature check`. */
  quality: Map<string, { feature: string; check: string; since: number; workerId: string }>;
}

interface GroupState {
  view: DriftGroupView;
  touched: number;
}

type Section =
  | 'connections'
  | 'deadLetters'
  | 'invalid'
  | 'alarms'
  | 'retrains'
  | 'model'
  | 'workers'
  | 'observedAccuracy';

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

function emptyHistory(): FeatureHistory {
  return { windowIndex: [], statistic: [], pvalue: [], critical: [], drifted: [] };
}

function push<T>(arr: T[], value: T, max: number): void {
  arr.push(value);
  if (arr.length > max) arr.splice(0, arr.length - max);
}

function modelEventView(e: ModelEvent): ModelEventView {
  const base = {
    reason: e.reason,
    at: e.at,
    correlationId: e.correlationId,
    requestId: e.requestId,
    version: e.version,
  };
  switch (e.type) {
    case 'model-promoted':
      return {
        ...base,
        type: e.type,
        otherVersion: e.previousVersion,
        metrics: e.metrics,
        otherMetrics: e.previousMetrics ?? null,
      };
    case 'model-rejected':
      return {
        ...base,
        type: e.type,
        otherVersion: e.championVersion,
        metrics: e.metrics,
        otherMetrics: e.championMetrics ?? null,
      };
    case 'model-rolled-back':
      return {
        ...base,
        type: e.type,
        otherVersion: e.fromVersion,
        metrics: e.metrics ?? null,
        otherMetrics: null,
      };
  }
}

export class DashboardStore {
  readonly modelName: string;
  readonly staleAfterMs: number;
  private readonly stuckAfter: number;
  private readonly faultWindowMs: number;
  private readonly maxMachines: number;
  private readonly historyWindows: number;
  private readonly maxGroups: number;
  private readonly maxAlarms: number;
  private readonly maxRetrains: number;
  private readonly throughputPoints: number;
  private readonly accuracyWindow: number;
  private readonly now: () => number;

  private readonly machines = new Map<string, MachineState>();
  private readonly groups = new Map<string, GroupState>();
  private readonly workers = new Map<string, WorkerView>();
  private alarms: AlarmView[] = [];
  private alarmSeq = 0;
  private readonly retrains = new Map<string, RetrainView>();
  private readonly deadLetters: DeadLettersView = { total: 0, byReason: {}, edgeByReason: {}, recent: [] };
  private readonly invalid: InvalidView = { total: 0, bySource: {}, ignored: 0 };
  private readonly model: ModelView;
  private readonly connections: ConnectionsView;
  private readonly throughput: ThroughputPoint[] = [];
  private readonly counts = { telemetry: 0, predictions: 0, labels: 0 };
  private lastSample: number;
  private readonly pendingPredictions = new Map<string, Efficiency>();
  private readonly pendingLabels = new Map<string, Efficiency>();
  private readonly outcomes: boolean[] = [];
  private correct = 0;

  private readonly dirtyMachines = new Set<string>();
  private readonly dirtyGroups = new Set<string>();
  private readonly dirty = new Set<Section>();
  private newPoints: ThroughputPoint[] = [];

  constructor(options: DashboardStoreOptions) {
    this.modelName = options.modelName;
    this.staleAfterMs = options.staleAfterMs ?? 10_000;
    this.stuckAfter = Math.max(2, options.stuckAfter ?? 20);
    this.faultWindowMs = options.faultWindowMs ?? 60_000;
    this.maxMachines = options.maxMachines ?? 5000;
    this.historyWindows = options.historyWindows ?? 60;
    this.maxGroups = options.maxGroups ?? 64;
    this.maxAlarms = options.maxAlarms ?? 200;
    this.maxRetrains = options.maxRetrains ?? 100;
    this.throughputPoints = options.throughputPoints ?? 300;
    this.accuracyWindow = options.accuracyWindow ?? 500;
    this.now = options.now ?? Date.now;
    const t = this.now();
    this.lastSample = t;
    this.model = { name: this.modelName, champion: null, versions: [], history: [], events: [] };
    this.connections = {
      mqtt: { state: 'connecting', target: options.mqttUrl ?? '', detail: '', since: t },
      bus: { state: 'connecting', target: options.busKind ?? '', detail: '', since: t },
      registry: {
        state: 'connecting',
        target: options.registryKind ?? '',
        detail: '',
        since: t,
        lastRefresh: null,
      },
    };
  }

  // ---------------------------------------------------------------- machines

  private machine(id: string, create: boolean): MachineState | undefined {
    let m = this.machines.get(id);
    if (m !== undefined || !create) return m;
    if (this.machines.size >= this.maxMachines) return undefined;
    const t = this.now();
    m = {
      view: {
        id,
        firstSeen: t,
        lastSeen: t,
        seq: null,
        ts: null,
        mode: null,
        features: null,
        prediction: null,
        label: null,
        ratePerSec: 0,
        stale: false,
        faults: [],
        rejected: 0,
      },
      rate: new RateMeter(),
      lastValues: new Float64Array(FEATURES.length).fill(Number.NaN),
      runs: new Uint32Array(FEATURES.length),
      deadLetters: [],
      refused: [],
      deadLetterTotal: 0,
      refusedTotal: 0,
      sentRate: 0,
      quality: new Map(),
    };
    this.machines.set(id, m);
    return m;
  }

  private seen(m: MachineState, t: number): void {
    m.view.lastSeen = t;
    if (m.view.stale) m.view.stale = false;
    this.dirtyMachines.add(m.view.id);
  }

  /** A valid telemetry reading. */
  onTelemetry(msg: Telemetry): void {
    const t = this.now();
    this.counts.telemetry++;
    const m = this.machine(msg.machineId, true);
    if (m === undefined) return this.onInvalid('telemetry', 'machine_limit');
    m.rate.add(t);
    const values = new Array<number>(FEATURES.length);
    for (let i = 0; i < FEATURES.length; i++) {
      const v = msg[FEATURES[i] as Feature];
      values[i] = v;
      if (v === m.lastValues[i]) m.runs[i] = (m.runs[i] ?? 0) + 1;
      else {
        m.lastValues[i] = v;
        m.runs[i] = 1;
      }
    }
    m.view.features = values;
    m.view.seq = msg.seq;
    m.view.ts = msg.ts;
    m.view.mode = msg.operationMode;
    this.seen(m, t);
    this.updateFaults(m, t);
  }

  /** A valid prediction published by an edge worker. */
  onPrediction(p: Prediction): void {
    const t = this.now();
    this.counts.predictions++;
    const m = this.machine(p.machineId, true);
    if (m === undefined) return this.onInvalid('prediction', 'machine_limit');
    m.view.prediction = {
      efficiency: p.efficiency,
      probabilities: [p.probabilities.Low, p.probabilities.Medium, p.probabilities.High],
      modelVersion: p.modelVersion,
      latencyMs: p.latencyMs,
      predictedAt: p.predictedAt,
    };
    this.seen(m, t);
    const key = `${p.machineId}\u0000${p.seq}`;
    const label = this.pendingLabels.get(key);
    if (label !== undefined) {
      this.pendingLabels.delete(key);
      this.outcome(label === p.efficiency);
    } else this.remember(this.pendingPredictions, key, p.efficiency);
  }

  /** A valid delayed label. */
  onLabel(l: Label): void {
    const t = this.now();
    this.counts.labels++;
    const m = this.machine(l.machineId, true);
    if (m === undefined) return this.onInvalid('label', 'machine_limit');
    m.view.label = l.efficiency;
    this.seen(m, t);
    const key = `${l.machineId}\u0000${l.seq}`;
    const predicted = this.pendingPredictions.get(key);
    if (predicted !== undefined) {
      this.pendingPredictions.delete(key);
      this.outcome(predicted === l.efficiency);
    } else this.remember(this.pendingLabels, key, l.efficiency);
  }

  private remember(map: Map<string, Efficiency>, key: string, value: Efficiency): void {
    map.set(key, value);
    if (map.size > MAX_PENDING_JOIN) {
      const oldest = map.keys().next();
      if (oldest.done !== true) map.delete(oldest.value);
    }
  }

  private outcome(ok: boolean): void {
    this.outcomes.push(ok);
    if (ok) this.correct++;
    if (this.outcomes.length > this.accuracyWindow) {
      if (this.outcomes.shift() === true) this.correct--;
    }
    this.dirty.add('observedAccuracy');
  }

  /** A record from the dead-letter topic (already validated). */
  onDeadLetter(record: DeadLetterRecord): void {
    const t = this.now();
    const machineId = parseTopic(record.topic)?.machineId ?? null;
    this.deadLetters.total++;
    this.bump(this.deadLetters.byReason, record.reason);
    const view: DeadLetterView = {
      at: record.rejectedAt,
      source: record.source,
      reason: record.reason,
      detail: record.detail.slice(0, 300),
      topic: record.topic.slice(0, 200),
      machineId,
      payloadBytes: record.payloadBytes,
      payloadPreview: record.payload.slice(0, 160),
    };
    this.deadLetters.recent.unshift(view);
    if (this.deadLetters.recent.length > MAX_RECENT_DEAD_LETTERS)
      this.deadLetters.recent.length = MAX_RECENT_DEAD_LETTERS;
    this.dirty.add('deadLetters');
    if (machineId !== null) {
      const m = this.machine(machineId, true);
      if (m !== undefined) {
        m.deadLetters.push({ at: t, reason: record.reason });
        m.deadLetterTotal++;
        this.attribute(m, t);
      }
    }
  }

  /**
   * A message the dashboard refused. `machineId` (from a well-formed topic)
   * attributes it to a machine, so a device that only sends garbage still shows up, flagged.
   */
  onInvalid(source: string, reason: string, machineId?: string): void {
    this.invalid.total++;
    let bySource = this.invalid.bySource[source];
    if (bySource === undefined) {
      if (Object.keys(this.invalid.bySource).length >= MAX_INVALID_KEYS) source = 'other';
      bySource = this.invalid.bySource[source] ??= {};
    }
    this.bump(bySource, reason);
    this.dirty.add('invalid');
    if (machineId !== undefined && MACHINE_ID_PATTERN.test(machineId) && reason !== 'machine_limit') {
      const t = this.now();
      const m = this.machine(machineId, true);
      if (m !== undefined) {
        m.refused.push({ at: t, reason });
        m.refusedTotal++;
        this.attribute(m, t);
      }
    }
  }

  /** A message on a topic the dashboard does not read. */
  onIgnored(): void {
    this.invalid.ignored++;
    this.dirty.add('invalid');
  }

  private attribute(m: MachineState, t: number): void {
    this.seen(m, t);
    // The edge dead-letters what the dashboard also refuses: count the larger of the two views, not their sum.
    m.view.rejected = Math.max(m.deadLetterTotal, m.refusedTotal);
    this.updateFaults(m, t);
  }

  private bump(record: Record<string, number>, key: string): void {
    if (record[key] === undefined && Object.keys(record).length >= MAX_INVALID_KEYS) key = 'other';
    record[key] = (record[key] ?? 0) + 1;
  }

  private updateFaults(m: MachineState, t: number): void {
    const faults: string[] = [];
    if (m.view.features !== null) {
      for (let i = 0; i < FEATURES.length; i++) {
        const run = m.runs[i] ?? 0;
        if (run >= this.stuckAfter)
          faults.push(`${FEATURES[i]} stuck at ${m.lastValues[i]} for ${run} messages`);
      }
    }
    for (const q of m.quality.values())
      faults.push(
        `data quality: ${q.feature} ${q.check} (edge ${q.workerId}, since sample ${q.since}); ` +
          'readings kept out of drift detection and retraining',
      );
    const cutoff = t - this.faultWindowMs;
    while (m.deadLetters.length > 0 && (m.deadLetters[0] as Rejection).at < cutoff) m.deadLetters.shift();
    while (m.refused.length > 0 && (m.refused[0] as Rejection).at < cutoff) m.refused.shift();
    const recent = m.deadLetters.length >= m.refused.length ? m.deadLetters : m.refused;
    if (recent.length > 0) {
      const reasons = [...new Set(recent.map((r) => r.reason))].slice(0, 3).join(', ');
      const secs = Math.round(this.faultWindowMs / 1000);
      faults.push(
        `${recent.length} rejected message${recent.length === 1 ? '' : 's'} in the last ${secs} s (${reasons})`,
      );
    }
    if (faults.join('\n') !== m.view.faults.join('\n')) {
      m.view.faults = faults;
      this.dirtyMachines.add(m.view.id);
    }
  }

  // ------------------------------------------------------------------- drift

  /** One tested drift window. */
  onDriftWindow(msg: DriftWindowMessage): void {
    const t = this.now();
    let g = this.groups.get(msg.groupKey);
    if (g === undefined) {
      if (this.groups.size >= this.maxGroups) {
        let oldest: [string, GroupState] | undefined;
        for (const entry of this.groups)
          if (oldest === undefined || entry[1].touched < oldest[1].touched) oldest = entry;
        if (oldest !== undefined) this.groups.delete(oldest[0]);
      }
      g = {
        touched: t,
        view: {
          groupKey: msg.groupKey,
          workerId: msg.workerId,
          windowIndex: msg.windowIndex,
          publishedAt: msg.publishedAt,
          receivedAt: t,
          modelVersion: msg.modelVersion,
          from: msg.from,
          to: msg.to,
          features: [],
          rejected: [],
          histograms: {},
          histogramsWindow: null,
          history: {},
          windows: 0,
        },
      };
      this.groups.set(msg.groupKey, g);
    }
    const v = g.view;
    g.touched = t;
    v.workerId = msg.workerId;
    v.windowIndex = msg.windowIndex;
    v.publishedAt = msg.publishedAt;
    v.receivedAt = t;
    v.modelVersion = msg.modelVersion;
    v.from = msg.from;
    v.to = msg.to;
    v.features = msg.features.map((f) => ({ ...f }));
    v.rejected = [...msg.rejected];
    v.windows++;
    for (const f of msg.features) {
      const h = (v.history[f.feature] ??= emptyHistory());
      push(h.windowIndex, msg.windowIndex, this.historyWindows);
      push(h.statistic, f.statistic, this.historyWindows);
      push(h.pvalue, f.pvalue, this.historyWindows);
      push(h.critical, f.criticalStatistic, this.historyWindows);
      push(h.drifted, f.drifted, this.historyWindows);
    }
    if (msg.histograms !== undefined) {
      const histograms: DriftGroupView['histograms'] = {};
      for (const [feature, h] of Object.entries(msg.histograms) as [
        Feature,
        NonNullable<(typeof msg.histograms)[Feature]>,
      ][]) {
        const bins = h.edges.length - 1;
        const ascending = h.edges.every((e, i) => i === 0 || e >= (h.edges[i - 1] as number));
        if (h.reference.length !== bins || h.current.length !== bins || !ascending) {
          this.onInvalid('drift-window', 'histogram_shape');
          continue;
        }
        histograms[feature] = h;
      }
      v.histograms = histograms;
      v.histogramsWindow = msg.windowIndex;
    }
    this.dirtyGroups.add(msg.groupKey);
  }

  /** A drift alarm (covariate or concept). */
  onAlarm(msg: DriftAlarmMessage): void {
    const t = this.now();
    const dup = this.alarms.some(
      (a) =>
        a.workerId === msg.workerId &&
        a.publishedAt === msg.publishedAt &&
        a.kind === msg.kind &&
        a.groupKey === msg.groupKey,
    );
    if (dup) return;
    this.alarms.push({
      key: `a${++this.alarmSeq}`,
      kind: msg.kind,
      workerId: msg.workerId,
      groupKey: msg.groupKey,
      publishedAt: msg.publishedAt,
      receivedAt: t,
      modelVersion: msg.modelVersion,
      correlationId: msg.correlationId,
      requestId: msg.requestId ?? null,
      at: msg.at,
      onset: msg.onset,
      features: msg.features,
      liveAccuracy: msg.liveAccuracy,
    });
    if (this.alarms.length > this.maxAlarms) this.alarms = this.alarms.slice(-this.maxAlarms);
    this.dirty.add('alarms');
  }

  /**
   * An edge worker adopted a new drift reference (`reference-updated`): into the model history, and onto the
   * rejected retrain it answered.
   */
  onReferenceUpdate(msg: ReferenceUpdatedMessage): void {
    const view: ReferenceUpdateView = {
      workerId: msg.workerId,
      groupKey: msg.groupKey,
      publishedAt: msg.publishedAt,
      reason: msg.reason,
      at: msg.at.sampleIndex,
      from: msg.from.sampleIndex,
      to: msg.to.sampleIndex,
      samples: msg.samples,
      championAccuracy: msg.championAccuracy,
      features: msg.features.slice(0, 3).map((f) => ({
        feature: f.feature,
        statistic: f.statistic,
        pvalue: f.pvalue,
        oldMean: f.old.mean,
        newMean: f.new.mean,
      })),
    };
    const dup = this.model.events.some(
      (x) =>
        x.type === 'reference-updated' && x.correlationId === msg.correlationId && x.at === msg.publishedAt,
    );
    if (dup) return;
    const top = view.features
      .map(
        (f) =>
          `${f.feature} mean ${f.oldMean.toPrecision(4)} → ${f.newMean.toPrecision(4)} (D ${f.statistic.toFixed(3)})`,
      )
      .join('; ');
    this.model.events.unshift({
      type: 'reference-updated',
      version: msg.modelVersion,
      otherVersion: null,
      reason:
        `${msg.workerId} group ${msg.groupKey}: ${msg.samples} rows (samples ${view.from}–${view.to}) adopted as the ` +
        `drift reference (${msg.reason}${msg.championAccuracy !== null ? `, champion accuracy ${msg.championAccuracy}` : ''}); ${top}`,
      at: msg.publishedAt,
      correlationId: msg.correlationId,
      requestId: msg.requestId,
      metrics: null,
      otherMetrics: null,
    });
    if (this.model.events.length > MAX_MODEL_EVENTS) this.model.events.length = MAX_MODEL_EVENTS;
    this.dirty.add('model');
    const r =
      (msg.requestId !== null ? this.retrains.get(msg.requestId) : undefined) ??
      this.retrainByCorrelation(msg.correlationId);
    if (r !== undefined) {
      r.referenceUpdate = view;
      this.dirty.add('retrains');
    }
  }

  /** A data-quality fault the edge raised on one machine, or its end: shown in the fleet view's faults. */
  onDataQuality(msg: DataQualityMessage): void {
    const m = this.machine(msg.machineId, true);
    if (m === undefined) return this.onInvalid('data-quality', 'machine_limit');
    const key = `${msg.feature} ${msg.check}`;
    if (msg.state === 'fault')
      m.quality.set(key, {
        feature: msg.feature,
        check: msg.check,
        since: msg.at.sampleIndex,
        workerId: msg.workerId,
      });
    else m.quality.delete(key);
    this.updateFaults(m, this.now());
  }

  /** A periodic edge worker status. */
  onEdgeStatus(msg: EdgeStatusMessage): void {
    if (!this.workers.has(msg.workerId) && this.workers.size >= MAX_WORKERS)
      return this.onInvalid('edge-status', 'worker_limit');
    this.workers.set(msg.workerId, { ...msg, receivedAt: this.now() });
    const edge: Record<string, number> = {};
    for (const w of this.workers.values())
      for (const [reason, n] of Object.entries(w.deadLetters)) edge[reason] = (edge[reason] ?? 0) + n;
    this.deadLetters.edgeByReason = edge;
    this.dirty.add('workers');
    this.dirty.add('deadLetters');
  }

  // ----------------------------------------------------------------- retrains

  private retrainByCorrelation(correlationId: string): RetrainView | undefined {
    let found: RetrainView | undefined;
    for (const r of this.retrains.values()) if (r.correlationId === correlationId) found = r;
    return found;
  }

  private addRetrain(r: RetrainView): void {
    this.retrains.set(r.key, r);
    if (this.retrains.size > this.maxRetrains) {
      const oldest = this.retrains.keys().next();
      if (oldest.done !== true) this.retrains.delete(oldest.value);
    }
  }

  /** A retrain request from the bus. */
  onRetrainRequest(r: RetrainRequest): void {
    if (r.modelName !== this.modelName) return;
    const existing = this.retrains.get(r.requestId);
    const base: RetrainView = existing ?? {
      key: r.requestId,
      requestId: r.requestId,
      correlationId: r.correlationId,
      modelName: r.modelName,
      kind: null,
      requestedAt: null,
      championVersion: null,
      features: [],
      liveAccuracy: null,
      validationAccuracy: null,
      groupKey: null,
      outcome: 'pending',
      decidedAt: null,
      candidateVersion: null,
      reason: null,
      candidateMetrics: null,
      championMetrics: null,
    };
    if (existing !== undefined && existing.requestedAt !== null) return; // redelivery
    Object.assign(base, {
      kind: r.kind,
      requestedAt: r.requestedAt,
      championVersion: r.championVersion,
      features: r.features,
      liveAccuracy: r.liveAccuracy,
      validationAccuracy: r.validationAccuracy,
      groupKey: r.groupKey,
    });
    if (existing === undefined) this.addRetrain(base);
    this.dirty.add('retrains');
  }

  /** A model event from the bus. */
  onModelEvent(e: ModelEvent): void {
    if (e.modelName !== this.modelName) return;
    const view = modelEventView(e);
    const dup = this.model.events.some(
      (x) =>
        x.type === view.type &&
        x.version === view.version &&
        x.correlationId === view.correlationId &&
        x.at === view.at,
    );
    if (dup) return;
    this.model.events.unshift(view);
    if (this.model.events.length > MAX_MODEL_EVENTS) this.model.events.length = MAX_MODEL_EVENTS;
    this.dirty.add('model');
    if (e.type === 'model-rolled-back') return;
    // A decision on a retrain: join it by request id, else by correlation id, else keep it on its own.
    let r =
      (e.requestId !== null ? this.retrains.get(e.requestId) : undefined) ??
      (e.requestId === null ? this.retrainByCorrelation(e.correlationId) : undefined);
    if (r === undefined) {
      if (e.requestId === null) return; // bootstrap or operator promotion: not a retrain
      r = {
        key: e.requestId,
        requestId: e.requestId,
        correlationId: e.correlationId,
        modelName: e.modelName,
        kind: null,
        requestedAt: null,
        championVersion: e.type === 'model-promoted' ? e.previousVersion : e.championVersion,
        features: [],
        liveAccuracy: null,
        validationAccuracy: null,
        groupKey: null,
        outcome: 'pending',
        decidedAt: null,
        candidateVersion: null,
        reason: null,
        candidateMetrics: null,
        championMetrics: null,
      };
      this.addRetrain(r);
    }
    r.outcome = e.type === 'model-promoted' ? 'promoted' : 'rejected';
    r.decidedAt = e.at;
    r.candidateVersion = e.version;
    r.reason = e.reason;
    r.candidateMetrics = e.metrics;
    r.championMetrics = view.otherMetrics;
    this.dirty.add('retrains');
  }

  // ---------------------------------------------------------------- registry

  /** The result of a registry poll. */
  setRegistry(
    champion: ModelVersion | undefined,
    versions: readonly ModelVersion[],
    history: readonly AliasChange[],
  ): void {
    const next = {
      champion: champion ?? null,
      versions: [...versions].reverse().slice(0, MAX_VERSIONS),
      history: [...history].reverse().slice(0, MAX_HISTORY),
    };
    const changed =
      JSON.stringify(next.champion) !== JSON.stringify(this.model.champion) ||
      JSON.stringify(next.versions) !== JSON.stringify(this.model.versions) ||
      JSON.stringify(next.history) !== JSON.stringify(this.model.history);
    this.connections.registry.lastRefresh = this.now();
    this.setConnection('registry', 'connected', '');
    if (!changed) return;
    Object.assign(this.model, next);
    this.dirty.add('model');
  }

  /** A backend changed state (MQTT connected, bus subscribed, registry unreachable…). */
  setConnection(which: keyof ConnectionsView, state: ConnectionState, detail: string): void {
    const c = this.connections[which];
    if (c.state === state && c.detail === detail) return;
    if (c.state !== state) c.since = this.now();
    c.state = state;
    c.detail = detail.slice(0, 300);
    this.dirty.add('connections');
  }

  // -------------------------------------------------------------------- time

  /**
   * Once a second: stale machines, decaying rates, expiring faults, a
   * throughput point. Marks what changed for the next update.
   */
  tick(): void {
    const t = this.now();
    for (const m of this.machines.values()) {
      const stale = t - m.view.lastSeen > this.staleAfterMs;
      if (stale !== m.view.stale) {
        m.view.stale = stale;
        this.dirtyMachines.add(m.view.id);
      }
      const rate = round(m.rate.rate(t), 1);
      m.view.ratePerSec = rate;
      if (rate !== m.sentRate) {
        m.sentRate = rate;
        this.dirtyMachines.add(m.view.id);
      }
      if (m.deadLetters.length > 0 || m.refused.length > 0) this.updateFaults(m, t);
    }
    const dt = Math.max(0.001, (t - this.lastSample) / 1000);
    const point: ThroughputPoint = {
      t,
      telemetry: round(this.counts.telemetry / dt, 2),
      predictions: round(this.counts.predictions / dt, 2),
      labels: round(this.counts.labels / dt, 2),
    };
    this.counts.telemetry = 0;
    this.counts.predictions = 0;
    this.counts.labels = 0;
    this.lastSample = t;
    push(this.throughput, point, this.throughputPoints);
    push(this.newPoints, point, this.throughputPoints);
  }

  // ------------------------------------------------------------------- views

  private observedAccuracy(): Snapshot['pipeline']['observedAccuracy'] {
    const n = this.outcomes.length;
    return { accuracy: n === 0 ? null : this.correct / n, labelled: n, window: this.accuracyWindow };
  }

  private machineViews(): MachineView[] {
    return [...this.machines.values()].map((m) => ({ ...m.view }));
  }

  /** Everything, for a new stream. Also resets nothing: pending changes still go out with the next update. */
  snapshot(): Snapshot {
    return {
      serverTime: this.now(),
      modelName: this.modelName,
      staleAfterMs: this.staleAfterMs,
      connections: structuredClone(this.connections),
      machines: this.machineViews(),
      deadLetters: structuredClone(this.deadLetters),
      invalid: structuredClone(this.invalid),
      drift: [...this.groups.values()].map((g) => structuredClone(g.view)),
      alarms: [...this.alarms],
      retrains: [...this.retrains.values()].map((r) => ({ ...r })),
      model: structuredClone(this.model),
      pipeline: {
        workers: [...this.workers.values()],
        throughput: [...this.throughput],
        observedAccuracy: this.observedAccuracy(),
      },
    };
  }

  /** The changes since the previous call, or undefined when nothing changed. */
  takeUpdate(): Update | undefined {
    const u: Update = { serverTime: this.now() };
    let any = false;
    if (this.dirtyMachines.size > 0) {
      u.machines = [];
      for (const id of this.dirtyMachines) {
        const m = this.machines.get(id);
        if (m !== undefined) u.machines.push({ ...m.view });
      }
      this.dirtyMachines.clear();
      any = true;
    }
    if (this.dirtyGroups.size > 0) {
      u.drift = [];
      for (const key of this.dirtyGroups) {
        const g = this.groups.get(key);
        if (g !== undefined) u.drift.push(structuredClone(g.view));
      }
      this.dirtyGroups.clear();
      any = true;
    }
    if (this.newPoints.length > 0) {
      u.throughput = this.newPoints;
      this.newPoints = [];
      any = true;
    }
    for (const s of this.dirty) {
      any = true;
      switch (s) {
        case 'connections':
          u.connections = structuredClone(this.connections);
          break;
        case 'deadLetters':
          u.deadLetters = structuredClone(this.deadLetters);
          break;
        case 'invalid':
          u.invalid = structuredClone(this.invalid);
          break;
        case 'alarms':
          u.alarms = [...this.alarms];
          break;
        case 'retrains':
          u.retrains = [...this.retrains.values()].map((r) => ({ ...r }));
          break;
        case 'model':
          u.model = structuredClone(this.model);
          break;
        case 'workers':
          u.workers = [...this.workers.values()];
          break;
        case 'observedAccuracy':
          u.observedAccuracy = this.observedAccuracy();
          break;
      }
    }
    this.dirty.clear();
    return any ? u : undefined;
  }

  /** Read access for tests and the health endpoint. */
  get machineCount(): number {
    return this.machines.size;
  }

  /** The current view of one machine (tests). */
  machineView(id: string): MachineView | undefined {
    const m = this.machines.get(id);
    return m === undefined ? undefined : { ...m.view };
  }

  /** The class order of {@link MachineView.prediction} probabilities. */
  static readonly classes = EFFICIENCY_CLASSES;
}
