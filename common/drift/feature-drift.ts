import { ArtifactError } from '../errors.ts';
import type { ReferenceSample } from '../model/types.ts';
import { FEATURES, type Feature } from '../schema/features.ts';
import { SortedSample, ks2sampSorted, type KsMethod } from '../stats/ks.ts';
import { gcd, latticeStatistic } from '../stats/ks-exact.ts';
import type { FeatureEvidence } from '../events/schemas.ts';
import { CORRECTIONS, benjaminiHochberg, bonferroni, type Correction } from './multiple-testing.ts';
import type { DriftAlarm, SamplePoint } from './types.ts';

/**
 * Covariate drift: is the distribution of the inputs still the one the
 * champion was trained on?
 *
 * Every feature of every incoming row goes into a window (per machine group);
 * when the window is due, each of the nine features is compared with the
 * champion's reference sample by a two-sample Kolmogorov–Smirnov test, the nine
 * p-values are corrected for multiplicity, and an alarm needs `consecutive`
 * rejecting windows in a row, followed by `cooldownSamples` of silence.
 *
 * Style of River's detectors: `update(row, machineId)` then read
 * `driftDetected` (true only right after the update that raised an alarm), or
 * use the returned {@link DriftUpdate}.
 *
 * Defaults ({@link DEFAULT_DRIFT_CONFIG}): tumbling windows of 500 samples,
 * family-wise alpha 1e-3 per window (Bonferroni over the nine features), an
 * alarm after 2 consecutive windows rejecting the *same* feature, 5,000
 * samples of cooldown, exact KS p-values against the artifact's reference
 * sample (5,000 per feature). On a stationary stream that budgets about 5e-4
 * expected false alarms per million samples (without the persistence rule it
 * would be 2), and a 0.5 sd shift of one feature is caught within three
 * windows of its onset. The derivation, its assumptions (independent samples)
 * and what changes with hopping windows or a smaller reference:
 * `docs/drift-false-alarms.md`; measured figures: the README.
 */

export type GroupBy = 'all' | 'machine';
export type WindowMode = 'tumbling' | 'hopping';
export type Persistence = 'same-feature' | 'any-feature';
export type { KsMethod };

export interface FeatureDriftConfig {
  /** One window for all machines (`all`) or one per machine id (`machine`). */
  readonly groupBy: GroupBy;
  /**
   * `tumbling`: disjoint windows, tested when full. `hopping`: the last `windowSize` samples, tested every
   * `hop` samples.
   */
  readonly windowMode: WindowMode;
  /** Samples per window (per feature). */
  readonly windowSize: number;
  /** Samples between tests in hopping mode (1..windowSize); ignored when tumbling. */
  readonly hop: number;
  /** Family-wise significance of one window (all nine features together), before persistence. */
  readonly alpha: number;
  /** How the nine p-values share alpha. */
  readonly correction: Correction;
  /** Rejecting windows in a row needed for an alarm. */
  readonly consecutive: number;
  /** Whether the rejecting windows must reject the same feature (default) or any feature. */
  readonly persistence: Persistence;
  /** Samples of a group after an alarm during which it raises no other alarm (windows are still tested). */
  readonly cooldownSamples: number;
  /** KS p-value method; `auto` is exact when both samples are at most 10,000. */
  readonly method: KsMethod;
  /** Most groups kept at once (groupBy machine); the least recently updated is dropped beyond it. */
  readonly maxGroups: number;
}

/** The defaults; see the module comment for the false-alarm and power calculation. */
export const DEFAULT_DRIFT_CONFIG: Readonly<FeatureDriftConfig> = Object.freeze({
  groupBy: 'all',
  windowMode: 'tumbling',
  windowSize: 500,
  hop: 250,
  alpha: 1e-3,
  correction: 'bonferroni',
  consecutive: 2,
  persistence: 'same-feature',
  cooldownSamples: 5_000,
  method: 'auto',
  maxGroups: 256,
});

const GROUP_BYS: readonly GroupBy[] = ['all', 'machine'];
const WINDOW_MODES: readonly WindowMode[] = ['tumbling', 'hopping'];
const PERSISTENCES: readonly Persistence[] = ['same-feature', 'any-feature'];
const METHODS: readonly KsMethod[] = ['auto', 'exact', 'asymp'];

export const MIN_WINDOW_SIZE = 10;
export const MAX_WINDOW_SIZE = 100_000;

function checkInt(name: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  }
}

function checkEnum<T extends string>(name: string, v: unknown, allowed: readonly T[]): void {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new RangeError(`${name} must be one of ${allowed.join(', ')}, got ${String(v)}`);
  }
}

/**
 * Merges `overrides` onto the defaults and validates every parameter; throws a
 * RangeError naming the first bad one. The edge worker maps env vars through it.
 */
export function resolveDriftConfig(
  overrides: Partial<FeatureDriftConfig> = {},
): Readonly<FeatureDriftConfig> {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const c = { ...DEFAULT_DRIFT_CONFIG, ...defined } as {
    -readonly [K in keyof FeatureDriftConfig]: FeatureDriftConfig[K];
  };
  // Unset hop: half a window (the default's 250 for 500), so a smaller window alone stays valid.
  if (defined.hop === undefined && typeof c.windowSize === 'number')
    c.hop = Math.max(1, Math.floor(c.windowSize / 2));
  for (const key of Object.keys(defined)) {
    if (!(key in DEFAULT_DRIFT_CONFIG)) throw new RangeError(`unknown drift parameter ${key}`);
  }
  checkEnum('groupBy', c.groupBy, GROUP_BYS);
  checkEnum('windowMode', c.windowMode, WINDOW_MODES);
  checkInt('windowSize', c.windowSize, MIN_WINDOW_SIZE, MAX_WINDOW_SIZE);
  // hop is only read in hopping mode, where it cannot exceed the window.
  checkInt('hop', c.hop, 1, c.windowMode === 'hopping' ? c.windowSize : MAX_WINDOW_SIZE);
  if (typeof c.alpha !== 'number' || !(c.alpha > 0 && c.alpha < 1))
    throw new RangeError(`alpha must be in (0, 1), got ${String(c.alpha)}`);
  checkEnum('correction', c.correction, CORRECTIONS);
  checkInt('consecutive', c.consecutive, 1, 1_000);
  checkEnum('persistence', c.persistence, PERSISTENCES);
  checkInt('cooldownSamples', c.cooldownSamples, 0, Number.MAX_SAFE_INTEGER);
  checkEnum('method', c.method, METHODS);
  checkInt('maxGroups', c.maxGroups, 1, 1_000_000);
  return Object.freeze(c);
}

/** What {@link FeatureDriftDetector.update} accepts: the nine features, and `ts`/`seq` when the row is telemetry. */
export type DriftInput = Readonly<Record<Feature, number>> & { readonly ts?: number; readonly seq?: number };

/** Latest test of one feature in one group. */
export interface FeatureDriftStatus {
  feature: Feature;
  /** KS statistic D of the latest tested window; null before the first test. */
  statistic: number | null;
  pvalue: number | null;
  /** p-value threshold after the multiplicity correction (reject when pvalue <= threshold). */
  threshold: number;
  /** D the window would have needed for rejection (asymptotic approximation, for display). */
  criticalStatistic: number;
  /** Rejected in the latest tested window. */
  drifted: boolean;
  /** Rejecting windows in a row for this feature. */
  streak: number;
}

/** Result of one window test. */
export interface WindowReport {
  groupKey: string;
  /** Tests done so far in this group, this one included (1-based). */
  windowIndex: number;
  from: SamplePoint;
  to: SamplePoint;
  features: FeatureDriftStatus[];
  /** Features rejected in this window. */
  rejected: Feature[];
}

export type DriftUpdate =
  | { readonly tested: false; readonly alarm: null }
  | { readonly tested: true; readonly window: WindowReport; readonly alarm: DriftAlarm | null };

const NOT_TESTED: DriftUpdate = Object.freeze({ tested: false, alarm: null });

export interface FeatureDriftStats {
  samples: number;
  /** Rows with a non-finite feature, skipped. */
  skipped: number;
  windowsTested: number;
  alarms: number;
  groups: number;
  groupsEvicted: number;
  /** KS tests whose exact p-value came from the lattice cache. */
  pvalueCacheHits: number;
}

const NF = FEATURES.length;
/** update() reads the features by name in this order; it must be FEATURES' order. */
const NAMED_ORDER = [
  'temperatureC',
  'vibrationHz',
  'powerKw',
  'networkLatencyMs',
  'packetLossPct',
  'defectRatePct',
  'productionSpeedUph',
  'maintenanceScore',
  'errorRatePct',
];
if (NAMED_ORDER.join() !== FEATURES.join())
  throw new Error('feature-drift: FEATURES changed; update FeatureDriftDetector.update()');

/** Per-group state; every array is allocated once when the group is created. */
class Group {
  /** Feature-major window: values[f * w + i]. */
  readonly values: Float64Array;
  readonly sampleIdx: Float64Array;
  readonly ts: Float64Array;
  readonly seq: Float64Array;
  /** Next write position (ring position in hopping mode). */
  pos = 0;
  filled = 0;
  sinceTest = 0;
  lastSeen = 0;
  cooldownLeft = 0;
  windowsTested = 0;
  readonly statistic = new Float64Array(NF).fill(Number.NaN);
  readonly pvalue = new Float64Array(NF).fill(Number.NaN);
  readonly threshold = new Float64Array(NF);
  readonly rejected = new Uint8Array(NF);
  readonly streak = new Int32Array(NF);
  readonly streakFromSample = new Float64Array(NF);
  readonly streakFromTs = new Float64Array(NF);
  readonly streakFromSeq = new Float64Array(NF);
  anyStreak = 0;
  anyFromSample = 0;
  anyFromTs = 0;
  anyFromSeq = Number.NaN;

  constructor(
    readonly key: string,
    w: number,
    initialThreshold: number,
  ) {
    this.values = new Float64Array(NF * w);
    this.sampleIdx = new Float64Array(w);
    this.ts = new Float64Array(w);
    this.seq = new Float64Array(w);
    this.threshold.fill(initialThreshold);
  }
}

/** Asymptotic critical KS statistic for a two-sided test at level `p` with sizes n and m. */
export function asymptoticCriticalStatistic(p: number, n: number, m: number): number {
  if (!(p > 0) || n <= 0 || m <= 0) return Number.NaN;
  return Math.sqrt(-0.5 * Math.log(Math.min(1, p) / 2)) * Math.sqrt((n + m) / (n * m));
}

/**
 * Validates a champion's reference sample and sorts each feature once.
 * Throws ArtifactError when a feature is missing, empty or not finite.
 */
export function sortReference(reference: ReferenceSample): SortedSample[] {
  if (
    typeof reference !== 'object' ||
    reference === null ||
    typeof reference.features !== 'object' ||
    reference.features === null
  ) {
    throw new ArtifactError('reference sample has no features');
  }
  return FEATURES.map((f) => {
    const values = (reference.features as Partial<Record<Feature, unknown>>)[f];
    if (!Array.isArray(values) && !ArrayBuffer.isView(values))
      throw new ArtifactError(`reference sample has no values for ${f}`);
    const arr = values as ArrayLike<unknown>;
    if (arr.length < 1) throw new ArtifactError(`reference sample for ${f} is empty`);
    for (let i = 0; i < arr.length; i++) {
      const v = arr[i];
      if (typeof v !== 'number' || !Number.isFinite(v))
        throw new ArtifactError(`reference sample for ${f} has a non-finite value at ${i}`);
    }
    return new SortedSample(arr as ArrayLike<number>);
  });
}

/**
 * Per-feature two-sample KS drift detector over windows of live rows. See the
 * module comment for the statistics behind the defaults.
 *
 * Hot path: {@link update} allocates nothing per sample (writes into the
 * group's preallocated Float64Arrays); a new group allocates its buffers once,
 * and a window test allocates its report.
 */
export class FeatureDriftDetector {
  readonly config: Readonly<FeatureDriftConfig>;
  private refs: SortedSample[];
  private refSizes: number[];
  private readonly groups = new Map<string, Group>();
  private readonly now: () => number;
  private samples = 0;
  private skipped = 0;
  private windowsTested = 0;
  private alarms = 0;
  private groupsEvicted = 0;
  private lastAlarm: DriftAlarm | null = null;
  private readonly baseThreshold: number;
  /** Sorted copy of one feature's window, reused by every test. */
  private readonly scratch: Float64Array;
  private cacheHits = 0;

  constructor(
    reference: ReferenceSample,
    config: Partial<FeatureDriftConfig> = {},
    options: { now?: () => number } = {},
  ) {
    this.config = resolveDriftConfig(config);
    this.refs = sortReference(reference);
    this.refSizes = this.refs.map((r) => r.size);
    this.now = options.now ?? Date.now;
    this.baseThreshold = this.config.alpha / NF;
    this.scratch = new Float64Array(this.config.windowSize);
  }

  /** True right after the update that raised an alarm; false after the next one. */
  get driftDetected(): boolean {
    return this.lastAlarm !== null;
  }

  /** The alarm of the latest update, if it raised one. */
  get alarm(): DriftAlarm | null {
    return this.lastAlarm;
  }

  /** Samples seen so far (the detector's sample clock; the next sample gets this index). */
  get sampleIndex(): number {
    return this.samples;
  }

  get stats(): FeatureDriftStats {
    return {
      samples: this.samples,
      skipped: this.skipped,
      windowsTested: this.windowsTested,
      alarms: this.alarms,
      groups: this.groups.size,
      groupsEvicted: this.groupsEvicted,
      pvalueCacheHits: this.cacheHits,
    };
  }

  /** Size of the reference sample of each feature, in FEATURES order. */
  get referenceSizes(): readonly number[] {
    return this.refSizes;
  }

  /**
   * A new champion: its reference sample replaces the old one and every window,
   * streak and cooldown is cleared. The sample clock keeps counting.
   */
  reset(reference: ReferenceSample): void {
    const refs = sortReference(reference);
    this.refs = refs;
    this.refSizes = refs.map((r) => r.size);
    this.groups.clear();
    this.lastAlarm = null;
  }

  /** Adds one row. `machineId` selects the group when grouping by machine. */
  update(row: DriftInput, machineId = 'all'): DriftUpdate {
    const index = this.samples++;
    this.lastAlarm = null;
    // Named loads, not row[FEATURES[f]]: a keyed load of a double field boxes it
    // (one HeapNumber per feature per sample); named loads stay unboxed. FEATURES order.
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
    const w = this.config.windowSize;
    const pos = g.pos;
    const values = g.values;
    values[pos] = x0;
    values[w + pos] = x1;
    values[2 * w + pos] = x2;
    values[3 * w + pos] = x3;
    values[4 * w + pos] = x4;
    values[5 * w + pos] = x5;
    values[6 * w + pos] = x6;
    values[7 * w + pos] = x7;
    values[8 * w + pos] = x8;
    g.sampleIdx[pos] = index;
    const ts = row.ts;
    g.ts[pos] = typeof ts === 'number' && Number.isFinite(ts) ? ts : this.now();
    const seq = row.seq;
    g.seq[pos] = typeof seq === 'number' ? seq : Number.NaN;
    g.lastSeen = index;
    if (g.cooldownLeft > 0) g.cooldownLeft--;
    g.pos = pos + 1 === w ? 0 : pos + 1;
    if (g.filled < w) g.filled++;
    g.sinceTest++;

    let due: boolean;
    if (this.config.windowMode === 'tumbling') due = g.pos === 0;
    else due = g.filled === w && (g.windowsTested === 0 || g.sinceTest >= this.config.hop);
    if (!due) return NOT_TESTED;
    g.sinceTest = 0;
    return this.testWindow(g, pos);
  }

  /**
   * Forgets one group: its window, streaks and cooldown (its machine moved to
   * another edge worker; when it comes back it starts a fresh window). True when it existed.
   */
  dropGroup(key: string): boolean {
    return this.groups.delete(key);
  }

  /**
   * The current window of `feature` in group `groupKey` (`all`, or a machine id):
   * a read-only view of the detector's own buffer, in ring order (not sorted), or
   * undefined until the group holds a full window. Right after {@link update}
   * reports a tested window it is exactly the window tested; the next update
   * changes it.
   */
  windowValues(groupKey: string, feature: Feature): ArrayLike<number> | undefined {
    const g = this.groups.get(groupKey);
    const w = this.config.windowSize;
    const f = FEATURES.indexOf(feature);
    if (!g || g.filled < w || f < 0) return undefined;
    return g.values.subarray(f * w, (f + 1) * w);
  }

  /** Keys of the live groups (`all`, or machine ids). */
  groupKeys(): string[] {
    return [...this.groups.keys()];
  }

  /** Latest per-feature results of one group (default: `all`, or the only group); empty before its first sample. */
  features(groupKey?: string): FeatureDriftStatus[] {
    const g =
      groupKey === undefined
        ? (this.groups.get('all') ?? (this.groups.size === 1 ? [...this.groups.values()][0] : undefined))
        : this.groups.get(groupKey);
    return g ? this.statusOf(g) : [];
  }

  /**
   * Per feature, the most significant latest result over all groups (smallest
   * p-value; `drifted` if any group's latest window rejected it). One series per
   * feature, whatever the number of machines: what Prometheus exports.
   */
  featureSummary(): FeatureDriftStatus[] {
    const m = this.config.windowSize;
    return FEATURES.map((feature, f) => {
      let best: Group | undefined;
      let drifted = false;
      let streak = 0;
      for (const g of this.groups.values()) {
        const p = g.pvalue[f] as number;
        if (
          !Number.isNaN(p) &&
          (best === undefined || Number.isNaN(best.pvalue[f] as number) || p < (best.pvalue[f] as number))
        )
          best = g;
        if (g.rejected[f] === 1) drifted = true;
        streak = Math.max(streak, g.streak[f] as number);
      }
      const threshold = best ? (best.threshold[f] as number) : this.baseThreshold;
      const stat = best ? (best.statistic[f] as number) : Number.NaN;
      const p = best ? (best.pvalue[f] as number) : Number.NaN;
      return {
        feature,
        statistic: Number.isNaN(stat) ? null : stat,
        pvalue: Number.isNaN(p) ? null : p,
        threshold,
        criticalStatistic: asymptoticCriticalStatistic(threshold, this.refSizes[f] as number, m),
        drifted,
        streak,
      };
    });
  }

  private statusOf(g: Group): FeatureDriftStatus[] {
    const m = this.config.windowSize;
    return FEATURES.map((feature, f) => {
      const stat = g.statistic[f] as number;
      const p = g.pvalue[f] as number;
      const threshold = g.threshold[f] as number;
      return {
        feature,
        statistic: Number.isNaN(stat) ? null : stat,
        pvalue: Number.isNaN(p) ? null : p,
        threshold,
        criticalStatistic: asymptoticCriticalStatistic(threshold, this.refSizes[f] as number, m),
        drifted: g.rejected[f] === 1,
        streak: g.streak[f] as number,
      };
    });
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
    const g = new Group(key, this.config.windowSize, this.baseThreshold);
    g.lastSeen = index;
    this.groups.set(key, g);
    return g;
  }

  /**
   * KS test of feature f's sorted window against its reference into g.statistic/pvalue.
   *
   * The exact two-sided p-value depends only on the sizes and on the statistic's
   * lattice index h = D·lcm(n, m), and is the expensive part of the test (the
   * path-counting recursion). So the statistic is computed here by one merge in
   * integer arithmetic, and the p-value of each h is computed once by
   * `ks2sampSorted` and cached: windows of a stationary stream land on few
   * distinct h, and the test costs the merge and the sort (figures: the README). The cache is
   * shared by all detectors (the exact p-value is a pure function of n, m, h).
   */
  private ksTest(f: number, sorted: Float64Array, g: Group): void {
    const ref = this.refs[f] as SortedSample;
    const n1 = ref.size;
    const n2 = sorted.length;
    const gcdN = gcd(n1, n2);
    const lcm = (n1 / gcdN) * n2;
    // 'asymp' asks for the asymptotic p-value: the exact cache does not apply. ('auto' is exact up to 10,000.)
    if (
      lcm <= MAX_EXACT_LATTICE &&
      this.config.method !== 'asymp' &&
      (this.config.method === 'exact' || Math.max(n1, n2) <= 10_000)
    ) {
      const h = latticeStatistic(ref.values, sorted, lcm / n1, lcm / n2);
      const cache = exactPvalueCache(n1, n2);
      const p = cache.get(h);
      if (p !== undefined) {
        g.statistic[f] = h / lcm;
        g.pvalue[f] = p;
        this.cacheHits++;
        return;
      }
      const r = ks2sampSorted(ref, sorted, { method: this.config.method });
      g.statistic[f] = r.statistic;
      g.pvalue[f] = r.pvalue;
      // Cache only exact p-values: those are a function of h alone (asymptotic ones of the unrounded D).
      if (r.method === 'exact' && Math.round(r.statistic * lcm) === h && cache.size < MAX_CACHED_PVALUES)
        cache.set(h, r.pvalue);
      return;
    }
    const r = ks2sampSorted(ref, sorted, { method: this.config.method });
    g.statistic[f] = r.statistic;
    g.pvalue[f] = r.pvalue;
  }

  /** Tests the nine features of a due window; `last` is the ring position of the newest sample. */
  private testWindow(g: Group, last: number): DriftUpdate {
    const w = this.config.windowSize;
    const oldest = g.pos; // after the write, the next position holds the oldest sample (0 when tumbling)
    for (let f = 0; f < NF; f++) {
      const sorted = this.scratch;
      sorted.set(g.values.subarray(f * w, f * w + w));
      sorted.sort();
      this.ksTest(f, sorted, g);
    }
    const threshold =
      this.config.correction === 'bonferroni'
        ? bonferroni(g.pvalue, this.config.alpha, g.rejected)
        : benjaminiHochberg(g.pvalue, this.config.alpha, g.rejected);
    g.threshold.fill(threshold);
    g.windowsTested++;
    this.windowsTested++;

    const fromSample = g.sampleIdx[oldest] as number;
    const fromTs = g.ts[oldest] as number;
    const fromSeq = g.seq[oldest] as number;
    let any = false;
    for (let f = 0; f < NF; f++) {
      if (g.rejected[f] === 1) {
        any = true;
        if (g.streak[f] === 0) {
          g.streakFromSample[f] = fromSample;
          g.streakFromTs[f] = fromTs;
          g.streakFromSeq[f] = fromSeq;
        }
        g.streak[f] = (g.streak[f] as number) + 1;
      } else {
        g.streak[f] = 0;
      }
    }
    if (any) {
      if (g.anyStreak === 0) {
        g.anyFromSample = fromSample;
        g.anyFromTs = fromTs;
        g.anyFromSeq = fromSeq;
      }
      g.anyStreak++;
    } else {
      g.anyStreak = 0;
    }

    const from = point(fromSample, fromTs, fromSeq);
    const to = point(g.sampleIdx[last] as number, g.ts[last] as number, g.seq[last] as number);
    const features = this.statusOf(g);
    const window: WindowReport = {
      groupKey: g.key,
      windowIndex: g.windowsTested,
      from,
      to,
      features,
      rejected: features.filter((s) => s.drifted).map((s) => s.feature),
    };

    let alarm: DriftAlarm | null = null;
    if (g.cooldownLeft === 0) {
      const k = this.config.consecutive;
      let onset: SamplePoint | null = null;
      if (this.config.persistence === 'any-feature') {
        if (g.anyStreak >= k) onset = point(g.anyFromSample, g.anyFromTs, g.anyFromSeq);
      } else {
        for (let f = 0; f < NF; f++) {
          if (
            (g.streak[f] as number) >= k &&
            (onset === null || (g.streakFromSample[f] as number) < onset.sampleIndex)
          ) {
            onset = point(
              g.streakFromSample[f] as number,
              g.streakFromTs[f] as number,
              g.streakFromSeq[f] as number,
            );
          }
        }
      }
      if (onset !== null) {
        const evidence: FeatureEvidence[] = features
          .filter((s) => s.drifted)
          .sort((a, b) => (a.pvalue ?? 1) - (b.pvalue ?? 1))
          .map((s) => ({ feature: s.feature, statistic: s.statistic ?? 0, pvalue: s.pvalue ?? 1 }));
        alarm = { kind: 'covariate', groupKey: g.key, at: to, onset, features: evidence, liveAccuracy: null };
        this.lastAlarm = alarm;
        this.alarms++;
        g.cooldownLeft = this.config.cooldownSamples;
        g.streak.fill(0);
        g.anyStreak = 0;
      }
    }
    return { tested: true, window, alarm };
  }
}

/** Beyond this lcm(n, m) the statistic lattice is not used (no caching). */
const MAX_EXACT_LATTICE = 2 ** 40;
const MAX_CACHED_PVALUES = 20_000;
const MAX_CACHED_SIZES = 16;
/** Exact two-sided p-values by `n1:n2`, then by lattice statistic h. */
const exactPvalues = new Map<string, Map<number, number>>();

function exactPvalueCache(n1: number, n2: number): Map<number, number> {
  const key = `${n1}:${n2}`;
  let c = exactPvalues.get(key);
  if (!c) {
    if (exactPvalues.size >= MAX_CACHED_SIZES) exactPvalues.clear();
    c = new Map();
    exactPvalues.set(key, c);
  }
  return c;
}

function point(sampleIndex: number, ts: number, seq: number): SamplePoint {
  return Number.isNaN(seq) ? { sampleIndex, ts } : { sampleIndex, ts, seq };
}
