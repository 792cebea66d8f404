import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AccuracyCusum, type AccuracyCusumConfig } from '../../common/drift/accuracy-cusum.ts';
import { AccuracyMonitor, type AccuracyMonitorConfig } from '../../common/drift/accuracy-monitor.ts';
import {
  DataQualityDetector,
  type DataQualityAlarm,
  type DataQualityConfig,
} from '../../common/drift/data-quality.ts';
import { DriftEpisodeManager } from '../../common/drift/episode.ts';
import { FeatureDriftDetector, type FeatureDriftConfig } from '../../common/drift/feature-drift.ts';
import type { ReferenceUpdate } from '../../common/drift/multiscale-drift.ts';
import type { DriftAlarm } from '../../common/drift/types.ts';
import { isRetriable } from '../../common/errors.ts';
import { HealingTracker, type PhaseHealing, type PhaseSpan } from '../../common/eval/healing.ts';
import type { RetrainRequest } from '../../common/events/schemas.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import { loadArtifact } from '../../common/model/artifact.ts';
import type { Tf } from '../../common/model/tf.ts';
import { DEFAULT_MODEL_NAME, type EvalMetrics, type LoadedModel } from '../../common/model/types.ts';
import { DirectoryRegistry } from '../../common/registry/directory.ts';
import { MemorySampleStore } from '../../common/samples/memory-store.ts';
import type { LabelledSample } from '../../common/samples/types.ts';
import type { Efficiency } from '../../common/schema/features.ts';
import { retrainOnce } from '../../retrainer/src/pipeline.ts';
import { resolveRetrainerConfig, type RetrainerConfig } from '../../retrainer/src/config.ts';
import { planStage, type StagePlan } from '../../retrainer/src/stages.ts';
import { DEFAULT_CONCEPT_REREQUESTS, onConceptRejected } from '../../edge-inference/src/concept-retry.ts';
import { createInThreadTrainer } from '../../retrainer/src/trainer.ts';
import { generateStream, phaseBounds, type GeneratedSample } from '../../common/scenario/generator.ts';
import { phaseChangesAnything, type Scenario } from '../../common/scenario/scenario.ts';

/**
 * The default of {@link ReplayOptions.retrainLatencySamples}: 1,250 samples = 2.5 s at 500 msg/s, what the
 * live system measured from stage 1's training start to the edge serving its model (training 1.57 s,
 * gate/registration/promotion 0.49 s, the edge's fetch and load 0.38 s at load ~5 on the shared 2-core
 * machine; docs/drift-detector-design.md, section 6). Was 2,500 (5 s) before training took ~0.5-1.6 s.
 */
export const DEFAULT_RETRAIN_LATENCY_SAMPLES = 1_250;

/**
 * The offline replay behind `npm run evaluate`: a scenario runs through the
 * classifier, the drift detector, the accuracy monitor and the episode manager
 * on the sample clock (no broker, no wall clock, so it is fast and exact), and
 * with `retrain` through the retrainer too: a retrain request becomes a
 * challenger trained on the store's window (in-thread), judged by the
 * promotion gate and, when promoted, swapped in `retrainLatencySamples`
 * samples later. As in the live system, a concept retrain runs in two stages
 * (`retrainer/src/stages.ts`: stage 1 on few labels, then stage 2 against
 * whoever is champion), and a rejected concept retrain is asked for again
 * with more data (`edge-inference/src/concept-retry.ts`).
 */

export interface ReplayOptions {
  scenario: Scenario;
  /** The first champion's artifact directory. */
  championDir: string;
  tf: Tf;
  /** Close the loop: retrain, gate, promote, swap. */
  retrain: boolean;
  /** Labels arrive this many samples after their telemetry. Default 100. */
  labelDelaySamples?: number;
  /** Predict batch size (the edge's micro-batch). Default 64. */
  batchSize?: number;
  /**
   * Samples between reading a retrain's data and serving its model (time the live system spends training,
   * promoting and loading). Default {@link DEFAULT_RETRAIN_LATENCY_SAMPLES}.
   */
  retrainLatencySamples?: number;
  /** Samples between retries of a request whose window holds too little data. Default 125 (`RETRAIN_DATA_RETRY_MS` 250 at 500 msg/s). */
  retryEverySamples?: number;
  driftConfig?: Partial<FeatureDriftConfig>;
  /** Per-machine data-quality checks; `false` turns them off (every row reaches the pooled detector). */
  dataQualityConfig?: Partial<DataQualityConfig> | false;
  accuracyConfig?: Partial<AccuracyMonitorConfig>;
  /** The sequential label test beside the accuracy monitor (as on the edge, `ACCURACY_CUSUM`); false: none. Default on. */
  conceptCusum?: Partial<AccuracyCusumConfig> | false;
  /** Re-requests with more data after rejected concept retrains, per episode (`CONCEPT_REREQUEST_MAX`). Default 3. */
  conceptReRequests?: number;
  retrainerConfig?: Partial<RetrainerConfig>;
  modelName?: string;
  logger?: Logger;
  /** Called every 100,000 samples. */
  onProgress?: (sampleIndex: number) => void;
}

export interface ReplayAlarm {
  at: number;
  kind: 'covariate' | 'concept';
  features: string[];
  pValues: Record<string, number>;
  liveAccuracy: number | null;
  /** Set when the alarm opened an episode (emitted a retrain request). */
  requestId?: string;
}

export interface ReplayRetrain {
  requestId: string;
  correlationId: string;
  kind: 'covariate' | 'concept';
  /** Sample index of the alarm that asked for it (or of the stage 1 / rejection it follows). */
  requestedAt: number;
  /** Two-stage concept retraining: 1 the early model, 2 the follow-up or a re-request; absent: one stage. */
  stage?: 1 | 2;
  /** Fewest samples this training waited for. */
  minSamples: number;
  /** Sample index at which the retrain ran (after waiting for enough data). */
  trainedAt: number | null;
  trainedOn: {
    fromSample?: number;
    toSample?: number;
    samples: number;
    oldSamples: number;
    train: number;
    validation: number;
    holdout: number;
  } | null;
  champion: MetricsSummary | null;
  challenger: MetricsSummary | null;
  promoted: boolean;
  reason: string;
  version?: string;
  /** Sample index at which the promoted challenger started serving. */
  swappedAt?: number;
  trainingMs?: number;
}

export interface MetricsSummary {
  samples: number;
  accuracy: number;
  macroF1: number;
  logLoss: number;
  perClassRecall: Record<Efficiency, number>;
}

/** The covariate detector adopted recent rows as its reference (see `MultiScaleDriftDetector.acceptShift`). */
export interface ReplayReferenceUpdate {
  at: number;
  reason: 'accepted' | 'continuing';
  /** Sample range of the adopted rows. */
  fromSample: number;
  toSample: number;
  samples: number;
  /** Features whose old and new reference differ (KS p <= 1e-3), smallest p first. */
  changed: { feature: string; oldMean: number; newMean: number; statistic: number; pvalue: number }[];
}

export interface ReplayDataQuality {
  alarms: (Pick<DataQualityAlarm, 'machineId' | 'feature' | 'check' | 'evidence'> & { at: number })[];
  cleared: { at: number; machineId: string; feature: string; check: string }[];
  /** Rows kept from the pooled drift detector because their machine was in a fault. */
  rowsExcludedFromDrift: number;
  /** Labelled samples kept out of the retraining data for the same reason. */
  labelsExcludedFromTraining: number;
  /** Pooled covariate alarms explained by a data-quality fault (every feature in a fault), not sent on. */
  reclassifiedAlarms: number;
}

export interface ReplayResult {
  samples: number;
  phases: { name: string; start: number; end: number; changesAnything: boolean }[];
  alarms: ReplayAlarm[];
  /** Per phase that changes anything: samples from its start to its first alarm, or null. */
  detectionDelay: Record<string, number | null>;
  /** Alarms inside phases that change nothing. */
  falseAlarms: number;
  accuracy: { overall: number | null; perPhase: Record<string, number | null> };
  healing: PhaseHealing[];
  preDriftAccuracy: number | null;
  retrains: ReplayRetrain[];
  championVersions: { version: string; from: number }[];
  /** Covariate shifts the champion was judged to handle (rejected challenger, champion accuracy held): the detector adopts them. */
  shiftsAccepted: { at: number; requestId: string; groups: string[] }[];
  referenceUpdates: ReplayReferenceUpdate[];
  /** Rejections while a group settled after an adopted shift: a continuation, or a different change (an alarm). */
  settleChecks: {
    at: number;
    continuing: boolean;
    reason: string;
    feature: string | null;
    ratio: number | null;
  }[];
  dataQuality: ReplayDataQuality | null;
  elapsedMs: number;
}

function summarize(m: EvalMetrics | null): MetricsSummary | null {
  if (!m) return null;
  return {
    samples: m.samples,
    accuracy: m.accuracy,
    macroF1: m.macroF1,
    logLoss: m.logLoss,
    perClassRecall: m.perClassRecall,
  };
}

interface PendingLabel {
  due: number;
  sample: GeneratedSample;
  predicted: Efficiency;
  modelVersion: string;
  /** Its machine was in a data-quality fault when the reading arrived: not training data. */
  faulty: boolean;
}

/** Replays `options.scenario` once. */
export async function replayScenario(options: ReplayOptions): Promise<ReplayResult> {
  const started = performance.now();
  const logger = options.logger ?? silentLogger();
  const modelName = options.modelName ?? DEFAULT_MODEL_NAME;
  const labelDelay = options.labelDelaySamples ?? 100;
  const batchSize = options.batchSize ?? 64;
  const latency = options.retrainLatencySamples ?? DEFAULT_RETRAIN_LATENCY_SAMPLES;
  const retryEvery = options.retryEverySamples ?? 125;
  const retrainerConfig = resolveRetrainerConfig(options.retrainerConfig ?? {});
  const maxReRequests = options.conceptReRequests ?? DEFAULT_CONCEPT_REREQUESTS;
  const { scenario, tf } = options;

  const bounds = phaseBounds(scenario);
  const phases = bounds.map((b, i) => ({
    ...b,
    changesAnything: phaseChangesAnything(scenario.phases[i] as Scenario['phases'][number]),
  }));
  const healing = new HealingTracker(phases as PhaseSpan[]);

  const workDir = await mkdtemp(path.join(tmpdir(), 'driftline-eval-'));
  const registry = new DirectoryRegistry({ root: path.join(workDir, 'registry') });
  const store = new MemorySampleStore(500_000);
  const trainer = createInThreadTrainer({ tf });
  try {
    const first = await registry.registerVersion(modelName, options.championDir, {
      correlationId: 'bootstrap',
      metrics: {},
      source: 'bootstrap',
    });
    await registry.setChampion(modelName, first.version, { by: 'evaluate', reason: 'replay start' });
    let model: LoadedModel = await loadArtifact(options.championDir, tf);
    let version = first.version;
    const championVersions = [{ version, from: 0 }];

    let clock = 0;
    const detector = new FeatureDriftDetector(model.reference, options.driftConfig ?? {}, {
      now: () => clock,
    });
    const accuracy = new AccuracyMonitor(model.metadata.validation.accuracy, options.accuracyConfig ?? {}, {
      now: () => clock,
    });
    const dq =
      options.dataQualityConfig === false
        ? null
        : new DataQualityDetector(model.reference, options.dataQualityConfig ?? {}, { now: () => clock });
    const dataQuality: ReplayDataQuality | null = dq
      ? {
          alarms: [],
          cleared: [],
          rowsExcludedFromDrift: 0,
          labelsExcludedFromTraining: 0,
          reclassifiedAlarms: 0,
        }
      : null;
    const shiftsAccepted: ReplayResult['shiftsAccepted'] = [];
    const referenceUpdates: ReplayReferenceUpdate[] = [];
    const settleChecks: ReplayResult['settleChecks'] = [];
    const cusum =
      options.conceptCusum === false
        ? null
        : new AccuracyCusum(
            model.metadata.validation.accuracy,
            options.conceptCusum ?? {},
            model.metadata.validation.samples,
          );
    const episodes = new DriftEpisodeManager(
      { modelName, championVersion: version, validationAccuracy: model.metadata.validation.accuracy },
      { now: () => clock, liveAccuracy: () => accuracy.liveAccuracy },
    );

    const alarms: ReplayAlarm[] = [];
    const retrains: ReplayRetrain[] = [];
    interface PendingRequest {
      request: RetrainRequest;
      plan: StagePlan;
      nextTryAt: number;
      attempts: number;
      record: ReplayRetrain;
    }
    let pendingRequest: PendingRequest | null = null;
    /** Promoted versions waiting to serve, oldest first (stage 1 serves while stage 2 trains). */
    const pendingSwaps: { at: number; version: string }[] = [];
    /** The concept request whose rejection the open episode waits for (the edge's open request). */
    let awaitedConcept: string | null = null;
    const queueRequest = (request: RetrainRequest, index: number): PendingRequest => {
      const plan = planStage(request, retrainerConfig);
      const record: ReplayRetrain = {
        requestId: request.requestId,
        correlationId: request.correlationId,
        kind: request.kind,
        requestedAt: index,
        ...(plan.stage !== undefined ? { stage: plan.stage } : {}),
        minSamples: plan.minSamples,
        trainedAt: null,
        trainedOn: null,
        champion: null,
        challenger: null,
        promoted: false,
        reason: 'pending',
      };
      retrains.push(record);
      return { request, plan, nextTryAt: index, attempts: 0, record };
    };
    const labels: PendingLabel[] = [];
    let labelHead = 0;
    let storeBuffer: LabelledSample[] = [];
    let total = 0;
    let correctTotal = 0;
    let labelledTotal = 0;

    const onAlarm = (alarm: DriftAlarm, index: number): void => {
      const request = episodes.onAlarm(alarm, index);
      const entry: ReplayAlarm = {
        at: index,
        kind: alarm.kind,
        features: alarm.features.map((f) => f.feature),
        pValues: Object.fromEntries(alarm.features.map((f) => [f.feature, f.pvalue])),
        liveAccuracy: alarm.liveAccuracy,
      };
      if (request) {
        entry.requestId = request.requestId;
        logger.info('drift alarm: retrain requested', {
          action: 'retrain-requested',
          correlationId: request.correlationId,
          kind: alarm.kind,
          at: index,
        });
        if (options.retrain && pendingRequest === null && pendingSwaps.length === 0) {
          pendingRequest = queueRequest(request, index);
          awaitedConcept = request.kind === 'concept' ? request.requestId : null;
        }
      }
      alarms.push(entry);
    };

    const deliverLabels = (upTo: number): void => {
      while (labelHead < labels.length && (labels[labelHead] as PendingLabel).due <= upTo) {
        const l = labels[labelHead++] as PendingLabel;
        const { telemetry, label, index } = l.sample;
        const outcome = accuracy.recordLabel(telemetry.machineId, telemetry.seq, label.efficiency);
        const correct = l.predicted === label.efficiency;
        healing.record(index, correct);
        labelledTotal++;
        if (correct) correctTotal++;
        const { machineId, seq, ts, operationMode } = telemetry;
        if (l.faulty && dataQuality) dataQuality.labelsExcludedFromTraining++;
        else
          storeBuffer.push({
            machineId,
            seq,
            ts,
            sampleIndex: index,
            row: {
              operationMode,
              temperatureC: telemetry.temperatureC,
              vibrationHz: telemetry.vibrationHz,
              powerKw: telemetry.powerKw,
              networkLatencyMs: telemetry.networkLatencyMs,
              packetLossPct: telemetry.packetLossPct,
              defectRatePct: telemetry.defectRatePct,
              productionSpeedUph: telemetry.productionSpeedUph,
              maintenanceScore: telemetry.maintenanceScore,
              errorRatePct: telemetry.errorRatePct,
            },
            label: label.efficiency,
            prediction: l.predicted,
            modelVersion: l.modelVersion,
          });
        if (outcome.alarm) onAlarm(outcome.alarm, index);
        else if (cusum && outcome.matched) {
          const a = cusum.record(correct, { sampleIndex: index, ts });
          if (a) onAlarm(a, index);
        }
      }
      if (labelHead > 65_536) {
        labels.splice(0, labelHead);
        labelHead = 0;
      }
    };

    const flushStore = async (): Promise<void> => {
      if (storeBuffer.length === 0) return;
      const batch = storeBuffer;
      storeBuffer = [];
      await store.append(batch);
    };

    const tryRetrain = async (index: number): Promise<void> => {
      if (!pendingRequest || index < pendingRequest.nextTryAt) return;
      const p = pendingRequest;
      await flushStore();
      p.attempts++;
      try {
        const outcome = await retrainOnce(
          p.request,
          {
            store,
            registry,
            logger,
            tf,
            trainer,
            workDir: path.join(workDir, 'work'),
            config: { stateDir: path.join(workDir, 'state'), ...(options.retrainerConfig ?? {}) },
          },
          {
            extendToLatest: p.attempts > 1,
            windowBy: 'sample',
            minSamples: p.plan.minSamples,
            ...(p.plan.stage !== undefined ? { stage: p.plan.stage } : {}),
          },
        );
        const r = p.record;
        r.trainedAt = index;
        r.trainedOn = {
          ...(outcome.trainedOn.fromSample !== undefined
            ? { fromSample: outcome.trainedOn.fromSample, toSample: outcome.trainedOn.toSample }
            : {}),
          samples: outcome.trainedOn.samples,
          oldSamples: outcome.trainedOn.oldSamples,
          train: outcome.trainedOn.train,
          validation: outcome.trainedOn.validation,
          holdout: outcome.trainedOn.holdout,
        };
        r.champion = summarize(outcome.champion);
        r.challenger = summarize(outcome.challenger);
        r.promoted = outcome.promoted;
        r.reason = outcome.reason;
        if (outcome.version !== undefined) r.version = outcome.version;
        if (outcome.trainingMs !== undefined) r.trainingMs = Math.round(outcome.trainingMs);
        pendingRequest = null;
        if (outcome.promoted && outcome.version !== undefined)
          pendingSwaps.push({ at: index + latency, version: outcome.version });
        if (p.plan.followUp) {
          // Stage 2 follows stage 1 whatever its outcome; the episode waits for it only if stage 1 lost.
          pendingRequest = queueRequest(p.plan.followUp, index);
          awaitedConcept = outcome.promoted ? null : p.plan.followUp.requestId;
        } else if (!outcome.promoted && p.request.requestId === awaitedConcept) {
          const next = onConceptRejected(
            { trainedSamples: outcome.challenger ? outcome.trainedOn.samples : undefined },
            episodes.reRequestCount,
            maxReRequests,
          );
          const again = next.action === 're-request' ? episodes.reRequest(index, next.minSamples) : null;
          awaitedConcept = again?.requestId ?? null;
          if (again) pendingRequest = queueRequest(again, index);
        }
        // A covariate shift the champion handles: its challenger lost, and the champion kept its accuracy on
        // the recent holdout (at least the accuracy monitor's floor). The detector adopts the shifted data
        // as its reference and the episode ends, so the alarm stops and the next change is a new episode.
        const floor = model.metadata.validation.accuracy - accuracy.config.maxDrop;
        if (
          !outcome.promoted &&
          p.request.kind === 'covariate' &&
          outcome.champion !== null &&
          outcome.champion.accuracy >= floor &&
          detector.multiscale
        ) {
          const groups = detector.acceptShift();
          episodes.referenceAdopted();
          shiftsAccepted.push({ at: index, requestId: p.request.requestId, groups });
          logger.info('covariate shift accepted: the champion handles it; adopting it as the reference', {
            action: 'shift-accepted',
            correlationId: p.request.correlationId,
            at: index,
            championAccuracy: outcome.champion.accuracy,
          });
        }
      } catch (err) {
        if (isRetriable(err) && p.attempts < 40) {
          p.nextTryAt = index + retryEvery;
          return;
        }
        p.record.reason = `retrain failed: ${(err as Error).message}`;
        pendingRequest = null;
      }
    };

    const swapIfDue = async (index: number): Promise<void> => {
      const pendingSwap = pendingSwaps[0];
      if (!pendingSwap || index < pendingSwap.at) return;
      pendingSwaps.shift();
      const dir = await registry.fetchArtifact(modelName, pendingSwap.version);
      const next = await loadArtifact(dir, tf);
      model.dispose();
      model = next;
      version = pendingSwap.version;
      detector.reset(model.reference);
      dq?.reset(model.reference);
      accuracy.reset(model.metadata.validation.accuracy);
      cusum?.reset(model.metadata.validation.accuracy, model.metadata.validation.samples);
      episodes.championLoaded(version, model.metadata.validation.accuracy);
      championVersions.push({ version, from: index });
      const record = retrains.find((r) => r.version === version);
      if (record) record.swappedAt = index;
      logger.info(`champion v${version} serving`, {
        action: 'model-swapped',
        modelVersion: version,
        at: index,
      });
    };

    const batch: GeneratedSample[] = [];
    const runBatch = async (): Promise<void> => {
      if (batch.length === 0) return;
      const firstIndex = (batch[0] as GeneratedSample).index;
      await swapIfDue(firstIndex);
      const predictions = model.predict(batch.map((s) => s.telemetry));
      for (let k = 0; k < batch.length; k++) {
        const s = batch[k] as GeneratedSample;
        const p = predictions[k];
        if (!p) continue;
        clock = s.telemetry.ts;
        deliverLabels(s.index);
        const t = s.telemetry;
        let faulty = false;
        if (dq && dataQuality) {
          const q = dq.update(t, t.machineId);
          for (const a of q.alarms) {
            dataQuality.alarms.push({
              at: s.index,
              machineId: a.machineId,
              feature: a.feature,
              check: a.check,
              evidence: a.evidence,
            });
            logger.warn(`data-quality fault: ${a.machineId} ${a.feature} ${a.check}`, {
              action: 'data-quality-alarm',
              machineId: a.machineId,
              feature: a.feature,
              check: a.check,
              at: s.index,
            });
          }
          for (const c of q.cleared)
            dataQuality.cleared.push({
              at: s.index,
              machineId: c.machineId,
              feature: c.feature,
              check: c.check,
            });
          faulty = dq.inFault(t.machineId);
        }
        if (faulty && dataQuality) dataQuality.rowsExcludedFromDrift++;
        else {
          const update = detector.update(t, t.machineId);
          if (update.referenceUpdate) referenceUpdates.push(replayReferenceUpdate(update.referenceUpdate));
          const check = detector.multiscale?.settleCheck;
          if (check) {
            const { at, continuing, reason, feature, ratio } = check;
            settleChecks.push({
              at,
              continuing,
              reason,
              feature,
              ratio: Number.isFinite(ratio) ? ratio : null,
            });
          }
          if (update.alarm) {
            // A pooled alarm every feature of which is in a machine's data-quality fault is that fault, not drift.
            const explained =
              dq !== null &&
              update.alarm.features.length > 0 &&
              update.alarm.features.every((f) => dq.machinesInFault(f.feature).length > 0);
            if (explained && dataQuality) dataQuality.reclassifiedAlarms++;
            else onAlarm(update.alarm, s.index);
          }
        }
        accuracy.recordPrediction(t.machineId, t.seq, p.efficiency, { ts: t.ts, sampleIndex: s.index });
        labels.push({
          due: s.index + labelDelay,
          sample: s,
          predicted: p.efficiency,
          modelVersion: version,
          faulty,
        });
      }
      batch.length = 0;
      if (storeBuffer.length >= 4096) await flushStore();
      await tryRetrain(firstIndex);
    };

    for (const sample of generateStream(scenario)) {
      batch.push(sample);
      total++;
      if (batch.length >= batchSize) await runBatch();
      if (total % 100_000 === 0) options.onProgress?.(total);
    }
    await runBatch();
    deliverLabels(Number.POSITIVE_INFINITY);
    model.dispose();

    const detectionDelay: Record<string, number | null> = {};
    let falseAlarms = 0;
    for (const p of phases) {
      const inside = alarms.filter((a) => a.at >= p.start && a.at < p.end);
      if (p.changesAnything)
        detectionDelay[p.name] = inside.length > 0 ? (inside[0] as ReplayAlarm).at - p.start : null;
      else falseAlarms += inside.length;
    }
    for (const r of retrains)
      if (r.reason === 'pending')
        r.reason = 'not trained before the scenario ended (waiting for enough labelled data)';
    const summary = healing.summary();
    return {
      samples: total,
      phases,
      alarms,
      detectionDelay,
      falseAlarms,
      accuracy: {
        overall: labelledTotal > 0 ? correctTotal / labelledTotal : null,
        perPhase: Object.fromEntries(summary.map((s) => [s.name, s.accuracy])),
      },
      healing: summary,
      preDriftAccuracy: healing.preDriftAccuracy,
      retrains,
      championVersions,
      shiftsAccepted,
      referenceUpdates,
      settleChecks,
      dataQuality,
      elapsedMs: Math.round(performance.now() - started),
    };
  } finally {
    await registry.close();
    await rm(workDir, { recursive: true, force: true });
  }
}

function replayReferenceUpdate(u: ReferenceUpdate): ReplayReferenceUpdate {
  return {
    at: u.at.sampleIndex,
    reason: u.reason,
    fromSample: u.from.sampleIndex,
    toSample: u.to.sampleIndex,
    samples: u.samples,
    changed: u.features
      .filter((f) => f.pvalue <= 1e-3)
      .map((f) => ({
        feature: f.feature,
        oldMean: f.old.mean,
        newMean: f.new.mean,
        statistic: f.statistic,
        pvalue: f.pvalue,
      })),
  };
}
