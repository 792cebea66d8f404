import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import { BUS_TOPICS, type EventBus, type Subscription } from '../../common/bus/types.ts';
import { DeadLetterSink } from '../../common/deadletter.ts';
import { AccuracyMonitor, resolveAccuracyConfig, type AccuracyMonitorConfig } from '../../common/drift/accuracy-monitor.ts';
import { DEFAULT_DRIFT_CONFIG, FeatureDriftDetector, resolveDriftConfig, type FeatureDriftConfig, type FeatureDriftStatus } from '../../common/drift/feature-drift.ts';
import { DriftEpisodeManager } from '../../common/drift/episode.ts';
import type { DriftAlarm } from '../../common/drift/types.ts';
import { ArtifactError, describeError, isRetriable } from '../../common/errors.ts';
import { parseModelEvent, parseRetrainRequest, type RetrainRequest } from '../../common/events/schemas.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import type { LoadedModel } from '../../common/model/types.ts';
import type { LabelledSample } from '../../common/samples/types.ts';
import { FEATURES, type Efficiency } from '../../common/schema/features.ts';
import { TOPICS, type Label, type Prediction, type Telemetry } from '../../common/schema/telemetry.ts';
import { sleep } from '../../common/util/sleep.ts';
import { MicroBatcher, type BatchInfo } from './batcher.ts';
import { startEdgeHttp, type EdgeHttp } from './http.ts';
import { MqttIngest, type EdgeIngest } from './ingest.ts';
import { LabelJoin } from './label-join.ts';
import { createEdgeMetrics, type EdgeMetrics } from './metrics.ts';
import { ModelHolder, type ArtifactLoader } from './model-holder.ts';
import type { AccuracyPort, ChampionRef, DriftPort, EpisodePort, ModelChange, RegistryPort } from './ports.ts';
import { predictTelemetry } from './predict.ts';

/** Default registered model name. */
export const DEFAULT_MODEL_NAME = 'driftline-efficiency';

/** MQTT connection settings, used when no `ingest` is given. */
export interface EdgeMqttOptions {
  /** Broker URL (`mqtt://127.0.0.1:1883`, `mqtts://…`, `ws://…`). */
  url: string;
  /** Stable client id: the broker keeps this session (subscriptions and queued QoS 1 messages) across reconnects. One per replica. */
  clientId: string;
  /** User of the `edge` service account. */
  username?: string;
  /** Its password. */
  password?: string;
  /** CA certificate (PEM) to trust for mqtts/wss. */
  ca?: string | Buffer;
  /** Delay between reconnect attempts, ms. Default 1000. */
  reconnectPeriodMs?: number;
  /** Attempts of the first connection before start() fails; default unlimited (until stop()). */
  connectAttempts?: number;
}

/** Options of {@link createEdgeWorker}. Everything is injected; only `bus` and a transport (`mqtt` or `ingest`) are required. */
export interface EdgeWorkerOptions {
  /** Event bus: retrain requests and labelled samples are published on it, model events are read from it. Not closed by the worker. */
  bus: EventBus;
  /** MQTT settings; the worker builds an {@link MqttIngest} from them. Ignored when `ingest` is given. */
  mqtt?: EdgeMqttOptions;
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
  return { change: { type: e.type, modelName: e.modelName, version: e.version, correlationId: e.correlationId } };
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
  if (options.modelRegistry && !options.loader) throw new Error('createEdgeWorker: `loader` is required with `modelRegistry`');
  // Validate detector settings now (a RangeError naming the parameter), not when the first model arrives.
  const driftConfig = resolveDriftConfig(normalizeDriftConfig(options.driftConfig ?? {}));
  const accuracyConfig = resolveAccuracyConfig(options.accuracyConfig ?? {});

  const holder = new ModelHolder({ logger, metrics, ...(options.loader ? { loader: options.loader } : {}) });
  let ingest: EdgeIngest;
  const deadLetters = new DeadLetterSink({ source: 'edge-inference', logger, registry, publish: (topic, record) => ingest.publishDeadLetter(topic, record) });
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

  const labelJoin = new LabelJoin<JoinRecord>({ maxPending: options.labelJoinMaxPending ?? 50_000, onOutcome: (outcome) => metrics.labelJoin.inc({ outcome }) });
  const pending = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>): void => {
    pending.add(p);
    void p.then(
      () => pending.delete(p),
      () => pending.delete(p),
    );
  };
  const counts = { predictions: 0, batches: 0, refusedFetches: 0, alarms: { covariate: 0, concept: 0 }, retrainRequests: 0 };
  /** Rows seen by the worker: the sample clock of drift windows, retrain requests and labelled samples. */
  let sampleClock = 0;
  const refusedVersions = new Set<string>();
  let drift: DriftPort | undefined = options.drift === false ? undefined : options.drift;
  let accuracy: AccuracyPort | undefined = options.accuracy === false ? undefined : options.accuracy;
  let episodes: EpisodePort | undefined = options.episodes;
  /** Set just before an alarm reaches the episode manager: the correlation id of the request it may open. */
  let alarmCorrelationId = '';

  // ── a new champion resets the drift reference, the accuracy baseline and the episode ──
  holder.onSwap(({ model, version }) => {
    if (options.drift !== false) {
      try {
        if (drift) drift.reset(model.reference);
        else drift = new FeatureDriftDetector(model.reference, driftConfig);
      } catch (err) {
        logger.error(`drift detection off for model ${version}: ${describeError(err)}`, { modelVersion: version });
        if (!options.drift) drift = undefined;
      }
    }
    const acc = model.metadata.validation?.accuracy;
    const validationAccuracy = typeof acc === 'number' && acc > 0 && acc <= 1 ? acc : null;
    if (options.accuracy !== false) {
      if (validationAccuracy === null) {
        logger.warn(`model ${version} has no usable validation accuracy; concept drift monitoring paused`, { modelVersion: version });
        if (!options.accuracy) accuracy = undefined;
      } else if (accuracy) accuracy.reset(validationAccuracy);
      else accuracy = new AccuracyMonitor(validationAccuracy, accuracyConfig);
    }
    if (episodes) episodes.championLoaded(version, validationAccuracy);
    else {
      episodes = new DriftEpisodeManager(
        { modelName, championVersion: version, validationAccuracy, ...(options.episodeTtlSamples !== undefined ? { episodeTtlSamples: options.episodeTtlSamples } : {}) },
        { liveAccuracy: () => accuracy?.liveAccuracy ?? null, correlationId: () => alarmCorrelationId },
      );
    }
    // Pending predictions stay in the join: their labelled samples are still training data
    // (only the accuracy of the model now serving is measured, see onLabel).
    metrics.liveAccuracy.set(Number.NaN);
  });

  // ── alarms → retrain requests ──
  function onAlarm(alarm: DriftAlarm): void {
    const version = holder.version ?? 'unknown';
    // One correlation id per alarm; when the alarm opens an episode it becomes the request's, and
    // follows it through training, promotion and the hot swap.
    alarmCorrelationId = randomUUID();
    counts.alarms[alarm.kind]++;
    metrics.alarms.inc({ kind: alarm.kind });
    const log = logger.child({ correlationId: alarmCorrelationId });
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
    if (!episodes) return;
    let request: RetrainRequest | null;
    try {
      request = episodes.onAlarm(alarm, sampleClock);
    } catch (err) {
      log.error('episode manager failed on an alarm', { err: describeError(err) });
      return;
    }
    if (!request) {
      log.info('alarm joins an episode that already asked for a retrain; no new request', { action: 'retrain-request', outcome: 'skipped' });
      return;
    }
    const checked = parseRetrainRequest(request);
    if (!checked.ok) {
      log.error(`retrain request is invalid and was not published: ${checked.reason}`, { action: 'retrain-request', outcome: 'failure' });
      return;
    }
    const correlationId = checked.value.correlationId;
    counts.retrainRequests++;
    metrics.retrainRequests.inc();
    log.info(`publishing retrain request ${checked.value.requestId}`, { action: 'retrain-request', requestId: checked.value.requestId, kind: alarm.kind });
    track(
      options.bus.publish(BUS_TOPICS.retrainRequests, modelName, checked.value).then(
        () => logger.info('retrain request published', { action: 'retrain-request', outcome: 'success', correlationId, requestId: checked.value.requestId }),
        (err: unknown) => logger.error('retrain request could not be published', { action: 'retrain-request', outcome: 'failure', correlationId, err: describeError(err) }),
      ),
    );
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
      logger.error(`predict failed on a batch of ${batch.length}; dead-lettering it`, { batchId: info.id, modelVersion: lease.version, err: describeError(err) });
      for (const t of batch) track(deadLetters.reject(TOPICS.telemetry(t.machineId), JSON.stringify(t), 'predict_failed', `model ${lease.version}: ${describeError(err)}`));
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
      // Not awaited here: waiting for PUBACKs inside the batch could stall the intake that reads them.
      track(
        ingest.publishPrediction(p).catch((err: unknown) => {
          metrics.publishFailures.inc();
          logger.error('prediction publish failed', { machineId: p.machineId, seq: p.seq, err: describeError(err) });
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
          const u = drift.update(t, t.machineId);
          if (u.tested) {
            tested = true;
            metrics.driftWindows.inc();
            if (u.window.rejected.length > 0) logger.debug('drift window rejected', { groupKey: u.window.groupKey, rejected: u.window.rejected });
            if (!drift.featureSummary) exportDrift(u.window.features);
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
        await options.bus.publish(BUS_TOPICS.labelledSamples, busGroup, { samples });
      } catch (err) {
        logger.error('labelled samples could not be published', { samples: samples.length, err: describeError(err) });
      }
    },
    logger,
  });

  function onTelemetry(t: Telemetry): Promise<void> | undefined {
    labelJoin.put(t.machineId, t.seq, { telemetry: t });
    return batcher.push(t);
  }

  // ── delayed labels: join, publish the labelled sample, feed the accuracy monitor ──
  function onLabel(l: Label): Promise<void> | undefined {
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
    const row = { operationMode: t.operationMode, ...(Object.fromEntries(FEATURES.map((f) => [f, t[f]])) as Record<(typeof FEATURES)[number], number>) };
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
        const alarm = accuracy.recordOutcome(rec.predicted === rec.label, { ts: t.ts, sampleIndex: rec.sampleIndex, actual: rec.label });
        const live = accuracy.liveAccuracy;
        metrics.liveAccuracy.set(live ?? Number.NaN);
        if (alarm) onAlarm(alarm);
      } catch (err) {
        logger.error('accuracy monitor failed', { err: describeError(err) });
      }
    }
    return sampleBatcher.push(sample);
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
        log.error(`model load refused (${describeError(err)}); keeping ${holder.version ?? 'no model'}`, { action: 'model-load', outcome: 'failure', modelVersion: version });
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
    logger.info(`${change.type}: ${change.modelName}@${change.version}`, { action: change.type, modelVersion: change.version, correlationId: change.correlationId });
    // An explicit event retries a version refused earlier (its artifact may have been repaired).
    refusedVersions.delete(change.version);
    await loadVersion(change.version, change.correlationId);
  }

  async function waitForChampion(): Promise<void> {
    const reg = options.modelRegistry;
    if (!reg) {
      if (!holder.current) logger.warn('no model registry and no initial model: waiting for a model (not ready)');
      await Promise.race([holder.waitForModel(), new Promise((r) => abort.signal.addEventListener('abort', r, { once: true }))]);
      return;
    }
    let announced: string | undefined;
    while (!holder.current && !abort.signal.aborted) {
      let note: string | undefined;
      try {
        const champion = await reg.getChampion(modelName);
        if (!champion) note = `no champion for ${modelName} yet; waiting (not ready)`;
        else if (refusedVersions.has(champion.version)) note = `champion ${modelName}@${champion.version} was refused; waiting for another (not ready)`;
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
    if (!champion || abort.signal.aborted || champion.version === holder.version || refusedVersions.has(champion.version)) return;
    followQueue = followQueue
      .then(async () => {
        if (abort.signal.aborted || champion.version === holder.version) return;
        logger.info(`registry champion is ${champion.version}, serving ${holder.version ?? 'none'}: loading`, { action: 'model-follow' });
        await loadVersion(champion.version);
      })
      .catch((err: unknown) => logger.warn('following the registry champion failed; will retry', { err: describeError(err) }));
  }
  function followChampion(): void {
    const reg = options.modelRegistry;
    if (!reg || championPollMs <= 0) return;
    if (reg.watchChampion) {
      // emitInitial: a champion that changed between the start-up load and the first poll is not missed.
      unwatch = reg.watchChampion(modelName, onChampionSeen, { intervalMs: championPollMs, emitInitial: true, onError: (err) => logger.debug('champion watch failed', { err: describeError(err) }) });
      return;
    }
    const timer = setInterval(() => {
      reg.getChampion(modelName).then(onChampionSeen, (err: unknown) => logger.debug('champion poll failed', { err: describeError(err) }));
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
          ready: () => ({ ready: worker.ready(), detail: { model: holder.version ?? null, mqtt: ingest.connected ? 'connected' : 'disconnected' } }),
          health: () => ({ model: holder.version ?? null, queued: batcher.size }),
        });
        logger.info(`edge http listening on ${h.host ?? '127.0.0.1'}:${http.port}`, { port: http.port });
      }
      if (options.modelRegistry) {
        modelEvents = await options.bus.subscribe(BUS_TOPICS.modelEvents, { group: busGroup, fromBeginning: false }, async (msg) => {
          const { change, problem } = toModelChange(msg.value);
          if (problem) logger.warn(`ignoring a malformed model event: ${problem}`, { offset: msg.offset });
          if (!change || abort.signal.aborted) return;
          try {
            await onModelChange(change);
          } catch (err) {
            logger.error('model event could not be applied', { correlationId: change.correlationId, err: describeError(err) });
            if (isRetriable(err)) throw err;
          }
        });
      }
      if (options.initialModel) holder.swap(options.initialModel, options.initialModelVersion ?? options.initialModel.metadata.version);
      await waitForChampion();
      if (abort.signal.aborted) return;
      try {
        await ingest.start({ telemetry: onTelemetry, label: onLabel });
      } catch (err) {
        if (abort.signal.aborted) return; // stop() while connecting
        throw err;
      }
      followChampion();
      logger.info(`edge worker consuming: serving ${modelName}@${holder.version ?? '?'}`, { action: 'start', outcome: 'success', modelVersion: holder.version, bus: options.bus.kind });
    },

    stop() {
      stopping ??= (async () => {
        abort.abort();
        unwatch?.();
        ingest.pause();
        await batcher.close();
        await sampleBatcher.close();
        await followQueue;
        await modelEvents?.close();
        await Promise.allSettled([...pending]);
        await ingest.close();
        await holder.close();
        await http?.close();
        logger.info('edge worker stopped', { action: 'stop', predictions: counts.predictions, batches: counts.batches });
      })();
      return stopping;
    },
  };
  return worker;
}

/** A small window without an explicit hop gets hop = window (hop must not exceed the window, even when unused). */
function normalizeDriftConfig(c: Partial<FeatureDriftConfig>): Partial<FeatureDriftConfig> {
  if (c.hop !== undefined || c.windowSize === undefined) return c;
  return { ...c, hop: Math.min(DEFAULT_DRIFT_CONFIG.hop, c.windowSize) };
}

/** Creates and starts a worker. */
export async function startEdgeWorker(options: EdgeWorkerOptions): Promise<EdgeWorker> {
  const worker = createEdgeWorker(options);
  await worker.start();
  return worker;
}
