import { EFFICIENCY_CLASSES, type Efficiency } from '../schema/features.ts';
import type { DriftAlarm, SamplePoint } from './types.ts';

/**
 * Concept drift: the inputs look the same but the right answer changed, so
 * only labels can tell. Labels arrive late (minutes after the prediction); they
 * are joined with the predictions on machineId + seq, the outcomes (correct or
 * not) go into a rolling window, and a `concept` alarm fires when live accuracy
 * is significantly below the champion's validation accuracy.
 *
 * ## The test
 *
 * Live accuracy on the stationary stream is about the validation accuracy
 * (0.98–0.99), but not exactly: the validation set is finite and labels are
 * noisy. So the monitor does not test "accuracy = validation accuracy" (over a
 * million samples any small gap would become "significant"); it tests a drop of
 * more than `maxDrop`:
 *
 *   H0: p >= p1 = validationAccuracy − maxDrop   vs   H1: p < p1,
 *
 * one-sided exact binomial test on the n (>= `minLabels`) outcomes of the
 * window, X correct: p-value = P(Bin(n, p1) <= X); alarm when it is <= alpha.
 * The critical count for each n is precomputed (log-space binomial pmf), so a
 * label costs O(1) and allocates nothing beyond its join entry.
 *
 * Defaults (window 250, minLabels 100, maxDrop 0.05, alpha 1e-4), for a
 * champion with validation accuracy 0.985 (p1 = 0.935): the alarm needs at most
 * 217/250 correct (0.868) on a full window, 82/100 at the minimum. If live
 * accuracy really is 0.985, one test fires with probability 1.4e-14 (n = 100)
 * to 4.6e-21 (n = 250); union bound over 1,000,000 labelled samples (one test
 * per label): < 1.4e-8 false alarms. Even if live accuracy sits 2 points below
 * validation (0.965): 1.2e-8 per test at n = 100, 8.8e-11 at n = 250, so < 1e-4
 * expected alarms over 1e6 steady-state labels. When accuracy falls to 0.8, a full
 * window fails the test once it holds 33 errors: 3.75 + 0.185·t expected errors t
 * labels after the onset, so ~160 labels on average (205 in the seeded unit test;
 * a fresh window after a reset: ~100). Measured: no alarm over 1,000,000 seeded
 * outcomes at 0.985 (validation 0.985), nor at 0.97 (validation 0.99).
 */

export interface AccuracyMonitorConfig {
  /** Labelled outcomes in the rolling window. */
  readonly windowSize: number;
  /** Outcomes needed in the window before testing. */
  readonly minLabels: number;
  /** Tolerated drop below the validation accuracy (absolute). */
  readonly maxDrop: number;
  /** Significance of the one-sided binomial test. */
  readonly alpha: number;
  /** Predictions waiting for their label; the oldest is evicted beyond it. */
  readonly maxPending: number;
  /** Labelled outcomes after an alarm during which no other alarm fires (the window restarts empty). */
  readonly cooldownLabels: number;
}

export const DEFAULT_ACCURACY_CONFIG: Readonly<AccuracyMonitorConfig> = Object.freeze({
  windowSize: 250,
  minLabels: 100,
  maxDrop: 0.05,
  alpha: 1e-4,
  maxPending: 50_000,
  cooldownLabels: 1_000,
});

function checkInt(name: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
}

/** Merges onto the defaults and validates; throws a RangeError naming the bad parameter. */
export function resolveAccuracyConfig(
  overrides: Partial<AccuracyMonitorConfig> = {},
): Readonly<AccuracyMonitorConfig> {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  for (const key of Object.keys(defined)) {
    if (!(key in DEFAULT_ACCURACY_CONFIG)) throw new RangeError(`unknown accuracy monitor parameter ${key}`);
  }
  const c = { ...DEFAULT_ACCURACY_CONFIG, ...defined } as AccuracyMonitorConfig;
  checkInt('windowSize', c.windowSize, 10, 1_000_000);
  checkInt('minLabels', c.minLabels, 1, c.windowSize);
  if (typeof c.maxDrop !== 'number' || !(c.maxDrop >= 0 && c.maxDrop < 1))
    throw new RangeError(`maxDrop must be in [0, 1), got ${String(c.maxDrop)}`);
  if (typeof c.alpha !== 'number' || !(c.alpha > 0 && c.alpha < 1))
    throw new RangeError(`alpha must be in (0, 1), got ${String(c.alpha)}`);
  checkInt('maxPending', c.maxPending, 1, 10_000_000);
  checkInt('cooldownLabels', c.cooldownLabels, 0, Number.MAX_SAFE_INTEGER);
  return Object.freeze(c);
}

function checkAccuracy(v: unknown): number {
  if (typeof v !== 'number' || !(v > 0 && v <= 1))
    throw new RangeError(`validationAccuracy must be in (0, 1], got ${String(v)}`);
  return v;
}

/**
 * Lower tail of the binomial: P(Bin(n, p) <= x), summed in log space so large n
 * and p near 1 neither underflow nor lose the tail.
 */
export function binomialCdf(x: number, n: number, p: number): number {
  if (x < 0) return 0;
  if (x >= n) return 1;
  if (p <= 0) return 1;
  if (p >= 1) return 0;
  const lq = Math.log1p(-p);
  const ratio = Math.log(p) - lq;
  let lp = n * lq; // log pmf(0)
  let sum = Math.exp(lp);
  for (let k = 0; k < x; k++) {
    lp += Math.log((n - k) / (k + 1)) + ratio;
    sum += Math.exp(lp);
  }
  return Math.min(1, sum);
}

/**
 * Largest x with P(Bin(n, p) <= x) <= alpha, or -1 when even x = 0 is too likely.
 * The test rejects H0: accuracy >= p when the correct count is <= this.
 */
export function binomialCriticalCount(n: number, p: number, alpha: number): number {
  if (p <= 0) return -1;
  if (p >= 1) return n - 1;
  const lq = Math.log1p(-p);
  const ratio = Math.log(p) - lq;
  let lp = n * lq;
  let sum = Math.exp(lp);
  if (sum > alpha) return -1;
  for (let k = 0; k < n; k++) {
    lp += Math.log((n - k) / (k + 1)) + ratio;
    sum += Math.exp(lp);
    if (sum > alpha) return k;
  }
  return n;
}

interface Pending {
  predicted: number;
  ts: number;
  sampleIndex: number;
}

/** What a label did. Frozen shared objects when nothing was raised, so labels do not allocate results. */
export interface LabelOutcome {
  /** A pending prediction with this machineId + seq was found. */
  readonly matched: boolean;
  readonly correct: boolean | null;
  readonly alarm: DriftAlarm | null;
}
const UNMATCHED: LabelOutcome = Object.freeze({ matched: false, correct: null, alarm: null });
const CORRECT: LabelOutcome = Object.freeze({ matched: true, correct: true, alarm: null });
const WRONG: LabelOutcome = Object.freeze({ matched: true, correct: false, alarm: null });

export interface AccuracySnapshot {
  validationAccuracy: number;
  /** validationAccuracy − maxDrop: the accuracy H0 allows. */
  floor: number;
  /** Correct share of the labelled window; null when it is empty. */
  liveAccuracy: number | null;
  labelled: number;
  /** Correct count at or below which the current window would alarm (−1: cannot alarm yet). */
  criticalCorrect: number;
  /** One-sided p-value of the current window (null below minLabels). */
  pvalue: number | null;
  /** Share of each class among the last `windowSize` predictions. */
  predictedMix: Record<Efficiency, number>;
  /** Share of each class among the labels of the window. */
  labelMix: Record<Efficiency, number>;
  pending: number;
  evicted: number;
  unmatchedLabels: number;
  duplicatePredictions: number;
  labelsTotal: number;
  alarms: number;
  cooldownLeft: number;
}

const NC = EFFICIENCY_CLASSES.length;
const CLASS_INDEX: Readonly<Record<string, number>> = Object.freeze(
  Object.fromEntries(EFFICIENCY_CLASSES.map((c, i) => [c, i])),
);

function classIndex(c: Efficiency): number {
  const i = CLASS_INDEX[c];
  if (i === undefined) throw new RangeError(`unknown efficiency class ${String(c)}`);
  return i;
}

function joinKey(machineId: string, seq: number): string {
  // Machine ids cannot contain control characters (MACHINE_ID_PATTERN), so NUL separates unambiguously.
  return `${machineId}\u0000${seq}`;
}

/**
 * Live accuracy from delayed labels and the concept-drift alarm. River style:
 * `recordLabel(...)` then read `driftDetected`.
 */
export class AccuracyMonitor {
  readonly config: Readonly<AccuracyMonitorConfig>;
  private validation: number;
  private floor: number;
  private critical: Int32Array;
  private readonly pending = new Map<string, Pending>();
  // Rolling window of labelled outcomes (ring buffers).
  private readonly correctRing: Uint8Array;
  private readonly actualRing: Uint8Array;
  private readonly tsRing: Float64Array;
  private readonly sampleRing: Float64Array;
  private head = 0;
  private count = 0;
  private correctCount = 0;
  private readonly actualCounts = new Int32Array(NC);
  // Ring of the last predicted classes (predicted-class mix, labelled or not).
  private readonly predictedRing: Uint8Array;
  private predHead = 0;
  private predCount = 0;
  private readonly predictedCounts = new Int32Array(NC);
  private evicted = 0;
  private unmatched = 0;
  private duplicates = 0;
  private labels = 0;
  private alarms = 0;
  private cooldownLeft = 0;
  private lastAlarm: DriftAlarm | null = null;
  private readonly now: () => number;

  constructor(
    validationAccuracy: number,
    config: Partial<AccuracyMonitorConfig> = {},
    options: { now?: () => number } = {},
  ) {
    this.config = resolveAccuracyConfig(config);
    const w = this.config.windowSize;
    this.correctRing = new Uint8Array(w);
    this.actualRing = new Uint8Array(w);
    this.tsRing = new Float64Array(w);
    this.sampleRing = new Float64Array(w);
    this.predictedRing = new Uint8Array(w);
    this.now = options.now ?? Date.now;
    this.validation = checkAccuracy(validationAccuracy);
    this.floor = this.validation - this.config.maxDrop;
    this.critical = this.criticalTable();
  }

  /** True right after the label that raised a concept alarm. */
  get driftDetected(): boolean {
    return this.lastAlarm !== null;
  }

  get alarm(): DriftAlarm | null {
    return this.lastAlarm;
  }

  /** Correct share of the labelled window, or null when empty. */
  get liveAccuracy(): number | null {
    return this.count === 0 ? null : this.correctCount / this.count;
  }

  get validationAccuracy(): number {
    return this.validation;
  }

  /**
   * A new champion: new validation accuracy; the outcome window, the predicted
   * mix, the pending predictions (made by the old model) and the cooldown are cleared.
   */
  reset(validationAccuracy: number): void {
    this.validation = checkAccuracy(validationAccuracy);
    this.floor = this.validation - this.config.maxDrop;
    this.critical = this.criticalTable();
    this.pending.clear();
    this.clearWindow();
    this.predHead = 0;
    this.predCount = 0;
    this.predictedCounts.fill(0);
    this.cooldownLeft = 0;
    this.lastAlarm = null;
  }

  /**
   * Records a prediction awaiting its label. `at.sampleIndex` is the worker's
   * sample clock (the feature detector's), `at.ts` the telemetry ts.
   */
  recordPrediction(
    machineId: string,
    seq: number,
    predicted: Efficiency,
    at: { ts?: number; sampleIndex?: number } = {},
  ): void {
    const cls = classIndex(predicted);
    const key = joinKey(machineId, seq);
    if (this.pending.delete(key)) this.duplicates++;
    else if (this.pending.size >= this.config.maxPending) {
      const oldest = this.pending.keys().next();
      if (!oldest.done) {
        this.pending.delete(oldest.value);
        this.evicted++;
      }
    }
    this.pending.set(key, {
      predicted: cls,
      ts: at.ts ?? this.now(),
      sampleIndex: at.sampleIndex ?? Number.NaN,
    });
    // Predicted-class mix over the last windowSize predictions.
    const w = this.config.windowSize;
    if (this.predCount === w) {
      const old = this.predictedRing[this.predHead] as number;
      this.predictedCounts[old] = (this.predictedCounts[old] as number) - 1;
    } else {
      this.predCount++;
    }
    this.predictedRing[this.predHead] = cls;
    this.predictedCounts[cls] = (this.predictedCounts[cls] as number) + 1;
    this.predHead = this.predHead + 1 === w ? 0 : this.predHead + 1;
  }

  /** Joins a label with its prediction; unmatched labels (evicted or never predicted) are counted and ignored. */
  recordLabel(machineId: string, seq: number, actual: Efficiency): LabelOutcome {
    this.lastAlarm = null;
    const key = joinKey(machineId, seq);
    const p = this.pending.get(key);
    if (!p) {
      this.unmatched++;
      return UNMATCHED;
    }
    this.pending.delete(key);
    const actualIdx = classIndex(actual);
    const correct = p.predicted === actualIdx;
    const alarm = this.push(correct, actualIdx, p.ts, p.sampleIndex);
    if (alarm) return { matched: true, correct, alarm };
    return correct ? CORRECT : WRONG;
  }

  /**
   * Feeds an already-joined outcome (offline evaluation, tests). Returns the
   * alarm it raised, if any.
   */
  recordOutcome(
    correct: boolean,
    at: { ts?: number; sampleIndex?: number; actual?: Efficiency } = {},
  ): DriftAlarm | null {
    this.lastAlarm = null;
    return this.push(
      correct,
      at.actual === undefined ? -1 : classIndex(at.actual),
      at.ts ?? this.now(),
      at.sampleIndex ?? Number.NaN,
    );
  }

  snapshot(): AccuracySnapshot {
    const n = this.count;
    const mix = (counts: Int32Array, total: number): Record<Efficiency, number> =>
      Object.fromEntries(
        EFFICIENCY_CLASSES.map((c, i) => [c, total === 0 ? 0 : (counts[i] as number) / total]),
      ) as Record<Efficiency, number>;
    let labelledWithClass = 0;
    for (let i = 0; i < NC; i++) labelledWithClass += this.actualCounts[i] as number;
    return {
      validationAccuracy: this.validation,
      floor: this.floor,
      liveAccuracy: this.liveAccuracy,
      labelled: n,
      criticalCorrect: n >= this.config.minLabels ? (this.critical[n] as number) : -1,
      pvalue:
        n >= this.config.minLabels && this.floor > 0 ? binomialCdf(this.correctCount, n, this.floor) : null,
      predictedMix: mix(this.predictedCounts, this.predCount),
      labelMix: mix(this.actualCounts, labelledWithClass),
      pending: this.pending.size,
      evicted: this.evicted,
      unmatchedLabels: this.unmatched,
      duplicatePredictions: this.duplicates,
      labelsTotal: this.labels,
      alarms: this.alarms,
      cooldownLeft: this.cooldownLeft,
    };
  }

  /** critical[n] for n in [0, windowSize]: alarm when correct <= critical[n] (−1: never). */
  private criticalTable(): Int32Array {
    const w = this.config.windowSize;
    const t = new Int32Array(w + 1).fill(-1);
    if (this.floor <= 0) return t; // validation accuracy at or below maxDrop: nothing to detect
    for (let n = this.config.minLabels; n <= w; n++)
      t[n] = binomialCriticalCount(n, this.floor, this.config.alpha);
    return t;
  }

  private clearWindow(): void {
    this.head = 0;
    this.count = 0;
    this.correctCount = 0;
    this.actualCounts.fill(0);
  }

  private push(correct: boolean, actualIdx: number, ts: number, sampleIndex: number): DriftAlarm | null {
    const w = this.config.windowSize;
    this.labels++;
    if (this.count === w) {
      // Evict the oldest outcome (at head).
      this.correctCount -= this.correctRing[this.head] as number;
      const old = this.actualRing[this.head] as number;
      if (old < NC) this.actualCounts[old] = (this.actualCounts[old] as number) - 1;
    } else {
      this.count++;
    }
    this.correctRing[this.head] = correct ? 1 : 0;
    this.actualRing[this.head] = actualIdx < 0 ? 255 : actualIdx;
    if (actualIdx >= 0) this.actualCounts[actualIdx] = (this.actualCounts[actualIdx] as number) + 1;
    this.tsRing[this.head] = ts;
    this.sampleRing[this.head] = sampleIndex;
    const newest = this.head;
    this.head = this.head + 1 === w ? 0 : this.head + 1;
    if (correct) this.correctCount++;

    if (this.cooldownLeft > 0) {
      this.cooldownLeft--;
      return null;
    }
    const n = this.count;
    if (n < this.config.minLabels || this.correctCount > (this.critical[n] as number)) return null;

    const oldest = n === w ? this.head : 0;
    const labelClock = this.labels - 1;
    const at = pointOf(this.sampleRing[newest] as number, labelClock, this.tsRing[newest] as number);
    const onset = pointOf(
      this.sampleRing[oldest] as number,
      labelClock - (n - 1),
      this.tsRing[oldest] as number,
    );
    const alarm: DriftAlarm = {
      kind: 'concept',
      groupKey: 'all',
      at,
      onset,
      features: [],
      liveAccuracy: this.correctCount / n,
    };
    this.alarms++;
    this.lastAlarm = alarm;
    this.cooldownLeft = this.config.cooldownLabels;
    this.clearWindow();
    return alarm;
  }
}

/**
 * A point on the worker's sample clock when the prediction carried one, else on
 * the label clock. No seq: the window mixes machines, whose seqs are unrelated.
 */
function pointOf(sampleIndex: number, labelClock: number, ts: number): SamplePoint {
  return { sampleIndex: Number.isNaN(sampleIndex) ? labelClock : sampleIndex, ts };
}
