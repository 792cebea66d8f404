import { FEATURES, SEED_RANGES } from '../schema/features.ts';
import { Rng } from '../util/rng.ts';
import type { LabelRule } from './rule.ts';

/**
 * The two generating profiles. Both draw every feature from a range (the seed
 * ranges unless a scenario phase gives `range`), then multiply by `mul`, then
 * add `add`:
 *
 * - `seed` reproduces the public machine-efficiency dataset: every feature
 *   independent and uniform, no noise.
 * - `realistic` adds per-machine calibration offsets, correlated features
 *   (temperature follows vibration, power follows speed, defects follow errors,
 *   idle and maintenance modes run slower) and Gaussian sensor noise on the
 *   reading only; labels use the noise-free values.
 */
export const PROFILE_NAMES = ['seed', 'realistic'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

/** Operation-mode shares of the seed dataset, in `OPERATION_MODES` order (Active, Idle, Maintenance). */
export const DEFAULT_MODE_SHARE: readonly number[] = Object.freeze([0.7, 0.2, 0.1]);

/** Nine numbers in {@link FEATURES} order. */
export type Vec9 = [number, number, number, number, number, number, number, number, number];

export function vec9(fill = 0): Vec9 {
  return [fill, fill, fill, fill, fill, fill, fill, fill, fill];
}

/** One feature's distribution in a phase: draw uniformly on [lo, hi), multiply by mul, add add. */
export interface FeatureDist {
  lo: number;
  hi: number;
  mul: number;
  add: number;
}

/** Everything a phase sets, fully resolved against the profile's defaults. */
export interface PhaseSettings {
  /** In {@link FEATURES} order. */
  features: FeatureDist[];
  /** Shares in `OPERATION_MODES` order, summing to 1. */
  modeShare: number[];
  rule: LabelRule;
}

/** A generating profile bound to one scenario (its seed and machines). */
export interface Profile {
  readonly name: ProfileName;
  /**
   * Fills `truth` with the noise-free values (used for the label) and
   * `reading` with what the sensor reports, both in {@link FEATURES} order and
   * not yet clamped or rounded.
   */
  sample(machine: number, mode: number, settings: PhaseSettings, truth: Vec9, reading: Vec9): void;
}

/** The settings of a profile with no scenario changes. */
export function defaultFeatureDists(): FeatureDist[] {
  return FEATURES.map((f) => ({ lo: SEED_RANGES[f][0], hi: SEED_RANGES[f][1], mul: 1, add: 0 }));
}

/** Lower end of each feature's seed range, in {@link FEATURES} order. */
const SEED_LOWS: readonly number[] = FEATURES.map((f) => SEED_RANGES[f][0]);
/** Width of each feature's seed range, in {@link FEATURES} order. */
export const SEED_WIDTHS: readonly number[] = FEATURES.map((f) => SEED_RANGES[f][1] - SEED_RANGES[f][0]);

/** Derives an independent 32-bit seed for one named random stream of a scenario. */
export function deriveSeed(seed: number, stream: number): number {
  let z = (Math.trunc(seed) ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

/** Random streams; separate so that, e.g., a mode-share change leaves the feature draws untouched. */
export const STREAMS = { values: 1, modes: 2, noise: 3, offsets: 4, faults: 5, rule: 6 } as const;

export function createProfile(name: ProfileName, seed: number, machines: number): Profile {
  return name === 'seed' ? new SeedProfile(seed) : new RealisticProfile(seed, machines);
}

class SeedProfile implements Profile {
  readonly name = 'seed' as const;
  private readonly rng: Rng;

  constructor(seed: number) {
    this.rng = new Rng(deriveSeed(seed, STREAMS.values));
  }

  sample(_machine: number, _mode: number, settings: PhaseSettings, truth: Vec9, reading: Vec9): void {
    const dists = settings.features;
    for (let i = 0; i < 9; i++) {
      const d = dists[i] as FeatureDist;
      const v = (d.lo + (d.hi - d.lo) * this.rng.next()) * d.mul + d.add;
      truth[i] = v;
      reading[i] = v;
    }
  }
}

// Feature indices in FEATURES order.
const TEMP = 0;
const VIB = 1;
const POWER = 2;
const DEFECT = 5;
const SPEED = 6;
const ERROR = 8;

/** Speed and vibration multipliers per operation mode (Active, Idle, Maintenance). */
const MODE_SPEED = [1, 0.45, 0.2] as const;
const MODE_VIBRATION = [1, 0.6, 0.8] as const;
/** Per-machine calibration offsets: sd as a fraction of the seed range width. */
const OFFSET_SD = 0.03;
/** Sensor noise: sd as a fraction of the seed range width. */
const NOISE_SD = 0.01;

class RealisticProfile implements Profile {
  readonly name = 'realistic' as const;
  private readonly rng: Rng;
  private readonly noise: Rng;
  private readonly offsets: Vec9[];
  private readonly u = vec9();

  constructor(seed: number, machines: number) {
    this.rng = new Rng(deriveSeed(seed, STREAMS.values));
    this.noise = new Rng(deriveSeed(seed, STREAMS.noise));
    const off = new Rng(deriveSeed(seed, STREAMS.offsets));
    this.offsets = [];
    for (let m = 0; m < machines; m++) {
      const o = vec9();
      for (let i = 0; i < 9; i++) o[i] = off.normal(0, OFFSET_SD * (SEED_WIDTHS[i] as number));
      this.offsets.push(o);
    }
  }

  sample(machine: number, mode: number, settings: PhaseSettings, truth: Vec9, reading: Vec9): void {
    const u = this.u;
    for (let i = 0; i < 9; i++) u[i] = this.rng.next();
    const d = settings.features;
    const off = this.offsets[machine] as Vec9;
    const m = mode === 1 || mode === 2 ? mode : 0;
    for (let i = 0; i < 9; i++) truth[i] = draw(d, off, i, u[i] as number);
    // Idle and maintenance run slower and shake less.
    truth[VIB] = draw(d, off, VIB, u[VIB] * MODE_VIBRATION[m]);
    truth[SPEED] = draw(d, off, SPEED, u[SPEED] * MODE_SPEED[m]);
    // Temperature follows vibration, power follows speed, defects follow errors.
    truth[TEMP] = draw(d, off, TEMP, 0.6 * normalized(truth[VIB], VIB) + 0.4 * u[TEMP]);
    truth[POWER] = draw(d, off, POWER, 0.7 * normalized(truth[SPEED], SPEED) + 0.3 * u[POWER]);
    truth[DEFECT] = draw(d, off, DEFECT, 0.5 * normalized(truth[ERROR], ERROR) + 0.5 * u[DEFECT]);
    for (let i = 0; i < 9; i++)
      reading[i] = (truth[i] as number) + this.noise.normal(0, NOISE_SD * (SEED_WIDTHS[i] as number));
  }
}

/** Feature i at position x of its phase range, then mul, add and the machine's offset. */
function draw(dists: FeatureDist[], offsets: Vec9, i: number, x: number): number {
  const f = dists[i] as FeatureDist;
  return (f.lo + (f.hi - f.lo) * x) * f.mul + f.add + (offsets[i] as number);
}

/** Position of a value within the feature's seed range (0 at the minimum, 1 at the maximum; may fall outside). */
function normalized(value: number, i: number): number {
  return (value - (SEED_LOWS[i] as number)) / (SEED_WIDTHS[i] as number);
}
