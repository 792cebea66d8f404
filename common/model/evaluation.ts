import { EFFICIENCY_CLASSES, type Efficiency } from '../schema/features.ts';
import type { EvalMetrics } from './types.ts';

/**
 * Classification quality measures for the three efficiency classes.
 *
 * Conventions (those of scikit-learn with `zero_division=1`, averaged over the
 * classes present): macro-F1 averages the F1 of the classes that occur in the
 * labels or the predictions; a class with no true samples has recall 1, and a
 * class absent from both labels and predictions has F1 1 (and is left out of
 * macro-F1). Log loss clips probabilities to [1e-7, 1 − 1e-7].
 */

/** Probabilities are clipped to [LOG_LOSS_EPS, 1 − LOG_LOSS_EPS] before taking the log. */
export const LOG_LOSS_EPS = 1e-7;

const K = EFFICIENCY_CLASSES.length;

/**
 * Scores predicted class probabilities against true labels.
 *
 * @param probabilities either one row of K probabilities per sample, or all of
 *   them flattened row-major (length n·K), in {@link EFFICIENCY_CLASSES} order.
 *   The predicted class is the arg-max (first on ties).
 * @param labels true classes, as names or indices.
 */
export function evaluate(
  probabilities: ArrayLike<number> | readonly ArrayLike<number>[],
  labels: readonly (Efficiency | number)[],
): EvalMetrics {
  const n = labels.length;
  const rowOf = rowAccessor(probabilities, n);
  const confusion = Array.from({ length: K }, () => new Array<number>(K).fill(0));
  let correct = 0;
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const actual = labelIndex(labels[i] as Efficiency | number);
    const p = rowOf(i);
    let predicted = 0;
    for (let k = 1; k < K; k++) if ((p[k] as number) > (p[predicted] as number)) predicted = k;
    (confusion[actual] as number[])[predicted] = ((confusion[actual] as number[])[predicted] as number) + 1;
    if (predicted === actual) correct++;
    const pt = Math.min(1 - LOG_LOSS_EPS, Math.max(LOG_LOSS_EPS, Number(p[actual])));
    loss -= Math.log(Number.isFinite(pt) ? pt : LOG_LOSS_EPS);
  }
  const perClassRecall = {} as Record<Efficiency, number>;
  const perClassF1 = {} as Record<Efficiency, number>;
  let f1Sum = 0;
  let present = 0;
  for (let k = 0; k < K; k++) {
    const tp = (confusion[k] as number[])[k] as number;
    let support = 0;
    let predictedK = 0;
    for (let j = 0; j < K; j++) {
      support += (confusion[k] as number[])[j] as number;
      predictedK += (confusion[j] as number[])[k] as number;
    }
    const fn = support - tp;
    const fp = predictedK - tp;
    const name = EFFICIENCY_CLASSES[k] as Efficiency;
    perClassRecall[name] = support > 0 ? tp / support : 1;
    const denom = 2 * tp + fp + fn;
    perClassF1[name] = denom > 0 ? (2 * tp) / denom : 1;
    if (support > 0 || predictedK > 0) {
      f1Sum += perClassF1[name];
      present++;
    }
  }
  return {
    samples: n,
    accuracy: n > 0 ? correct / n : 0,
    macroF1: present > 0 ? f1Sum / present : 0,
    perClassRecall,
    perClassF1,
    logLoss: n > 0 ? loss / n : 0,
    confusion,
  };
}

function labelIndex(label: Efficiency | number): number {
  const i = typeof label === 'number' ? label : EFFICIENCY_CLASSES.indexOf(label);
  if (!Number.isInteger(i) || i < 0 || i >= K)
    throw new RangeError(`unknown efficiency class ${JSON.stringify(label)}`);
  return i;
}

function rowAccessor(
  probabilities: ArrayLike<number> | readonly ArrayLike<number>[],
  n: number,
): (i: number) => ArrayLike<number> {
  const first = (probabilities as ArrayLike<unknown>)[0];
  if (probabilities.length > 0 && typeof first === 'object' && first !== null) {
    const rows = probabilities as readonly ArrayLike<number>[];
    if (rows.length !== n) throw new RangeError(`got ${rows.length} probability rows for ${n} labels`);
    return (i) => {
      const r = rows[i] as ArrayLike<number>;
      if (r.length !== K) throw new RangeError(`probability row ${i} has ${r.length} values, expected ${K}`);
      return r;
    };
  }
  const flat = probabilities as ArrayLike<number>;
  if (flat.length !== n * K)
    throw new RangeError(`got ${flat.length} probabilities for ${n} labels × ${K} classes`);
  const row = new Array<number>(K);
  return (i) => {
    for (let k = 0; k < K; k++) row[k] = flat[i * K + k] as number;
    return row;
  };
}

/** Formats the headline figures of `m` on one readable line. */
export function formatMetrics(m: EvalMetrics): string {
  const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
  const recalls = EFFICIENCY_CLASSES.map((c) => `${c} ${pct(m.perClassRecall[c])}`).join(', ');
  return (
    `accuracy ${pct(m.accuracy)}, macro-F1 ${m.macroF1.toFixed(4)}, log loss ` +
    `${m.logLoss.toFixed(4)} on ${m.samples} samples (recall: ${recalls})`
  );
}
