import { describeError } from '../../common/errors.ts';
import type { FeatureDriftStatus, WindowReport } from '../../common/drift/feature-drift.ts';
import type { DriftAlarm } from '../../common/drift/types.ts';
import type { Logger } from '../../common/logging/logger.ts';
import type { LoadedModel } from '../../common/model/types.ts';
import { FEATURES, type Feature } from '../../common/schema/features.ts';
import {
  STATUS_TOPICS,
  driftAlarmMessageSchema,
  driftWindowMessageSchema,
  edgeStatusMessageSchema,
  type DriftAlarmMessage,
  type DriftWindowMessage,
  type EdgeStatusMessage,
  type Histogram,
} from '../../common/schema/status.ts';
import type { Prediction } from '../../common/schema/telemetry.ts';
import { sharedHistogram } from './histogram.ts';
import type { EdgeIngest } from './ingest.ts';
import type { EdgeMetrics, StatusKind } from './metrics.ts';
import type { AlarmOutcome } from './retrain-trigger.ts';
import { ClassMix, LatencyReservoir } from './rolling-stats.ts';

/**
 * Status publishing for observers (the dashboard), over the ingest's MQTT
 * connection, best effort: a drift window message per tested window (rate
 * limited per drift group, with the reference vs window histograms), a drift
 * alarm message per alarm, and the worker status every `intervalMs` (rates
 * over the interval, latency percentiles, the predicted-class mix, queue and
 * dead letters). Every message is validated against its schema before it
 * goes out; a failure is counted and logged at debug, never thrown, and never
 * retried. The hot path only counts (`messageIn`, `predicted`); messages are
 * built when due.
 */

/** Drift groups whose last window message time is kept for the rate limit, at most. */
const MAX_RATE_LIMITED_GROUPS = 4096;

/** What the status messages report, read when a message is built. */
export interface StatusSources {
  /** Model loaded and broker connected. */
  ready(): boolean;
  /** The serving model and its registry version. */
  model(): { model: LoadedModel | undefined; version: string | undefined };
  /** Live accuracy and the labelled outcomes it is measured on. */
  accuracy(): { live: number | null; labelled: number };
  /** Rows predicted and batches run so far. */
  counts(): { predictions: number; batches: number };
  /** Messages waiting for a batch. */
  queueDepth(): number;
  /** Dead letters so far, by reason. */
  deadLetters(): Record<string, number>;
  /** The drift detector's current window of one feature of a group (for the histograms). */
  windowValues(groupKey: string, feature: Feature): ArrayLike<number> | undefined;
}

/** What a {@link StatusPublisher} works with. */
export interface StatusPublisherOptions {
  /** Publishes the messages (`publishStatus`); without it nothing is published. */
  ingest: EdgeIngest;
  /** This worker in the messages and in the status topic (checked by {@link checkWorkerId}). */
  workerId: string;
  /** tfjs backend, for the status. */
  backend: string;
  /** The bus and registry kinds, for the status. */
  busKind: string;
  registryKind: string;
  /** Worker status interval, ms; 0: never. */
  intervalMs: number;
  /** At most one drift window message per group this often, ms. */
  windowMinIntervalMs: number;
  /** Bins of the window histograms; 0: none. */
  histogramBins: number;
  /** Predictions the class mix is taken over (the accuracy window's length). */
  classMixSize: number;
  sources: StatusSources;
  metrics: EdgeMetrics;
  logger: Logger;
  /** Tracks a publish so the worker's drain and stop wait for it. */
  track: (p: Promise<unknown>) => void;
}

/** Builds and publishes the status messages (see the module comment). */
export class StatusPublisher {
  private readonly counts = { published: 0, failed: 0, windowsSkipped: 0, messagesIn: 0 };
  private readonly latencies = new LatencyReservoir();
  /**
   * Predicted-class mix over the accuracy window's length (the monitor's own mix is not fed: the worker joins
   * labels itself).
   */
  private readonly predictedMix: ClassMix;
  /** Last drift window message per group (rate limit), least recently published first. */
  private readonly windowPublishedAt = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private wasRunning = false;
  private last = { at: 0, messagesIn: 0, predictions: 0, batches: 0 };

  constructor(private readonly options: StatusPublisherOptions) {
    this.predictedMix = new ClassMix(options.classMixSize);
  }

  /** Messages published, failed (best effort, never retried), drift windows left out by the rate limit. */
  stats(): { published: number; failed: number; windowsSkipped: number } {
    const { published, failed, windowsSkipped } = this.counts;
    return { published, failed, windowsSkipped };
  }

  /** One telemetry or label message taken in (hot path). */
  messageIn(): void {
    this.counts.messagesIn++;
  }

  /** One prediction made (hot path). */
  predicted(p: Prediction): void {
    this.latencies.add(p.latencyMs);
    this.predictedMix.add(p.efficiency);
  }

  /** A new champion: the class mix starts afresh. */
  championLoaded(): void {
    this.predictedMix.clear();
  }

  /** Machines moved to another worker: their rate-limit entries go. */
  forgetGroups(groupKeys: readonly string[]): void {
    for (const key of groupKeys) this.windowPublishedAt.delete(key);
  }

  /** Starts the interval status (the rates are measured from now). */
  start(): void {
    const { ingest, intervalMs } = this.options;
    const c = this.options.sources.counts();
    this.last = {
      at: Date.now(),
      messagesIn: this.counts.messagesIn,
      predictions: c.predictions,
      batches: c.batches,
    };
    this.latencies.drain();
    if (intervalMs <= 0 || !ingest.publishStatus) return;
    this.timer = setInterval(() => this.publishEdgeStatus(), intervalMs);
    this.timer.unref();
  }

  /** Stops the interval status (first thing on stop); {@link publishFinal} then says goodbye. */
  stop(): void {
    this.wasRunning = this.timer !== undefined;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A last status (not ready) so observers see this worker leave; only when the interval status ran. */
  publishFinal(): void {
    if (this.wasRunning) this.publishEdgeStatus(true);
  }

  /** The alarm message (QoS 1: alarms are rare and the dashboard's alarm list should not miss one). */
  publishAlarm(alarm: DriftAlarm, outcome: AlarmOutcome): void {
    const msg: DriftAlarmMessage = {
      workerId: this.options.workerId,
      kind: alarm.kind,
      groupKey: alarm.groupKey,
      publishedAt: Date.now(),
      modelVersion: outcome.modelVersion,
      correlationId: outcome.correlationId,
      ...(outcome.requestId !== undefined ? { requestId: outcome.requestId } : {}),
      at: alarm.at,
      onset: alarm.onset,
      features: alarm.features.map((f) => ({ feature: f.feature, statistic: f.statistic, pvalue: f.pvalue })),
      liveAccuracy: finiteOrNull(outcome.liveAccuracy),
    };
    this.publish('drift-alarm', STATUS_TOPICS.alarm, driftAlarmMessageSchema, msg, 1);
  }

  /** The window message of a tested window, unless its group published one less than `windowMinIntervalMs` ago. */
  publishWindow(w: WindowReport): void {
    const { ingest, windowMinIntervalMs, histogramBins, workerId } = this.options;
    if (!ingest.publishStatus) return;
    const now = Date.now();
    const last = this.windowPublishedAt.get(w.groupKey);
    if (last !== undefined && now - last < windowMinIntervalMs) {
      this.counts.windowsSkipped++;
      return;
    }
    this.windowPublishedAt.delete(w.groupKey);
    this.windowPublishedAt.set(w.groupKey, now);
    if (this.windowPublishedAt.size > MAX_RATE_LIMITED_GROUPS) {
      const oldest = this.windowPublishedAt.keys().next();
      if (!oldest.done) this.windowPublishedAt.delete(oldest.value);
    }
    try {
      const msg: DriftWindowMessage = {
        workerId,
        groupKey: w.groupKey,
        windowIndex: w.windowIndex,
        publishedAt: now,
        modelVersion: this.options.sources.model().version ?? 'unknown',
        from: w.from,
        to: w.to,
        features: w.features.map(windowFeatureStatus),
        rejected: [...w.rejected],
      };
      const histograms = histogramBins > 0 ? this.windowHistograms(w.groupKey) : undefined;
      if (histograms) msg.histograms = histograms;
      this.publish('drift-window', STATUS_TOPICS.driftWindow, driftWindowMessageSchema, msg, 0);
    } catch (err) {
      this.failed('drift-window', err);
    }
  }

  /** Reference (the champion's `reference.json` sample) vs the tested window, per feature, on shared bin edges. */
  private windowHistograms(groupKey: string): Partial<Record<Feature, Histogram>> | undefined {
    const { sources, histogramBins } = this.options;
    const reference = sources.model().model?.reference;
    if (!reference) return undefined;
    const out: Partial<Record<Feature, Histogram>> = {};
    let any = false;
    for (const feature of FEATURES) {
      const current = sources.windowValues(groupKey, feature);
      const ref = reference.features[feature] as ArrayLike<number> | undefined;
      if (!current || !ref || ref.length === 0) continue;
      out[feature] = sharedHistogram(ref, current, histogramBins);
      any = true;
    }
    return any ? out : undefined;
  }

  /** The periodic worker status; rates are over the time since the previous one. */
  private edgeStatus(stopping: boolean): EdgeStatusMessage {
    const { sources, workerId, backend, busKind, registryKind } = this.options;
    const now = Date.now();
    const seconds = (now - this.last.at) / 1000;
    const perSec = (n: number): number => (seconds > 0 && n > 0 ? n / seconds : 0);
    const c = sources.counts();
    const dPredictions = c.predictions - this.last.predictions;
    const dBatches = c.batches - this.last.batches;
    const { model, version } = sources.model();
    const accuracy = sources.accuracy();
    const msg: EdgeStatusMessage = {
      workerId,
      publishedAt: now,
      ready: !stopping && sources.ready(),
      modelVersion: version ?? null,
      backend,
      validationAccuracy: validationAccuracyOf(model),
      liveAccuracy: finiteOrNull(accuracy.live),
      labelled: accuracy.labelled,
      predictedMix: this.predictedMix.shares(),
      messagesInPerSec: perSec(this.counts.messagesIn - this.last.messagesIn),
      predictionsOutPerSec: perSec(dPredictions),
      meanBatchSize: dBatches > 0 ? dPredictions / dBatches : 0,
      latencyMs: this.latencies.drain(),
      queueDepth: sources.queueDepth(),
      deadLetters: sources.deadLetters(),
      bus: busKind,
      registry: registryKind,
    };
    this.last = {
      at: now,
      messagesIn: this.counts.messagesIn,
      predictions: c.predictions,
      batches: c.batches,
    };
    return msg;
  }

  private publishEdgeStatus(stopping = false): void {
    if (!this.options.ingest.publishStatus) return;
    try {
      this.publish(
        'edge-status',
        STATUS_TOPICS.edgeStatus(this.options.workerId),
        edgeStatusMessageSchema,
        this.edgeStatus(stopping),
        0,
      );
    } catch (err) {
      this.failed('edge-status', err);
    }
  }

  /** Validates `msg` with its schema (observers drop what does not match) and publishes it, not retained. */
  private publish(
    kind: StatusKind,
    topic: string,
    schema: {
      safeParse(v: unknown): {
        success: boolean;
        error?: { issues: readonly { path: readonly PropertyKey[]; message: string }[] };
      };
    },
    msg: unknown,
    qos: 0 | 1,
  ): void {
    const { ingest, metrics, track } = this.options;
    if (!ingest.publishStatus) return;
    try {
      const checked = schema.safeParse(msg);
      if (!checked.success) {
        const issue = checked.error?.issues[0];
        const where = issue?.path.map(String).join('.') ?? '';
        throw new Error(`message does not match its schema: ${where}: ${issue?.message ?? 'invalid'}`);
      }
      track(
        ingest.publishStatus(topic, msg, qos).then(
          () => {
            this.counts.published++;
            metrics.statusPublished.inc({ kind });
          },
          (err: unknown) => this.failed(kind, err),
        ),
      );
    } catch (err) {
      this.failed(kind, err);
    }
  }

  /** Best effort: counted and logged at debug, never thrown. */
  private failed(kind: StatusKind, err: unknown): void {
    this.counts.failed++;
    this.options.metrics.statusPublishFailures.inc({ kind });
    this.options.logger.debug(`${kind} status message not published`, { kind, err: describeError(err) });
  }
}

/** The champion's validation accuracy from its metadata, or null when missing or out of [0, 1]. */
function validationAccuracyOf(model: LoadedModel | undefined): number | null {
  const acc = model?.metadata.validation?.accuracy;
  return typeof acc === 'number' && acc >= 0 && acc <= 1 ? acc : null;
}

/** A finite number, or null (NaN and ±Infinity do not survive JSON and fail the schemas). */
export function finiteOrNull(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** The per-feature part of a drift window message. */
export function windowFeatureStatus(s: FeatureDriftStatus): {
  feature: FeatureDriftStatus['feature'];
  statistic: number | null;
  pvalue: number | null;
  threshold: number;
  criticalStatistic: number | null;
  drifted: boolean;
} {
  return {
    feature: s.feature,
    statistic: finiteOrNull(s.statistic),
    pvalue: finiteOrNull(s.pvalue),
    threshold: Number.isFinite(s.threshold) ? s.threshold : 0,
    criticalStatistic: finiteOrNull(s.criticalStatistic),
    drifted: s.drifted,
  };
}

/** Topic levels may not contain `/`, `+`, `#` or NUL; the schema caps the id at 128 characters. */
export function checkWorkerId(id: string): string {
  if (
    typeof id !== 'string' ||
    id.length === 0 ||
    id.length > 128 ||
    /[/+#]/.test(id) ||
    id.includes('\u0000')
  ) {
    throw new RangeError(
      `workerId must be 1-128 characters without / + # or NUL (it is a topic level), got ${JSON.stringify(id)}`,
    );
  }
  return id;
}
