import { randomUUID } from 'node:crypto';
import { BUS_TOPICS, type EventBus } from '../../common/bus/types.ts';
import { AccuracyMonitor, type AccuracyMonitorConfig } from '../../common/drift/accuracy-monitor.ts';
import { DriftEpisodeManager } from '../../common/drift/episode.ts';
import {
  FeatureDriftDetector,
  type FeatureDriftConfig,
  type FeatureDriftStatus,
  type WindowReport,
} from '../../common/drift/feature-drift.ts';
import type { DriftAlarm } from '../../common/drift/types.ts';
import { describeError } from '../../common/errors.ts';
import { parseRetrainRequest, type RetrainRequest } from '../../common/events/schemas.ts';
import type { Logger } from '../../common/logging/logger.ts';
import type { LoadedModel } from '../../common/model/types.ts';
import type { Efficiency } from '../../common/schema/features.ts';
import type { Telemetry } from '../../common/schema/telemetry.ts';
import type { EdgeMetrics } from './metrics.ts';
import type { ModelHolder } from './model-holder.ts';
import type { AccuracyPort, DriftPort, EpisodePort } from './ports.ts';

/**
 * The retrain trigger: drift alarm → drift episode → retrain request. It feeds
 * every predicted row to the feature drift detector and every labelled
 * prediction of the serving model to the accuracy monitor; an alarm of either
 * goes to the episode manager, which asks for at most one retrain per episode
 * (the request is validated and published on `driftline.retrain-requests`).
 * A new champion resets the detector's reference, the monitor's baseline and
 * ends the episode. Every alarm gets a fresh correlation id, which the request
 * it opens carries through training, promotion and the hot swap.
 */

/** How an alarm was handled, for observers (the status publisher). */
export interface AlarmOutcome {
  /** The model serving when the alarm was raised. */
  modelVersion: string;
  /**
   * The request's correlation id when the alarm opened an episode, the open episode's when it joined one,
   * else the alarm's own.
   */
  correlationId: string;
  /** The retrain request the alarm opened, if any. */
  requestId?: string;
  /** Live accuracy at the alarm (the alarm's, else the monitor's). */
  liveAccuracy: number | null | undefined;
}

/** A labelled prediction: what the accuracy monitor is fed. */
export interface LabelledOutcome {
  predicted: Efficiency;
  label: Efficiency;
  /** Model that made the prediction; only the serving model's predictions count. */
  modelVersion: string;
  ts: number;
  sampleIndex: number;
}

/** What a {@link RetrainTrigger} works with. */
export interface RetrainTriggerOptions {
  /** Registered model name: the key of the retrain requests. */
  modelName: string;
  /** The serving model (its version is the alarm's); its swaps reset the trigger. */
  holder: ModelHolder;
  /** Retrain requests are published on it. */
  bus: EventBus;
  logger: Logger;
  metrics: EdgeMetrics;
  /** Tracks a publish so the worker's drain and stop wait for it. */
  track: (p: Promise<unknown>) => void;
  /** The worker's sample clock: rows predicted so far. */
  sampleClock: () => number;
  /** A ready-made detector, false for none, undefined for a `FeatureDriftDetector` on the first champion. */
  drift: DriftPort | false | undefined;
  /** Settings of the default detector (already validated). */
  driftConfig: Readonly<FeatureDriftConfig>;
  /** A ready-made monitor, false for none, undefined for an `AccuracyMonitor` on the first champion. */
  accuracy: AccuracyPort | false | undefined;
  /** Settings of the default monitor (already validated). */
  accuracyConfig: Readonly<AccuracyMonitorConfig>;
  /** A ready-made episode manager; default a `DriftEpisodeManager` on the first champion. */
  episodes: EpisodePort | undefined;
  /** Samples after which an open episode expires (the default episode manager's setting). */
  episodeTtlSamples: number | undefined;
  /** Every tested window, after the detector's update. */
  onWindow: (window: WindowReport) => void;
  /** Every alarm, once the episode manager had it. */
  onAlarm: (alarm: DriftAlarm, outcome: AlarmOutcome) => void;
}

/** Alarm → episode → retrain request (see the module comment). */
export class RetrainTrigger {
  private detector: DriftPort | undefined;
  private monitor: AccuracyPort | undefined;
  private episodes: EpisodePort | undefined;
  /** Set just before an alarm reaches the episode manager: the correlation id of the request it may open. */
  private alarmCorrelationId = '';
  private testedInBatch = false;
  private readonly alarmCounts = { covariate: 0, concept: 0 };
  private requests = 0;

  constructor(private readonly options: RetrainTriggerOptions) {
    this.detector = options.drift === false ? undefined : options.drift;
    this.monitor = options.accuracy === false ? undefined : options.accuracy;
    this.episodes = options.episodes;
    options.holder.onSwap(({ model, version }) => this.championLoaded(model, version));
  }

  /** The drift detector in use, if any. */
  get drift(): DriftPort | undefined {
    return this.detector;
  }

  /** Correct share of the monitor's labelled window, or null. */
  get liveAccuracy(): number | null {
    return this.monitor?.liveAccuracy ?? null;
  }

  /** Labelled outcomes in the monitor's window. */
  get labelled(): number {
    return this.monitor?.snapshot?.().labelled ?? 0;
  }

  /** Alarms raised, per kind. */
  get alarms(): { covariate: number; concept: number } {
    return { ...this.alarmCounts };
  }

  /** Retrain requests published. */
  get retrainRequests(): number {
    return this.requests;
  }

  /** Latest drift test per feature (most significant over groups). */
  featureSummary(): FeatureDriftStatus[] {
    return this.detector?.featureSummary?.() ?? [];
  }

  /** True when the detector keeps one window per machine (so moved machines can be forgotten). */
  get groupsByMachine(): boolean {
    return this.detector?.dropGroup !== undefined && this.detector.config?.groupBy === 'machine';
  }

  /** Forgets the windows, streaks and cooldowns of these machines; returns the groups dropped. */
  dropGroups(machineIds: readonly string[]): number {
    let dropped = 0;
    if (!this.groupsByMachine) return 0;
    for (const id of machineIds) if (this.detector?.dropGroup?.(id)) dropped++;
    return dropped;
  }

  /** One predicted row into the drift detector (the worker's batch path). */
  observe(row: Telemetry, batchId: number): void {
    const drift = this.detector;
    if (!drift) return;
    const { metrics, logger } = this.options;
    try {
      const u = drift.update(row, row.machineId);
      if (u.tested) {
        this.testedInBatch = true;
        metrics.driftWindows.inc();
        if (u.window.rejected.length > 0)
          logger.debug('drift window rejected', { groupKey: u.window.groupKey, rejected: u.window.rejected });
        if (!drift.featureSummary) this.exportDrift(u.window.features);
        this.options.onWindow(u.window);
      }
      if (u.alarm) this.onAlarm(u.alarm);
    } catch (err) {
      logger.error('drift detector failed', { err: describeError(err), batchId });
    }
  }

  /** After a batch: exports the detector's per-feature summary when a window was tested in it. */
  endBatch(): void {
    if (this.testedInBatch && this.detector?.featureSummary) this.exportDrift(this.detector.featureSummary());
    this.testedInBatch = false;
  }

  /** A labelled prediction into the accuracy monitor; only predictions of the serving model count. */
  recordOutcome(o: LabelledOutcome): void {
    const { holder, metrics, logger } = this.options;
    if (!this.monitor || o.modelVersion !== holder.version) return;
    try {
      const alarm = this.monitor.recordOutcome(o.predicted === o.label, {
        ts: o.ts,
        sampleIndex: o.sampleIndex,
        actual: o.label,
      });
      metrics.liveAccuracy.set(this.monitor.liveAccuracy ?? Number.NaN);
      if (alarm) this.onAlarm(alarm);
    } catch (err) {
      logger.error('accuracy monitor failed', { err: describeError(err) });
    }
  }

  /** A new champion resets the drift reference, the accuracy baseline and the episode. */
  private championLoaded(model: LoadedModel, version: string): void {
    const o = this.options;
    if (o.drift !== false) {
      try {
        if (this.detector) this.detector.reset(model.reference);
        else this.detector = new FeatureDriftDetector(model.reference, o.driftConfig);
      } catch (err) {
        o.logger.error(`drift detection off for model ${version}: ${describeError(err)}`, {
          modelVersion: version,
        });
        if (!o.drift) this.detector = undefined;
      }
    }
    const acc = model.metadata.validation?.accuracy;
    const validationAccuracy = typeof acc === 'number' && acc > 0 && acc <= 1 ? acc : null;
    if (o.accuracy !== false) {
      if (validationAccuracy === null) {
        o.logger.warn(`model ${version} has no usable validation accuracy; concept drift monitoring paused`, {
          modelVersion: version,
        });
        if (!o.accuracy) this.monitor = undefined;
      } else if (this.monitor) this.monitor.reset(validationAccuracy);
      else this.monitor = new AccuracyMonitor(validationAccuracy, o.accuracyConfig);
    }
    if (this.episodes) this.episodes.championLoaded(version, validationAccuracy);
    else {
      this.episodes = new DriftEpisodeManager(
        {
          modelName: o.modelName,
          championVersion: version,
          validationAccuracy,
          ...(o.episodeTtlSamples !== undefined ? { episodeTtlSamples: o.episodeTtlSamples } : {}),
        },
        { liveAccuracy: () => this.liveAccuracy, correlationId: () => this.alarmCorrelationId },
      );
    }
    // Pending predictions stay in the label join: their labelled samples are still training data
    // (only the accuracy of the model now serving is measured, see recordOutcome).
    o.metrics.liveAccuracy.set(Number.NaN);
  }

  private onAlarm(alarm: DriftAlarm): void {
    const { holder, metrics, logger, sampleClock } = this.options;
    const version = holder.version ?? 'unknown';
    // One correlation id per alarm; when the alarm opens an episode it becomes the request's, and
    // follows it through training, promotion and the hot swap.
    const correlationId = randomUUID();
    this.alarmCorrelationId = correlationId;
    this.alarmCounts[alarm.kind]++;
    metrics.alarms.inc({ kind: alarm.kind });
    const log = logger.child({ correlationId });
    log.warn(`${alarm.kind} drift alarm on model ${version} (group ${alarm.groupKey})`, {
      action: 'drift-alarm',
      kind: alarm.kind,
      modelVersion: version,
      groupKey: alarm.groupKey,
      features: alarm.features,
      liveAccuracy: alarm.liveAccuracy,
      onset: alarm.onset,
      at: alarm.at,
    });
    const request = this.requestRetrain(alarm, log);
    // An alarm that attached to an open episode carries that episode's correlation id (no requestId: it asked
    // for nothing).
    const open = request ? null : (this.episodes?.episode?.(sampleClock()) ?? null);
    this.options.onAlarm(alarm, {
      modelVersion: version,
      correlationId: request?.correlationId ?? open?.correlationId ?? correlationId,
      ...(request ? { requestId: request.requestId } : {}),
      liveAccuracy: alarm.liveAccuracy ?? this.monitor?.liveAccuracy,
    });
  }

  /** The alarm to the episode manager; publishes and returns the retrain request when the alarm opened an episode. */
  private requestRetrain(alarm: DriftAlarm, log: Logger): RetrainRequest | undefined {
    const { bus, modelName, metrics, logger, track, sampleClock } = this.options;
    if (!this.episodes) return undefined;
    let request: RetrainRequest | null;
    try {
      request = this.episodes.onAlarm(alarm, sampleClock());
    } catch (err) {
      log.error('episode manager failed on an alarm', { err: describeError(err) });
      return undefined;
    }
    if (!request) {
      log.info('alarm joins an episode that already asked for a retrain; no new request', {
        action: 'retrain-request',
        outcome: 'skipped',
      });
      return undefined;
    }
    const checked = parseRetrainRequest(request);
    if (!checked.ok) {
      log.error(`retrain request is invalid and was not published: ${checked.reason}`, {
        action: 'retrain-request',
        outcome: 'failure',
      });
      return undefined;
    }
    const correlationId = checked.value.correlationId;
    this.requests++;
    metrics.retrainRequests.inc();
    log.info(`publishing retrain request ${checked.value.requestId}`, {
      action: 'retrain-request',
      requestId: checked.value.requestId,
      kind: alarm.kind,
    });
    track(
      bus.publish(BUS_TOPICS.retrainRequests, modelName, checked.value).then(
        () =>
          logger.info('retrain request published', {
            action: 'retrain-request',
            outcome: 'success',
            correlationId,
            requestId: checked.value.requestId,
          }),
        (err: unknown) =>
          logger.error('retrain request could not be published', {
            action: 'retrain-request',
            outcome: 'failure',
            correlationId,
            err: describeError(err),
          }),
      ),
    );
    return checked.value;
  }

  private exportDrift(features: readonly FeatureDriftStatus[]): void {
    const { metrics } = this.options;
    for (const f of features) {
      metrics.driftPValue.set({ feature: f.feature }, f.pvalue ?? Number.NaN);
      metrics.driftStatistic.set({ feature: f.feature }, f.statistic ?? Number.NaN);
    }
  }
}
