import type { DeadLetterRecord } from '../../../common/deadletter.ts';
import {
  DEFAULT_MODEL_NAME,
  type ClassProbabilities,
  type EvalMetrics,
  type FeatureRow,
  type LoadedModel,
  type ModelMetadata,
  type ReferenceSample,
} from '../../../common/model/types.ts';
import {
  EFFICIENCY_CLASSES,
  FEATURES,
  OPERATION_MODES,
  SEED_RANGES,
  type Efficiency,
  type Feature,
} from '../../../common/schema/features.ts';
import type { Label, Prediction, Telemetry } from '../../../common/schema/telemetry.ts';
import type { Delivery, EdgeIngest, IngestHandlers } from '../ingest.ts';

/**
 * Test doubles of the edge worker's collaborators: a model that records every
 * `predict` call, and an in-memory transport. Used by the unit tests, the
 * benchmark's fallback and anyone embedding the worker in a test.
 */

/** The labelling rule of the seed data set (as in the simulator): speed and error rate decide. */
export function ruleLabel(row: Pick<FeatureRow, 'productionSpeedUph' | 'errorRatePct'>): Efficiency {
  if (row.productionSpeedUph > 400 && row.errorRatePct < 2) return 'High';
  if (row.productionSpeedUph > 200 && row.errorRatePct < 5) return 'Medium';
  return 'Low';
}

/** A deterministic telemetry record inside the seed ranges. */
export function makeTelemetry(machineId: string, seq: number, ts = Date.now()): Telemetry {
  const values = Object.fromEntries(
    FEATURES.map((f, i) => {
      const [lo, hi] = SEED_RANGES[f];
      const u = ((seq * 7919 + i * 104729 + machineId.length * 31) % 1000) / 1000;
      return [f, Math.round((lo + u * (hi - lo)) * 1000) / 1000];
    }),
  ) as Record<Feature, number>;
  return {
    machineId,
    seq,
    ts,
    operationMode: OPERATION_MODES[seq % OPERATION_MODES.length] ?? 'Active',
    ...values,
  };
}

/** A reference sample drawn on the seed ranges. */
export function makeReference(size = 200): ReferenceSample {
  const rows = Array.from({ length: size }, (_, i) => makeTelemetry('ref', i, 0));
  const features = Object.fromEntries(FEATURES.map((f) => [f, rows.map((r) => r[f])])) as Record<
    Feature,
    number[]
  >;
  const counts: Record<Efficiency, number> = { Low: 0, Medium: 0, High: 0 };
  for (const r of rows) counts[ruleLabel(r)]++;
  const classShares = Object.fromEntries(EFFICIENCY_CLASSES.map((c) => [c, counts[c] / size])) as Record<
    Efficiency,
    number
  >;
  return { size, features, classShares };
}

function metrics(accuracy: number, samples: number): EvalMetrics {
  const per = { Low: accuracy, Medium: accuracy, High: accuracy };
  return {
    samples,
    accuracy,
    macroF1: accuracy,
    perClassRecall: per,
    perClassF1: per,
    logLoss: 0.1,
    confusion: [
      [0, 0, 0],
      [0, 0, 0],
      [0, 0, 0],
    ],
  };
}

/** One `predict` call as seen by a {@link FakeModel}. */
export interface PredictCall {
  version: string;
  rows: readonly FeatureRow[];
}

export interface FakeModel extends LoadedModel {
  /** Every predict call, in order. */
  readonly calls: PredictCall[];
  readonly disposed: boolean;
}

export interface FakeModelOptions {
  /** Validation accuracy in the metadata. Default 0.9. */
  accuracy?: number;
  /** Validation samples in the metadata. Default 100. */
  validationSamples?: number;
  /** Delay each predict call by busy-waiting this long, ms (simulates a slow model). */
  busyMs?: number;
  /** Shared log of calls across models (to check ordering across a swap). */
  log?: PredictCall[];
  /** Use these classes instead of the worker's (to test incompatibility). */
  classes?: readonly Efficiency[];
}

/**
 * A model that applies the seed labelling rule, records every predict call and
 * refuses to predict once disposed — so a test can prove that no batch mixed two
 * models and that no disposed model was used.
 */
export function fakeModel(version: string, options: FakeModelOptions = {}): FakeModel {
  const calls: PredictCall[] = [];
  let disposed = false;
  const metadata: ModelMetadata = {
    format: 'driftline-model/1',
    name: DEFAULT_MODEL_NAME,
    version,
    createdAt: new Date(0).toISOString(),
    trainedWith: 'fake',
    features: FEATURES,
    modes: OPERATION_MODES,
    classes: options.classes ?? EFFICIENCY_CLASSES,
    scaler: { mean: FEATURES.map(() => 0), std: FEATURES.map(() => 1) },
    validation: metrics(options.accuracy ?? 0.9, options.validationSamples ?? 100),
    training: { samples: 100, epochs: 1, seed: 1, source: { fake: true } },
    files: {},
  };
  return {
    metadata,
    reference: makeReference(),
    dir: `/fake/${version}`,
    calls,
    get disposed() {
      return disposed;
    },
    predict(rows: readonly FeatureRow[]): ClassProbabilities[] {
      if (disposed) throw new Error(`model ${version} used after dispose`);
      if (options.busyMs) {
        const until = performance.now() + options.busyMs;
        while (performance.now() < until) {
          // busy-wait: predict is synchronous
        }
      }
      const call = { version, rows: [...rows] };
      calls.push(call);
      options.log?.push(call);
      return rows.map((r) => {
        const efficiency = ruleLabel(r);
        const probabilities = { Low: 0.05, Medium: 0.05, High: 0.05 };
        probabilities[efficiency] = 0.9;
        return { efficiency, probabilities };
      });
    },
    dispose() {
      disposed = true;
    },
  };
}

/** An in-memory {@link EdgeIngest}: tests push messages in and read what was published. */
export class FakeIngest implements EdgeIngest {
  connected = false;
  paused = false;
  readonly predictions: Prediction[] = [];
  readonly deadLetters: { topic: string; record: DeadLetterRecord }[] = [];
  /** Status messages as they would cross the wire (JSON round trip), in order. */
  readonly status: { topic: string; body: unknown; qos: 0 | 1 }[] = [];
  /** Make every status publish fail with this error (tests of best effort). */
  failStatus: Error | undefined;
  private handlers: IngestHandlers | undefined;

  async start(handlers: IngestHandlers): Promise<void> {
    this.handlers = handlers;
    this.connected = true;
  }

  /**
   * Delivers one telemetry message like the MQTT intake: waits for the handler's backpressure promise. With a
   * `delivery` (see {@link FakeDelivery}) the worker must release it once the reading is safe.
   */
  async telemetry(t: Telemetry, delivery?: Delivery): Promise<void> {
    if (!this.handlers) throw new Error('not started');
    if (this.paused) return;
    await this.handlers.telemetry(t, delivery);
  }

  async label(l: Label): Promise<void> {
    if (!this.handlers) throw new Error('not started');
    if (this.paused) return;
    await this.handlers.label(l);
  }

  pause(): void {
    this.paused = true;
  }

  async publishPrediction(p: Prediction): Promise<void> {
    this.predictions.push(p);
  }

  async publishDeadLetter(topic: string, record: DeadLetterRecord): Promise<void> {
    this.deadLetters.push({ topic, record });
  }

  async publishStatus(topic: string, body: unknown, qos: 0 | 1): Promise<void> {
    if (this.failStatus) throw this.failStatus;
    this.status.push({ topic, body: JSON.parse(JSON.stringify(body)) as unknown, qos });
  }

  /** Bodies of the status messages published on `topic`. */
  statusOn(topic: string): unknown[] {
    return this.status.filter((s) => s.topic === topic).map((s) => s.body);
  }

  async close(): Promise<void> {
    this.connected = false;
  }
}

/** A {@link Delivery} that records when it was released (what a held MQTT PUBACK would do). */
export class FakeDelivery implements Delivery {
  released = 0;
  constructor(readonly redelivered = false) {}
  release(): void {
    this.released++;
  }
}
