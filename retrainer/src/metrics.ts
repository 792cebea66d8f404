import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Prometheus metrics of the retrainer (served at `/metrics` by `main.ts`;
 * in the all-in-one process they share the process registry, hence the
 * `driftline_retrainer_` prefix).
 */
export class RetrainerMetrics {
  readonly registry: Registry;
  /** Retrain requests by what happened to them: accepted, duplicate, coalesced, invalid; follow-up: a stage-2 retrain queued by the retrainer. */
  readonly requests: Counter<'result'>;
  /** Finished trainings by outcome: promoted, rejected, failed, timed-out, insufficient-data. */
  readonly trainings: Counter<'outcome'>;
  /** Duration of the training step (worker start to artifact saved), seconds. */
  readonly trainingDuration: Histogram<'outcome'>;
  /** Duration of a whole retrain (dataset, training, evaluation, registration), seconds. */
  readonly retrainDuration: Histogram;
  /** Challengers promoted to champion. */
  readonly promotions: Counter;
  /** Challengers rejected, by the first gate rule they failed (or `training-failed`, `timed-out`…). */
  readonly rejections: Counter<'cause'>;
  /** Requests waiting for their model's queue (not counting the running one). */
  readonly queueDepth: Gauge;
  /** Trainings running now. */
  readonly inProgress: Gauge;
  /** Holdout accuracy of the last evaluation, by role (champion, challenger). */
  readonly lastHoldoutAccuracy: Gauge<'role'>;
  /** Labelled samples appended to the store by the bus sink. */
  readonly samplesAppended: Counter;
  /** Labelled samples rejected by the bus sink. */
  readonly samplesInvalid: Counter;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
    const registers = [registry];
    this.requests = new Counter({
      name: 'driftline_retrainer_requests_total',
      help: 'Retrain requests received, by result',
      labelNames: ['result'],
      registers,
    });
    this.trainings = new Counter({
      name: 'driftline_retrainer_trainings_total',
      help: 'Retrains finished, by outcome',
      labelNames: ['outcome'],
      registers,
    });
    this.trainingDuration = new Histogram({
      name: 'driftline_retrainer_training_duration_seconds',
      help: 'Duration of the training step, by outcome',
      labelNames: ['outcome'],
      buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
      registers,
    });
    this.retrainDuration = new Histogram({
      name: 'driftline_retrainer_retrain_duration_seconds',
      help: 'Duration of a whole retrain (dataset, training, evaluation, registration)',
      buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
      registers,
    });
    this.promotions = new Counter({
      name: 'driftline_retrainer_promotions_total',
      help: 'Challengers promoted to champion',
      registers,
    });
    this.rejections = new Counter({
      name: 'driftline_retrainer_rejections_total',
      help: 'Challengers rejected or retrains that failed, by cause',
      labelNames: ['cause'],
      registers,
    });
    this.queueDepth = new Gauge({
      name: 'driftline_retrainer_queue_depth',
      help: 'Retrain requests waiting for their model queue',
      registers,
    });
    this.inProgress = new Gauge({
      name: 'driftline_retrainer_trainings_in_progress',
      help: 'Retrains running now',
      registers,
    });
    this.lastHoldoutAccuracy = new Gauge({
      name: 'driftline_retrainer_last_holdout_accuracy',
      help: 'Holdout accuracy of the last evaluation, by role',
      labelNames: ['role'],
      registers,
    });
    this.samplesAppended = new Counter({
      name: 'driftline_retrainer_samples_appended_total',
      help: 'Labelled samples appended to the sample store',
      registers,
    });
    this.samplesInvalid = new Counter({
      name: 'driftline_retrainer_samples_invalid_total',
      help: 'Labelled samples rejected by the sample sink',
      registers,
    });
  }
}
