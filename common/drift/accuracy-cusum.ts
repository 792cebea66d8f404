import type { DriftAlarm } from './types.ts';

/**
 * A sequential test on the label stream (prototype for issue 13, part 2;
 * phase B decides whether it replaces or joins `AccuracyMonitor`): Bernoulli
 * CUSUMs on the error indicator of each labelled prediction.
 *
 * Per label, e = 1 when the prediction was wrong. Under H0 the error rate is
 * at most q0 = 1 − (validationAccuracy − `tolerance`); each CUSUM looks for a
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
  /** Drop below the validation accuracy still counted as no drift (sets q0). */
  readonly tolerance: number;
  /** Drops each CUSUM is tuned to (one CUSUM each). */
  readonly drops: readonly number[];
  /** Bound on the expected false alarms per label (all CUSUMs) while the error rate is at most q0. */
  readonly falseAlarmsPerLabel: number;
  /** Labels after an alarm without another. */
  readonly cooldownLabels: number;
}

export const DEFAULT_ACCURACY_CUSUM_CONFIG: Readonly<AccuracyCusumConfig> = Object.freeze({
  tolerance: 0.015,
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

  constructor(validationAccuracy: number, config: Partial<AccuracyCusumConfig> = {}) {
    const c = { ...DEFAULT_ACCURACY_CUSUM_CONFIG, ...config };
    if (!(c.tolerance >= 0 && c.tolerance < 0.5)) throw new RangeError(`tolerance must be in [0, 0.5)`);
    if (!Array.isArray(c.drops) || c.drops.length < 1 || c.drops.some((d) => !(d > c.tolerance && d < 1)))
      throw new RangeError('drops must be a non-empty list of drops larger than tolerance');
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
    this.reset(validationAccuracy);
  }

  /** Error rate H0 allows. */
  get nullErrorRate(): number {
    return this.q0;
  }

  /** Current CUSUM statistics (one per drop). */
  get statistics(): readonly number[] {
    return [...this.s];
  }

  /** A new champion: new validation accuracy, statistics cleared. */
  reset(validationAccuracy: number): void {
    if (!(validationAccuracy > 0 && validationAccuracy <= 1))
      throw new RangeError(`validationAccuracy must be in (0, 1], got ${validationAccuracy}`);
    this.q0 = Math.min(0.5, Math.max(1e-4, 1 - (validationAccuracy - this.config.tolerance)));
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
