import type { FeatureEvidence } from '../events/schemas.ts';
import type { ReferenceSample } from '../model/types.ts';
import { FEATURES, type Feature } from '../schema/features.ts';
import { SortedSample, ks2samp } from '../stats/ks.ts';
import { ReferenceIndex, cachedExactPvalue, criticalLattice, type CriticalLattice } from './ks-budget.ts';
import type { DriftAlarm, SamplePoint } from './types.ts';
import { sortReference } from './reference.ts';
import { MOVED_PVALUE, checkContinuation, type AdoptedStep, type ContinuationCheck } from './continuation.ts';
import type {
  DriftInput,
  DriftUpdate,
  FeatureDriftStats,
  FeatureDriftStatus,
  GroupBy,
  WindowReport,
} from './feature-drift.ts';

/**
 * Multi-scale covariate drift detector: every feature's most recent samples are
 * compared with the champion's reference sample by exact two-sample
 * Kolmogorov–Smirnov tests at several window lengths at once, each window
 * sliding by its own hop. A short window finds a large shift quickly; a long
 * one finds a small shift that a short window cannot resolve. One rejecting
 * test raises the alarm.
 *
 * The false-alarm budget is a bound on the *expected number of false alarms
 * per sample* (`falseAlarmsPerSample`, default 1e-6: at most one per million
 * samples on average). It is shared between the scales (`share`), and within a
 * scale Bonferroni over the nine features gives each test the level
 *
 *     alpha_s = falseAlarmsPerSample · share_s · hop_s / 9.
 *
 * A feature rejects when its exact KS p-value is at most alpha_s, i.e. when
 * its lattice statistic h = D · lcm(n, w) reaches the critical h of
 * {@link criticalLattice} (so the hot path compares integers).
 *
 * **Why the budget is exact without modelling the overlap.** Windows of one
 * scale overlap (w > hop) and the scales share samples, so the tests are
 * strongly dependent, and "the probability of at least one false alarm" would
 * need that dependence. The *expected number* of false alarms does not: by
 * linearity of expectation it is the sum over tests of each test's own
 * rejection probability (a test raises at most one alarm; the cooldown only
 * removes alarms). Per sample that sum is Σ_s Σ_f P(test s, f rejects) / hop_s,
 * and averaged over the reference draw each term is exactly the permutation
 * null p-value at the critical h (≤ alpha_s), so the expected false alarms per
 * sample are at most Σ_s 9 · alpha_s / hop_s = falseAlarmsPerSample. The only
 * inequalities are the exact test's discreteness (p at the critical h is a
 * little below alpha_s) and Bonferroni over features (a union bound, which is
 * tight at these levels). Given one particular reference, P(test rejects) can
 * differ from its average; `bench/drift-design.ts` computes it exactly for the
 * benchmark reference and for 200 random ones (docs/drift-detector-design.md).
 *
 * ## Parameters
 *
 * - `scales` — `{ windowSize, hop, share }` per scale; default `[{400, 50, 0.5},
 *   {2000, 250, 0.5}]`. Every window must fit in the reference's lattice
 *   (lcm(n, w) < 2^31) and `hop <= windowSize`; the shares must sum to 1.
 * - `falseAlarmsPerSample` — the budget above, in (0, 0.01].
 * - `consecutive` — rejecting tests in a row (same scale, same feature) for an
 *   alarm; default 1. More than 1 adds `hop` samples of delay per extra test
 *   and, on overlapping windows, buys little: the bound above stays that of 1.
 * - `groupBy`, `cooldownSamples`, `maxGroups` — as in `FeatureDriftDetector`.
 * - `adoptionSize` — rows of a reference adopted after an accepted shift
 *   (default 5,000: the champion's reference size, so the thresholds and the
 *   budget are unchanged); `settleSamples` — how long after an adoption further
 *   change keeps updating the reference instead of alarming (default 10,000).
 *
 * ## Adopting a new reference (a shift the champion handles)
 *
 * When a covariate alarm's challenger is rejected because the champion did not
 * lose accuracy, {@link acceptShift} makes the group *settle*: rejections stop
 * raising alarms, the detector collects `adoptionSize` recent rows, adopts them
 * as the reference (a {@link ReferenceUpdate} with old-vs-new evidence, in
 * the update's `referenceUpdate`) and clears its windows, so later windows are
 * independent of the new reference and the budget above holds for it exactly.
 * A change that goes on (a ramp) while settling updates the reference again;
 * `settleSamples` after the last update without a rejection, normal detection
 * resumes and the next change alarms against the adopted reference. A
 * rejection while settling that is *not* the continuation of the adopted shift
 * (`continuation.ts`: a feature that did not move in it moves, the shift turns
 * back, or the features stop moving together as a ramp moves them) ends
 * settling and alarms at once ({@link settleCheck} says which). The
 * accuracy monitor still watches the champion while the group settles.
 *
 * ## Example
 *
 * ```ts
 * import { MultiScaleDriftDetector } from './common/drift/multiscale-drift.ts';
 * import { SeedStream, seedReference, seedSd } from './common/drift/synthetic.ts';
 *
 * const detector = new MultiScaleDriftDetector(seedReference(1));
 * const stream = new SeedStream({
 *   seed: 3,
 *   shift: { feature: 'powerKw', delta: 0.5 * seedSd('powerKw'), onset: 5_000 },
 * });
 * for (let i = 0; i < 10_000; i++) {
 *   detector.update(stream.next());
 *   if (detector.driftDetected) {
 *     console.log(i, detector.alarm?.features); // 5349 [ { feature: 'powerKw', … } ]
 *     break;
 *   }
 * }
 * ```
 *
 * ## References
 *
 * - J. W. Massey (1951), The Kolmogorov–Smirnov test for goodness of fit; the exact
 *   two-sample null: scipy.stats.ks_2samp (`common/stats/ks.ts`).
 * - A. Moscovich, B. Nadler (2017), Fast calculation of boundary crossing probabilities
 *   for Poisson processes, Statistics & Probability Letters 123 — the poissonized
 *   non-crossing DP behind the conditional false-alarm rates.
 * - River's `KSWIN` (Raab, Heusinger, Schleif 2020, Neurocomputing 416) and Alibi
 *   Detect's `KSDrift`, compared on identical streams in `bench/compare_detectors.py`.
 * - docs/drift-detector-design.md: the candidates, their exact budgets and measured delays.
 */

/** One window length and how often it is tested. */
export interface DriftScale {
  /** Samples per window (per feature). */
  readonly windowSize: number;
  /** Samples between two tests of this scale. */
  readonly hop: number;
  /** Share of `falseAlarmsPerSample` this scale may spend. */
  readonly share: number;
}

export interface MultiScaleDriftConfig {
  readonly groupBy: GroupBy;
  readonly scales: readonly DriftScale[];
  /** Bound on the expected false alarms per sample (all scales and features together). */
  readonly falseAlarmsPerSample: number;
  /** Rejecting tests in a row (same scale, same feature) for an alarm. */
  readonly consecutive: number;
  /** Samples of a group after an alarm during which it raises no other alarm. */
  readonly cooldownSamples: number;
  /** Most groups kept at once (groupBy machine). */
  readonly maxGroups: number;
  /** Rows of a reference adopted by {@link MultiScaleDriftDetector.acceptShift}. */
  readonly adoptionSize: number;
  /** Samples after the last reference update during which further change updates the reference again. */
  readonly settleSamples: number;
}

export const DEFAULT_MULTISCALE_CONFIG: Readonly<MultiScaleDriftConfig> = Object.freeze({
  groupBy: 'all',
  scales: Object.freeze([
    Object.freeze({ windowSize: 400, hop: 50, share: 0.5 }),
    Object.freeze({ windowSize: 2_000, hop: 250, share: 0.5 }),
  ]),
  falseAlarmsPerSample: 2.5e-7,
  consecutive: 1,
  cooldownSamples: 5_000,
  maxGroups: 256,
  adoptionSize: 5_000,
  settleSamples: 10_000,
});

const NF = FEATURES.length;
export const MAX_SCALES = 8;
export const MAX_SCALE_WINDOW = 100_000;

function checkInt(name: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
}

/** Merges `overrides` onto the defaults and validates every parameter; throws a RangeError naming the first bad one. */
export function resolveMultiScaleConfig(
  overrides: Partial<MultiScaleDriftConfig> = {},
): Readonly<MultiScaleDriftConfig> {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  for (const key of Object.keys(defined))
    if (!(key in DEFAULT_MULTISCALE_CONFIG)) throw new RangeError(`unknown drift parameter ${key}`);
  const c = { ...DEFAULT_MULTISCALE_CONFIG, ...defined } as MultiScaleDriftConfig;
  if (c.groupBy !== 'all' && c.groupBy !== 'machine')
    throw new RangeError(`groupBy must be one of all, machine, got ${String(c.groupBy)}`);
  if (!Array.isArray(c.scales) || c.scales.length < 1 || c.scales.length > MAX_SCALES)
    throw new RangeError(`scales must be an array of 1 to ${MAX_SCALES} scales`);
  let shares = 0;
  const scales = c.scales.map((s, i) => {
    if (typeof s !== 'object' || s === null) throw new RangeError(`scales[${i}] must be an object`);
    checkInt(`scales[${i}].windowSize`, s.windowSize, 10, MAX_SCALE_WINDOW);
    checkInt(`scales[${i}].hop`, s.hop, 1, s.windowSize);
    if (typeof s.share !== 'number' || !(s.share > 0 && s.share <= 1))
      throw new RangeError(`scales[${i}].share must be in (0, 1], got ${String(s.share)}`);
    shares += s.share;
    return Object.freeze({ windowSize: s.windowSize, hop: s.hop, share: s.share });
  });
  if (Math.abs(shares - 1) > 1e-9) throw new RangeError(`scales' shares must sum to 1, got ${shares}`);
  if (
    typeof c.falseAlarmsPerSample !== 'number' ||
    !(c.falseAlarmsPerSample > 0 && c.falseAlarmsPerSample <= 0.01)
  )
    throw new RangeError(`falseAlarmsPerSample must be in (0, 0.01], got ${String(c.falseAlarmsPerSample)}`);
  checkInt('consecutive', c.consecutive, 1, 1_000);
  checkInt('cooldownSamples', c.cooldownSamples, 0, Number.MAX_SAFE_INTEGER);
  checkInt('maxGroups', c.maxGroups, 1, 1_000_000);
  checkInt('adoptionSize', c.adoptionSize, 100, 1_000_000);
  checkInt('settleSamples', c.settleSamples, 0, Number.MAX_SAFE_INTEGER);
  for (const s of scales) {
    const alpha = (c.falseAlarmsPerSample * s.share * s.hop) / NF;
    if (!(alpha < 1))
      throw new RangeError(`scale ${s.windowSize}/${s.hop}: per-test alpha ${alpha} is not below 1`);
  }
  return Object.freeze({ ...c, scales: Object.freeze(scales) });
}

/** Per-test level of a scale: budget · share · hop / 9 (Bonferroni over the features). */
export function scaleAlpha(
  config: Pick<MultiScaleDriftConfig, 'falseAlarmsPerSample'>,
  scale: DriftScale,
): number {
  return (config.falseAlarmsPerSample * scale.share * scale.hop) / NF;
}

/** Five-number summary and moments of one feature's sample. */
export interface FeatureSummary {
  samples: number;
  mean: number;
  sd: number;
  min: number;
  p05: number;
  p50: number;
  p95: number;
  max: number;
}

/** One feature of a {@link ReferenceUpdate}: old and new reference and the two-sample KS test between them. */
export interface ReferenceFeatureEvidence {
  feature: Feature;
  old: FeatureSummary;
  new: FeatureSummary;
  /** KS statistic D between the old and the new reference. */
  statistic: number;
  pvalue: number;
}

/** What a `reference-updated` event carries: the detector adopted recent rows as its reference. */
export interface ReferenceUpdate {
  groupKey: string;
  /** The sample whose update completed the adoption. */
  at: SamplePoint;
  /** `accepted`: the first adoption after {@link MultiScaleDriftDetector.acceptShift}; `continuing`: change went on while settling. */
  reason: 'accepted' | 'continuing';
  /** First and last row of the new reference. */
  from: SamplePoint;
  to: SamplePoint;
  /** Rows in the new reference (per feature). */
  samples: number;
  /** Every feature, smallest KS p-value first. */
  features: ReferenceFeatureEvidence[];
}

/** A settle-time rejection and its verdict (see {@link MultiScaleDriftDetector.settleCheck}). */
export interface SettleCheck extends ContinuationCheck {
  groupKey: string;
  /** Sample index of the test. */
  at: number;
}

/** Where a group stands after {@link MultiScaleDriftDetector.acceptShift}. */
export type SettleState = 'normal' | 'collecting' | 'settling';

/** Per-scale, per-feature test state. */
interface ScaleState {
  readonly windowSize: number;
  readonly hop: number;
  readonly alpha: number;
  /** Critical lattice per feature (reference sizes may differ). */
  critical: CriticalLattice[];
  readonly statistic: Float64Array;
  /** Lattice statistic of the latest test (p-values are computed from it only when read). */
  readonly h: Float64Array;
  readonly rejected: Uint8Array;
  readonly streak: Int32Array;
  readonly streakFrom: Float64Array;
  /** The window of each feature, sorted (feature-major, NF × windowSize), kept up to date test to test. */
  readonly sorted: Float64Array;
  /** Group count at the last test; the sorted windows are reusable when the next test is exactly one hop later. */
  lastCount: number;
}

class Group {
  /** Feature-major ring of the last `capacity` rows: values[f * capacity + i]. */
  readonly values: Float64Array;
  readonly sampleIdx: Float64Array;
  readonly ts: Float64Array;
  readonly seq: Float64Array;
  pos = 0;
  filled = 0;
  /** Rows since the group started or last cleared its windows (tests align on it). */
  count = 0;
  lastSeen = 0;
  cooldownLeft = 0;
  /** Sample index of the group's last alarm (−1: none). */
  lastAlarmAt = -1;
  tests = 0;
  readonly scales: ScaleState[];
  // Latest status per feature (from the most recent test of any scale).
  readonly statistic = new Float64Array(NF).fill(Number.NaN);
  readonly h = new Float64Array(NF).fill(Number.NaN);
  readonly refSize = new Float64Array(NF);
  readonly threshold: Float64Array = new Float64Array(NF);
  readonly critical = new Float64Array(NF).fill(Number.NaN);
  readonly drifted = new Uint8Array(NF);
  readonly streak = new Int32Array(NF);
  readonly windowOf = new Int32Array(NF);
  // Settling after acceptShift().
  settle: SettleState = 'normal';
  settleReason: 'accepted' | 'continuing' = 'accepted';
  /** Collected rows for the next reference (feature-major, capacity adoptionSize), when collecting. */
  collected: Float64Array | null = null;
  collectedIdx: Float64Array | null = null;
  collectedTs: Float64Array | null = null;
  collectedSeq: Float64Array | null = null;
  collectedCount = 0;
  /** Sample index after which rows may enter the new reference. */
  collectSince = -1;
  settleLeft = 0;
  /** What the last adoption changed (for telling a ramp's continuation from a new change while settling). */
  step: AdoptedStep | null = null;
  /** The group's own reference once it adopted one (else the detector's). */
  refs: SortedSample[] | null = null;
  refIndex: ReferenceIndex[] | null = null;

  constructor(
    readonly key: string,
    readonly capacity: number,
    scales: ScaleState[],
  ) {
    this.values = new Float64Array(NF * capacity);
    this.sampleIdx = new Float64Array(capacity);
    this.ts = new Float64Array(capacity);
    this.seq = new Float64Array(capacity);
    this.scales = scales;
  }
}

/**
 * The multi-scale detector (see the module comment). Same surface as
 * `FeatureDriftDetector`: `update(row, machineId)` → {@link DriftUpdate},
 * `driftDetected`, `alarm`, `features()`, `featureSummary()`, `reset()`,
 * `dropGroup()`; plus {@link acceptShift} and `referenceUpdate`.
 */
export class MultiScaleDriftDetector {
  readonly config: Readonly<MultiScaleDriftConfig>;
  /** Window size of the first scale, for consumers that show one window (histograms). */
  readonly windowSize: number;
  private refs: SortedSample[];
  private refIndex: ReferenceIndex[];
  private refSizes: number[];
  private readonly groups = new Map<string, Group>();
  private readonly now: () => number;
  private readonly capacity: number;
  private samples = 0;
  private skipped = 0;
  private testsRun = 0;
  private alarms = 0;
  private groupsEvicted = 0;
  private lastAlarm: DriftAlarm | null = null;
  private lastUpdate: ReferenceUpdate | null = null;
  private lastContinuation: SettleCheck | null = null;
  private readonly merged: Float64Array;
  private readonly incoming: Float64Array;
  private readonly outgoing: Float64Array;

  constructor(
    reference: ReferenceSample,
    config: Partial<MultiScaleDriftConfig> = {},
    options: { now?: () => number } = {},
  ) {
    this.config = resolveMultiScaleConfig(config);
    this.refs = sortReference(reference);
    this.refIndex = this.refs.map((r) => new ReferenceIndex(r.values));
    this.refSizes = this.refs.map((r) => r.size);
    this.now = options.now ?? Date.now;
    // The ring keeps one hop more than each window: the rows leaving a window since its last test.
    this.capacity = Math.max(...this.config.scales.map((s) => s.windowSize + s.hop));
    this.windowSize = (this.config.scales[0] as DriftScale).windowSize;
    const maxWindow = Math.max(...this.config.scales.map((s) => s.windowSize));
    const maxHop = Math.max(...this.config.scales.map((s) => s.hop));
    this.merged = new Float64Array(maxWindow);
    this.incoming = new Float64Array(maxHop);
    this.outgoing = new Float64Array(maxHop);
    // Validate the lattice now (throws for an impossible reference/window combination).
    this.criticalFor(this.refSizes);
  }

  get driftDetected(): boolean {
    return this.lastAlarm !== null;
  }

  get alarm(): DriftAlarm | null {
    return this.lastAlarm;
  }

  /**
   * The settle-time check of the latest update, if any (`continuation.ts`): a rejection while a group settled
   * after an adopted shift, judged the continuation of that shift (a `continuing` update) or a new change
   * (settling ends and the rejection alarms).
   */
  get settleCheck(): SettleCheck | null {
    return this.lastContinuation;
  }

  /** The reference update completed by the latest update, if any. */
  get referenceUpdate(): ReferenceUpdate | null {
    return this.lastUpdate;
  }

  get sampleIndex(): number {
    return this.samples;
  }

  get referenceSizes(): readonly number[] {
    return this.refSizes;
  }

  get stats(): FeatureDriftStats {
    return {
      samples: this.samples,
      skipped: this.skipped,
      windowsTested: this.testsRun,
      alarms: this.alarms,
      groups: this.groups.size,
      groupsEvicted: this.groupsEvicted,
      pvalueCacheHits: 0,
    };
  }

  /** The critical statistic of each scale and feature for the current reference (for reports). */
  criticalValues(
    groupKey?: string,
  ): { windowSize: number; hop: number; alpha: number; critical: CriticalLattice[] }[] {
    const g = groupKey === undefined ? undefined : this.groups.get(groupKey);
    const sizes = g?.refs ? g.refs.map((r) => r.size) : this.refSizes;
    return this.criticalFor(sizes).map((critical, s) => {
      const scale = this.config.scales[s] as DriftScale;
      return {
        windowSize: scale.windowSize,
        hop: scale.hop,
        alpha: scaleAlpha(this.config, scale),
        critical,
      };
    });
  }

  /** A new champion: its reference replaces every group's, and every window, streak, cooldown and settling is cleared. */
  reset(reference: ReferenceSample): void {
    const refs = sortReference(reference);
    const sizes = refs.map((r) => r.size);
    this.criticalFor(sizes);
    this.refs = refs;
    this.refIndex = refs.map((r) => new ReferenceIndex(r.values));
    this.refSizes = sizes;
    this.groups.clear();
    this.lastAlarm = null;
    this.lastUpdate = null;
    this.lastContinuation = null;
  }

  dropGroup(key: string): boolean {
    return this.groups.delete(key);
  }

  groupKeys(): string[] {
    return [...this.groups.keys()];
  }

  /**
   * The window of `feature` in group `groupKey` that one scale tested last: a
   * read-only view of the detector's own sorted copy (ascending), or undefined
   * before that scale's first test in the group (and after a reference
   * adoption cleared the windows). `windowSize` picks the scale; by default the
   * scale whose result the feature's latest status reports
   * (`FeatureDriftStatus.windowSize`). Right after {@link update} reports a
   * tested window it is exactly the window that scale tested; its next test
   * changes it.
   */
  windowValues(groupKey: string, feature: Feature, windowSize?: number): ArrayLike<number> | undefined {
    const g = this.groups.get(groupKey);
    const f = FEATURES.indexOf(feature);
    if (!g || f < 0) return undefined;
    const w = windowSize ?? (g.windowOf[f] as number);
    const sc = g.scales.find((s) => s.windowSize === w);
    if (!sc || sc.lastCount < 0) return undefined;
    return sc.sorted.subarray(f * w, (f + 1) * w);
  }

  /** Settling state of a group (default: `all`, or the only group). */
  settleState(groupKey?: string): SettleState {
    return this.groupOf(groupKey)?.settle ?? 'normal';
  }

  /**
   * The champion handles the shift that alarmed (its challenger was rejected
   * because the champion did not lose accuracy): the group (default: every
   * group) stops alarming, collects `adoptionSize` rows seen after `since`
   * (default: the group's last alarm; rows already in its windows count) and
   * adopts them as its reference. Returns the groups that started settling.
   */
  acceptShift(options: { groupKey?: string; since?: number } = {}): string[] {
    const keys = options.groupKey === undefined ? [...this.groups.keys()] : [options.groupKey];
    const started: string[] = [];
    for (const key of keys) {
      const g = this.groups.get(key);
      if (!g) continue;
      this.startCollecting(g, options.since ?? g.lastAlarmAt, 'accepted');
      started.push(key);
    }
    return started;
  }

  features(groupKey?: string): FeatureDriftStatus[] {
    const g = this.groupOf(groupKey);
    return g ? this.statusOf(g) : [];
  }

  featureSummary(): FeatureDriftStatus[] {
    return FEATURES.map((feature, f) => {
      let best: FeatureDriftStatus | undefined;
      let drifted = false;
      let streak = 0;
      for (const g of this.groups.values()) {
        const s = this.statusOne(g, f);
        if (
          s.statistic !== null &&
          (best === undefined ||
            best.statistic === null ||
            s.statistic / s.criticalStatistic > best.statistic / best.criticalStatistic)
        )
          best = s;
        if (s.drifted) drifted = true;
        streak = Math.max(streak, s.streak);
      }
      const base = {
        feature,
        statistic: null,
        pvalue: null,
        threshold: scaleAlpha(this.config, this.config.scales[0] as DriftScale),
        criticalStatistic: Number.NaN,
        drifted: false,
        streak: 0,
      };
      if (!best) return { ...base, drifted, streak };
      best.drifted = drifted;
      best.streak = streak;
      return best;
    });
  }

  update(row: DriftInput, machineId = 'all'): DriftUpdate {
    const index = this.samples++;
    this.lastAlarm = null;
    this.lastUpdate = null;
    this.lastContinuation = null;
    const x0 = row.temperatureC;
    const x1 = row.vibrationHz;
    const x2 = row.powerKw;
    const x3 = row.networkLatencyMs;
    const x4 = row.packetLossPct;
    const x5 = row.defectRatePct;
    const x6 = row.productionSpeedUph;
    const x7 = row.maintenanceScore;
    const x8 = row.errorRatePct;
    if (
      !Number.isFinite(x0) ||
      !Number.isFinite(x1) ||
      !Number.isFinite(x2) ||
      !Number.isFinite(x3) ||
      !Number.isFinite(x4) ||
      !Number.isFinite(x5) ||
      !Number.isFinite(x6) ||
      !Number.isFinite(x7) ||
      !Number.isFinite(x8)
    ) {
      this.skipped++;
      return NOT_TESTED;
    }
    const g = this.group(this.config.groupBy === 'machine' ? machineId : 'all', index);
    const R = this.capacity;
    const pos = g.pos;
    const v = g.values;
    v[pos] = x0;
    v[R + pos] = x1;
    v[2 * R + pos] = x2;
    v[3 * R + pos] = x3;
    v[4 * R + pos] = x4;
    v[5 * R + pos] = x5;
    v[6 * R + pos] = x6;
    v[7 * R + pos] = x7;
    v[8 * R + pos] = x8;
    g.sampleIdx[pos] = index;
    const ts = typeof row.ts === 'number' && Number.isFinite(row.ts) ? row.ts : this.now();
    g.ts[pos] = ts;
    g.seq[pos] = typeof row.seq === 'number' ? row.seq : Number.NaN;
    g.lastSeen = index;
    g.pos = pos + 1 === R ? 0 : pos + 1;
    if (g.filled < R) g.filled++;
    g.count++;
    if (g.cooldownLeft > 0) g.cooldownLeft--;
    if (g.settle === 'settling' && g.settleLeft > 0 && --g.settleLeft === 0) g.settle = 'normal';
    if (g.settle === 'collecting' && index > g.collectSince) {
      this.collect(g, pos);
      if (g.collectedCount >= this.config.adoptionSize) {
        const referenceUpdate = this.adopt(g, index, ts, g.seq[pos] as number);
        return { tested: false, alarm: null, referenceUpdate };
      }
    }

    let due = false;
    for (const s of this.config.scales)
      if (g.count >= s.windowSize && g.count % s.hop === 0) {
        due = true;
        break;
      }
    if (!due) return NOT_TESTED;
    return this.test(g, pos, index);
  }

  // ── internals ──────────────────────────────────────────────────────────────

  private groupOf(groupKey?: string): Group | undefined {
    return groupKey === undefined
      ? (this.groups.get('all') ?? (this.groups.size === 1 ? [...this.groups.values()][0] : undefined))
      : this.groups.get(groupKey);
  }

  private criticalFor(sizes: readonly number[]): CriticalLattice[][] {
    return this.config.scales.map((s) => {
      const alpha = scaleAlpha(this.config, s);
      return sizes.map((n) => criticalLattice(n, s.windowSize, alpha));
    });
  }

  private newScales(sizes: readonly number[]): ScaleState[] {
    const crit = this.criticalFor(sizes);
    return this.config.scales.map((s, i) => ({
      windowSize: s.windowSize,
      hop: s.hop,
      alpha: scaleAlpha(this.config, s),
      critical: crit[i] as CriticalLattice[],
      statistic: new Float64Array(NF).fill(Number.NaN),
      h: new Float64Array(NF).fill(Number.NaN),
      rejected: new Uint8Array(NF),
      streak: new Int32Array(NF),
      streakFrom: new Float64Array(NF),
      sorted: new Float64Array(NF * s.windowSize),
      lastCount: -1,
    }));
  }

  private group(key: string, index: number): Group {
    const found = this.groups.get(key);
    if (found) return found;
    if (this.groups.size >= this.config.maxGroups) {
      let oldest: Group | undefined;
      for (const g of this.groups.values())
        if (oldest === undefined || g.lastSeen < oldest.lastSeen) oldest = g;
      if (oldest) {
        this.groups.delete(oldest.key);
        this.groupsEvicted++;
      }
    }
    const g = new Group(key, this.capacity, this.newScales(this.refSizes));
    g.threshold.fill(g.scales[0]?.alpha ?? 0);
    g.lastSeen = index;
    this.groups.set(key, g);
    return g;
  }

  /** Tests every scale due at this sample; `last` is the ring position of the newest row. */
  private test(g: Group, last: number, index: number): DriftUpdate {
    const R = this.capacity;
    const refs = g.refs ?? this.refs;
    const index_ = g.refIndex ?? this.refIndex;
    let any = false;
    let alarmScale = -1;
    let alarmFrom = Number.POSITIVE_INFINITY;
    let longest = 0;
    const bestRatio = new Float64Array(NF).fill(Number.POSITIVE_INFINITY);
    for (let si = 0; si < g.scales.length; si++) {
      const sc = g.scales[si] as ScaleState;
      const w = sc.windowSize;
      if (!(g.count >= w && g.count % sc.hop === 0)) continue;
      longest = Math.max(longest, w);
      const start = (last - w + 1 + R) % R; // ring position of the oldest row of this window
      const fromSample = g.sampleIdx[start] as number;
      const incremental = sc.lastCount >= 0 && g.count - sc.lastCount === sc.hop;
      sc.lastCount = g.count;
      for (let f = 0; f < NF; f++) {
        const sorted = sc.sorted.subarray(f * w, f * w + w);
        const base = f * R;
        if (incremental) this.slide(g, sc, f, last, sorted);
        else {
          copyRing(g.values, base, R, start, w, sorted);
          sorted.sort();
        }
        const ref = refs[f] as SortedSample;
        const crit = sc.critical[f] as CriticalLattice;
        const h = (index_[f] as ReferenceIndex).latticeStatistic(sorted, crit.lcm / ref.size, crit.lcm / w);
        const rejected = h >= crit.h;
        sc.statistic[f] = h / crit.lcm;
        sc.h[f] = h;
        sc.rejected[f] = rejected ? 1 : 0;
        if (rejected) {
          if (sc.streak[f] === 0) sc.streakFrom[f] = fromSample;
          sc.streak[f] = (sc.streak[f] as number) + 1;
          any = true;
          if (
            (sc.streak[f] as number) >= this.config.consecutive &&
            (sc.streakFrom[f] as number) < alarmFrom
          ) {
            alarmFrom = sc.streakFrom[f] as number;
            alarmScale = si;
          }
        } else sc.streak[f] = 0;
        // The feature's reported status: the scale tested now whose statistic is closest to (or furthest past) its critical value.
        const ratio = crit.h / Math.max(h, 1);
        if (ratio < (bestRatio[f] as number)) {
          bestRatio[f] = ratio;
          g.statistic[f] = h / crit.lcm;
          g.h[f] = h;
          g.refSize[f] = ref.size;
          g.threshold[f] = sc.alpha;
          g.critical[f] = crit.statistic;
          g.drifted[f] = rejected ? 1 : 0;
          g.streak[f] = sc.streak[f] as number;
          g.windowOf[f] = w;
        }
      }
      this.testsRun++;
    }
    g.tests++;
    const oldest = (last - longest + 1 + R) % R;
    const from = point(g.sampleIdx[oldest] as number, g.ts[oldest] as number, g.seq[oldest] as number);
    const to = point(index, g.ts[last] as number, g.seq[last] as number);
    const features = this.statusOf(g);
    const window: WindowReport = {
      groupKey: g.key,
      windowIndex: g.tests,
      from,
      to,
      features,
      rejected: features.filter((s) => s.drifted).map((s) => s.feature),
    };

    let alarm: DriftAlarm | null = null;
    if (any && g.settle === 'settling' && g.step) {
      // A change that is not the continuation of the adopted shift ends settling and alarms.
      const check = this.checkSettling(g, g.step);
      this.lastContinuation = { groupKey: g.key, at: index, ...check };
      if (!check.continuing) {
        g.settle = 'normal';
        g.settleLeft = 0;
      }
    }
    if (any && g.settle !== 'normal') {
      // Settling: further change updates the reference instead of alarming.
      if (g.settle === 'settling') this.startCollecting(g, index, 'continuing');
      for (const sc of g.scales) sc.streak.fill(0);
    } else if (alarmScale >= 0 && g.cooldownLeft === 0) {
      let onsetIdx = g.sampleIdx[oldest] as number;
      let onsetPos = oldest;
      // Onset: the first row of the alarming streak's first window.
      for (let k = 0; k < R && k < g.filled; k++) {
        const p = (last - k + R) % R;
        if ((g.sampleIdx[p] as number) === alarmFrom) {
          onsetIdx = alarmFrom;
          onsetPos = p;
          break;
        }
      }
      const onset = point(onsetIdx, g.ts[onsetPos] as number, g.seq[onsetPos] as number);
      const evidence: FeatureEvidence[] = [];
      for (const s of g.scales)
        for (let f = 0; f < NF; f++)
          if (s.rejected[f] === 1 && s.streak[f] !== 0) {
            const p = cachedExactPvalue((refs[f] as SortedSample).size, s.windowSize, s.h[f] as number);
            evidence.push({
              feature: FEATURES[f] as Feature,
              statistic: s.statistic[f] as number,
              pvalue: Number.isNaN(p) ? 0 : p,
            });
          }
      // One entry per feature (its most significant scale), smallest p-value first.
      evidence.sort((a, b) => a.pvalue - b.pvalue);
      const seen = new Set<string>();
      const unique = evidence.filter((e) => (seen.has(e.feature) ? false : (seen.add(e.feature), true)));
      alarm = { kind: 'covariate', groupKey: g.key, at: to, onset, features: unique, liveAccuracy: null };
      this.lastAlarm = alarm;
      this.alarms++;
      g.cooldownLeft = this.config.cooldownSamples;
      g.lastAlarmAt = index;
      for (const s of g.scales) s.streak.fill(0);
    }
    return { tested: true, window, alarm };
  }

  /**
   * Moves feature f's sorted window one hop on: removes the `hop` rows that
   * left it (sorted) and merges in the `hop` rows that entered (sorted), in
   * O(w + hop log hop) instead of sorting w values.
   */
  private slide(g: Group, sc: ScaleState, f: number, last: number, sorted: Float64Array): void {
    const R = this.capacity;
    const w = sc.windowSize;
    const hop = sc.hop;
    const base = f * R;
    const inc = this.incoming.subarray(0, hop);
    const out = this.outgoing.subarray(0, hop);
    copyRing(g.values, base, R, (last - hop + 1 + R) % R, hop, inc);
    copyRing(g.values, base, R, (last - w - hop + 1 + 2 * R) % R, hop, out);
    inc.sort();
    out.sort();
    const merged = this.merged;
    let i = 0; // sorted (old window)
    let o = 0; // outgoing
    let k = 0; // incoming
    let m = 0;
    while (i < w) {
      const v = sorted[i] as number;
      if (o < hop && (out[o] as number) === v) {
        o++;
        i++;
        continue;
      }
      while (k < hop && (inc[k] as number) < v) merged[m++] = inc[k++] as number;
      merged[m++] = v;
      i++;
    }
    while (k < hop) merged[m++] = inc[k++] as number;
    if (m !== w || o !== hop) {
      // Cannot happen with finite values; fall back to a full sort rather than test a wrong window.
      copyRing(g.values, base, R, (last - w + 1 + R) % R, w, sorted);
      sorted.sort();
      return;
    }
    sorted.set(merged.subarray(0, w));
  }

  /** The continuation rules (`continuation.ts`) on the longest rejecting window tested now. */
  private checkSettling(g: Group, step: AdoptedStep): ContinuationCheck {
    let sc: ScaleState | undefined;
    const rejected = new Array<boolean>(NF).fill(false);
    for (const s of g.scales) {
      if (s.lastCount !== g.count) continue; // not tested at this sample
      let any = false;
      for (let f = 0; f < NF; f++)
        if (s.rejected[f] === 1) {
          rejected[f] = true;
          any = true;
        }
      if (any && (sc === undefined || s.windowSize > sc.windowSize)) sc = s;
    }
    const w = (sc as ScaleState).windowSize;
    const mean = new Float64Array(NF);
    for (let f = 0; f < NF; f++) {
      const window = (sc as ScaleState).sorted.subarray(f * w, f * w + w);
      let sum = 0;
      for (let i = 0; i < w; i++) sum += window[i] as number;
      mean[f] = sum / w;
    }
    return checkContinuation(step, mean, w, rejected);
  }

  private statusOne(g: Group, f: number): FeatureDriftStatus {
    const stat = g.statistic[f] as number;
    return new LazyStatus(
      FEATURES[f] as Feature,
      Number.isNaN(stat) ? null : stat,
      g.refSize[f] as number,
      g.windowOf[f] as number,
      g.h[f] as number,
      g.threshold[f] as number,
      g.critical[f] as number,
      g.drifted[f] === 1,
      g.streak[f] as number,
    );
  }

  private statusOf(g: Group): FeatureDriftStatus[] {
    return FEATURES.map((_, f) => this.statusOne(g, f));
  }

  private startCollecting(g: Group, since: number, reason: 'accepted' | 'continuing'): void {
    const N = this.config.adoptionSize;
    if (!g.collected) {
      g.collected = new Float64Array(NF * N);
      g.collectedIdx = new Float64Array(N);
      g.collectedTs = new Float64Array(N);
      g.collectedSeq = new Float64Array(N);
    }
    g.settle = 'collecting';
    g.settleReason = g.refs === null && reason === 'continuing' ? 'accepted' : reason;
    g.collectedCount = 0;
    g.collectSince = since;
    // Rows already in the ring after `since`, oldest first, at most N.
    const R = this.capacity;
    let k = Math.min(g.filled, N);
    while (k > 0 && (g.sampleIdx[(g.pos - k + R) % R] as number) <= since) k--;
    for (let j = k; j >= 1; j--) this.collect(g, (g.pos - j + R) % R);
  }

  /** Appends the ring row at `pos` to the collection (a ring of the last adoptionSize rows). */
  private collect(g: Group, pos: number): void {
    const N = this.config.adoptionSize;
    const R = this.capacity;
    const slot = g.collectedCount % N;
    const c = g.collected as Float64Array;
    for (let f = 0; f < NF; f++) c[f * N + slot] = g.values[f * R + pos] as number;
    (g.collectedIdx as Float64Array)[slot] = g.sampleIdx[pos] as number;
    (g.collectedTs as Float64Array)[slot] = g.ts[pos] as number;
    (g.collectedSeq as Float64Array)[slot] = g.seq[pos] as number;
    g.collectedCount++;
  }

  /** Adopts the collected rows as the group's reference; clears the windows. */
  private adopt(g: Group, index: number, ts: number, seq: number): ReferenceUpdate {
    const N = this.config.adoptionSize;
    const c = g.collected as Float64Array;
    const oldRefs = g.refs ?? this.refs;
    const newIndex: ReferenceIndex[] = [];
    const evidence: ReferenceFeatureEvidence[] = [];
    const newRefs: SortedSample[] = [];
    for (let f = 0; f < NF; f++) {
      const sorted = new SortedSample(c.subarray(f * N, f * N + N));
      const values = sorted.values;
      newRefs.push(sorted);
      newIndex.push(new ReferenceIndex(values));
      const old = oldRefs[f] as SortedSample;
      const ks = ks2samp(old.values, values);
      evidence.push({
        feature: FEATURES[f] as Feature,
        old: summarize(old.values),
        new: summarize(values),
        statistic: ks.statistic,
        pvalue: ks.pvalue,
      });
    }
    const step: AdoptedStep = {
      shift: new Float64Array(NF),
      moved: new Uint8Array(NF),
      mean: new Float64Array(NF),
      sd: new Float64Array(NF),
      samples: N,
    };
    for (let f = 0; f < NF; f++) {
      const e = evidence[f] as ReferenceFeatureEvidence;
      step.shift[f] = e.new.mean - e.old.mean;
      step.moved[f] = e.pvalue <= MOVED_PVALUE ? 1 : 0;
      step.mean[f] = e.new.mean;
      step.sd[f] = e.new.sd;
    }
    g.step = step;
    evidence.sort((a, b) => a.pvalue - b.pvalue || b.statistic - a.statistic);
    const slot0 = g.collectedCount % N; // oldest slot of a full ring
    const newestSlot = (g.collectedCount - 1) % N;
    const idx = g.collectedIdx as Float64Array;
    const tsA = g.collectedTs as Float64Array;
    const seqA = g.collectedSeq as Float64Array;
    const update: ReferenceUpdate = {
      groupKey: g.key,
      at: point(index, ts, seq),
      reason: g.settleReason,
      from: point(idx[slot0] as number, tsA[slot0] as number, seqA[slot0] as number),
      to: point(idx[newestSlot] as number, tsA[newestSlot] as number, seqA[newestSlot] as number),
      samples: N,
      features: evidence,
    };
    g.refs = newRefs;
    g.refIndex = newIndex;
    g.scales.splice(0, g.scales.length, ...this.newScales(newRefs.map((r) => r.size)));
    // Clear the windows: later windows are independent of the new reference.
    g.filled = 0;
    g.count = 0;
    g.statistic.fill(Number.NaN);
    g.h.fill(Number.NaN);
    g.drifted.fill(0);
    g.streak.fill(0);
    g.settle = this.config.settleSamples > 0 ? 'settling' : 'normal';
    g.settleLeft = this.config.settleSamples;
    g.collected = null;
    g.collectedIdx = null;
    g.collectedTs = null;
    g.collectedSeq = null;
    g.collectedCount = 0;
    this.lastUpdate = update;
    return update;
  }
}

/**
 * A feature's latest result; the exact p-value is computed (and cached per
 * lattice statistic) only when read, so tests that nobody reports cost no
 * p-value.
 */
class LazyStatus implements FeatureDriftStatus {
  constructor(
    readonly feature: Feature,
    readonly statistic: number | null,
    private readonly n: number,
    readonly windowSize: number,
    private readonly h: number,
    readonly threshold: number,
    readonly criticalStatistic: number,
    public drifted: boolean,
    public streak: number,
  ) {}

  get pvalue(): number | null {
    if (this.statistic === null || Number.isNaN(this.h)) return null;
    const p = cachedExactPvalue(this.n, this.windowSize, this.h);
    return Number.isNaN(p) ? null : p;
  }

  toJSON(): FeatureDriftStatus {
    return {
      feature: this.feature,
      statistic: this.statistic,
      pvalue: this.pvalue,
      threshold: this.threshold,
      criticalStatistic: this.criticalStatistic,
      drifted: this.drifted,
      streak: this.streak,
      windowSize: this.windowSize,
    };
  }
}

const NOT_TESTED: DriftUpdate = Object.freeze({ tested: false, alarm: null });

/** Copies `len` ring values of one feature (block at `base`, capacity R) starting at ring position `start`. */
function copyRing(
  values: Float64Array,
  base: number,
  R: number,
  start: number,
  len: number,
  into: Float64Array,
): void {
  if (start + len <= R) into.set(values.subarray(base + start, base + start + len));
  else {
    const head = R - start;
    into.set(values.subarray(base + start, base + R));
    into.set(values.subarray(base, base + len - head), head);
  }
}

function point(sampleIndex: number, ts: number, seq: number): SamplePoint {
  return Number.isNaN(seq) ? { sampleIndex, ts } : { sampleIndex, ts, seq };
}

/** Summary of a sorted sample. */
export function summarize(sorted: Float64Array): FeatureSummary {
  const n = sorted.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += sorted[i] as number;
  const mean = sum / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += ((sorted[i] as number) - mean) ** 2;
  const q = (p: number): number => sorted[Math.min(n - 1, Math.max(0, Math.round(p * (n - 1))))] as number;
  return {
    samples: n,
    mean,
    sd: n > 1 ? Math.sqrt(ss / (n - 1)) : 0,
    min: sorted[0] as number,
    p05: q(0.05),
    p50: q(0.5),
    p95: q(0.95),
    max: sorted[n - 1] as number,
  };
}
