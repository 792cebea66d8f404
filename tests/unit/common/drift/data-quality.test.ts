import { describe, expect, it } from 'vitest';
import {
  DEFAULT_DATA_QUALITY_CONFIG,
  DataQualityDetector,
  hypergeometricUpperTail,
  type DataQualityConfig,
} from '../../../../common/drift/data-quality.ts';
import { SeedStream, seedReference, seedSd, type MutableRow } from '../../../../common/drift/synthetic.ts';
import { FEATURES } from '../../../../common/schema/features.ts';

const REFERENCE = seedReference(1, 5_000);

/**
 * Four machines (or `machines`) in turn (sample i is machine i % 4, as the simulator does), seed 8, values
 * rounded to 4 decimals as telemetry is; `fault` edits a reading. Returns every alarm and clearance.
 */
function run(
  n: number,
  fault: (i: number, machine: number, row: MutableRow) => void = () => {},
  machines = 4,
): string[] {
  const dq = new DataQualityDetector(REFERENCE);
  const stream = new SeedStream({ seed: 8 });
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const row = { ...stream.next() };
    for (const f of FEATURES) row[f] = Math.round(row[f] * 1e4) / 1e4;
    fault(i, i % machines, row);
    const u = dq.update(row, `m-${String(i % machines).padStart(3, '0')}`);
    for (const a of u.alarms) out.push(`${i} ${a.machineId} ${a.feature} ${a.check}`);
    for (const c of u.cleared) out.push(`cleared ${i} ${c.machineId} ${c.feature} ${c.check}`);
  }
  return out;
}

describe('DataQualityDetector parameters and budget', () => {
  it('has valid defaults and rejects bad parameters by name', () => {
    expect(DEFAULT_DATA_QUALITY_CONFIG).toMatchObject({
      falseAlarmsPerSample: 1e-8,
      block: 2_000,
      minMachines: 3,
    });
    expect(() => new DataQualityDetector(REFERENCE, { minMachines: 2 })).toThrow(/^minMachines /);
    expect(() => new DataQualityDetector(REFERENCE, { falseAlarmsPerSample: 0 })).toThrow(
      /^falseAlarmsPerSample /,
    );
    expect(() => new DataQualityDetector(REFERENCE, { block: 10 })).toThrow(/^block /);
    expect(() => new DataQualityDetector(REFERENCE, { colour: 1 } as Partial<DataQualityConfig>)).toThrow(
      /^unknown data-quality parameter colour$/,
    );
  });

  it('sets the stuck run from the reference so the stuck check spends at most its third of the budget', () => {
    const dq = new DataQualityDetector(REFERENCE);
    // Unrounded seed values never repeat: the collision bound is the floor 1/n, and 9 · (1/5,000)^3 <= 1e-8 / 3.
    expect(dq.collisionBounds.every((c) => c === 1 / 5_000)).toBe(true);
    expect(dq.stuckRuns).toEqual(FEATURES.map(() => 6));
    expect(dq.stuckFalseAlarmsPerSample).toBeCloseTo(9 * (1 / 5_000) ** 3, 20);
    expect(dq.stuckFalseAlarmsPerSample).toBeLessThanOrEqual(1e-8 / 3);
    // A coarse feature (10 values) needs a longer run.
    const coarse = seedReference(2, 5_000);
    coarse.features.maintenanceScore = coarse.features.maintenanceScore.map((v) => Math.round(v * 10) / 10);
    const c = new DataQualityDetector(coarse);
    expect(c.collisionBounds[7]).toBeGreaterThan(0.09);
    expect(c.stuckRuns[7]).toBe(19);
    expect(c.stuckFalseAlarmsPerSample).toBeLessThanOrEqual(1e-8 / 3);
    // The block tests: alpha = (1e-8 / 3) · 2,000 / (9 · machines).
    expect(dq.blockAlpha(4)).toBeCloseTo(((1e-8 / 3) * 2_000) / 36, 20);
  });

  it('hypergeometricUpperTail is exact', () => {
    // N = 10, K = 4, n = 3: P(X >= 2) = (C(4,2)C(6,1) + C(4,3)) / C(10,3) = (36 + 4) / 120.
    expect(hypergeometricUpperTail(2, 10, 4, 3)).toBeCloseTo(40 / 120, 14);
    expect(hypergeometricUpperTail(0, 10, 4, 3)).toBe(1);
    expect(hypergeometricUpperTail(4, 10, 4, 3)).toBe(0);
    // All 20 out-of-range readings on one machine of four (500 of 2,000): about (1/4)^20.
    expect(hypergeometricUpperTail(20, 2_000, 20, 500)).toBeLessThan(1e-12);
  });
});

describe('DataQualityDetector on seeded fleets', () => {
  it('raises nothing on 200,000 stationary samples of four machines', () => {
    expect(run(200_000)).toEqual([]);
  });

  it('names m-002 alone: temperature stuck at 85 (6 readings after the onset) and vibration spikes', () => {
    const out = run(16_000, (i, m, row) => {
      if (m !== 2 || i < 8_000) return;
      row.temperatureC = 85;
      const r = (i * 7_919) % 100; // 5 % of its readings spike by ±4 Hz
      if (r < 5) row.vibrationHz = Math.max(0, row.vibrationHz + (r % 2 ? 4 : -4));
    });
    expect(out).toEqual([
      '8022 m-002 temperatureC stuck',
      '9999 m-002 temperatureC machine-vs-fleet',
      '9999 m-002 vibrationHz spikes',
    ]);
  });

  it('a fleet-wide shift is not a data-quality fault', () => {
    expect(
      run(30_000, (i, _m, row) => {
        if (i < 8_000) return;
        row.powerKw += seedSd('powerKw');
        row.temperatureC *= 1.1;
      }),
    ).toEqual([]);
  });

  it('a calibration offset on one machine names that machine only', () => {
    expect(
      run(12_000, (i, m, row) => void (m === 1 && i >= 8_000 && (row.powerKw += seedSd('powerKw')))),
    ).toEqual(['9999 m-001 powerKw spikes', '9999 m-001 powerKw machine-vs-fleet']);
  });

  it('in a fleet of 20, a 1 sd offset on one machine names that machine only, at a fixed sample', () => {
    expect(
      run(30_000, (i, m, row) => void (m === 13 && i >= 8_000 && (row.powerKw += 1 * seedSd('powerKw'))), 20),
    ).toEqual(['9999 m-013 powerKw spikes', '9999 m-013 powerKw machine-vs-fleet']);
  });

  it('a fault clears clearAfter samples after its check last fired', () => {
    const out = run(
      20_000,
      (i, m, row) => void (m === 2 && i >= 8_000 && i < 12_000 && (row.temperatureC = 85)),
    );
    expect(out).toEqual([
      '8022 m-002 temperatureC stuck',
      '9999 m-002 temperatureC machine-vs-fleet',
      'cleared 16998 m-002 temperatureC stuck',
      'cleared 16999 m-002 temperatureC machine-vs-fleet',
    ]);
  });

  it('inFault and faults() say which machine to keep out of the pooled detector and the training data', () => {
    const dq = new DataQualityDetector(REFERENCE);
    const stream = new SeedStream({ seed: 8 });
    for (let i = 0; i < 200; i++) {
      const row = { ...stream.next() };
      if (i % 4 === 3) row.errorRatePct = 7.5;
      dq.update(row, `m-00${i % 4}`);
    }
    expect(dq.inFault('m-003')).toBe(true);
    expect(dq.inFault('m-000')).toBe(false);
    expect(dq.faults()).toEqual([{ machineId: 'm-003', feature: 'errorRatePct', check: 'stuck', since: 23 }]);
    expect(dq.machinesInFault('errorRatePct')).toEqual(['m-003']);
    expect(dq.machinesInFault('powerKw')).toEqual([]);
  });
});
