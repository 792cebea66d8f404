import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import { BUS_TOPICS, type EventBus, type Subscription } from '../../common/bus/types.ts';
import { DeadLetterSink } from '../../common/deadletter.ts';
import {
  AccuracyMonitor,
  resolveAccuracyConfig,
  type AccuracyMonitorConfig,
} from '../../common/drift/accuracy-monitor.ts';
import {
  DEFAULT_DRIFT_CONFIG,
  FeatureDriftDetector,
  resolveDriftConfig,
  type FeatureDriftConfig,
  type FeatureDriftStatus,
  type WindowReport,
} from '../../common/drift/feature-drift.ts';
import { DriftEpisodeManager } from '../../common/drift/episode.ts';
import type { DriftAlarm } from '../../common/drift/types.ts';
import { ArtifactError, describeError, isRetriable } from '../../common/errors.ts';
import { parseModelEvent, parseRetrainRequest, type RetrainRequest } from '../../common/events/schemas.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import { DEFAULT_MODEL_NAME, type LoadedModel } from '../../common/model/types.ts';
import type { MqttConnection } from '../../common/mqtt/connect.ts';
import type { LabelledSample } from '../../common/samples/types.ts';
import { FEATURES, type Efficiency, type Feature } from '../../common/schema/features.ts';
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
import { TOPICS, type Label, type Prediction, type Telemetry } from '../../common/schema/telemetry.ts';
import { sleep } from '../../common/util/sleep.ts';
import { MicroBatcher, type BatchInfo } from './batcher.ts';
import { startEdgeHttp, type EdgeHttp } from './http.ts';
import { MqttIngest, type EdgeIngest, type IngestHandlers } from './ingest.ts';
import { LabelJoin } from './label-join.ts';
import { createEdgeMetrics, type EdgeMetrics, type StatusKind } from './metrics.ts';
import { ModelHolder, type ArtifactLoader } from './model-holder.ts';
import type {
  AccuracyPort,
  ChampionRef,
  DriftPort,
  EpisodePort,
  IngestHooks,
  ModelChange,
  RegistryPort,
} from './ports.ts';
import { predictTelemetry } from './predict.ts';
import {
  ClassMix,
  DEFAULT_HISTOGRAM_BINS,
  LatencyReservoir,
  MAX_HISTOGRAM_BINS,
  RecentWindows,
  checkWorkerId,
  finiteOrNull,
  sharedHistogram,
  windowFeatureStatus,
} from './status.ts';

/** Options of {@link createEdgeWorker}. Everything is injected; only `bus` and a transport (`mqtt` or `ingest`) are required. */
export interface EdgeWorkerOptions {
  /** Event bus: retrain requests and labelled samples are published on it, model events are read from it. Not closed by the worker. */
  bus: EventBus;
  /**
   * MQTT connection of the `edge` service account (one stable client id per replica); the worker
   * builds an {@link MqttIngest} from it. Ignored when `ingest` is given.
   */
  mqtt?: MqttConnection;
  /** A ready-made transport (tests pass a fake). One of `mqtt` or `ingest` is required. */
  ingest?: EdgeIngest;
  /** Logger; default silent. */
  logger?: Logger;
  /** Prometheus registry for the edge metrics and the dead-letter counter; default a new one. One registry per worker. */
  registry?: Registry;
  /** Where champions come from (`createRegistry()` / `DirectoryRegistry`); without it only `initialModel` is served and model events are ignored. */
  modelRegistry?: RegistryPort;
  /** Registered model name to serve. Default `driftline-efficiency`. */
  modelName?: string;
  /** Reads and verifies an artifact directory: `(dir) => loadArtifact(dir, tf)`. Required with `modelRegistry`. */
  loader?: ArtifactLoader;
  /** Serve this model from the start instead of waiting for the registry. */
  initialModel?: LoadedModel;
  /** Version reported for `initialModel`. Default its `metadata.version`. */
  initialModelVersion?: string;
  /** Check the registry for a champion change this often, ms (covers bus events that never reach this process); 0 disables. Default 10,000. */
  championPollMs?: number;
  /** Flush a batch at this many messages. Default 64. */
  batchSize?: number;
  /** Flush a batch this long after its first message, ms. Default 20. */
  batchMaxWaitMs?: number;
  /** Queue length at which the intake pauses (backpressure onto the broker). Default 16 × batchSize. */
  maxQueue?: number;
  /** Feature drift detector settings (defaults: the detector's own). Ignored when `drift` is given. */
  driftConfig?: Partial<FeatureDriftConfig>;
  /** A ready-made drift detector, or false for none. Default: a `FeatureDriftDetector` built on the first champion's reference. */
  drift?: DriftPort | false;
  /** Accuracy monitor settings (defaults: the monitor's own). Ignored when `accuracy` is given. */
  accuracyConfig?: Partial<AccuracyMonitorConfig>;
  /** A ready-made accuracy monitor, or false for none. Default: an `AccuracyMonitor` against the champion's validation accuracy. */
  accuracy?: AccuracyPort | false;
  /** Alarm → at most one retrain request per episode. Default: a `DriftEpisodeManager` built on the first champion. */
  episodes?: EpisodePort;
  /** Samples after which an open drift episode expires and a new alarm may ask again. Default: the episode manager's (100,000). */
  episodeTtlSamples?: number;
  /** Predictions kept waiting for their delayed label, at most (the oldest is evicted). Default 50,000. */
  labelJoinMaxPending?: number;
  /** HTTP server for /predict, /healthz, /readyz, /metrics; false: none. Default `{ host: '127.0.0.1', port: 9102 }`. */
  http?: { host?: string; port: number; maxRows?: number; maxBodyBytes?: number } | false;
  /** Bus consumer group for model events; unique per worker so every replica hears every event. Default `edge-<clientId>`. */
  busGroup?: string;
  /** Labelled samples per bus message, at most. Default 100. */
  sampleBatchSize?: number;
  /** Publish a partial batch of labelled samples after this long, ms. Default 250. */
  sampleBatchMaxWaitMs?: number;
  /** This worker in the status messages and their topic `driftline/edge/<workerId>/status` (1-128 characters, no `/ + #`). Default the MQTT client id (`edge-worker` with an injected transport). */
  workerId?: string;
  /** tfjs backend the models run on (what `loadTf()` reported: `tensorflow`, `wasm`, `cpu`), for the status. Default `unknown`. */
  backend?: string;
  /** Publish the worker status (`driftline/edge/<workerId>/status`) this often, ms; 0: never. Default 1000. */
  statusIntervalMs?: number;
  /** At most one drift window message (`driftline/drift/window`) per drift group this often, ms. Default 250. */
  driftWindowMinIntervalMs?: number;
  /** Bins of the reference vs window histograms in drift window messages (1-100); 0: no histograms. Default 20. */
  histogramBins?: number;
}

/** A running edge worker. */
export interface EdgeWorker {
  /** Starts HTTP, waits for a champion (not ready until then), connects to the broker. Resolves once consuming. */
  start(): Promise<void>;
  /**
   * Stops consuming (later messages stay with the broker for this client id's
   * next session), drains the batcher and publishes its predictions, waits for
   * outstanding publishes, then closes MQTT, bus subscriptions, HTTP and the
   * models. Idempotent. Does not close the bus (its owner does).
   */
  stop(): Promise<void>;
  /** Model loaded and broker connected. */
  ready(): boolean;
  /** The model holder (current model, hot swap). */
  readonly holder: ModelHolder;
  readonly metrics: EdgeMetrics;
  readonly deadLetters: DeadLetterSink;
  /** The bound HTTP port once started (undefined without HTTP). */
  readonly httpPort: number | undefined;
  /** Loads `modelName`@`version` from the registry and hot-swaps it (what a model event does). False when refused. */
  loadVersion(version: string, correlationId?: string): Promise<boolean>;
  /** Counters, for tests and the dashboard. */
  stats(): EdgeWorkerStats;
}

export interface EdgeWorkerStats {
  /** Telemetry rows predicted. */
  predictions: number;
  batches: number;
  /** Messages waiting for a batch. */
  queued: number;
  modelVersion: string | undefined;
  refusedLoads: number;
  deadLetters: number;
  labelJoin: { hits: number; misses: number; evictions: number; pending: number };
  alarms: { covariate: number; concept: number };
  retrainRequests: number;
  liveAccuracy: number | null;
  /** Latest drift test per feature (most significant over groups). */
  drift: FeatureDriftStatus[];
  /** Status messages for observers: published, failed (best effort, never retried), drift windows left out by the rate limit. */
  status: { published: number; failed: number; windowsSkipped: number };
}

/**
 * A reading waiting for its delayed label. It enters the join when the
 * telemetry is taken in, before it is predicted, so a label that overtakes its
 * queued reading still matches: the label is parked on the record and the
 * sample completes when the prediction is made.
 */
interface JoinRecord {
  telemetry: Telemetry;
  predicted?: Efficiency;
  modelVersion?: string;
  sampleIndex?: number;
  /** A label that arrived before the prediction. */
  label?: Efficiency;
}

/** Reads a `driftline.model-events` value; undefined for events the worker ignores (`model-rejected`) or malformed ones (reason given). */
export function toModelChange(value: unknown): { change?: ModelChange; problem?: string } {
  const parsed = parseModelEvent(value);
  if (!parsed.ok) return { problem: parsed.reason };
  const e = parsed.value;
  if (e.type !== 'model-promoted' && e.type !== 'model-rolled-back') return {};
  return {
    change: { type: e.type, modelName: e.modelName, version: e.version, correlationId: e.correlationId },
  };
}

/** Wires model holder, batcher, drift detector, accuracy monitor and episode manager into one worker. Call `start()`. */
export function createEdgeWorker(options: EdgeWorkerOptions): EdgeWorker {
  const logger = options.logger ?? silentLogger();
  const registry = options.registry ?? new Registry();
  const metrics = createEdgeMetrics(registry);
  const modelName = options.modelName ?? DEFAULT_MODEL_NAME;
  const batchSize = options.batchSize ?? 64;
  const championPollMs = options.championPollMs ?? 10_000;
  const abort = new AbortController();
  if (options.modelRegistry && !options.loader)
    throw new Error('createEdgeWorker: `loader` is required with `modelRegistry`');
  // Validate detector settings now (a RangeError naming the parameter), not when the first model arrives.
  const driftConfig = resolveDriftConfig(normalizeDriftConfig(options.driftConfig ?? {}));
  const accuracyConfig = resolveAccuracyConfig(options.accuracyConfig ?? {});
  const statusIntervalMs = nonNegativeInt('statusIntervalMs', options.statusIntervalMs ?? 1000, 86_400_000);
  const driftWindowMinIntervalMs = nonNegativeInt(
    'driftWindowMinIntervalMs',
    options.driftWindowMinIntervalMs ?? 250,
    86_400_000,
  );
  const histogramBins = nonNegativeInt(
    'histogramBins',
    options.histogramBins ?? DEFAULT_HISTOGRAM_BINS,
    MAX_HISTOGRAM_BINS,
  );
  const workerId = checkWorkerId(options.workerId ?? options.mqtt?.clientId ?? 'edge-worker');
  const backend = options.backend ?? 'unknown';

  const holder = new ModelHolder({ logger, metrics, ...(options.loader ? { loader: options.loader } : {}) });
  let ingest: EdgeIngest;
  const deadLetters = new DeadLetterSink({
    source: 'edge-inference',
    logger,
    registry,
    publish: (topic, record) => ingest.publishDeadLetter(topic, record),
  });
  if (options.ingest) ingest = options.ingest;
  else if (options.mqtt) {
    const m = options.mqtt;
    ingest = new MqttIngest({
      url: m.url,
      clientId: m.clientId,
      deadLetters,
      logger,
      metrics,
      ...(m.username !== undefined ? { username: m.username } : {}),
      ...(m.password !== undefined ? { password: m.password } : {}),
      ...(m.ca !== undefined ? { ca: m.ca } : {}),
      ...(m.reconnectPeriodMs !== undefined ? { reconnectPeriodMs: m.reconnectPeriodMs } : {}),
      ...(m.connectAttempts !== undefined ? { connectAttempts: m.connectAttempts } : {}),
    });
  } else throw new Error('createEdgeWorker needs `mqtt` or `ingest`');
  const busGroup = options.busGroup ?? `edge-${options.mqtt?.clientId ?? 'worker'}`;

  const labelJoin = new LabelJoin<JoinRecord>({
    maxPending: options.labelJoinMaxPending ?? 50_000,
    onOutcome: (outcome) => metrics.labelJoin.inc({ outcome }),
  });
  const pending = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>): void => {
    pending.add(p);
    void p.then(
      () => pending.delete(p),
      () => pending.delete(p),
    );
  };
  const counts = {
    predictions: 0,
    batches: 0,
    refusedFetches: 0,
    alarms: { covariate: 0, concept: 0 },
    retrainRequests: 0,
  };
  /** Rows seen by the worker: the sample clock of drift windows, retrain requests and labelled samples. */
  let sampleClock = 0;
  const refusedVersions = new Set<string>();
  let drift: DriftPort | undefined = options.drift === false ? undefined : options.drift;
  let accuracy: AccuracyPort | undefined = options.accuracy === false ? undefined : options.accuracy;
  let episodes: EpisodePort | undefined = options.episodes;
  /** Set just before an alarm reaches the episode manager: the correlation id of the request it may open. */
  let alarmCorrelationId = '';

  // ── status for observers (dashboard): fed on the hot path without allocating, built when due ──
  const status = { published: 0, failed: 0, windowsSkipped: 0, messagesIn: 0 };
  const latencies = new LatencyReservoir();
  /** Predicted-class mix over the accuracy window's length (the monitor's own mix is not fed: the worker joins labels itself). */
  const predictedMix = new ClassMix(accuracyConfig.windowSize);
  /** The latest window of each drift group, for the histograms (the detector does not expose its windows). */
  let recentWindows: RecentWindows | undefined;
  let recentWindowsOf: DriftPort | undefined;
  /** Last drift window message per group (rate limit), least recently published first. */
  const windowPublishedAt = new Map<string, number>();
  let statusTimer: NodeJS.Timeout | undefined;
  let lastStatus = { at: 0, messagesIn: 0, predictions: 0, batches: 0 };

  // ── a new champion resets the drift reference, the accuracy baseline and the episode ──
  holder.onSwap(({ model, version }) => {
    if (options.drift !== false) {
      try {
        if (drift) drift.reset(model.reference);
        else drift = new FeatureDriftDetector(model.reference, driftConfig);
      } catch (err) {
        logger.error(`drift detection off for model ${version}: ${describeError(err)}`, {
          modelVersion: version,
        });
        if (!options.drift) drift = undefined;
      }
    }
    const acc = model.metadata.validation?.accuracy;
    const validationAccuracy = typeof acc === 'number' && acc > 0 && acc <= 1 ? acc : null;
    if (options.accuracy !== false) {
      if (validationAccuracy === null) {
        logger.warn(`model ${version} has no usable validation accuracy; concept drift monitoring paused`, {
          modelVersion: version,
        });
        if (!options.accuracy) accuracy = undefined;
      } else if (accuracy) accuracy.reset(validationAccuracy);
      else accuracy = new AccuracyMonitor(validationAccuracy, accuracyConfig);
    }
    if (episodes) episodes.championLoaded(version, validationAccuracy);
    else {
      episodes = new DriftEpisodeManager(
        {
          modelName,
          championVersion: version,
          validationAccuracy,
          ...(options.episodeTtlSamples !== undefined
            ? { episodeTtlSamples: options.episodeTtlSamples }
            : {}),
        },
        { liveAccuracy: () => accuracy?.liveAccuracy ?? null, correlationId: () => alarmCorrelationId },
      );
    }
    // Pending predictions stay in the join: their labelled samples are still training data
    // (only the accuracy of the model now serving is measured, see onLabel).
    metrics.liveAccuracy.set(Number.NaN);
    predictedMix.clear();
  });

  // ── alarms → retrain requests ──
  function onAlarm(alarm: DriftAlarm): void {
    const version = holder.version ?? 'unknown';
    // One correlation id per alarm; when the alarm opens an episode it becomes the request's, and
    // follows it through training, promotion and the hot swap.
    const correlationId = randomUUID();
    alarmCorrelationId = correlationId;
    counts.alarms[alarm.kind]++;
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
    const request = requestRetrain(alarm, log);
    // An alarm that attached to an open episode carries that episode's correlation id (no requestId: it asked for nothing).
    const open = request ? null : (episodes?.episode?.(sampleClock) ?? null);
    publishAlarm(
      alarm,
      version,
      request?.correlationId ?? open?.correlationId ?? correlationId,
      request?.requestId,
    );
  }

  /** The alarm to the episode manager; publishes and returns the retrain request when the alarm opened an episode. */
  function requestRetrain(alarm: DriftAlarm, log: Logger): RetrainRequest | undefined {
    if (!episodes) return undefined;
    let request: RetrainRequest | null;
    try {
      request = episodes.onAlarm(alarm, sampleClock);
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
    counts.retrainRequests++;
    metrics.retrainRequests.inc();
    log.info(`publishing retrain request ${checked.value.requestId}`, {
      action: 'retrain-request',
      requestId: checked.value.requestId,
      kind: alarm.kind,
    });
    track(
      options.bus.publish(BUS_TOPICS.retrainRequests, modelName, checked.value).then(
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

  // ── status messages (best effort: counted and logged at debug when they fail, never thrown) ──
  function statusFailed(kind: StatusKind, err: unknown): void {
    status.failed++;
    metrics.statusPublishFailures.inc({ kind });
    logger.debug(`${kind} status message not published`, { kind, err: describeError(err) });
  }

  /** Validates `msg` with its schema (observers drop what does not match) and publishes it, not retained. */
  function publishStatus(
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
    if (!ingest.publishStatus) return;
    try {
      const checked = schema.safeParse(msg);
      if (!checked.success) {
        const issue = checked.error?.issues[0];
        throw new Error(
          `message does not match its schema: ${issue?.path.map(String).join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
        );
      }
      track(
        ingest.publishStatus(topic, msg, qos).then(
          () => {
            status.published++;
            metrics.statusPublished.inc({ kind });
          },
          (err: unknown) => statusFailed(kind, err),
        ),
      );
    } catch (err) {
      statusFailed(kind, err);
    }
  }

  function publishAlarm(
    alarm: DriftAlarm,
    modelVersion: string,
    correlationId: string,
    requestId: string | undefined,
  ): void {
    const msg: DriftAlarmMessage = {
      workerId,
      kind: alarm.kind,
      groupKey: alarm.groupKey,
      publishedAt: Date.now(),
      modelVersion,
      correlationId,
      ...(requestId !== undefined ? { requestId } : {}),
      at: alarm.at,
      onset: alarm.onset,
      features: alarm.features.map((f) => ({ feature: f.feature, statistic: f.statistic, pvalue: f.pvalue })),
      liveAccuracy: finiteOrNull(alarm.liveAccuracy ?? accuracy?.liveAccuracy),
    };
    // QoS 1: alarms are rare and the dashboard's alarm list should not miss one.
    publishStatus('drift-alarm', STATUS_TOPICS.alarm, driftAlarmMessageSchema, msg, 1);
  }

  /** The recent-window tap of detector `d` (created when the detector changes); undefined when histograms are off or `d` has no config. */
  function windowTap(d: DriftPort): RecentWindows | undefined {
    if (recentWindowsOf !== d) {
      recentWindowsOf = d;
      recentWindows =
        histogramBins > 0 && ingest.publishStatus && d.config ? new RecentWindows(d.config) : undefined;
    }
    return recentWindows;
  }

  /** Reference (the champion's `reference.json` sample) vs the tested window, per feature, on shared bin edges. */
  function windowHistograms(groupKey: string): Partial<Record<Feature, Histogram>> | undefined {
    const reference = holder.current?.reference;
    const tap = recentWindows;
    if (!reference || !tap || recentWindowsOf !== drift) return undefined;
    const out: Partial<Record<Feature, Histogram>> = {};
    let any = false;
    for (let f = 0; f < FEATURES.length; f++) {
      const feature = FEATURES[f] as Feature;
      const current = tap.values(groupKey, f);
      const ref = reference.features[feature] as ArrayLike<number> | undefined;
      if (!current || !ref || ref.length === 0) continue;
      out[feature] = sharedHistogram(ref, current, histogramBins);
      any = true;
    }
    return any ? out : undefined;
  }

  function publishWindow(w: WindowReport): void {
    if (!ingest.publishStatus) return;
    const now = Date.now();
    const last = windowPublishedAt.get(w.groupKey);
    if (last !== undefined && now - last < driftWindowMinIntervalMs) {
      status.windowsSkipped++;
      return;
    }
    windowPublishedAt.delete(w.groupKey);
    windowPublishedAt.set(w.groupKey, now);
    if (windowPublishedAt.size > MAX_RATE_LIMITED_GROUPS) {
      const oldest = windowPublishedAt.keys().next();
      if (!oldest.done) windowPublishedAt.delete(oldest.value);
    }
    try {
      const msg: DriftWindowMessage = {
        workerId,
        groupKey: w.groupKey,
        windowIndex: w.windowIndex,
        publishedAt: now,
        modelVersion: holder.version ?? 'unknown',
        from: w.from,
        to: w.to,
        features: w.features.map(windowFeatureStatus),
        rejected: [...w.rejected],
      };
      const histograms = histogramBins > 0 ? windowHistograms(w.groupKey) : undefined;
      if (histograms) msg.histograms = histograms;
      publishStatus('drift-window', STATUS_TOPICS.driftWindow, driftWindowMessageSchema, msg, 0);
    } catch (err) {
      statusFailed('drift-window', err);
    }
  }

  /** The periodic worker status; rates are over the time since the previous one. */
  function edgeStatus(stopping: boolean): EdgeStatusMessage {
    const now = Date.now();
    const seconds = (now - lastStatus.at) / 1000;
    const perSec = (n: number): number => (seconds > 0 && n > 0 ? n / seconds : 0);
    const dPredictions = counts.predictions - lastStatus.predictions;
    const dBatches = counts.batches - lastStatus.batches;
    const msg: EdgeStatusMessage = {
      workerId,
      publishedAt: now,
      ready: !stopping && worker.ready(),
      modelVersion: holder.version ?? null,
      backend,
      validationAccuracy: validationAccuracyOf(holder.current),
      liveAccuracy: finiteOrNull(accuracy?.liveAccuracy),
      labelled: accuracy?.snapshot?.().labelled ?? 0,
      predictedMix: predictedMix.shares(),
      messagesInPerSec: perSec(status.messagesIn - lastStatus.messagesIn),
      predictionsOutPerSec: perSec(dPredictions),
      meanBatchSize: dBatches > 0 ? dPredictions / dBatches : 0,
      latencyMs: latencies.drain(),
      queueDepth: batcher.size,
      deadLetters: deadLetters.countsByReason(),
      bus: options.bus.kind,
      registry: options.modelRegistry ? (options.modelRegistry.kind ?? 'unknown') : 'none',
    };
    lastStatus = {
      at: now,
      messagesIn: status.messagesIn,
      predictions: counts.predictions,
      batches: counts.batches,
    };
    return msg;
  }

  function publishEdgeStatus(stopping = false): void {
    if (!ingest.publishStatus) return;
    try {
      publishStatus(
        'edge-status',
        STATUS_TOPICS.edgeStatus(workerId),
        edgeStatusMessageSchema,
        edgeStatus(stopping),
        0,
      );
    } catch (err) {
      statusFailed('edge-status', err);
    }
  }

  function startStatus(): void {
    lastStatus = {
      at: Date.now(),
      messagesIn: status.messagesIn,
      predictions: counts.predictions,
      batches: counts.batches,
    };
    latencies.drain();
    if (statusIntervalMs <= 0 || !ingest.publishStatus) return;
    statusTimer = setInterval(() => publishEdgeStatus(), statusIntervalMs);
    statusTimer.unref();
  }

  function exportDrift(features: readonly FeatureDriftStatus[]): void {
    for (const f of features) {
      metrics.driftPValue.set({ feature: f.feature }, f.pvalue ?? Number.NaN);
      metrics.driftStatistic.set({ feature: f.feature }, f.statistic ?? Number.NaN);
    }
  }

  // ── the critical path: one predict call per batch, with the model captured at the batch start ──
  async function processBatch(batch: Telemetry[], info: BatchInfo): Promise<void> {
    let lease = holder.acquire();
    while (!lease) {
      // Only before the first model: hold the batch (and, through backpressure, the intake) until one arrives.
      await holder.waitForModel();
      lease = holder.acquire();
    }
    let predictions: Prediction[];
    try {
      predictions = predictTelemetry(lease.model, batch, lease.version);
    } catch (err) {
      // The messages were acknowledged already: keep them in the dead-letter topic rather than lose them.
      metrics.batchErrors.inc();
      logger.error(`predict failed on a batch of ${batch.length}; dead-lettering it`, {
        batchId: info.id,
        modelVersion: lease.version,
        err: describeError(err),
      });
      for (const t of batch)
        track(
          deadLetters.reject(
            TOPICS.telemetry(t.machineId),
            JSON.stringify(t),
            'predict_failed',
            `model ${lease.version}: ${describeError(err)}`,
          ),
        );
      return;
    } finally {
      lease.release();
    }
    counts.batches++;
    metrics.batchSize.observe(batch.length);
    let tested = false;
    for (let i = 0; i < predictions.length; i++) {
      const p = predictions[i] as Prediction;
      const t = batch[i] as Telemetry;
      counts.predictions++;
      metrics.predictions.inc({ efficiency: p.efficiency });
      metrics.latency.observe(p.latencyMs / 1000);
      latencies.add(p.latencyMs);
      predictedMix.add(p.efficiency);
      // Not awaited here: waiting for PUBACKs inside the batch could stall the intake that reads them.
      track(
        ingest.publishPrediction(p).catch((err: unknown) => {
          metrics.publishFailures.inc();
          logger.error('prediction publish failed', {
            machineId: p.machineId,
            seq: p.seq,
            err: describeError(err),
          });
        }),
      );
      const sampleIndex = sampleClock++;
      const rec = labelJoin.peek(t.machineId, t.seq);
      if (rec && rec.telemetry === t) {
        rec.predicted = p.efficiency;
        rec.modelVersion = p.modelVersion;
        rec.sampleIndex = sampleIndex;
        if (rec.label !== undefined) {
          labelJoin.delete(t.machineId, t.seq);
          const waitForRoom = completeSample(rec as Required<JoinRecord>);
          if (waitForRoom) await waitForRoom;
        }
      }
      if (drift) {
        try {
          windowTap(drift)?.push(t, t.machineId);
          const u = drift.update(t, t.machineId);
          if (u.tested) {
            tested = true;
            metrics.driftWindows.inc();
            if (u.window.rejected.length > 0)
              logger.debug('drift window rejected', {
                groupKey: u.window.groupKey,
                rejected: u.window.rejected,
              });
            if (!drift.featureSummary) exportDrift(u.window.features);
            publishWindow(u.window);
          }
          if (u.alarm) onAlarm(u.alarm);
        } catch (err) {
          logger.error('drift detector failed', { err: describeError(err), batchId: info.id });
        }
      }
    }
    if (tested && drift?.featureSummary) exportDrift(drift.featureSummary());
  }

  const batcher = new MicroBatcher<Telemetry>({
    maxBatchSize: batchSize,
    maxWaitMs: options.batchMaxWaitMs ?? 20,
    maxQueue: options.maxQueue ?? batchSize * 16,
    process: processBatch,
    logger,
    onBackpressure: () => metrics.backpressure.inc(),
    onDepth: (n) => metrics.queueDepth.set(n),
    onError: () => metrics.batchErrors.inc(),
  });

  // Labelled samples go to the bus in small batches (`{ samples: [...] }`), so the store appends in bulk.
  const sampleBatcher = new MicroBatcher<LabelledSample>({
    maxBatchSize: options.sampleBatchSize ?? 100,
    maxWaitMs: options.sampleBatchMaxWaitMs ?? 250,
    maxQueue: Math.max(options.sampleBatchSize ?? 100, 10_000),
    process: async (samples) => {
      try {
        // Keyed by machineId (one message per machine in the batch), so a Kafka partition holds a machine's samples in order.
        const byMachine = new Map<string, LabelledSample[]>();
        for (const s of samples) {
          const list = byMachine.get(s.machineId);
          if (list) list.push(s);
          else byMachine.set(s.machineId, [s]);
        }
        for (const [machineId, list] of byMachine)
          await options.bus.publish(BUS_TOPICS.labelledSamples, machineId, { samples: list });
      } catch (err) {
        logger.error('labelled samples could not be published', {
          samples: samples.length,
          err: describeError(err),
        });
      }
    },
    logger,
  });

  function onTelemetry(t: Telemetry): Promise<void> | undefined {
    status.messagesIn++;
    labelJoin.put(t.machineId, t.seq, { telemetry: t });
    return batcher.push(t);
  }

  // ── delayed labels: join, publish the labelled sample, feed the accuracy monitor ──
  function onLabel(l: Label): Promise<void> | undefined {
    status.messagesIn++;
    const rec = labelJoin.lookup(l.machineId, l.seq);
    if (!rec) return undefined;
    rec.label = l.efficiency;
    // Still queued for prediction: completed by processBatch.
    if (rec.predicted === undefined) return undefined;
    labelJoin.delete(l.machineId, l.seq);
    return completeSample(rec as Required<JoinRecord>);
  }

  /** A predicted reading with its label: publish the labelled sample, score the prediction. */
  function completeSample(rec: Required<JoinRecord>): Promise<void> | undefined {
    const t = rec.telemetry;
    const row = {
      operationMode: t.operationMode,
      ...(Object.fromEntries(FEATURES.map((f) => [f, t[f]])) as Record<(typeof FEATURES)[number], number>),
    };
    const sample: LabelledSample = {
      machineId: t.machineId,
      seq: t.seq,
      ts: t.ts,
      sampleIndex: rec.sampleIndex,
      row,
      label: rec.label,
      prediction: rec.predicted,
      modelVersion: rec.modelVersion,
    };
    // Only predictions of the model now serving count towards its live accuracy.
    if (accuracy && rec.modelVersion === holder.version) {
      try {
        const alarm = accuracy.recordOutcome(rec.predicted === rec.label, {
          ts: t.ts,
          sampleIndex: rec.sampleIndex,
          actual: rec.label,
        });
        const live = accuracy.liveAccuracy;
        metrics.liveAccuracy.set(live ?? Number.NaN);
        if (alarm) onAlarm(alarm);
      } catch (err) {
        logger.error('accuracy monitor failed', { err: describeError(err) });
      }
    }
    return sampleBatcher.push(sample);
  }

  // ── scale-out hooks (kafka-ingest.ts): commit after drain, forget machines that moved away ──
  async function drain(): Promise<void> {
    await batcher.flush();
    await sampleBatcher.flush();
    await Promise.allSettled([...pending]);
  }

  function forgetMachines(machineIds: readonly string[]): number {
    let dropped = 0;
    if (drift?.dropGroup && drift.config?.groupBy === 'machine') {
      for (const id of machineIds) {
        if (drift.dropGroup(id)) dropped++;
        windowPublishedAt.delete(id);
      }
      // The histogram tap keeps its own per-machine rings: start it afresh too (display only; refills within a window).
      if (dropped > 0) recentWindowsOf = undefined;
    }
    // With groupBy 'all' the one window keeps its rows; from now on it fills with this worker's current machines only.
    // Predictions of these machines still waiting for a label stay in the bounded join until evicted: their labels now go to the new owner.
    logger.info(`forgetting ${machineIds.length} machine(s) moved to another worker`, {
      action: 'forget-machines',
      machines: machineIds.length,
      driftGroupsDropped: dropped,
    });
    return dropped;
  }

  // ── champions from the registry ──
  async function loadVersion(version: string, correlationId?: string): Promise<boolean> {
    const reg = options.modelRegistry;
    if (!reg) throw new Error('no model registry configured');
    if (holder.version === version) return true;
    const log = correlationId ? logger.child({ correlationId }) : logger;
    log.info(`fetching model ${modelName}@${version}`, { action: 'model-fetch', modelVersion: version });
    let dir: string;
    try {
      dir = await reg.fetchArtifact(modelName, version);
    } catch (err) {
      if (err instanceof ArtifactError) {
        refusedVersions.add(version);
        counts.refusedFetches++;
        metrics.loadsRefused.inc({ reason: 'artifact_invalid' });
        log.error(`model load refused (${describeError(err)}); keeping ${holder.version ?? 'no model'}`, {
          action: 'model-load',
          outcome: 'failure',
          modelVersion: version,
        });
        return false;
      }
      throw err;
    }
    const outcome = await holder.load(dir, { version, ...(correlationId ? { correlationId } : {}) });
    if (!outcome.ok && outcome.reason === 'artifact_invalid') refusedVersions.add(version);
    return outcome.ok;
  }

  async function onModelChange(change: ModelChange): Promise<void> {
    if (change.modelName !== modelName) return;
    logger.info(`${change.type}: ${change.modelName}@${change.version}`, {
      action: change.type,
      modelVersion: change.version,
      correlationId: change.correlationId,
    });
    // An explicit event retries a version refused earlier (its artifact may have been repaired).
    refusedVersions.delete(change.version);
    await loadVersion(change.version, change.correlationId);
  }

  async function waitForChampion(): Promise<void> {
    const reg = options.modelRegistry;
    if (!reg) {
      if (!holder.current)
        logger.warn('no model registry and no initial model: waiting for a model (not ready)');
      await Promise.race([
        holder.waitForModel(),
        new Promise((r) => abort.signal.addEventListener('abort', r, { once: true })),
      ]);
      return;
    }
    let announced: string | undefined;
    while (!holder.current && !abort.signal.aborted) {
      let note: string | undefined;
      try {
        const champion = await reg.getChampion(modelName);
        if (!champion) note = `no champion for ${modelName} yet; waiting (not ready)`;
        else if (refusedVersions.has(champion.version))
          note = `champion ${modelName}@${champion.version} was refused; waiting for another (not ready)`;
        else if (await loadVersion(champion.version)) break;
      } catch (err) {
        note = `registry not available (${describeError(err)}); retrying (not ready)`;
      }
      if (note && note !== announced) {
        announced = note;
        logger.warn(note, { action: 'model-wait' });
      }
      await sleep(championPollMs > 0 ? Math.min(championPollMs, 1000) : 1000, abort.signal);
    }
  }

  // ── following the champion without the bus (separate processes on the in-process bus, missed events) ──
  let unwatch: (() => void) | undefined;
  let followQueue: Promise<unknown> = Promise.resolve();
  function onChampionSeen(champion: ChampionRef | undefined): void {
    if (
      !champion ||
      abort.signal.aborted ||
      champion.version === holder.version ||
      refusedVersions.has(champion.version)
    )
      return;
    followQueue = followQueue
      .then(async () => {
        if (abort.signal.aborted || champion.version === holder.version) return;
        logger.info(
          `registry champion is ${champion.version}, serving ${holder.version ?? 'none'}: loading`,
          { action: 'model-follow' },
        );
        await loadVersion(champion.version);
      })
      .catch((err: unknown) =>
        logger.warn('following the registry champion failed; will retry', { err: describeError(err) }),
      );
  }
  function followChampion(): void {
    const reg = options.modelRegistry;
    if (!reg || championPollMs <= 0) return;
    if (reg.watchChampion) {
      // emitInitial: a champion that changed between the start-up load and the first poll is not missed.
      unwatch = reg.watchChampion(modelName, onChampionSeen, {
        intervalMs: championPollMs,
        emitInitial: true,
        onError: (err) => logger.debug('champion watch failed', { err: describeError(err) }),
      });
      return;
    }
    const timer = setInterval(() => {
      reg
        .getChampion(modelName)
        .then(onChampionSeen, (err: unknown) =>
          logger.debug('champion poll failed', { err: describeError(err) }),
        );
    }, championPollMs);
    timer.unref();
    unwatch = () => clearInterval(timer);
  }

  let http: EdgeHttp | undefined;
  let modelEvents: Subscription | undefined;
  let started = false;
  let stopping: Promise<void> | undefined;

  const worker: EdgeWorker = {
    holder,
    metrics,
    deadLetters,
    get httpPort() {
      return http?.port;
    },
    ready: () => holder.current !== undefined && ingest.connected,
    loadVersion,
    stats: () => ({
      predictions: counts.predictions,
      batches: counts.batches,
      queued: batcher.size,
      modelVersion: holder.version,
      refusedLoads: holder.refusedLoads + counts.refusedFetches,
      deadLetters: deadLetters.total,
      labelJoin: labelJoin.stats,
      alarms: { ...counts.alarms },
      retrainRequests: counts.retrainRequests,
      liveAccuracy: accuracy?.liveAccuracy ?? null,
      drift: drift?.featureSummary?.() ?? [],
      status: { published: status.published, failed: status.failed, windowsSkipped: status.windowsSkipped },
    }),

    async start() {
      if (started) throw new Error('edge worker already started');
      started = true;
      if (options.http !== false) {
        const h = options.http ?? { port: 9102 };
        http = await startEdgeHttp({
          host: h.host ?? '127.0.0.1',
          port: h.port,
          registry,
          holder,
          logger,
          ...(h.maxRows !== undefined ? { maxRows: h.maxRows } : {}),
          ...(h.maxBodyBytes !== undefined ? { maxBodyBytes: h.maxBodyBytes } : {}),
          ready: () => ({
            ready: worker.ready(),
            detail: { model: holder.version ?? null, mqtt: ingest.connected ? 'connected' : 'disconnected' },
          }),
          health: () => ({ model: holder.version ?? null, queued: batcher.size }),
        });
        logger.info(`edge http listening on ${h.host ?? '127.0.0.1'}:${http.port}`, { port: http.port });
      }
      if (options.modelRegistry) {
        modelEvents = await options.bus.subscribe(
          BUS_TOPICS.modelEvents,
          { group: busGroup, fromBeginning: false },
          async (msg) => {
            const { change, problem } = toModelChange(msg.value);
            if (problem) logger.warn(`ignoring a malformed model event: ${problem}`, { offset: msg.offset });
            if (!change || abort.signal.aborted) return;
            try {
              await onModelChange(change);
            } catch (err) {
              logger.error('model event could not be applied', {
                correlationId: change.correlationId,
                err: describeError(err),
              });
              if (isRetriable(err)) throw err;
            }
          },
        );
      }
      if (options.initialModel)
        holder.swap(
          options.initialModel,
          options.initialModelVersion ?? options.initialModel.metadata.version,
        );
      await waitForChampion();
      if (abort.signal.aborted) return;
      try {
        const handlers: IngestHandlers & IngestHooks = {
          telemetry: onTelemetry,
          label: onLabel,
          drain,
          forgetMachines,
          deadLetters,
          metrics,
        };
        await ingest.start(handlers);
      } catch (err) {
        if (abort.signal.aborted) return; // stop() while connecting
        throw err;
      }
      followChampion();
      startStatus();
      logger.info(`edge worker consuming: serving ${modelName}@${holder.version ?? '?'}`, {
        action: 'start',
        outcome: 'success',
        modelVersion: holder.version,
        bus: options.bus.kind,
      });
    },

    stop() {
      stopping ??= (async () => {
        abort.abort();
        unwatch?.();
        const statusWasRunning = statusTimer !== undefined;
        clearInterval(statusTimer);
        statusTimer = undefined;
        ingest.pause();
        await batcher.close();
        await sampleBatcher.close();
        // A last status (not ready) so observers see this worker leave; awaited with the other publishes.
        if (statusWasRunning) publishEdgeStatus(true);
        await followQueue;
        await modelEvents?.close();
        await Promise.allSettled([...pending]);
        await ingest.close();
        await holder.close();
        await http?.close();
        logger.info('edge worker stopped', {
          action: 'stop',
          predictions: counts.predictions,
          batches: counts.batches,
        });
      })();
      return stopping;
    },
  };
  return worker;
}

/** Drift groups whose last window message time is kept for the rate limit, at most. */
const MAX_RATE_LIMITED_GROUPS = 4096;

function nonNegativeInt(name: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v < 0 || v > max)
    throw new RangeError(`createEdgeWorker: ${name} must be an integer in [0, ${max}], got ${String(v)}`);
  return v;
}

/** The champion's validation accuracy from its metadata, or null when missing or out of [0, 1]. */
function validationAccuracyOf(model: LoadedModel | undefined): number | null {
  const acc = model?.metadata.validation?.accuracy;
  return typeof acc === 'number' && acc >= 0 && acc <= 1 ? acc : null;
}

/** A small window without an explicit hop gets hop = window (hop must not exceed the window, even when unused). */
function normalizeDriftConfig(c: Partial<FeatureDriftConfig>): Partial<FeatureDriftConfig> {
  if (c.hop !== undefined || c.windowSize === undefined) return c;
  return { ...c, hop: Math.min(DEFAULT_DRIFT_CONFIG.hop, c.windowSize) };
}
