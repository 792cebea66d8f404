import type { DriftAlarm } from './types.ts';

/**
 * A sequential test on the label stream (prototype for issue 13, part 2;
 * phase B decides whether it replaces or joins `AccuracyMonitor`): Bernoulli
 * CUSUMs on the error indicator of each labelled prediction.
 *
 * Per label, e = 1 when the prediction was wrong. Under H0 the error rate is
 * at most q0 = 1 − (validationAccuracy − margin); each CUSUM looks for a
 * drop of `drops[k]` below the validation accuracy, q1 = 1 − (validation −
 * drop), with the log-likelihood-ratio increments
 *
 *     e · ln(q1 / q0) + (1 − e) · ln((1 − q1) / (1 − q0)),
 *
 * S = max(0, S + increment), alarm when S >= h. Page's CUSUM is a sequence of
 * one-sided SPRTs restarted at every label, each of which crosses h under H0
 * with probability at most e^−h (Wald/Ville), so the expected false alarms
 * per label are at most e^−h per CUSUM while the error rate is at most q0:
 * h = ln(K / falseAlarmsPerLabel) over the K CUSUMs.
 *
 * The margin is what the validation set can vouch for: the distance from the
 * validation error rate to its Wilson upper bound at `confidenceZ` over the
 * validation samples, clamped to [`tolerance`, `maxTolerance`]. A champion
 * validated on 8,000 samples gets the floor (0.75 points), so a drop of 4
 * points is found in about half the labels the fixed 1.5 points needed; a
 * stage-1 model validated on ~100 samples, whose live accuracy may sit a
 * point or two under its validation figure, keeps the ceiling (1.5 points, the
 * margin every champion had before). Without a sample count the margin is the
 * ceiling.
 *
 * Unlike the windowed binomial test there is no window to fill: the evidence
 * accumulates label by label, so a large drop alarms after a handful of errors
 * and a small one (a few points, which the window test with `maxDrop` 0.05
 * cannot see) after a few hundred labels.
 *
 * ```ts
 * const cusum = new AccuracyCusum(0.9967);
 * const alarm = cusum.record(false, { sampleIndex: 20_150 }); // a DriftAlarm of kind 'concept', or null
 * ```
 */
export interface AccuracyCusumConfig {
  /** Smallest drop below the validation accuracy still counted as no drift (the floor of the margin that sets q0). */
  readonly tolerance: number;
  /** Largest margin: what a champion validated on few samples (or an unknown number) gets. */
  readonly maxTolerance: number;
  /** z of the Wilson upper bound on the validation error rate that sizes the margin between the two. */
  readonly confidenceZ: number;
  /** Drops each CUSUM is tuned to (one CUSUM each). */
  readonly drops: readonly number[];
  /** Bound on the expected false alarms per label (all CUSUMs) while the error rate is at most q0. */
  readonly falseAlarmsPerLabel: number;
  /** Labels after an alarm without another. */
  readonly cooldownLabels: number;
}

export const DEFAULT_ACCURACY_CUSUM_CONFIG: Readonly<AccuracyCusumConfig> = Object.freeze({
  tolerance: 0.0075,
  maxTolerance: 0.015,
  confidenceZ: 3,
  drops: Object.freeze([0.04, 0.1]),
  falseAlarmsPerLabel: 1e-8,
  cooldownLabels: 1_000,
});

export class AccuracyCusum {
  readonly config: Readonly<AccuracyCusumConfig>;
  readonly threshold: number;
  private up: Float64Array;
  private down: Float64Array;
  private readonly s: Float64Array;
  /** Sample index (and ts) of the first label of each CUSUM's current excursion above 0: the change-point estimate. */
  private readonly start: Float64Array;
  private readonly startTs: Float64Array;
  private labels = 0;
  private cooldown = 0;
  private q0 = 0;
  private currentMargin = 0;

  /**
   * @param validationAccuracy the champion's accuracy on its validation (holdout) set
   * @param config see `AccuracyCusumConfig`; defaults in `DEFAULT_ACCURACY_CUSUM_CONFIG`
   * @param validationSamples how many samples that accuracy was measured on (unknown: the widest margin)
   */
  constructor(
    validationAccuracy: number,
    config: Partial<AccuracyCusumConfig> = {},
    validationSamples?: number,
  ) {
    const c = { ...DEFAULT_ACCURACY_CUSUM_CONFIG, ...config };
    if (!(c.tolerance >= 0 && c.tolerance < 0.5)) throw new RangeError(`tolerance must be in [0, 0.5)`);
    if (!(c.maxTolerance >= c.tolerance && c.maxTolerance < 0.5))
      throw new RangeError(`maxTolerance must be in [tolerance, 0.5)`);
    if (!(c.confidenceZ >= 0 && Number.isFinite(c.confidenceZ)))
      throw new RangeError(`confidenceZ must be >= 0`);
    if (!Array.isArray(c.drops) || c.drops.length < 1 || c.drops.some((d) => !(d > c.maxTolerance && d < 1)))
      throw new RangeError('drops must be a non-empty list of drops larger than maxTolerance');
    if (!(c.falseAlarmsPerLabel > 0 && c.falseAlarmsPerLabel < 1))
      throw new RangeError('falseAlarmsPerLabel must be in (0, 1)');
    if (!Number.isInteger(c.cooldownLabels) || c.cooldownLabels < 0)
      throw new RangeError('cooldownLabels must be a non-negative integer');
    this.config = Object.freeze({ ...c, drops: Object.freeze([...c.drops]) });
    this.threshold = Math.log(c.drops.length / c.falseAlarmsPerLabel);
    this.up = new Float64Array(c.drops.length);
    this.down = new Float64Array(c.drops.length);
    this.s = new Float64Array(c.drops.length);
    this.start = new Float64Array(c.drops.length);
    this.startTs = new Float64Array(c.drops.length);
    this.reset(validationAccuracy, validationSamples);
  }

  /** Error rate H0 allows. */
  get nullErrorRate(): number {
    return this.q0;
  }

  /** Current CUSUM statistics (one per drop). */
  get statistics(): readonly number[] {
    return [...this.s];
  }

  /** Drop below the validation accuracy H0 allows (q0 = validation error rate + margin). */
  get margin(): number {
    return this.currentMargin;
  }

  /** A new champion: new validation accuracy (measured on `validationSamples`), statistics cleared. */
  reset(validationAccuracy: number, validationSamples?: number): void {
    if (!(validationAccuracy > 0 && validationAccuracy <= 1))
      throw new RangeError(`validationAccuracy must be in (0, 1], got ${validationAccuracy}`);
    if (validationSamples !== undefined && !(Number.isInteger(validationSamples) && validationSamples >= 0))
      throw new RangeError(`validationSamples must be a non-negative integer, got ${validationSamples}`);
    this.currentMargin = validationMargin(1 - validationAccuracy, validationSamples, this.config);
    this.q0 = Math.min(0.5, Math.max(1e-4, 1 - (validationAccuracy - this.currentMargin)));
    this.config.drops.forEach((d, k) => {
      const q1 = Math.min(0.99, 1 - (validationAccuracy - d));
      this.up[k] = Math.log(q1 / this.q0);
      this.down[k] = Math.log((1 - q1) / (1 - this.q0));
    });
    this.s.fill(0);
    this.cooldown = 0;
  }

  /** One labelled outcome; returns a concept alarm when a CUSUM crosses its threshold. */
  record(correct: boolean, at: { sampleIndex: number; ts?: number }): DriftAlarm | null {
    this.labels++;
    let fired = -1;
    for (let k = 0; k < this.s.length; k++) {
      const before = this.s[k] as number;
      const v = Math.max(0, before + (correct ? (this.down[k] as number) : (this.up[k] as number)));
      if (before === 0 && v > 0) {
        this.start[k] = at.sampleIndex;
        this.startTs[k] = at.ts ?? 0;
      }
      this.s[k] = v;
      if (v >= this.threshold && (fired < 0 || (this.start[k] as number) < (this.start[fired] as number)))
        fired = k;
    }
    if (this.cooldown > 0) {
      this.cooldown--;
      return null;
    }
    if (fired < 0) return null;
    const onset = { sampleIndex: this.start[fired] as number, ts: this.startTs[fired] as number };
    this.s.fill(0);
    this.cooldown = this.config.cooldownLabels;
    const point = { sampleIndex: at.sampleIndex, ts: at.ts ?? 0 };
    return { kind: 'concept', groupKey: 'all', at: point, onset, features: [], liveAccuracy: null };
  }
}

/**
 * The margin between the validation error rate e and H0's q0: the Wilson upper bound of e over n
 * samples at z, minus e, clamped to [tolerance, maxTolerance]; maxTolerance when n is unknown or 0.
 */
export function validationMargin(
  e: number,
  n: number | undefined,
  c: Pick<AccuracyCusumConfig, 'tolerance' | 'maxTolerance' | 'confidenceZ'>,
): number {
  if (n === undefined || n <= 0) return c.maxTolerance;
  const z2 = c.confidenceZ * c.confidenceZ;
  const upper =
    (e + z2 / (2 * n) + c.confidenceZ * Math.sqrt((e * (1 - e)) / n + z2 / (4 * n * n))) / (1 + z2 / n);
  return Math.min(c.maxTolerance, Math.max(c.tolerance, upper - e));
}
