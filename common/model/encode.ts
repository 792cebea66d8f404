import { EFFICIENCY_CLASSES, FEATURES, OPERATION_MODES, type Efficiency } from '../schema/features.ts';
import type { FeatureRow, Scaler } from './types.ts';

/**
 * Turns feature rows into the classifier's input: the nine features in
 * {@link FEATURES} order standardised with a {@link Scaler}, then the operation
 * mode one-hot in {@link OPERATION_MODES} order — 12 floats per row.
 */

/** Width of one encoded row. */
export const INPUT_SIZE = FEATURES.length + OPERATION_MODES.length;
/** Number of output classes. */
export const NUM_CLASSES = EFFICIENCY_CLASSES.length;

/**
 * Standard deviations below this are treated as 1 (a constant feature carries no information; avoid dividing
 * by ~0).
 */
const MIN_STD = 1e-9;

/**
 * Fits per-feature mean and (population) standard deviation on `rows`.
 * A feature that is constant gets std 1. Throws on an empty set.
 */
export function fitScaler(rows: readonly FeatureRow[]): Scaler {
  if (rows.length === 0) throw new RangeError('fitScaler needs at least one row');
  const n = rows.length;
  const mean = FEATURES.map((f) => {
    let s = 0;
    for (const r of rows) s += r[f];
    return s / n;
  });
  const std = FEATURES.map((f, i) => {
    const m = mean[i] as number;
    let s = 0;
    for (const r of rows) {
      const d = r[f] - m;
      s += d * d;
    }
    const sd = Math.sqrt(s / n);
    return Number.isFinite(sd) && sd > MIN_STD ? sd : 1;
  });
  return { mean, std };
}

/** Throws a RangeError unless `scaler` has one finite mean and one positive finite std per feature. */
export function checkScaler(scaler: Scaler): void {
  if (
    !Array.isArray(scaler.mean) ||
    !Array.isArray(scaler.std) ||
    scaler.mean.length !== FEATURES.length ||
    scaler.std.length !== FEATURES.length
  ) {
    throw new RangeError(`scaler must have ${FEATURES.length} means and stds`);
  }
  for (let i = 0; i < FEATURES.length; i++) {
    const m = scaler.mean[i];
    const s = scaler.std[i];
    if (typeof m !== 'number' || !Number.isFinite(m))
      throw new RangeError(`scaler mean of ${FEATURES[i]} is not a finite number`);
    if (typeof s !== 'number' || !Number.isFinite(s) || s <= 0)
      throw new RangeError(`scaler std of ${FEATURES[i]} must be a positive finite number`);
  }
}

/**
 * Encodes one row into `out` at `offset` (default: a new Float32Array of
 * {@link INPUT_SIZE}). An unknown operation mode encodes as all-zero one-hot.
 */
export function encodeRow(
  row: FeatureRow,
  scaler: Scaler,
  out: Float32Array = new Float32Array(INPUT_SIZE),
  offset = 0,
): Float32Array {
  const { mean, std } = scaler;
  for (let i = 0; i < FEATURES.length; i++) {
    out[offset + i] =
      (row[FEATURES[i] as (typeof FEATURES)[number]] - (mean[i] as number)) / (std[i] as number);
  }
  const base = offset + FEATURES.length;
  for (let j = 0; j < OPERATION_MODES.length; j++)
    out[base + j] = row.operationMode === OPERATION_MODES[j] ? 1 : 0;
  return out;
}

/** Encodes `rows` into one row-major Float32Array for a `[rows.length, INPUT_SIZE]` tensor. */
export function encodeBatch(rows: readonly FeatureRow[], scaler: Scaler): Float32Array {
  const out = new Float32Array(rows.length * INPUT_SIZE);
  for (let i = 0; i < rows.length; i++) encodeRow(rows[i] as FeatureRow, scaler, out, i * INPUT_SIZE);
  return out;
}

/** Index of a class in {@link EFFICIENCY_CLASSES}. */
export function classIndex(label: Efficiency): number {
  const i = EFFICIENCY_CLASSES.indexOf(label);
  if (i < 0) throw new RangeError(`unknown efficiency class ${JSON.stringify(label)}`);
  return i;
}

/** One-hot encodes labels into a row-major Float32Array for a `[labels.length, NUM_CLASSES]` tensor. */
export function encodeLabels(labels: readonly Efficiency[]): Float32Array {
  const out = new Float32Array(labels.length * NUM_CLASSES);
  for (let i = 0; i < labels.length; i++) out[i * NUM_CLASSES + classIndex(labels[i] as Efficiency)] = 1;
  return out;
}
