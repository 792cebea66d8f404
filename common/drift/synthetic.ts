import type { ReferenceSample } from '../model/types.ts';
import {
  FEATURES,
  OPERATION_MODES,
  SEED_RANGES,
  type Efficiency,
  type Feature,
  type OperationMode,
} from '../schema/features.ts';
import { Rng } from '../util/rng.ts';

/**
 * Seeded streams of the simulator's `seed` profile (every feature uniform on
 * its SEED_RANGES, operation modes 70/20/10 %), with an optional mean shift of
 * one feature from an onset sample. The drift tests and `bench/drift.ts` use
 * them; the same seed always gives the same stream.
 */

/** Mode weights of the seed profile, in OPERATION_MODES order. */
export const SEED_MODE_WEIGHTS: readonly number[] = [0.7, 0.2, 0.1];

/** Standard deviation of a feature under the seed profile: (max − min) / √12. */
export function seedSd(feature: Feature): number {
  const [lo, hi] = SEED_RANGES[feature];
  return (hi - lo) / Math.sqrt(12);
}

export interface SeedStreamOptions {
  seed: number;
  /** Feature to shift, and by how much (absolute units), from sample `onset` on. */
  shift?: { feature: Feature; delta: number; onset: number };
  /** Round every value to float32 (so a stream written as .f32 is the exact stream the detector saw). */
  float32?: boolean;
}

/** A mutable row reused by {@link SeedStream.next}: read it before the next call. */
export type MutableRow = { operationMode: OperationMode } & Record<Feature, number>;

export class SeedStream {
  private readonly rng: Rng;
  private readonly shiftIndex: number;
  private readonly delta: number;
  private readonly onset: number;
  private readonly round: boolean;
  private index = 0;
  readonly row: MutableRow;

  constructor(options: SeedStreamOptions) {
    this.rng = new Rng(options.seed);
    this.shiftIndex = options.shift ? FEATURES.indexOf(options.shift.feature) : -1;
    this.delta = options.shift?.delta ?? 0;
    this.onset = options.shift?.onset ?? Number.POSITIVE_INFINITY;
    this.round = options.float32 ?? false;
    this.row = Object.fromEntries([
      ['operationMode', 'Active'],
      ...FEATURES.map((f) => [f, 0]),
    ]) as MutableRow;
  }

  /** Index of the next sample. */
  get position(): number {
    return this.index;
  }

  /** Draws the next sample into {@link row} (no allocation) and returns it. */
  next(): MutableRow {
    const row = this.row;
    row.operationMode = OPERATION_MODES[this.rng.weighted(SEED_MODE_WEIGHTS)] as OperationMode;
    const shifted = this.index >= this.onset;
    for (let f = 0; f < FEATURES.length; f++) {
      const feature = FEATURES[f] as Feature;
      const [lo, hi] = SEED_RANGES[feature];
      let v = this.rng.uniform(lo, hi);
      if (shifted && f === this.shiftIndex) v += this.delta;
      row[feature] = this.round ? Math.fround(v) : v;
    }
    this.index++;
    return row;
  }
}

/**
 * Class shares of the seed profile under the seed labelling rule (High: speed > 400
 * and error < 2; Medium: speed > 200 and error < 5): High = (100/450)·(2/15),
 * Medium = (300/450)·(5/15) − High, Low = the rest.
 */
export const SEED_CLASS_SHARES: Readonly<Record<Efficiency, number>> = Object.freeze({
  Low: 1 - (300 / 450) * (5 / 15),
  Medium: (300 / 450) * (5 / 15) - (100 / 450) * (2 / 15),
  High: (100 / 450) * (2 / 15),
});

/** A reference sample of `size` seed-profile rows, as a champion artifact would carry. */
export function seedReference(seed: number, size = 5_000, float32 = false): ReferenceSample {
  const stream = new SeedStream({ seed, float32 });
  const features = Object.fromEntries(FEATURES.map((f) => [f, new Array<number>(size)])) as Record<
    Feature,
    number[]
  >;
  for (let i = 0; i < size; i++) {
    const row = stream.next();
    for (const f of FEATURES) features[f][i] = row[f];
  }
  return { size, features, classShares: { ...SEED_CLASS_SHARES } };
}
