import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { EFFICIENCY_CLASSES, FEATURES } from '../../common/schema/features.ts';

/**
 * Every Prometheus metric of the edge worker, registered on one registry. The
 * dead-letter counter (`driftline_dead_letters_total{reason}`) is registered by
 * the shared DeadLetterSink on the same registry.
 */
export interface EdgeMetrics {
  readonly registry: Registry;
  /** Valid messages taken in, by kind (`telemetry`, `label`). */
  readonly messagesIn: Counter<'kind'>;
  /** Broker connections lost (not closed by the worker), by role (`intake`, `publisher`). */
  readonly mqttDisconnects: Counter<'role'>;
  /** Rows per `predict` call of the stream. */
  readonly batchSize: Histogram;
  /** Telemetry timestamp → prediction published, seconds. */
  readonly latency: Histogram;
  /** Predictions published, by efficiency class. */
  readonly predictions: Counter<'efficiency'>;
  /**
   * p-value of the last window tested, per feature. Exact KS p-values cost ~1 ms each, so they are computed
   * when the registry is scraped, from {@link driftPValueSource}, not per tested window.
   */
  readonly driftPValue: Gauge<'feature'>;
  /** What the p-value gauge reads at scrape time: the statuses of the last tested window (set by the trigger). */
  driftPValueSource: (() => readonly { feature: string; pvalue: number | null }[] | undefined) | undefined;
  /** Test statistic of the last window tested, per feature. */
  readonly driftStatistic: Gauge<'feature'>;
  /** Drift windows tested. */
  readonly driftWindows: Counter;
  /** Alarms raised, by kind (`covariate`, `concept`, `data-quality`). */
  readonly alarms: Counter<'kind'>;
  /** Labelled readings of machines in a data-quality fault, kept out of training and the accuracy monitor. */
  readonly samplesExcluded: Counter;
  /** Retrain requests published on the bus. */
  readonly retrainRequests: Counter;
  /** 1 for the model version being served. */
  readonly modelInfo: Gauge<'name' | 'version'>;
  /** Models swapped in since start. */
  readonly modelSwaps: Counter;
  /** Model artifacts refused (corrupt, incompatible, unsigned or wrongly signed), by reason. */
  readonly loadsRefused: Counter<'reason'>;
  /** Model events not acted on because the registry's champion is another version (forged or stale). */
  readonly modelEventsIgnored: Counter<'reason'>;
  /** Label join outcomes: `hit`, `miss`, `evicted`. */
  readonly labelJoin: Counter<'outcome'>;
  /** Live accuracy over the accuracy window (NaN until enough labels). */
  readonly liveAccuracy: Gauge;
  /** Telemetry messages waiting for a batch. */
  readonly queueDepth: Gauge;
  /** Times the intake was paused because the queue was full. */
  readonly backpressure: Counter;
  /** Prediction publishes that failed. */
  readonly publishFailures: Counter;
  /** Bus publishes retried (retrain requests, labelled samples), by topic. */
  readonly busPublishRetries: Counter<'topic'>;
  /** Bus publishes given up (a value the bus cannot encode, or still undelivered at stop), by topic. */
  readonly busPublishDropped: Counter<'topic'>;
  /** Labelled samples waiting to be published (the bounded outbox). */
  readonly outboxDepth: Gauge;
  /** Telemetry and labels recognised as repeats (same machineId + seq) and not processed again, by kind. */
  readonly duplicates: Counter<'kind'>;
  /** Predictions made from telemetry the broker marked as a redelivery (MQTT DUP), published with `redelivered`. */
  readonly redelivered: Counter;
  /** Messages taken and not yet acknowledged (held PUBACKs), read from {@link watchUnacknowledged}'s source. */
  readonly unacknowledged: Gauge;
  /** Sets where `unacknowledged` is read from at each scrape (the ingest's count). */
  watchUnacknowledged(source: () => number): void;
  /** Batches whose processing threw. */
  readonly batchErrors: Counter;
  /** Status messages for observers published, by kind (`drift-window`, `drift-alarm`, `edge-status`). */
  readonly statusPublished: Counter<'kind'>;
  /** Status messages not published (invalid, transport failure, disconnected), by kind. Best effort: never retried. */
  readonly statusPublishFailures: Counter<'kind'>;
}

/** Kinds of status messages (labels of the status counters). */
export const STATUS_KINDS = [
  'drift-window',
  'drift-alarm',
  'edge-status',
  'reference-updated',
  'data-quality',
] as const;
export type StatusKind = (typeof STATUS_KINDS)[number];

/** Registers the edge metrics on `registry`. Call once per registry. */
export function createEdgeMetrics(registry: Registry): EdgeMetrics {
  const registers = [registry];
  let unacknowledged: () => number = () => 0;
  const metrics: EdgeMetrics = {
    registry,
    messagesIn: new Counter({
      name: 'driftline_edge_messages_in_total',
      help: 'Valid messages taken in, by kind',
      labelNames: ['kind'],
      registers,
    }),
    batchSize: new Histogram({
      name: 'driftline_edge_batch_size',
      help: 'Rows per predict call',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
      registers,
    }),
    latency: new Histogram({
      name: 'driftline_edge_prediction_latency_seconds',
      help: 'Telemetry timestamp to prediction published, seconds',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    predictions: new Counter({
      name: 'driftline_edge_predictions_total',
      help: 'Predictions published, by efficiency class',
      labelNames: ['efficiency'],
      registers,
    }),
    driftPValue: new Gauge({
      name: 'driftline_edge_drift_p_value',
      help: 'Drift test p-value of the last window tested, per feature',
      labelNames: ['feature'],
      registers,
      collect() {
        for (const f of metrics.driftPValueSource?.() ?? [])
          this.set({ feature: f.feature }, f.pvalue ?? Number.NaN);
      },
    }),
    driftPValueSource: undefined,
    driftStatistic: new Gauge({
      name: 'driftline_edge_drift_statistic',
      help: 'Drift test statistic of the last window tested, per feature',
      labelNames: ['feature'],
      registers,
    }),
    driftWindows: new Counter({
      name: 'driftline_edge_drift_windows_total',
      help: 'Drift windows tested',
      registers,
    }),
    alarms: new Counter({
      name: 'driftline_edge_alarms_total',
      help: 'Drift alarms raised, by kind',
      labelNames: ['kind'],
      registers,
    }),
    samplesExcluded: new Counter({
      name: 'driftline_edge_samples_excluded_total',
      help: 'Labelled readings of machines in a data-quality fault, kept out of training',
      registers,
    }),
    retrainRequests: new Counter({
      name: 'driftline_edge_retrain_requests_total',
      help: 'Retrain requests published',
      registers,
    }),
    modelInfo: new Gauge({
      name: 'driftline_edge_model_info',
      help: 'The model being served (value 1)',
      labelNames: ['name', 'version'],
      registers,
    }),
    modelSwaps: new Counter({
      name: 'driftline_edge_model_swaps_total',
      help: 'Models swapped in',
      registers,
    }),
    loadsRefused: new Counter({
      name: 'driftline_edge_model_loads_refused_total',
      help: 'Model artifacts refused, by reason',
      labelNames: ['reason'],
      registers,
    }),
    modelEventsIgnored: new Counter({
      name: 'driftline_edge_model_events_ignored_total',
      help: 'Model events not acted on: the registry champion is another version',
      labelNames: ['reason'],
      registers,
    }),
    labelJoin: new Counter({
      name: 'driftline_edge_label_join_total',
      help:
        'Label join outcomes: hit, miss (the label never found its reading), evicted (a reading pushed out ' +
        'before its label), early (a label held for its reading; counted again as hit or miss)',
      labelNames: ['outcome'],
      registers,
    }),
    liveAccuracy: new Gauge({
      name: 'driftline_edge_live_accuracy',
      help: 'Live accuracy over the accuracy window',
      registers,
    }),
    queueDepth: new Gauge({
      name: 'driftline_edge_queue_depth',
      help: 'Telemetry messages waiting for a batch',
      registers,
    }),
    mqttDisconnects: new Counter({
      name: 'driftline_edge_mqtt_disconnects_total',
      help: 'Broker connections lost (not closed by the worker), by role (intake, publisher)',
      labelNames: ['role'],
      registers,
    }),
    backpressure: new Counter({
      name: 'driftline_edge_backpressure_total',
      help: 'Times the intake paused because the queue was full',
      registers,
    }),
    publishFailures: new Counter({
      name: 'driftline_edge_publish_failures_total',
      help: 'Prediction publishes that failed',
      registers,
    }),
    busPublishRetries: new Counter({
      name: 'driftline_edge_bus_publish_retries_total',
      help: 'Bus publishes retried, by topic',
      labelNames: ['topic'],
      registers,
    }),
    busPublishDropped: new Counter({
      name: 'driftline_edge_bus_publish_dropped_total',
      help: 'Bus publishes given up (unencodable value, or undelivered at stop), by topic',
      labelNames: ['topic'],
      registers,
    }),
    outboxDepth: new Gauge({
      name: 'driftline_edge_outbox_depth',
      help: 'Labelled samples waiting to be published on the bus',
      registers,
    }),
    duplicates: new Counter({
      name: 'driftline_edge_duplicates_total',
      help: 'Messages recognised as repeats (same machineId and seq) and not processed again, by kind',
      labelNames: ['kind'],
      registers,
    }),
    redelivered: new Counter({
      name: 'driftline_edge_redelivered_total',
      help: 'Predictions made from telemetry the broker marked as a redelivery (MQTT DUP)',
      registers,
    }),
    unacknowledged: new Gauge({
      name: 'driftline_edge_unacknowledged_messages',
      help: 'Messages taken and not yet acknowledged to the broker (queued, being predicted, being published)',
      registers,
      // Read at each scrape: no per-message cost.
      collect() {
        this.set(unacknowledged());
      },
    }),
    watchUnacknowledged(source) {
      unacknowledged = source;
    },
    batchErrors: new Counter({
      name: 'driftline_edge_batch_errors_total',
      help: 'Batches whose processing failed',
      registers,
    }),
    statusPublished: new Counter({
      name: 'driftline_edge_status_published_total',
      help: 'Status messages for observers published, by kind',
      labelNames: ['kind'],
      registers,
    }),
    statusPublishFailures: new Counter({
      name: 'driftline_edge_status_publish_failures_total',
      help: 'Status messages for observers not published, by kind',
      labelNames: ['kind'],
      registers,
    }),
  };
  // Show every label value from the start so dashboards do not see gaps.
  for (const kind of ['telemetry', 'label']) metrics.messagesIn.inc({ kind }, 0);
  for (const c of EFFICIENCY_CLASSES) metrics.predictions.inc({ efficiency: c }, 0);
  for (const kind of ['covariate', 'concept']) metrics.alarms.inc({ kind }, 0);
  metrics.modelEventsIgnored.inc({ reason: 'not_champion' }, 0);
  for (const kind of ['telemetry', 'label']) metrics.duplicates.inc({ kind }, 0);
  for (const topic of ['driftline.retrain-requests', 'driftline.labelled-samples']) {
    metrics.busPublishRetries.inc({ topic }, 0);
    metrics.busPublishDropped.inc({ topic }, 0);
  }
  for (const outcome of ['hit', 'miss', 'evicted', 'early']) metrics.labelJoin.inc({ outcome }, 0);
  for (const kind of STATUS_KINDS) {
    metrics.statusPublished.inc({ kind }, 0);
    metrics.statusPublishFailures.inc({ kind }, 0);
  }
  for (const f of FEATURES) {
    metrics.driftPValue.set({ feature: f }, Number.NaN);
    metrics.driftStatistic.set({ feature: f }, Number.NaN);
  }
  metrics.liveAccuracy.set(Number.NaN);
  return metrics;
}
