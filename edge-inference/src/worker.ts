import { Registry } from 'prom-client';
import { BUS_TOPICS, type EventBus } from '../../common/bus/types.ts';
import { DeadLetterSink } from '../../common/deadletter.ts';
import { resolveAccuracyConfig, type AccuracyMonitorConfig } from '../../common/drift/accuracy-monitor.ts';
import type { AccuracyCusumConfig } from '../../common/drift/accuracy-cusum.ts';
import type { DataQualityConfig } from '../../common/drift/data-quality.ts';
import {
  DEFAULT_DRIFT_CONFIG,
  resolveDriftConfig,
  type FeatureDriftConfig,
  type FeatureDriftStatus,
} from '../../common/drift/feature-drift.ts';
import { describeError } from '../../common/errors.ts';
import { silentLogger, type Logger } from '../../common/logging/logger.ts';
import type { ModelTrust } from '../../common/model/signature.ts';
import { DEFAULT_MODEL_NAME, type LoadedModel } from '../../common/model/types.ts';
import type { MqttConnection } from '../../common/mqtt/connect.ts';
import type { LabelledSample } from '../../common/samples/types.ts';
import { FEATURES, type Efficiency } from '../../common/schema/features.ts';
import { TOPICS, type Label, type Prediction, type Telemetry } from '../../common/schema/telemetry.ts';
import { DEFAULT_BATCH_MAX_WAIT_MS, MicroBatcher, type BatchInfo } from './batcher.ts';
import { publishUntilDelivered } from './bus-retry.ts';
import { ChampionFollower } from './champion.ts';
import { RepeatFilter } from './dedup.ts';
import { DEFAULT_HISTOGRAM_BINS, MAX_HISTOGRAM_BINS } from './histogram.ts';
import { startEdgeHttp, type EdgeHttp } from './http.ts';
import {
  MqttIngest,
  type Delivery,
  type EdgeIngest,
  type IngestHandlers,
  type PublishConnection,
} from './ingest.ts';
import { LabelJoin, type LabelJoinStats } from './label-join.ts';
import { createEdgeMetrics, type EdgeMetrics } from './metrics.ts';
import { ModelHolder, type ArtifactLoader } from './model-holder.ts';
import type { AccuracyPort, DriftPort, EpisodePort, IngestHooks, RegistryPort } from './ports.ts';
import { predictTelemetry } from './predict.ts';
import { RetrainTrigger } from './retrain-trigger.ts';
import { StatusPublisher, checkWorkerId } from './status-publisher.ts';

/**
 * The edge worker: wiring, and the batch path. Telemetry and labels come in
 * through the ingest (MQTT, or Kafka when scaled out); telemetry is predicted in
 * micro-batches with the model the batch leased at its start, predictions go
 * out, each reading waits in the label join for its delayed label, and the
 * joined, labelled samples go to the bus for the retrainer. Three stages with
 * their own state hang off the batch path:
 *
 * - `champion.ts` — which model serves: wait for the registry's champion,
 *   follow it through model events and the registry watch, hot-swap it;
 * - `retrain-trigger.ts` — drift detector and accuracy monitor → drift episode
 *   → at most one retrain request per episode; reset by each new champion;
 * - `status-publisher.ts` — drift window, alarm and worker status messages for
 *   observers, best effort.
 */

/**
 * Options of {@link createEdgeWorker}. Everything is injected; only `bus` and a transport (`mqtt` or
 * `ingest`) are required.
 */
export interface EdgeWorkerOptions {
  /**
   * Event bus: retrain requests and labelled samples are published on it, model events are read from it. Not
   * closed by the worker.
   */
  bus: EventBus;
  /**
   * MQTT connection of the `edge` service account (one stable client id per replica); the worker
   * builds an {@link MqttIngest} from it (`publishConnection`: `MqttIngestOptions.publishConnection`).
   * Ignored when `ingest` is given.
   */
  mqtt?: MqttConnection & { publishConnection?: PublishConnection };
  /** A ready-made transport (tests pass a fake). One of `mqtt` or `ingest` is required. */
  ingest?: EdgeIngest;
  /** Logger; default silent. */
  logger?: Logger;
  /** Prometheus registry of the edge metrics and the dead-letter counter; default a new one. One per worker. */
  metricsRegistry?: Registry;
  /**
   * Where champions come from (`createRegistry()` / `DirectoryRegistry`); without it only `initialModel` is
   * served and model events are ignored.
   */
  modelRegistry?: RegistryPort;
  /** Registered model name to serve. Default `driftline-efficiency`. */
  modelName?: string;
  /** Reads and verifies an artifact directory: `(dir) => loadArtifact(dir, tf)`. Required with `modelRegistry`. */
  loader?: ArtifactLoader;
  /**
   * Public keys a champion's artifact signature must verify with (`resolveTrust` in
   * `common/model/signature.ts`); an unsigned or wrongly signed version is refused and counted, the current
   * champion keeps serving. The services always pass it; without it signatures are not checked (logged).
   */
  modelTrust?: ModelTrust;
  /** Serve this model from the start instead of waiting for the registry. */
  initialModel?: LoadedModel;
  /** Version reported for `initialModel`. Default its `metadata.version`. */
  initialModelVersion?: string;
  /**
   * Check the registry for a champion change this often, ms (covers bus events that never reach this
   * process); 0 disables. Default 10,000.
   */
  championPollMs?: number;
  /** Flush a batch at this many messages. Default 64. */
  batchSize?: number;
  /** Flush a batch this long after its first message, ms. Default 10. */
  batchMaxWaitMs?: number;
  /** Queue length at which the intake pauses (backpressure onto the broker). Default 16 × batchSize. */
  maxQueue?: number;
  /** Feature drift detector settings (defaults: the detector's own). Ignored when `drift` is given. */
  driftConfig?: Partial<FeatureDriftConfig>;
  /**
   * Per-machine data-quality checks (`DataQualityDetector`): false turns them off. A machine in a fault is
   * named in a `data-quality` alarm and its rows stay out of drift detection and retraining while it lasts.
   */
  dataQualityConfig?: Partial<DataQualityConfig> | false;
  /** The sequential label test beside the accuracy monitor (`AccuracyCusum`); false turns it off. */
  accuracyCusumConfig?: Partial<AccuracyCusumConfig> | false;
  /** Re-requests with more data after rejected concept retrains, per episode (`concept-retry.ts`). Default 3. */
  conceptReRequests?: number;
  /**
   * A ready-made drift detector, or false for none. Default: a `FeatureDriftDetector` built on the first
   * champion's reference.
   */
  drift?: DriftPort | false;
  /** Accuracy monitor settings (defaults: the monitor's own). Ignored when `accuracy` is given. */
  accuracyConfig?: Partial<AccuracyMonitorConfig>;
  /**
   * A ready-made accuracy monitor, or false for none. Default: an `AccuracyMonitor` against the champion's
   * validation accuracy.
   */
  accuracy?: AccuracyPort | false;
  /** Alarm → at most one retrain request per episode. Default: a `DriftEpisodeManager` built on the first champion. */
  episodes?: EpisodePort;
  /**
   * Samples after which an open drift episode expires and a new alarm may ask again. Default: the episode
   * manager's (100,000).
   */
  episodeTtlSamples?: number;
  /** Predictions kept waiting for their delayed label, at most (the oldest is evicted). Default 50,000. */
  labelJoinMaxPending?: number;
  /**
   * Labels that arrived before their reading (another topic, another publisher: MQTT and Kafka do not order
   * them), kept waiting for it, at most; 0: such a label is a miss at once. Default 50,000.
   */
  labelJoinMaxEarly?: number;
  /** A label waits this long for its reading before it counts as a miss, ms. Default 120,000. */
  labelJoinEarlyMaxAgeMs?: number;
  /**
   * HTTP server for /predict, /healthz, /readyz, /metrics; false: none. Default `{ host: '127.0.0.1', port:
   * 9102 }`.
   */
  http?: { host?: string; port: number; maxRows?: number; maxBodyBytes?: number } | false;
  /**
   * Bus consumer group for model events; unique per worker so every replica hears every event. Default
   * `edge-<clientId>`.
   */
  busGroup?: string;
  /**
   * Telemetry and label keys (machineId + seq) remembered to recognise repeats (QoS 1 redelivery, a device
   * re-sending after a broker restart, a replayed retained message); 0 disables. Default 100,000.
   */
  dedupWindow?: number;
  /**
   * Labelled samples waiting for the bus, at most (the outbox); while it is full the intake stops
   * acknowledging (backpressure). Default 10,000.
   */
  outboxMaxSamples?: number;
  /**
   * How long stop() keeps retrying undelivered retrain requests and labelled samples (bus down), ms; what is
   * still undelivered then is counted in `driftline_edge_bus_publish_dropped_total` and logged. Default 10,000.
   */
  stopGraceMs?: number;
  /** Labelled samples per bus message, at most. Default 100. */
  sampleBatchSize?: number;
  /** Publish a partial batch of labelled samples after this long, ms. Default 250. */
  sampleBatchMaxWaitMs?: number;
  /**
   * This worker in the status messages and their topic `driftline/edge/<workerId>/status` (1-128 characters,
   * no `/ + #`). Default the MQTT client id (`edge-worker` with an injected transport).
   */
  workerId?: string;
  /**
   * tfjs backend the models run on (what `loadTf()` reported: `tensorflow`, `wasm`, `cpu`), for the status.
   * Default `unknown`.
   */
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
  labelJoin: LabelJoinStats;
  alarms: { covariate: number; concept: number };
  retrainRequests: number;
  /** Covariate shifts accepted (rejected challenger, champion kept its accuracy) and references adopted. */
  adoption: { shiftsAccepted: number; referenceUpdates: number };
  /** Data-quality alarms and cleared faults, rows kept out of drift and training, the active faults. */
  dataQuality: RetrainTrigger['dataQuality'];
  liveAccuracy: number | null;
  /** Latest drift test per feature (most significant over groups). */
  drift: FeatureDriftStatus[];
  /**
   * Status messages for observers: published, failed (best effort, never retried), drift windows left out by
   * the rate limit.
   */
  status: { published: number; failed: number; windowsSkipped: number };
}

/**
 * A reading taken in: queued for its batch, then waiting for its delayed label.
 * It enters the join when the telemetry is taken in, before it is predicted, so
 * a label that overtakes its queued reading still matches: the label is parked
 * on the record and the sample completes when the prediction is made.
 */
interface JoinRecord {
  telemetry: Telemetry;
  /** Its acknowledgement, released once the prediction is published (MQTT QoS 1; else undefined). */
  delivery: Delivery | undefined;
  /** Its prediction was published (or it was dead-lettered): repeats of it may be acknowledged at once. */
  settled?: boolean;
  /** Repeats (a reconnect's redeliveries) that came while it was unsettled: acknowledged with it. */
  repeats?: Delivery[];
  predicted?: Efficiency;
  modelVersion?: string;
  sampleIndex?: number;
  /** A label that arrived before the prediction (or before the reading itself: held by the join). */
  label?: Efficiency;
  /** Its machine was in a data-quality fault when it was predicted: not training data, not scored. */
  faulty?: boolean;
}

/** Wires the model holder, the batch path and the three stages into one worker. Call `start()`. */
export function createEdgeWorker(options: EdgeWorkerOptions): EdgeWorker {
  const logger = options.logger ?? silentLogger();
  const metricsRegistry = options.metricsRegistry ?? new Registry();
  const metrics = createEdgeMetrics(metricsRegistry);
  const modelName = options.modelName ?? DEFAULT_MODEL_NAME;
  const batchSize = options.batchSize ?? 64;
  const abort = new AbortController();
  /** Aborted by stop() after `stopGraceMs`: undelivered bus publishes are then given up (counted). */
  const giveUp = new AbortController();
  const stopGraceMs = nonNegativeInt('stopGraceMs', options.stopGraceMs ?? 10_000, 86_400_000);
  const dedupWindow = nonNegativeInt('dedupWindow', options.dedupWindow ?? 100_000, 10_000_000);
  const repeats = dedupWindow > 0 ? new RepeatFilter(dedupWindow) : undefined;
  const outboxMaxSamples = nonNegativeInt('outboxMaxSamples', options.outboxMaxSamples ?? 10_000, 10_000_000);
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

  const holder = new ModelHolder({ logger, metrics, ...(options.loader ? { loader: options.loader } : {}) });
  const deadLetters = new DeadLetterSink({
    source: 'edge-inference',
    logger,
    registry: metricsRegistry,
    publish: (topic, record) => ingest.publishDeadLetter(topic, record),
  });
  const ingest: EdgeIngest = options.ingest ?? mqttIngest(options.mqtt, { deadLetters, logger, metrics });
  metrics.watchUnacknowledged(() => ingest.unacknowledged ?? 0);

  /** Publishes in flight (predictions, dead letters, requests, samples, status): drain and stop wait for them. */
  const pending = new Set<Promise<unknown>>();
  const track = (p: Promise<unknown>): void => {
    pending.add(p);
    void p.then(
      () => pending.delete(p),
      () => pending.delete(p),
    );
  };
  /** `samples` is the sample clock of drift windows, retrain requests and labelled samples: rows predicted. */
  const counts = { predictions: 0, batches: 0, samples: 0 };
  const labelJoin = new LabelJoin<JoinRecord, Efficiency>({
    maxPending: options.labelJoinMaxPending ?? 50_000,
    maxEarly: options.labelJoinMaxEarly ?? 50_000,
    earlyMaxAgeMs: options.labelJoinEarlyMaxAgeMs ?? 120_000,
    onOutcome: (outcome) => metrics.labelJoin.inc({ outcome }),
  });

  // ── the stages ──
  const champions = new ChampionFollower({
    registry: options.modelRegistry,
    modelName,
    holder,
    bus: options.bus,
    busGroup: options.busGroup ?? `edge-${options.mqtt?.clientId ?? 'worker'}`,
    pollMs: options.championPollMs ?? 10_000,
    logger,
    metrics,
    signal: abort.signal,
    ...(options.modelTrust ? { trust: options.modelTrust } : {}),
    onRejected: (event) => trigger.challengerRejected(event),
  });
  if (options.modelRegistry && !options.modelTrust)
    logger.warn('model signatures are not checked: no trusted public key was given to the worker');
  const status = new StatusPublisher({
    ingest,
    workerId,
    backend: options.backend ?? 'unknown',
    busKind: options.bus.kind,
    registryKind: options.modelRegistry ? (options.modelRegistry.kind ?? 'unknown') : 'none',
    intervalMs: statusIntervalMs,
    windowMinIntervalMs: driftWindowMinIntervalMs,
    histogramBins,
    classMixSize: accuracyConfig.windowSize,
    metrics,
    logger,
    track,
    sources: {
      ready: () => worker.ready(),
      model: () => ({ model: holder.current, version: holder.version }),
      accuracy: () => ({ live: trigger.liveAccuracy, labelled: trigger.labelled }),
      counts: () => counts,
      queueDepth: () => batcher.size,
      deadLetters: () => deadLetters.countsByReason(),
      windowValues: (groupKey, feature, windowSize) =>
        trigger.drift?.windowValues?.(groupKey, feature, windowSize),
    },
  });
  /** Publishes on the bus until delivered (or given up at stop, counted): nothing owed to the bus is dropped silently. */
  const publishReliably = async (topic: string, key: string, value: unknown): Promise<void> => {
    const delivered = await publishUntilDelivered(options.bus, topic, key, value, {
      signal: giveUp.signal,
      logger,
      onRetry: () => metrics.busPublishRetries.inc({ topic }),
    });
    if (!delivered) {
      metrics.busPublishDropped.inc({ topic });
      throw new Error(`not delivered to ${topic}`);
    }
  };
  const trigger = new RetrainTrigger({
    modelName,
    holder,
    bus: options.bus,
    publish: publishReliably,
    logger,
    metrics,
    track,
    sampleClock: () => counts.samples,
    drift: options.drift,
    driftConfig,
    accuracy: options.accuracy,
    accuracyConfig,
    episodes: options.episodes,
    episodeTtlSamples: options.episodeTtlSamples,
    onWindow: (w) => status.publishWindow(w),
    onAlarm: (alarm, outcome) => status.publishAlarm(alarm, outcome),
    onReferenceUpdate: (update, outcome) => status.publishReferenceUpdate(update, outcome),
    ...(options.dataQualityConfig !== undefined ? { dataQualityConfig: options.dataQualityConfig } : {}),
    onDataQuality: (event) => status.publishDataQuality(event),
    ...(options.accuracyCusumConfig !== undefined
      ? { accuracyCusumConfig: options.accuracyCusumConfig }
      : {}),
    ...(options.conceptReRequests !== undefined ? { conceptReRequests: options.conceptReRequests } : {}),
  });
  holder.onSwap(() => status.championLoaded());

  function onPublishError(p: Prediction, err: unknown): void {
    metrics.publishFailures.inc();
    logger.error('prediction publish failed', {
      machineId: p.machineId,
      seq: p.seq,
      err: describeError(err),
    });
  }

  /** The record's message is safe: acknowledge it and the repeats that waited for it. */
  function settle(rec: JoinRecord): void {
    rec.settled = true;
    rec.delivery?.release();
    rec.delivery = undefined;
    if (rec.repeats) for (const d of rec.repeats.splice(0)) d.release();
  }

  // ── the critical path: one predict call per batch, with the model captured at the batch start ──
  async function processBatch(records: JoinRecord[], info: BatchInfo): Promise<void> {
    const batch = new Array<Telemetry>(records.length);
    for (let i = 0; i < records.length; i++) batch[i] = (records[i] as JoinRecord).telemetry;
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
      for (const rec of records)
        track(
          deadLetters
            .reject(
              TOPICS.telemetry(rec.telemetry.machineId),
              JSON.stringify(rec.telemetry),
              'predict_failed',
              `model ${lease.version}: ${describeError(err)}`,
            )
            .finally(() => settle(rec)),
        );
      return;
    } finally {
      lease.release();
    }
    counts.batches++;
    metrics.batchSize.observe(batch.length);
    for (let i = 0; i < records.length; i++)
      if ((records[i] as JoinRecord).delivery?.redelivered === true) {
        (predictions[i] as Prediction).redelivered = true;
        metrics.redelivered.inc();
      }
    // Not awaited here: waiting for PUBACKs inside the batch could stall the intake that reads them. Once the
    // broker acknowledged a prediction, its telemetry is acknowledged; one whose publish failed is not (the
    // broker redelivers it to the next session).
    let failed: Set<Prediction> | undefined;
    const onError = (p: Prediction, err: unknown): void => {
      onPublishError(p, err);
      (failed ??= new Set()).add(p);
    };
    const published = ingest.publishPredictions
      ? ingest.publishPredictions(predictions, onError)
      : Promise.all(
          predictions.map((p) => ingest.publishPrediction(p).catch((err: unknown) => onError(p, err))),
        );
    track(
      published.then(() => {
        for (let i = 0; i < records.length; i++)
          if (!failed?.has(predictions[i] as Prediction)) settle(records[i] as JoinRecord);
      }),
    );
    for (let i = 0; i < predictions.length; i++) {
      const p = predictions[i] as Prediction;
      const t = batch[i] as Telemetry;
      counts.predictions++;
      metrics.predictions.inc({ efficiency: p.efficiency });
      metrics.latency.observe(p.latencyMs / 1000);
      status.predicted(p);
      const sampleIndex = counts.samples++;
      const faulty = trigger.observe(t, info.id);
      const rec = labelJoin.peek(t.machineId, t.seq);
      if (rec !== undefined && rec === records[i]) {
        if (faulty) rec.faulty = true;
        rec.predicted = p.efficiency;
        rec.modelVersion = p.modelVersion;
        rec.sampleIndex = sampleIndex;
        if (rec.label !== undefined) {
          labelJoin.delete(t.machineId, t.seq);
          const waitForRoom = completeSample(rec as Required<JoinRecord>);
          if (waitForRoom) await waitForRoom;
        }
      }
    }
    trigger.endBatch();
  }

  const batcher = new MicroBatcher<JoinRecord>({
    maxBatchSize: batchSize,
    maxWaitMs: options.batchMaxWaitMs ?? DEFAULT_BATCH_MAX_WAIT_MS,
    maxQueue: options.maxQueue ?? batchSize * 16,
    process: processBatch,
    logger,
    onBackpressure: () => metrics.backpressure.inc(),
    onDepth: (n) => metrics.queueDepth.set(n),
    onError: () => metrics.batchErrors.inc(),
  });

  // Labelled samples go to the bus in small batches (`{ samples: [...] }`), so the store appends in bulk.
  // The queue is the outbox: bounded, and while the bus is down each batch is retried until delivered, so the
  // queue fills and pushes back on the intake (labels are then left unacknowledged with the broker).
  const sampleBatcher = new MicroBatcher<LabelledSample>({
    maxBatchSize: options.sampleBatchSize ?? 100,
    maxWaitMs: options.sampleBatchMaxWaitMs ?? 250,
    maxQueue: Math.max(options.sampleBatchSize ?? 100, outboxMaxSamples),
    process: async (samples) => {
      // Keyed by machineId (one message per machine in the batch), so a Kafka partition holds a machine's
      // samples in order.
      const byMachine = new Map<string, LabelledSample[]>();
      for (const s of samples) {
        const list = byMachine.get(s.machineId);
        if (list) list.push(s);
        else byMachine.set(s.machineId, [s]);
      }
      let dropped = 0;
      for (const [machineId, list] of byMachine) {
        try {
          await publishReliably(BUS_TOPICS.labelledSamples, machineId, { samples: list });
        } catch {
          dropped += list.length;
        }
      }
      if (dropped > 0)
        logger.error(`${dropped} labelled samples were not delivered to the bus`, {
          action: 'labelled-samples',
          outcome: 'failure',
          samples: dropped,
        });
    },
    onDepth: (n) => metrics.outboxDepth.set(n),
    logger,
  });

  function onTelemetry(t: Telemetry, delivery?: Delivery): Promise<void> | undefined {
    status.messageIn();
    if (repeats?.telemetryRepeat(t.machineId, t.seq, t.ts)) {
      metrics.duplicates.inc({ kind: 'telemetry' });
      if (delivery) {
        // A redelivery after a reconnect may overtake its original, still queued or being published:
        // acknowledged with it, so a crash before then loses neither.
        const original = labelJoin.peek(t.machineId, t.seq);
        if (original && original.settled !== true && original.telemetry.ts === t.ts)
          (original.repeats ??= []).push(delivery);
        else delivery.release();
      }
      return undefined;
    }
    const rec: JoinRecord = { telemetry: t, delivery };
    // A label that overtook its reading was held by the join: the record is complete once predicted.
    const early = labelJoin.put(t.machineId, t.seq, rec);
    if (early !== undefined) rec.label = early;
    return batcher.push(rec);
  }

  // ── delayed labels: join, publish the labelled sample, feed the accuracy monitor ──
  function onLabel(l: Label): Promise<void> | undefined {
    status.messageIn();
    if (repeats?.labelRepeat(l.machineId, l.seq, l.efficiency)) {
      metrics.duplicates.inc({ kind: 'label' });
      return undefined;
    }
    // No reading yet: the join holds the label until it comes (or counts a miss when it never does).
    const rec = labelJoin.lookup(l.machineId, l.seq, l.efficiency);
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
    if (rec.faulty === true) {
      // A reading of a machine in a data-quality fault: not training data, and not a verdict on the model.
      metrics.samplesExcluded.inc();
      return undefined;
    }
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
    trigger.recordOutcome({
      predicted: rec.predicted,
      label: rec.label,
      modelVersion: rec.modelVersion,
      ts: t.ts,
      sampleIndex: rec.sampleIndex,
    });
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
    if (trigger.groupsByMachine) {
      dropped = trigger.dropGroups(machineIds);
      status.forgetGroups(machineIds);
    }
    // With groupBy 'all' the one window keeps its rows; from now on it fills with this worker's current machines only.
    // Predictions of these machines still waiting for a label stay in the bounded join until evicted: their
    // labels now go to the new owner.
    logger.info(`forgetting ${machineIds.length} machine(s) moved to another worker`, {
      action: 'forget-machines',
      machines: machineIds.length,
      driftGroupsDropped: dropped,
    });
    return dropped;
  }

  let http: EdgeHttp | undefined;
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
    loadVersion: (version, correlationId) => champions.loadVersion(version, correlationId),
    stats: () => ({
      predictions: counts.predictions,
      batches: counts.batches,
      queued: batcher.size,
      modelVersion: holder.version,
      refusedLoads: holder.refusedLoads + champions.refusedFetches,
      deadLetters: deadLetters.total,
      labelJoin: labelJoin.stats,
      alarms: trigger.alarms,
      retrainRequests: trigger.retrainRequests,
      adoption: trigger.adoption,
      dataQuality: trigger.dataQuality,
      liveAccuracy: trigger.liveAccuracy,
      drift: trigger.featureSummary(),
      status: status.stats(),
    }),

    async start() {
      if (started) throw new Error('edge worker already started');
      started = true;
      if (options.http !== false) {
        const h = options.http ?? { port: 9102 };
        http = await startEdgeHttp({
          host: h.host ?? '127.0.0.1',
          port: h.port,
          registry: metricsRegistry,
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
      await champions.subscribe();
      if (options.initialModel)
        holder.swap(
          options.initialModel,
          options.initialModelVersion ?? options.initialModel.metadata.version,
        );
      await champions.waitForChampion();
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
      champions.follow();
      status.start();
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
        champions.stopWatching();
        status.stop();
        ingest.pause();
        // Undelivered retrain requests and labelled samples (bus down) are retried for stopGraceMs, then given up.
        const grace = setTimeout(() => giveUp.abort(), stopGraceMs);
        await batcher.close();
        await sampleBatcher.close();
        // A last status (not ready) so observers see this worker leave; awaited with the other publishes.
        status.publishFinal();
        await champions.close();
        await Promise.allSettled([...pending]);
        clearTimeout(grace);
        giveUp.abort();
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

/** The MQTT ingest of `createEdgeWorker`'s `mqtt` option. */
function mqttIngest(
  mqtt: (MqttConnection & { publishConnection?: PublishConnection }) | undefined,
  sinks: { deadLetters: DeadLetterSink; logger: Logger; metrics: EdgeMetrics },
): EdgeIngest {
  if (!mqtt) throw new Error('createEdgeWorker needs `mqtt` or `ingest`');
  return new MqttIngest({
    url: mqtt.url,
    clientId: mqtt.clientId,
    ...sinks,
    ...(mqtt.username !== undefined ? { username: mqtt.username } : {}),
    ...(mqtt.password !== undefined ? { password: mqtt.password } : {}),
    ...(mqtt.ca !== undefined ? { ca: mqtt.ca } : {}),
    ...(mqtt.reconnectPeriodMs !== undefined ? { reconnectPeriodMs: mqtt.reconnectPeriodMs } : {}),
    ...(mqtt.connectAttempts !== undefined ? { connectAttempts: mqtt.connectAttempts } : {}),
    ...(mqtt.publishConnection !== undefined ? { publishConnection: mqtt.publishConnection } : {}),
  });
}

function nonNegativeInt(name: string, v: number, max: number): number {
  if (!Number.isInteger(v) || v < 0 || v > max)
    throw new RangeError(`createEdgeWorker: ${name} must be an integer in [0, ${max}], got ${String(v)}`);
  return v;
}

/** A small window without an explicit hop gets hop = window (hop must not exceed the window, even when unused). */
function normalizeDriftConfig(c: Partial<FeatureDriftConfig>): Partial<FeatureDriftConfig> {
  if (c.hop !== undefined || c.windowSize === undefined) return c;
  return { ...c, hop: Math.min(DEFAULT_DRIFT_CONFIG.hop, c.windowSize) };
}
