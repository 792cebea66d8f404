import { describe, expect, it } from 'vitest';
import {
  checkScaler,
  classIndex,
  encodeBatch,
  encodeLabels,
  encodeRow,
  fitScaler,
  INPUT_SIZE,
  NUM_CLASSES,
} from '../../../../common/model/encode.ts';
import type { FeatureRow } from '../../../../common/model/types.ts';
import { FEATURES, OPERATION_MODES, type OperationMode } from '../../../../common/schema/features.ts';

/** A row whose feature i has value base + i. */
function row(base: number, mode: OperationMode): FeatureRow {
  const r = { operationMode: mode } as FeatureRow;
  FEATURES.forEach((f, i) => (r[f] = base + i));
  return r;
}

describe('encoding', () => {
  it('has 9 features + 3 modes in, 3 classes out', () => {
    expect(INPUT_SIZE).toBe(12);
    expect(NUM_CLASSES).toBe(3);
  });

  it('fits mean and population std per feature', () => {
    // Feature i takes values i+1 and i+3: mean i+2, std 1.
    const s = fitScaler([row(1, 'Active'), row(3, 'Idle')]);
    expect(s.mean).toEqual(FEATURES.map((_, i) => i + 2));
    expect(s.std).toEqual(FEATURES.map(() => 1));
    const t = fitScaler([row(0, 'Active'), row(0, 'Active'), row(0, 'Active'), row(4, 'Active')]);
    // values 0,0,0,4 (+i): mean 1, variance (1+1+1+9)/4 = 3
    expect(t.mean[0]).toBe(1);
    expect(t.std[0]).toBeCloseTo(Math.sqrt(3), 12);
  });

  it('gives a constant feature std 1 and refuses an empty set', () => {
    const s = fitScaler([row(5, 'Active'), row(5, 'Idle')]);
    expect(s.std).toEqual(FEATURES.map(() => 1));
    expect(() => fitScaler([])).toThrow(RangeError);
  });

  it('standardises features then one-hot encodes the mode in OPERATION_MODES order', () => {
    const scaler = { mean: FEATURES.map(() => 10), std: FEATURES.map(() => 2) };
    const v = encodeRow(row(12, 'Idle'), scaler);
    expect(v).toBeInstanceOf(Float32Array);
    expect(Array.from(v.subarray(0, 9))).toEqual(FEATURES.map((_, i) => (12 + i - 10) / 2));
    expect(Array.from(v.subarray(9))).toEqual([0, 1, 0]);
    expect(OPERATION_MODES).toEqual(['Active', 'Idle', 'Maintenance']);
    expect(Array.from(encodeRow(row(12, 'Maintenance'), scaler).subarray(9))).toEqual([0, 0, 1]);
    expect(Array.from(encodeRow(row(12, 'Bogus' as OperationMode), scaler).subarray(9))).toEqual([0, 0, 0]);
  });

  it('encodes a batch row-major for a [n, 12] tensor', () => {
    const scaler = fitScaler([row(1, 'Active'), row(3, 'Idle')]);
    const rows = [row(1, 'Active'), row(3, 'Idle'), row(2, 'Maintenance')];
    const batch = encodeBatch(rows, scaler);
    expect(batch.length).toBe(3 * 12);
    rows.forEach((r, i) =>
      expect(Array.from(batch.subarray(i * 12, i * 12 + 12))).toEqual(Array.from(encodeRow(r, scaler))),
    );
    expect(Array.from(batch.subarray(0, 9))).toEqual(FEATURES.map(() => -1));
    expect(Array.from(batch.subarray(24, 33))).toEqual(FEATURES.map(() => 0));
  });

  it('one-hot encodes labels and validates scalers', () => {
    expect(Array.from(encodeLabels(['High', 'Low']))).toEqual([0, 0, 1, 1, 0, 0]);
    expect(classIndex('Medium')).toBe(1);
    expect(() => checkScaler({ mean: [1], std: [1] })).toThrow(/9 means/);
    expect(() => checkScaler({ mean: FEATURES.map(() => 0), std: FEATURES.map(() => 0) })).toThrow(
      /positive/,
    );
    expect(() => checkScaler(fitScaler([row(1, 'Active')]))).not.toThrow();
  });
});
