import { randomUUID } from 'node:crypto';
import { BUS_TOPICS, type EventBus } from '../../common/bus/types.ts';
import { AccuracyCusum, type AccuracyCusumConfig } from '../../common/drift/accuracy-cusum.ts';
import { AccuracyMonitor, type AccuracyMonitorConfig } from '../../common/drift/accuracy-monitor.ts';
import { DriftEpisodeManager } from '../../common/drift/episode.ts';
import {
  FeatureDriftDetector,
  type FeatureDriftConfig,
  type FeatureDriftStatus,
  type WindowReport,
} from '../../common/drift/feature-drift.ts';
import {
  DataQualityDetector,
  type DataQualityAlarm,
  type DataQualityCleared,
  type DataQualityConfig,
} from '../../common/drift/data-quality.ts';
import type { ReferenceUpdate, SettleCheck } from '../../common/drift/multiscale-drift.ts';
import type { DriftAlarm } from '../../common/drift/types.ts';
import { describeError } from '../../common/errors.ts';
import { parseRetrainRequest, type ModelRejected, type RetrainRequest } from '../../common/events/schemas.ts';
import type { Logger } from '../../common/logging/logger.ts';
import type { LoadedModel } from '../../common/model/types.ts';
import type { Telemetry } from '../../common/schema/telemetry.ts';
import { DEFAULT_CONCEPT_REREQUESTS, onConceptRejected } from './concept-retry.ts';
import type { EdgeMetrics } from './metrics.ts';
import type { AlarmOutcome, LabelledOutcome, ReferenceUpdateOutcome } from './trigger-outcomes.ts';
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
 *
 * A covariate shift the champion handles ends instead of repeating (issue 13,
 * part 3): when the retrainer rejects the challenger of the open covariate
 * request and the champion kept its accuracy on the recent holdout (at least
 * validation accuracy − `maxDrop`, the accuracy monitor's floor), the
 * multi-scale detector adopts the shifted rows as its reference
 * (`acceptShift`), the episode ends, and the update that completes the
 * adoption is logged and reported as `reference-updated` with its evidence.
 *
 * One faulty sensor is not fleet drift (part 4): a per-machine data-quality
 * detector (`common/drift/data-quality.ts`: stuck values, out-of-range share,
 * spikes, machine vs fleet) sees every row first. Its alarm names the machine
 * and is logged and reported as `data-quality` (not a retrain request); while
 * the fault lasts the machine's rows stay out of the pooled drift detector,
 * its labelled samples out of the retraining data and its labels out of the
 * accuracy monitor (`observe` returns true for such a row), and a pooled
 * alarm every feature of which is in a machine's fault is that fault.
 */

export type { AlarmOutcome, LabelledOutcome, ReferenceUpdateOutcome } from './trigger-outcomes.ts';

/** What a {@link RetrainTrigger} works with. */
export interface RetrainTriggerOptions {
  /** Registered model name: the key of the retrain requests. */
  modelName: string;
  /** The serving model (its version is the alarm's); its swaps reset the trigger. */
  holder: ModelHolder;
  /** Retrain requests are published on it. */
  bus: EventBus;
  /**
   * Publishes until delivered (the worker retries a failed publish with backoff, so a request is never left
   * unsent while its episode stays open); rejects only when given up at stop. Default `bus.publish`.
   */
  publish?: (topic: string, key: string, value: unknown) => Promise<void>;
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
  /**
   * The sequential label test beside the accuracy monitor (`AccuracyCusum`: Bernoulli CUSUMs, at most 1e-8
   * expected false alarms per label by default); false: none. It alarms sooner on large drops, sees drops
   * under `maxDrop`, and dates the change (its onset is where the CUSUM left 0), so the retrain window starts
   * at the change.
   */
  accuracyCusumConfig?: Partial<AccuracyCusumConfig> | false;
  /** Settings of the data-quality detector; false: none. */
  dataQualityConfig?: Partial<DataQualityConfig> | false;
  /** Every data-quality alarm and cleared fault. */
  onDataQuality?: (event: DataQualityAlarm | (DataQualityCleared & { kind: 'cleared' })) => void;
  /** Every adopted reference (`reference-updated`). */
  onReferenceUpdate?: (update: ReferenceUpdate, outcome: ReferenceUpdateOutcome) => void;
  /** Most re-requests with more data after rejected concept retrains, per episode (`concept-retry.ts`). */
  conceptReRequests?: number;
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
  /** The request the open episode published (cleared by a new champion or an adopted shift). */
  private openRequest: { requestId: string; correlationId: string; kind: 'covariate' | 'concept' } | null =
    null;
  /** The accepted shift whose adoption is under way: what its `reference-updated` reports. */
  private accepted: ReferenceUpdateOutcome | null = null;
  private validationAccuracy: number | null = null;
  private referenceUpdateCount = 0;
  private shiftsAcceptedCount = 0;
  private quality: DataQualityDetector | undefined;
  private cusum: AccuracyCusum | undefined;
  private readonly qualityCounts = { alarms: 0, cleared: 0, rowsExcluded: 0, alarmsExplained: 0 };

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

  /** Data-quality alarms, cleared faults, rows kept out of drift and training, pooled alarms explained. */
  get dataQuality(): {
    alarms: number;
    cleared: number;
    rowsExcluded: number;
    alarmsExplained: number;
    faults: { machineId: string; feature: string; check: string; since: number }[];
  } {
    return { ...this.qualityCounts, faults: this.quality?.faults() ?? [] };
  }

  /** Covariate shifts accepted (rejected challenger, champion kept its accuracy) and references adopted. */
  get adoption(): { shiftsAccepted: number; referenceUpdates: number } {
    return { shiftsAccepted: this.shiftsAcceptedCount, referenceUpdates: this.referenceUpdateCount };
  }

  /**
   * The retrainer rejected a challenger. When it answered the open covariate request and the champion kept
   * its accuracy (>= validation accuracy − `maxDrop`), the detector adopts the shift and the episode ends.
   * Returns whether the shift was accepted.
   */
  challengerRejected(event: ModelRejected): boolean {
    const { logger, holder, accuracyConfig } = this.options;
    const open = this.openRequest;
    if (!open || event.requestId !== open.requestId) return false;
    const log = logger.child({ correlationId: open.correlationId });
    const championAccuracy = event.championMetrics?.accuracy ?? null;
    const floor = this.validationAccuracy === null ? null : this.validationAccuracy - accuracyConfig.maxDrop;
    const drift = this.detector;
    if (open.kind === 'concept') {
      this.conceptRejected(event, open, log);
      return false;
    }
    if (championAccuracy === null || floor === null || championAccuracy < floor) {
      log.info('challenger rejected; the shift is not accepted (the detector keeps its reference)', {
        action: 'shift-accepted',
        outcome: 'skipped',
        kind: open.kind,
        championAccuracy,
        floor,
      });
      return false;
    }
    if (!drift?.acceptShift || !drift.multiscale) {
      log.info('challenger rejected and the champion kept its accuracy, but this detector cannot adopt', {
        action: 'shift-accepted',
        outcome: 'skipped',
      });
      return false;
    }
    const groups = drift.acceptShift();
    this.episodes?.referenceAdopted?.();
    this.openRequest = null;
    this.shiftsAcceptedCount++;
    this.accepted = {
      modelVersion: holder.version ?? 'unknown',
      correlationId: open.correlationId,
      requestId: open.requestId,
      championAccuracy,
    };
    log.info('covariate shift accepted: the champion handles it; adopting it as the reference', {
      action: 'shift-accepted',
      outcome: 'success',
      requestId: open.requestId,
      challenger: event.version,
      championAccuracy,
      floor,
      groups,
    });
    return true;
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

  /**
   * One predicted row into the data-quality and drift detectors (the worker's batch path). Returns true when
   * the row's machine is in a data-quality fault: the row was kept out of the drift detector, and its label
   * stays out of the retraining data and the accuracy monitor.
   */
  observe(row: Telemetry, batchId: number): boolean {
    const { metrics, logger } = this.options;
    let faulty = false;
    if (this.quality) {
      try {
        const q = this.quality.update(row, row.machineId);
        for (const a of q.alarms) this.onQualityAlarm(a);
        for (const c of q.cleared) {
          this.qualityCounts.cleared++;
          logger.info(`data-quality fault cleared: ${c.machineId} ${c.feature} ${c.check}`, {
            action: 'data-quality-cleared',
            machineId: c.machineId,
            feature: c.feature,
            check: c.check,
            at: c.at,
            since: c.since,
          });
          this.options.onDataQuality?.({ ...c, kind: 'cleared' });
        }
        faulty = this.quality.inFault(row.machineId);
      } catch (err) {
        logger.error('data-quality detector failed', { err: describeError(err), batchId });
      }
    }
    if (faulty) {
      this.qualityCounts.rowsExcluded++;
      return true;
    }
    const drift = this.detector;
    if (!drift) return false;
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
      if (u.referenceUpdate) this.onReferenceUpdate(u.referenceUpdate);
      const settle = u.tested ? drift.multiscale?.settleCheck : null;
      if (settle) this.onSettleCheck(settle);
      if (u.alarm) {
        // A pooled alarm every feature of which is in a machine's data-quality fault is that fault, not drift.
        const q = this.quality;
        const explained =
          q !== undefined &&
          u.alarm.features.length > 0 &&
          u.alarm.features.every((f) => q.machinesInFault(f.feature).length > 0);
        if (explained) {
          this.qualityCounts.alarmsExplained++;
          logger.info('pooled drift alarm explained by a data-quality fault; no retrain', {
            action: 'drift-alarm',
            outcome: 'skipped',
            features: u.alarm.features.map((f) => f.feature),
            machines: q.machinesInFault(),
          });
        } else this.onAlarm(u.alarm);
      }
    } catch (err) {
      logger.error('drift detector failed', { err: describeError(err), batchId });
    }
    return false;
  }

  private onQualityAlarm(a: DataQualityAlarm): void {
    const { logger, metrics } = this.options;
    this.qualityCounts.alarms++;
    metrics.alarms.inc({ kind: 'data-quality' });
    logger.warn(
      `data-quality fault on ${a.machineId}: ${a.feature} ${a.check}; its readings leave drift and training`,
      {
        action: 'data-quality-alarm',
        machineId: a.machineId,
        feature: a.feature,
        check: a.check,
        at: a.at,
        evidence: a.evidence,
      },
    );
    this.options.onDataQuality?.(a);
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
      // The CUSUM sees every label too; either test's alarm goes to the episode (one request per episode).
      const sequential = this.cusum?.record(o.predicted === o.label, {
        ts: o.ts,
        sampleIndex: o.sampleIndex,
      });
      if (alarm) this.onAlarm(alarm);
      else if (sequential) this.onAlarm(sequential);
    } catch (err) {
      logger.error('accuracy monitor failed', { err: describeError(err) });
    }
  }

  /** A new champion resets the drift reference, the accuracy baseline and the episode. */
  private championLoaded(model: LoadedModel, version: string): void {
    const o = this.options;
    if (o.dataQualityConfig !== false) {
      try {
        if (this.quality) this.quality.reset(model.reference);
        else this.quality = new DataQualityDetector(model.reference, o.dataQualityConfig ?? {});
      } catch (err) {
        o.logger.error(`data-quality checks off for model ${version}: ${describeError(err)}`, {
          modelVersion: version,
        });
        this.quality = undefined;
      }
    }
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
    const n = model.metadata.validation?.samples;
    const validationSamples = typeof n === 'number' && Number.isInteger(n) && n > 0 ? n : undefined;
    this.validationAccuracy = validationAccuracy;
    this.openRequest = null;
    this.accepted = null;
    if (o.accuracy !== false) {
      if (validationAccuracy === null) {
        o.logger.warn(`model ${version} has no usable validation accuracy; concept drift monitoring paused`, {
          modelVersion: version,
        });
        if (!o.accuracy) this.monitor = undefined;
      } else if (this.monitor) this.monitor.reset(validationAccuracy);
      else this.monitor = new AccuracyMonitor(validationAccuracy, o.accuracyConfig);
    }
    if (o.accuracyCusumConfig !== false && this.monitor) {
      try {
        if (validationAccuracy === null) this.cusum = undefined;
        else if (this.cusum) this.cusum.reset(validationAccuracy, validationSamples);
        else
          this.cusum = new AccuracyCusum(validationAccuracy, o.accuracyCusumConfig ?? {}, validationSamples);
      } catch (err) {
        o.logger.error(`sequential label test off for model ${version}: ${describeError(err)}`, {
          modelVersion: version,
        });
        this.cusum = undefined;
      }
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

  /**
   * A rejection while settling on an adopted shift: the continuation of that shift (the reference follows it)
   * or a new change, which ends settling and alarms. Logged with the rule that decided, so a user can tell
   * why the detector went back to alarming.
   */
  private onSettleCheck(c: SettleCheck): void {
    const { logger } = this.options;
    const fields = {
      action: 'settle-check',
      verdict: c.continuing ? 'continuing' : 'new-change',
      groupKey: c.groupKey,
      at: c.at,
      reason: c.reason,
      feature: c.feature,
      ratio: Number.isFinite(c.ratio) ? c.ratio : null,
      windowShift: c.windowShift,
    };
    if (c.continuing)
      logger.info(
        `drift while settling continues the adopted shift (group ${c.groupKey}): reference follows`,
        fields,
      );
    else
      logger.info(
        `settling ended (group ${c.groupKey}): a new change, not the adopted shift going on (${c.reason}${c.feature ? ` on ${c.feature}` : ''})`,
        fields,
      );
  }

  private onReferenceUpdate(update: ReferenceUpdate): void {
    const { holder, logger } = this.options;
    this.referenceUpdateCount++;
    const outcome: ReferenceUpdateOutcome = this.accepted ?? {
      modelVersion: holder.version ?? 'unknown',
      correlationId: randomUUID(),
      requestId: null,
      championAccuracy: null,
    };
    logger.info(
      `reference updated (group ${update.groupKey}, ${update.reason}): ${update.samples} rows adopted`,
      {
        action: 'reference-updated',
        correlationId: outcome.correlationId,
        requestId: outcome.requestId,
        modelVersion: outcome.modelVersion,
        groupKey: update.groupKey,
        reason: update.reason,
        at: update.at,
        from: update.from,
        to: update.to,
        samples: update.samples,
        championAccuracy: outcome.championAccuracy,
        features: update.features,
      },
    );
    this.options.onReferenceUpdate?.(update, outcome);
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

  /** A concept retrain lost: wait for its stage 2, or re-request with more data (`concept-retry.ts`). */
  private conceptRejected(event: ModelRejected, open: { requestId: string }, log: Logger): void {
    const episodes = this.episodes;
    const made = episodes?.reRequestCount ?? 0;
    const next = onConceptRejected(event, made, this.options.conceptReRequests ?? DEFAULT_CONCEPT_REREQUESTS);
    const { action: next_, ...detail } = next;
    log.info(`concept challenger rejected: ${next_}`, { action: 'concept-rejected', next: next_, ...detail });
    if (next.action === 'await-follow-up') open.requestId = next.requestId;
    if (next.action !== 're-request' || !episodes?.reRequest) return;
    const request = episodes.reRequest(this.options.sampleClock(), next.minSamples);
    if (request) this.publishRequest(request, 'concept', log);
  }

  /** The alarm to the episode manager; publishes and returns the retrain request when the alarm opened an episode. */
  private requestRetrain(alarm: DriftAlarm, log: Logger): RetrainRequest | undefined {
    const { sampleClock } = this.options;
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
    return this.publishRequest(request, alarm.kind, log);
  }

  /** Validates, records as the open request, and publishes a retrain request. */
  private publishRequest(
    request: RetrainRequest,
    kind: 'covariate' | 'concept',
    log: Logger,
  ): RetrainRequest | undefined {
    const { bus, modelName, metrics, logger, track } = this.options;
    const checked = parseRetrainRequest(request);
    if (!checked.ok) {
      log.error(`retrain request is invalid and was not published: ${checked.reason}`, {
        action: 'retrain-request',
        outcome: 'failure',
      });
      return undefined;
    }
    const correlationId = checked.value.correlationId;
    this.openRequest = { requestId: checked.value.requestId, correlationId, kind: checked.value.kind };
    this.requests++;
    metrics.retrainRequests.inc();
    log.info(`publishing retrain request ${checked.value.requestId}`, {
      action: 'retrain-request',
      requestId: checked.value.requestId,
      kind,
      ...(request.minSamples !== undefined ? { minSamples: request.minSamples } : {}),
    });
    const publish = this.options.publish ?? ((t, k, v) => bus.publish(t, k, v));
    track(
      publish(BUS_TOPICS.retrainRequests, modelName, checked.value).then(
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

  /** The statistics now; the p-values (exact, ~1 ms each) when the metrics are scraped (metrics.ts). */
  private exportDrift(features: readonly FeatureDriftStatus[]): void {
    const { metrics } = this.options;
    for (const f of features) metrics.driftStatistic.set({ feature: f.feature }, f.statistic ?? Number.NaN);
    metrics.driftPValueSource = () => features;
  }
}
