import type * as tfjs from '@tensorflow/tfjs';
import { EFFICIENCY_CLASSES, FEATURES, type Efficiency, type Feature } from '../schema/features.ts';
import { Rng } from '../util/rng.ts';
import { INPUT_SIZE, NUM_CLASSES, checkScaler, classIndex, encodeBatch, fitScaler } from './encode.ts';
import { evaluate, LOG_LOSS_EPS } from './evaluation.ts';
import type { Tf } from './tf.ts';
import type {
  ClassProbabilities,
  EvalMetrics,
  FeatureRow,
  LabelledRow,
  ReferenceSample,
  Scaler,
} from './types.ts';

/**
 * The efficiency classifier: a small dense network (12 → 32 relu → 16 relu →
 * 3 softmax by default) trained with Adam by a hand-written, seeded training
 * loop (our own shuffling, seeded initialisers), so the same data and seed give
 * the same model on the same backend.
 */

/** A tfjs layers model (the classifier). */
export type TfModel = tfjs.LayersModel;

/** Architecture of the network. */
export interface NetworkOptions {
  /** Hidden layer widths. Default [32, 16]. */
  hidden?: readonly number[];
  /** Seed of the kernel initialisers. Default 1. */
  seed?: number;
}

/** What one epoch reported. */
export interface EpochLog {
  /** 1-based. */
  epoch: number;
  /** Mean (class-weighted) training cross-entropy over the epoch. */
  loss: number;
  learningRate: number;
  valLoss: number;
  valAccuracy: number;
  valMacroF1: number;
  durationMs: number;
}

/** Options of {@link trainClassifier}. */
export interface TrainOptions extends NetworkOptions {
  /** Passes over the training set. Default 30. */
  epochs?: number;
  /** Default 256 (tfjs costs ~2 ms per step on WASM whatever the batch, so large batches train fastest). */
  batchSize?: number;
  /** Initial Adam learning rate. Default 0.05. */
  learningRate?: number;
  /**
   * Learning rate reached at the last epoch, as a fraction of the initial one (cosine decay). Default 0.05; 1
   * disables decay.
   */
  finalLearningRateFraction?: number;
  /** Seeds the split, the shuffling, the initialisers and the reference sample. Default 1. */
  seed?: number;
  /** Fraction of `data` held out for validation when `validation` is not given. Default 0.2. */
  validationSplit?: number;
  /** An explicit validation set; then all of `data` is used for training. */
  validation?: readonly LabelledRow[];
  /** `balanced` weighs each class by n / (classes · count); `none` (default) weighs every sample 1. */
  classWeight?: 'balanced' | 'none';
  /**
   * Keep the weights of the epoch with the best validation macro-F1 (ties: lower
   * validation loss) instead of the last epoch's. Default false: with the
   * cosine-decayed learning rate the last epoch is stable, and picking on a small
   * validation set overfits that set.
   */
  restoreBest?: boolean;
  /** Maximum rows in the drift reference sample. Default 5000. */
  referenceSize?: number;
  /**
   * Rows the drift reference sample is drawn from. Default: the training rows. Given when the training rows
   * do not represent the input distribution (replayed older samples of some classes only: `retrainer/src/dataset.ts`).
   */
  referenceRows?: readonly LabelledRow[];
  /**
   * Warm start: begin from these weights (a champion's, same architecture) and
   * keep its scaler instead of fitting one, so a retrain adapts what the
   * champion knows instead of learning the whole task again from a small window.
   */
  initial?: { weights: readonly tfjs.Tensor[]; scaler: Scaler };
  /** Checked between epochs: training stops and the promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Called after every epoch; awaited. */
  onEpoch?(epoch: number, logs: EpochLog): void | Promise<void>;
}

/** A trained classifier with everything an artifact needs. */
export interface TrainedClassifier {
  /** The tfjs namespace that trained the model (used to save it). */
  tf: Tf;
  model: TfModel;
  scaler: Scaler;
  /** Quality on the validation set, with the weights that were kept. */
  validation: EvalMetrics;
  history: EpochLog[];
  reference: ReferenceSample;
  /** Backend name (`tf.getBackend()`). */
  backend: string;
  /** Training rows (excluding validation). */
  samples: number;
  /** Epochs run. */
  epochs: number;
  /** 1-based epoch whose weights were kept. */
  bestEpoch: number;
  seed: number;
  durationMs: number;
}

/**
 * Defaults of {@link TrainOptions}, tuned on the seed profile for WASM (≈0.99 held-out accuracy from 10k
 * samples in a few seconds).
 */
export const DEFAULT_TRAIN_OPTIONS = {
  hidden: [32, 16] as readonly number[],
  epochs: 30,
  batchSize: 256,
  learningRate: 0.05,
  finalLearningRateFraction: 0.05,
  seed: 1,
  validationSplit: 0.2,
  classWeight: 'none' as 'balanced' | 'none',
  restoreBest: false,
  referenceSize: 5000,
};

/** Builds an untrained network with seeded initialisers. */
export function buildClassifier(tf: Tf, options: NetworkOptions = {}): TfModel {
  const hidden = options.hidden ?? DEFAULT_TRAIN_OPTIONS.hidden;
  const seed = options.seed ?? DEFAULT_TRAIN_OPTIONS.seed;
  if (hidden.length === 0 || hidden.some((h) => !Number.isInteger(h) || h < 1))
    throw new RangeError(`hidden layer widths must be positive integers, got ${JSON.stringify(hidden)}`);
  const model = tf.sequential({ name: 'driftline_efficiency' });
  hidden.forEach((units, i) => {
    model.add(
      tf.layers.dense({
        units,
        activation: 'relu',
        kernelInitializer: tf.initializers.heUniform({ seed: seed * 31 + i }),
        biasInitializer: 'zeros',
        ...(i === 0 ? { inputShape: [INPUT_SIZE] } : {}),
        name: `hidden_${i + 1}`,
      }),
    );
  });
  model.add(
    tf.layers.dense({
      units: NUM_CLASSES,
      activation: 'softmax',
      kernelInitializer: tf.initializers.glorotUniform({ seed: seed * 31 + hidden.length }),
      biasInitializer: 'zeros',
      name: 'probabilities',
    }),
  );
  return model;
}

/**
 * Trains a classifier on `data`. Fits the scaler on the training rows, trains
 * with Adam (cosine-decayed learning rate) on shuffled mini-batches, scores the
 * validation set after every epoch, and returns the model, its validation
 * metrics, the scaler, the history and the drift reference sample.
 * Deterministic for a given seed, data and backend.
 */
export async function trainClassifier(
  tf: Tf,
  data: readonly LabelledRow[],
  options: TrainOptions = {},
): Promise<TrainedClassifier> {
  const o = { ...DEFAULT_TRAIN_OPTIONS, ...stripUndefined(options) };
  if (!Number.isInteger(o.epochs) || o.epochs < 1)
    throw new RangeError(`epochs must be a positive integer, got ${o.epochs}`);
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1)
    throw new RangeError(`batchSize must be a positive integer, got ${o.batchSize}`);
  if (!(o.learningRate > 0)) throw new RangeError(`learningRate must be positive, got ${o.learningRate}`);
  options.signal?.throwIfAborted();
  const started = performance.now();
  const rng = new Rng(o.seed);

  let train: readonly LabelledRow[];
  let validation: readonly LabelledRow[];
  if (options.validation) {
    train = data;
    validation = options.validation;
  } else {
    if (!(o.validationSplit > 0 && o.validationSplit < 1))
      throw new RangeError(`validationSplit must be in (0, 1), got ${o.validationSplit}`);
    const shuffled = rng.shuffle([...data]);
    const nVal = Math.max(1, Math.round(shuffled.length * o.validationSplit));
    validation = shuffled.slice(shuffled.length - nVal);
    train = shuffled.slice(0, shuffled.length - nVal);
  }
  if (train.length === 0) throw new RangeError('no training rows');
  if (validation.length === 0) throw new RangeError('no validation rows');

  checkFinite(train, 'training');
  checkFinite(validation, 'validation');
  const scaler = options.initial
    ? { mean: [...options.initial.scaler.mean], std: [...options.initial.scaler.std] }
    : fitScaler(train.map((d) => d.row));
  const n = train.length;
  const x = encodeBatch(
    train.map((d) => d.row),
    scaler,
  );
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) y[i] = classIndex((train[i] as LabelledRow).label);
  const weights = classWeights(y, o.classWeight);
  for (let i = 0; i < n; i++) {
    const w = (train[i] as LabelledRow).weight;
    if (w === undefined) continue;
    if (!(Number.isFinite(w) && w >= 0))
      throw new RangeError(`training row ${i} has an invalid weight: ${w}`);
    weights[i] = (weights[i] as number) * w;
  }
  const valRows = validation.map((d) => d.row);
  const valX = encodeBatch(valRows, scaler);
  const valY = validation.map((d) => classIndex(d.label));

  const model = buildClassifier(tf, { hidden: o.hidden, seed: o.seed });
  if (options.initial) {
    const shapes = model.getWeights().map((w) => w.shape.join('x'));
    const given = options.initial.weights.map((w) => w.shape.join('x'));
    if (shapes.join(',') !== given.join(',')) {
      model.dispose();
      throw new RangeError(
        `warm-start weights do not fit the network: expected ${shapes.join(', ')}, got ${given.join(', ')}`,
      );
    }
    model.setWeights([...options.initial.weights]);
  }
  const optimizer = tf.train.adam(o.learningRate);
  const vars = model.trainableWeights.map((w) => w.read() as tfjs.Variable);
  const history: EpochLog[] = [];
  let best: { epoch: number; metrics: EvalMetrics; weights: tfjs.Tensor[] } | undefined;
  let last: EvalMetrics | undefined;
  let lossParts: tfjs.Scalar[] = [];

  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const bx = new Float32Array(o.batchSize * INPUT_SIZE);
  const by = new Float32Array(o.batchSize * NUM_CLASSES);
  const bw = new Float32Array(o.batchSize);

  try {
    for (let epoch = 1; epoch <= o.epochs; epoch++) {
      const epochStart = performance.now();
      const progress = o.epochs === 1 ? 1 : (epoch - 1) / (o.epochs - 1);
      const lr =
        o.learningRate *
        (o.finalLearningRateFraction +
          (1 - o.finalLearningRateFraction) * 0.5 * (1 + Math.cos(Math.PI * progress)));
      // The Adam optimiser reads its learning rate at every step.
      (optimizer as unknown as { learningRate: number }).learningRate = lr;
      shuffleInt32(order, rng);
      lossParts = [];
      for (let start = 0, batch = 0; start < n; start += o.batchSize, batch++) {
        const size = Math.min(o.batchSize, n - start);
        by.fill(0, 0, size * NUM_CLASSES);
        for (let b = 0; b < size; b++) {
          const idx = order[start + b] as number;
          bx.set(x.subarray(idx * INPUT_SIZE, idx * INPUT_SIZE + INPUT_SIZE), b * INPUT_SIZE);
          by[b * NUM_CLASSES + (y[idx] as number)] = 1;
          bw[b] = weights[idx] as number;
        }
        const cost = tf.tidy(() => {
          const xb = tf.tensor2d(bx.subarray(0, size * INPUT_SIZE), [size, INPUT_SIZE]);
          const yb = tf.tensor2d(by.subarray(0, size * NUM_CLASSES), [size, NUM_CLASSES]);
          const wb = tf.tensor1d(bw.subarray(0, size));
          return optimizer.minimize(
            () => {
              const p = model.apply(xb, { training: true }) as tfjs.Tensor;
              const ce = tf.neg(
                tf.sum(tf.mul(yb, tf.log(tf.clipByValue(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS))), 1),
              );
              return tf.mean(tf.mul(ce, wb)) as tfjs.Scalar;
            },
            true,
            vars,
          ) as tfjs.Scalar;
        });
        lossParts.push(tf.mul(cost, size) as tfjs.Scalar);
        cost.dispose();
        // Let timers and I/O run during long epochs (the retrainer shares its process).
        if (batch % 64 === 63) await new Promise((r) => setImmediate(r));
      }
      const total = tf.addN(lossParts);
      const lossSum = (await total.data())[0] as number;
      total.dispose();
      for (const t of lossParts) t.dispose();
      lossParts = [];

      const metrics = evaluate(predictEncoded(tf, model, valX, valRows.length), valY);
      last = metrics;
      const log: EpochLog = {
        epoch,
        loss: lossSum / n,
        learningRate: lr,
        valLoss: metrics.logLoss,
        valAccuracy: metrics.accuracy,
        valMacroF1: metrics.macroF1,
        durationMs: performance.now() - epochStart,
      };
      history.push(log);
      if (
        !best ||
        metrics.macroF1 > best.metrics.macroF1 ||
        (metrics.macroF1 === best.metrics.macroF1 && metrics.logLoss < best.metrics.logLoss)
      ) {
        if (o.restoreBest) {
          for (const t of best?.weights ?? []) t.dispose();
          best = { epoch, metrics, weights: vars.map((v) => tf.clone(v)) };
        } else {
          best = { epoch, metrics, weights: [] };
        }
      }
      await options.onEpoch?.(epoch, log);
      if (epoch < o.epochs) {
        await new Promise((r) => setImmediate(r));
        options.signal?.throwIfAborted();
      }
    }
  } catch (err) {
    for (const t of lossParts) t.dispose();
    for (const t of best?.weights ?? []) t.dispose();
    optimizer.dispose();
    model.dispose();
    throw err;
  }
  optimizer.dispose();

  let bestEpoch = history.length;
  let validationMetrics = last as EvalMetrics;
  if (best && o.restoreBest && best.epoch !== history.length) {
    vars.forEach((v, i) => v.assign(best!.weights[i] as tfjs.Tensor));
    bestEpoch = best.epoch;
    validationMetrics = best.metrics;
  }
  for (const t of best?.weights ?? []) t.dispose();

  return {
    tf,
    model,
    scaler,
    validation: validationMetrics,
    history,
    reference: buildReference(
      options.referenceRows && options.referenceRows.length > 0 ? options.referenceRows : train,
      o.referenceSize,
      o.seed,
    ),
    backend: tf.getBackend(),
    samples: n,
    epochs: history.length,
    bestEpoch,
    seed: o.seed,
    durationMs: performance.now() - started,
  };
}

/** Throws a RangeError naming the first row with a non-finite feature (NaN would silently ruin the weights). */
function checkFinite(data: readonly LabelledRow[], what: string): void {
  for (let i = 0; i < data.length; i++) {
    const row = (data[i] as LabelledRow).row;
    for (const f of FEATURES) {
      if (typeof row[f] !== 'number' || !Number.isFinite(row[f]))
        throw new RangeError(`${what} row ${i} has a non-finite ${f}: ${String(row[f])}`);
    }
  }
}

/** Per-sample weights: 1, or n / (K · count of the sample's class) when balanced. */
function classWeights(y: Int32Array, mode: 'balanced' | 'none'): Float32Array {
  const w = new Float32Array(y.length).fill(1);
  if (mode !== 'balanced') return w;
  const counts = new Array<number>(NUM_CLASSES).fill(0);
  for (const c of y) counts[c] = (counts[c] as number) + 1;
  const present = counts.filter((c) => c > 0).length;
  for (let i = 0; i < y.length; i++) w[i] = y.length / (present * (counts[y[i] as number] as number));
  return w;
}

function shuffleInt32(a: Int32Array, rng: Rng): void {
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = a[i] as number;
    a[i] = a[j] as number;
    a[j] = t;
  }
}

/** Runs the model on already-encoded rows in one op; returns probabilities flattened row-major. */
export function predictEncoded(tf: Tf, model: TfModel, encoded: Float32Array, rows: number): Float32Array {
  if (rows === 0) return new Float32Array(0);
  const out = tf.tidy(() => model.predict(tf.tensor2d(encoded, [rows, INPUT_SIZE])) as tfjs.Tensor);
  try {
    return out.dataSync() as Float32Array;
  } finally {
    out.dispose();
  }
}

/** Predicts class probabilities for `rows` in one tensor op; order preserved. */
export function predictRows(
  tf: Tf,
  model: TfModel,
  scaler: Scaler,
  rows: readonly FeatureRow[],
): ClassProbabilities[] {
  return toClassProbabilities(predictEncoded(tf, model, encodeBatch(rows, scaler), rows.length));
}

/** Scores `model` on labelled rows. */
export function evaluateModel(
  tf: Tf,
  model: TfModel,
  scaler: Scaler,
  data: readonly LabelledRow[],
): EvalMetrics {
  checkScaler(scaler);
  const p = predictEncoded(
    tf,
    model,
    encodeBatch(
      data.map((d) => d.row),
      scaler,
    ),
    data.length,
  );
  return evaluate(
    p,
    data.map((d) => d.label),
  );
}

/** Turns flattened probabilities into {@link ClassProbabilities} (arg-max class, first on ties). */
export function toClassProbabilities(flat: ArrayLike<number>): ClassProbabilities[] {
  const n = Math.floor(flat.length / NUM_CLASSES);
  const out: ClassProbabilities[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const low = flat[i * NUM_CLASSES] as number;
    const medium = flat[i * NUM_CLASSES + 1] as number;
    const high = flat[i * NUM_CLASSES + 2] as number;
    const efficiency: Efficiency = high > medium && high > low ? 'High' : medium > low ? 'Medium' : 'Low';
    out[i] = { efficiency, probabilities: { Low: low, Medium: medium, High: high } };
  }
  return out;
}

/**
 * Draws the drift reference: up to `size` training rows (seeded sample without
 * replacement), kept per feature, plus the class shares of all training labels.
 */
export function buildReference(data: readonly LabelledRow[], size: number, seed: number): ReferenceSample {
  const rng = new Rng(seed ^ 0x5eed);
  let picked: readonly LabelledRow[] = data;
  if (data.length > size) {
    const idx = Array.from({ length: data.length }, (_, i) => i);
    // Partial Fisher–Yates: the first `size` positions become a uniform sample.
    for (let i = 0; i < size; i++) {
      const j = i + rng.int(idx.length - i);
      const t = idx[i] as number;
      idx[i] = idx[j] as number;
      idx[j] = t;
    }
    picked = idx.slice(0, size).map((i) => data[i] as LabelledRow);
  }
  const features = Object.fromEntries(FEATURES.map((f) => [f, picked.map((d) => d.row[f])])) as Record<
    Feature,
    number[]
  >;
  const counts: Record<Efficiency, number> = { Low: 0, Medium: 0, High: 0 };
  for (const d of data) counts[d.label]++;
  const classShares = Object.fromEntries(
    EFFICIENCY_CLASSES.map((c) => [c, data.length > 0 ? counts[c] / data.length : 0]),
  ) as Record<Efficiency, number>;
  return { size: picked.length, features, classShares };
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
