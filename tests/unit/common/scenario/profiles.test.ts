import { describe, expect, it } from 'vitest';
import {
  FEATURES,
  OPERATION_MODES,
  SEED_RANGES,
  VALID_LIMITS,
  type Feature,
} from '../../../../common/schema/features.ts';
import { validateObject } from '../../../../common/schema/telemetry.ts';
import {
  generateStream,
  labelFor,
  SEED_RULE,
  settingsOf,
  type GeneratedSample,
} from '../../../../common/scenario/generator.ts';
import { createProfile, vec9 } from '../../../../common/scenario/profiles.ts';
import { parseScenario } from '../../../../common/scenario/scenario.ts';

/**
 * The default `seed` profile must reproduce the public dataset's marginals;
 * all bounds use about 5 standard errors, so the (seeded) test is deterministic
 * yet would catch any real deviation.
 */
const N = 100_000;
const Z = 5;

function collect(profile: 'seed' | 'realistic', samples = N, seed = 12345): GeneratedSample[] {
  const scenario = parseScenario({ seed, machines: 4, profile, phases: [{ name: 'baseline', samples }] });
  return [...generateStream(scenario)];
}

const seedSamples = collect('seed');
const column = (samples: GeneratedSample[], f: Feature): number[] => samples.map((s) => s.telemetry[f]);

function mean(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

function variance(xs: readonly number[]): number {
  const m = mean(xs);
  let s = 0;
  for (const x of xs) s += (x - m) ** 2;
  return s / (xs.length - 1);
}

function correlation(xs: readonly number[], ys: readonly number[]): number {
  const mx = mean(xs);
  const my = mean(ys);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < xs.length; i++) {
    const dx = (xs[i] as number) - mx;
    const dy = (ys[i] as number) - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxy / Math.sqrt(sxx * syy);
}

/** Share of `count` in `n` is within Z standard errors of `p`. */
function expectShare(count: number, n: number, p: number): void {
  const se = Math.sqrt((p * (1 - p)) / n);
  expect(Math.abs(count / n - p), `share ${count / n} vs expected ${p} (±${Z * se})`).toBeLessThanOrEqual(
    Z * se,
  );
}

describe('seed profile marginals (100,000 samples)', () => {
  for (const f of FEATURES) {
    it(`${f} is uniform on its seed range`, () => {
      const [lo, hi] = SEED_RANGES[f];
      const w = hi - lo;
      const xs = column(seedSamples, f);
      const sorted = Float64Array.from(xs).sort();
      const min = sorted[0] as number;
      const max = sorted[sorted.length - 1] as number;
      // Range: inside, and reaching within 0.1 % of both ends (P(miss) = e^-100).
      expect(min).toBeGreaterThanOrEqual(lo);
      expect(max).toBeLessThanOrEqual(hi);
      expect(min - lo).toBeLessThan(1e-3 * w);
      expect(hi - max).toBeLessThan(1e-3 * w);
      // Mean (lo + hi) / 2 with se w / sqrt(12 n).
      expect(Math.abs(mean(xs) - (lo + hi) / 2)).toBeLessThan((Z * w) / Math.sqrt(12 * N));
      // Variance w²/12; Var(s²) = (μ4 − σ⁴) / n = w⁴ (1/80 − 1/144) / n.
      const sdOfVariance = w * w * Math.sqrt((1 / 80 - 1 / 144) / N);
      expect(Math.abs(variance(xs) - (w * w) / 12)).toBeLessThan(Z * sdOfVariance);
      // Empirical CDF at the deciles: binomial se sqrt(p(1-p)/n).
      for (let k = 1; k <= 9; k++) {
        const x = lo + (k / 10) * w;
        let below = 0;
        for (const v of xs) if (v <= x) below++;
        expectShare(below, N, k / 10);
      }
      // Kolmogorov–Smirnov statistic below the critical value for α = 1e-6.
      let d = 0;
      for (let i = 0; i < sorted.length; i++) {
        const cdf = ((sorted[i] as number) - lo) / w;
        d = Math.max(d, Math.abs(cdf - i / N), Math.abs((i + 1) / N - cdf));
      }
      expect(d).toBeLessThan(Math.sqrt(Math.log(2 / 1e-6) / (2 * N)));
    });
  }

  it('features are independent (pairwise correlation within sampling error)', () => {
    const cols = FEATURES.map((f) => column(seedSamples, f));
    for (let i = 0; i < cols.length; i++) {
      for (let j = i + 1; j < cols.length; j++) {
        expect(Math.abs(correlation(cols[i] as number[], cols[j] as number[]))).toBeLessThan(
          Z / Math.sqrt(N),
        );
      }
    }
  });

  it('operation modes are Active/Idle/Maintenance at 70/20/10 %', () => {
    const counts = { Active: 0, Idle: 0, Maintenance: 0 };
    for (const s of seedSamples) counts[s.telemetry.operationMode]++;
    expectShare(counts.Active, N, 0.7);
    expectShare(counts.Idle, N, 0.2);
    expectShare(counts.Maintenance, N, 0.1);
  });

  it('classes are Low/Medium/High at 7/9, 26/135 and 4/135 (about 78/19/3 %)', () => {
    const counts = { Low: 0, Medium: 0, High: 0 };
    for (const s of seedSamples) counts[s.label.efficiency]++;
    // P(High) = P(speed > 400) P(error < 2) = (100/450)(2/15); P(High or Medium) = (300/450)(5/15).
    const high = (100 / 450) * (2 / 15);
    const medium = (300 / 450) * (5 / 15) - high;
    expectShare(counts.High, N, high);
    expectShare(counts.Medium, N, medium);
    expectShare(counts.Low, N, 1 - high - medium);
  });

  it('labels every sample exactly by the rule', () => {
    for (const s of seedSamples) {
      const t = s.telemetry;
      const expected =
        t.productionSpeedUph > 400 && t.errorRatePct < 2
          ? 'High'
          : t.productionSpeedUph > 200 && t.errorRatePct < 5
            ? 'Medium'
            : 'Low';
      if (s.label.efficiency !== expected)
        expect.fail(
          `sample ${s.index}: ${JSON.stringify(t)} labelled ${s.label.efficiency}, rule says ${expected}`,
        );
      if (labelFor(t) !== expected) expect.fail(`labelFor disagrees on sample ${s.index}`);
    }
  });

  it('every record passes validateObject and follows the round-robin contract', () => {
    const problems: string[] = [];
    seedSamples.forEach((s, i) => {
      const t = s.telemetry;
      const machine = `m-00${i % 4}`;
      if (
        s.index !== i ||
        t.machineId !== machine ||
        t.seq !== Math.floor(i / 4) ||
        t.ts !== 1_700_000_000_000 + i * 125
      )
        problems.push(`sample ${i}: index/machine/seq/ts ${s.index} ${t.machineId} ${t.seq} ${t.ts}`);
      if (s.label.machineId !== machine || s.label.seq !== t.seq)
        problems.push(`label ${i}: ${JSON.stringify(s.label)}`);
      const vt = validateObject('telemetry', t);
      if (!vt.ok) problems.push(`sample ${i}: ${vt.detail}`);
      const vl = validateObject('label', s.label);
      if (!vl.ok) problems.push(`label ${i}: ${vl.detail}`);
    });
    expect(problems.slice(0, 5)).toEqual([]);
  });

  it('serializes fields in the contract order with at most 4 decimals', () => {
    const first = seedSamples[0] as GeneratedSample;
    expect(Object.keys(first.telemetry)).toEqual(['machineId', 'seq', 'ts', 'operationMode', ...FEATURES]);
    for (const f of FEATURES) expect(String(first.telemetry[f])).toMatch(/^\d+(\.\d{1,4})?$/);
  });
});

describe('labelFor', () => {
  const base = Object.fromEntries(FEATURES.map((f) => [f, 0])) as Record<Feature, number>;
  const at = (speed: number, error: number): Record<Feature, number> => ({
    ...base,
    productionSpeedUph: speed,
    errorRatePct: error,
  });

  it('applies strict thresholds', () => {
    expect(labelFor(at(400.0001, 1.9999))).toBe('High');
    expect(labelFor(at(400, 1))).toBe('Medium');
    expect(labelFor(at(450, 2))).toBe('Medium');
    expect(labelFor(at(200.0001, 4.9999))).toBe('Medium');
    expect(labelFor(at(200, 0))).toBe('Low');
    expect(labelFor(at(500, 5))).toBe('Low');
  });

  it('takes another rule', () => {
    const rule = { high: { speedAbove: 350, errorBelow: 3 }, medium: { speedAbove: 150, errorBelow: 6 } };
    expect(labelFor(at(360, 2.5), rule)).toBe('High');
    expect(labelFor(at(360, 2.5), SEED_RULE)).toBe('Medium');
    expect(labelFor(at(160, 5.5), rule)).toBe('Medium');
    expect(labelFor(at(160, 5.5))).toBe('Low');
  });
});

describe('realistic profile', () => {
  const samples = collect('realistic', 40_000, 99);
  const col = (f: Feature): number[] => column(samples, f);

  it('every record is valid and clamped to VALID_LIMITS', () => {
    const problems: string[] = [];
    for (const s of samples) {
      const r = validateObject('telemetry', s.telemetry);
      if (!r.ok) problems.push(`sample ${s.index}: ${r.detail}`);
      for (const f of FEATURES) {
        const v = s.telemetry[f];
        if (v < VALID_LIMITS[f][0] || v > VALID_LIMITS[f][1]) problems.push(`sample ${s.index}: ${f}=${v}`);
      }
    }
    expect(problems.slice(0, 5)).toEqual([]);
  });

  it('correlates power with speed and temperature with vibration', () => {
    expect(correlation(col('productionSpeedUph'), col('powerKw'))).toBeGreaterThan(0.5);
    expect(correlation(col('vibrationHz'), col('temperatureC'))).toBeGreaterThan(0.4);
    expect(correlation(col('errorRatePct'), col('defectRatePct'))).toBeGreaterThan(0.3);
    // Unrelated features stay uncorrelated.
    expect(Math.abs(correlation(col('networkLatencyMs'), col('maintenanceScore')))).toBeLessThan(
      Z / Math.sqrt(samples.length),
    );
  });

  it('runs idle and maintenance machines slower', () => {
    const speed = (mode: string): number =>
      mean(
        samples.filter((s) => s.telemetry.operationMode === mode).map((s) => s.telemetry.productionSpeedUph),
      );
    expect(speed('Active')).toBeGreaterThan(speed('Idle') + 50);
    expect(speed('Idle')).toBeGreaterThan(speed('Maintenance') + 20);
  });

  it('gives each machine its own calibration offset', () => {
    // Per-machine mean latency (an independent uniform plus the offset) differs by more than sampling error.
    const perMachine = [0, 1, 2, 3].map((m) =>
      mean(samples.filter((s) => s.index % 4 === m).map((s) => s.telemetry.networkLatencyMs)),
    );
    const se = 49 / Math.sqrt(12 * (samples.length / 4));
    const spread = Math.max(...perMachine) - Math.min(...perMachine);
    expect(spread).toBeGreaterThan(2 * Z * se);
  });

  it('adds Gaussian noise to readings but labels the noise-free values', () => {
    // Labels follow the rule on true values: the readings mostly agree, but not always.
    let agree = 0;
    for (const s of samples) if (labelFor(s.telemetry) === s.label.efficiency) agree++;
    expect(agree / samples.length).toBeGreaterThan(0.95);
    expect(agree).toBeLessThan(samples.length);
  });

  it('sensor noise is Gaussian with sd 1 % of the seed range, on the reading only', () => {
    const profile = createProfile('realistic', 3, 1);
    const settings = settingsOf({});
    const truth = vec9();
    const reading = vec9();
    const n = 20_000;
    const noise = FEATURES.map(() => [] as number[]);
    for (let k = 0; k < n; k++) {
      profile.sample(0, 0, settings, truth, reading);
      for (let i = 0; i < 9; i++) (noise[i] as number[]).push((reading[i] as number) - (truth[i] as number));
    }
    FEATURES.forEach((f, i) => {
      const xs = noise[i] as number[];
      const sd = 0.01 * (SEED_RANGES[f][1] - SEED_RANGES[f][0]);
      expect(Math.abs(mean(xs))).toBeLessThan((Z * sd) / Math.sqrt(n));
      expect(Math.sqrt(variance(xs)) / sd).toBeCloseTo(1, 1);
      // Normal: 68.3 % within one sd, kurtosis 3.
      expectShare(xs.filter((x) => Math.abs(x) < sd).length, n, 0.6827);
      const m4 = mean(xs.map((x) => x ** 4)) / variance(xs) ** 2;
      expect(m4).toBeGreaterThan(2.8);
      expect(m4).toBeLessThan(3.2);
    });
  });

  it('keeps every operation mode and class present', () => {
    const modes = new Set(samples.map((s) => s.telemetry.operationMode));
    expect([...modes].sort()).toEqual([...OPERATION_MODES].sort());
    const classes = new Set(samples.map((s) => s.label.efficiency));
    expect(classes.size).toBe(3);
  });
});
