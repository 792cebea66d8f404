import type { ReferenceSample } from '../model/types.ts';
import { FEATURES, type Feature } from '../schema/features.ts';
import { gcd, latticeStatistic } from '../stats/ks-exact.ts';
import { ReferenceIndex, cachedExactPvalue, criticalLattice, criticalLowerBound } from './ks-budget.ts';
import { sortReference } from './reference.ts';
import type { DriftInput } from './feature-drift.ts';
import type { SamplePoint } from './types.ts';

/**
 * Per-machine data-quality checks beside the pooled drift detector: one
 * faulty sensor is a fault of that machine, not fleet drift.
 *
 * Three checks, each naming the machine and the feature, each with a
 * false-alarm rate computed below; together at most `falseAlarmsPerSample`
 * expected false data-quality alarms per sample (default 1e-8, a third each):
 *
 * 1. **stuck** — the same value `stuckRun[f]` readings in a row on one
 *    machine. For i.i.d. readings with point masses p_v, P(L equal in a row)
 *    = Σ_v p_v^L ≤ c^(L/2), c = Σ_v p_v² the collision probability (max p_v ≤
 *    √c). c is estimated from the reference (equal pairs / pairs, with a
 *    Poisson upper margin, at least 1/n), and L is the smallest run with
 *    9 · c^(L/2) ≤ the stuck share of the budget: a run ending at a reading is
 *    one event, so the expected false alarms per reading are at most that.
 *    The seed profile's 4-decimal values give c ≈ 1e-4 (maintenanceScore) to
 *    2e-6 (speed): L = 6 readings.
 * 2. **out-of-range share** (reported as `spikes` when the machine's
 *    out-of-range readings are a minority of its block, `out-of-range` when
 *    they are most of it) — every `block` pooled samples, per feature, each
 *    machine's count k_m of readings outside the reference's [min, max] is
 *    compared with the fleet's: given the total K over N readings, under H0
 *    (the machines' readings exchangeable) k_m is hypergeometric(N, K, n_m),
 *    and the exact upper-tail p-value is tested at
 *    alpha = share · block / (9 · machines). Conditioning on K makes a
 *    fleet-wide shift (every machine out of range alike) a non-event.
 * 3. **machine vs fleet** — in the same blocks, each machine's readings of
 *    each feature against the other machines' readings of the same block
 *    (exact two-sample KS, same alpha). When several machines reject, the
 *    most different one is named first and left out of the fleet, and the
 *    rest are tested again, so one faulty machine does not make the others
 *    look faulty; machines already in a fault are never part of the fleet.
 *
 * Per-sample expected false alarms: stuck ≤ 9 · max_f c_f^(L_f/2), the two
 * block checks ≤ Σ_tests alpha / block = their shares (linearity of
 * expectation over the tests, exact conditional/permutation nulls). A fault
 * clears after `clearAfter` pooled samples in which its check did not fire.
 *
 * While a machine is in a fault, callers exclude its readings from the pooled
 * drift detector and its labelled samples from retraining data
 * ({@link DataQualityDetector.inFault}).
 *
 * Example:
 *
 * ```ts
 * const dq = new DataQualityDetector(seedReference(1));
 * const u = dq.update(row, 'm-002');
 * for (const a of u.alarms) console.log(a.machineId, a.feature, a.check); // m-002 temperatureC stuck
 * if (dq.inFault('m-002')) { ... } // keep m-002 out of the pooled detector and the retraining data
 * ```
 */

export type DataQualityCheck = 'stuck' | 'out-of-range' | 'spikes' | 'machine-vs-fleet';

export interface DataQualityConfig {
  /** Bound on the expected false data-quality alarms per sample, all checks together. */
  readonly falseAlarmsPerSample: number;
  /** Pooled samples per out-of-range / machine-vs-fleet test round. */
  readonly block: number;
  /** Readings a machine needs in a block to be tested. */
  readonly minReadings: number;
  /** Machines needed for a fleet comparison (with two, "which one is different" has no answer). */
  readonly minMachines: number;
  /** Pooled samples without the check firing before a fault clears. */
  readonly clearAfter: number;
  /** Machines tracked at once; the least recently seen is dropped beyond it. */
  readonly maxMachines: number;
}

export const DEFAULT_DATA_QUALITY_CONFIG: Readonly<DataQualityConfig> = Object.freeze({
  falseAlarmsPerSample: 1e-8,
  block: 2_000,
  minReadings: 100,
  minMachines: 3,
  clearAfter: 5_000,
  maxMachines: 1_000,
});

export function resolveDataQualityConfig(
  overrides: Partial<DataQualityConfig> = {},
): Readonly<DataQualityConfig> {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  for (const key of Object.keys(defined))
    if (!(key in DEFAULT_DATA_QUALITY_CONFIG)) throw new RangeError(`unknown data-quality parameter ${key}`);
  const c = { ...DEFAULT_DATA_QUALITY_CONFIG, ...defined } as DataQualityConfig;
  const int = (name: string, v: unknown, min: number, max: number): void => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${String(v)}`);
  };
  if (
    typeof c.falseAlarmsPerSample !== 'number' ||
    !(c.falseAlarmsPerSample > 0 && c.falseAlarmsPerSample <= 1e-3)
  )
    throw new RangeError(`falseAlarmsPerSample must be in (0, 1e-3], got ${String(c.falseAlarmsPerSample)}`);
  int('block', c.block, 100, 1_000_000);
  int('minReadings', c.minReadings, 10, c.block);
  int('minMachines', c.minMachines, 3, 1_000_000);
  int('clearAfter', c.clearAfter, 1, Number.MAX_SAFE_INTEGER);
  int('maxMachines', c.maxMachines, 1, 1_000_000);
  return Object.freeze(c);
}

/** A data-quality alarm: one machine, one feature, one check. */
export interface DataQualityAlarm {
  kind: 'data-quality';
  machineId: string;
  feature: Feature;
  check: DataQualityCheck;
  at: SamplePoint;
  /** What the check saw. */
  evidence: {
    /** stuck: the repeated value and the run length; others: the machine's block counts. */
    value?: number;
    run?: number;
    readings?: number;
    outOfRange?: number;
    fleetReadings?: number;
    fleetOutOfRange?: number;
    statistic?: number;
    pvalue: number;
    threshold: number;
  };
}

/** A fault that cleared (its check stayed quiet for `clearAfter` samples). */
export interface DataQualityCleared {
  machineId: string;
  feature: Feature;
  check: DataQualityCheck;
  at: SamplePoint;
  since: number;
}

export interface DataQualityUpdate {
  readonly alarms: readonly DataQualityAlarm[];
  readonly cleared: readonly DataQualityCleared[];
}

const NF = FEATURES.length;
const QUIET: DataQualityUpdate = Object.freeze({ alarms: Object.freeze([]), cleared: Object.freeze([]) });

interface Fault {
  check: DataQualityCheck;
  feature: number;
  since: number;
  lastFired: number;
}

class Machine {
  readonly last = new Float64Array(NF).fill(Number.NaN);
  readonly run = new Int32Array(NF);
  lastSeen = 0;
  /** Block values, feature-major, growing arrays (reset each block). */
  block: number[][] = FEATURES.map(() => []);
  readonly faults = new Map<string, Fault>();
  constructor(readonly id: string) {}
}

export class DataQualityDetector {
  readonly config: Readonly<DataQualityConfig>;
  private refs: ReferenceIndex[];
  private lo: Float64Array;
  private hi: Float64Array;
  private runLength: Int32Array;
  private collision: Float64Array;
  private readonly machines = new Map<string, Machine>();
  private samples = 0;
  private inBlock = 0;
  private alarmsRaised = 0;
  private readonly now: () => number;

  constructor(
    reference: ReferenceSample,
    config: Partial<DataQualityConfig> = {},
    options: { now?: () => number } = {},
  ) {
    this.config = resolveDataQualityConfig(config);
    this.now = options.now ?? Date.now;
    this.refs = [];
    this.lo = new Float64Array(NF);
    this.hi = new Float64Array(NF);
    this.runLength = new Int32Array(NF);
    this.collision = new Float64Array(NF);
    this.setReference(reference);
  }

  /** Run length that makes a feature "stuck", per feature (FEATURES order). */
  get stuckRuns(): readonly number[] {
    return [...this.runLength];
  }

  /** Upper bound used for each feature's collision probability Σ p_v² (FEATURES order). */
  get collisionBounds(): readonly number[] {
    return [...this.collision];
  }

  /** The level of each block test (out-of-range and machine-vs-fleet) with `machines` machines tested. */
  blockAlpha(machines: number): number {
    return ((this.config.falseAlarmsPerSample / 3) * this.config.block) / (NF * Math.max(1, machines));
  }

  /** Bound on the expected false stuck alarms per sample: 9 · max_f c_f^(L_f / 2). */
  get stuckFalseAlarmsPerSample(): number {
    let worst = 0;
    for (let f = 0; f < NF; f++)
      worst = Math.max(worst, (this.collision[f] as number) ** ((this.runLength[f] as number) / 2));
    return NF * worst;
  }

  get stats(): { samples: number; machines: number; alarms: number; machinesInFault: number } {
    let inFault = 0;
    for (const m of this.machines.values()) if (m.faults.size > 0) inFault++;
    return {
      samples: this.samples,
      machines: this.machines.size,
      alarms: this.alarmsRaised,
      machinesInFault: inFault,
    };
  }

  /** A new champion: new reference ranges and run lengths; faults and blocks are kept. */
  reset(reference: ReferenceSample): void {
    this.setReference(reference);
  }

  /** True while the machine has an active data-quality fault. */
  inFault(machineId: string): boolean {
    const m = this.machines.get(machineId);
    return m !== undefined && m.faults.size > 0;
  }

  /** Active faults, oldest first. */
  faults(): { machineId: string; feature: Feature; check: DataQualityCheck; since: number }[] {
    const out: { machineId: string; feature: Feature; check: DataQualityCheck; since: number }[] = [];
    for (const m of this.machines.values())
      for (const f of m.faults.values())
        out.push({
          machineId: m.id,
          feature: FEATURES[f.feature] as Feature,
          check: f.check,
          since: f.since,
        });
    return out.sort((a, b) => a.since - b.since);
  }

  /** Machines with an active fault on `feature`. */
  machinesInFault(feature?: Feature): string[] {
    const f = feature === undefined ? -1 : FEATURES.indexOf(feature);
    const out: string[] = [];
    for (const m of this.machines.values())
      for (const x of m.faults.values())
        if (f < 0 || x.feature === f) {
          out.push(m.id);
          break;
        }
    return out;
  }

  update(row: DriftInput, machineId: string): DataQualityUpdate {
    const index = this.samples++;
    const ts = typeof row.ts === 'number' && Number.isFinite(row.ts) ? row.ts : this.now();
    const at: SamplePoint =
      typeof row.seq === 'number' ? { sampleIndex: index, ts, seq: row.seq } : { sampleIndex: index, ts };
    const m = this.machine(machineId, index);
    let alarms: DataQualityAlarm[] | null = null;
    let cleared: DataQualityCleared[] | null = null;
    for (let f = 0; f < NF; f++) {
      const x = row[FEATURES[f] as Feature];
      if (!Number.isFinite(x)) continue;
      // stuck
      if (x === m.last[f]) m.run[f] = (m.run[f] as number) + 1;
      else {
        m.run[f] = 1;
        m.last[f] = x;
      }
      if ((m.run[f] as number) >= (this.runLength[f] as number)) {
        const a = this.fire(m, f, 'stuck', index, at, {
          value: x,
          run: m.run[f] as number,
          pvalue: (this.collision[f] as number) ** ((m.run[f] as number) / 2),
          threshold: this.config.falseAlarmsPerSample / 3 / NF,
        });
        if (a) (alarms ??= []).push(a);
      }
      (m.block[f] as number[]).push(x);
    }
    this.inBlock++;
    if (this.inBlock >= this.config.block) {
      this.inBlock = 0;
      for (const a of this.testBlock(index, at)) (alarms ??= []).push(a);
    }
    // Clear faults whose check stayed quiet.
    for (const mm of this.machines.values()) {
      if (mm.faults.size === 0) continue;
      for (const [key, fault] of mm.faults) {
        if (index - fault.lastFired >= this.config.clearAfter) {
          mm.faults.delete(key);
          (cleared ??= []).push({
            machineId: mm.id,
            feature: FEATURES[fault.feature] as Feature,
            check: fault.check,
            at,
            since: fault.since,
          });
        }
      }
    }
    if (!alarms && !cleared) return QUIET;
    return { alarms: alarms ?? [], cleared: cleared ?? [] };
  }

  // ── internals ──────────────────────────────────────────────────────────────

  private setReference(reference: ReferenceSample): void {
    const sorted = sortReference(reference);
    this.refs = sorted.map((s) => new ReferenceIndex(s.values));
    const share = this.config.falseAlarmsPerSample / 3 / NF;
    for (let f = 0; f < NF; f++) {
      const v = (sorted[f] as { values: Float64Array }).values;
      const n = v.length;
      this.lo[f] = v[0] as number;
      this.hi[f] = v[n - 1] as number;
      // Equal unordered pairs: Σ over runs of equal values of C(run, 2).
      let pairs = 0;
      let run = 1;
      for (let i = 1; i <= n; i++) {
        if (i < n && v[i] === v[i - 1]) run++;
        else {
          pairs += (run * (run - 1)) / 2;
          run = 1;
        }
      }
      const total = (n * (n - 1)) / 2;
      const c = Math.min(1, Math.max(1 / n, (pairs + 2 * Math.sqrt(pairs) + 2) / Math.max(1, total)));
      this.collision[f] = c;
      let L = 3;
      while (c ** (L / 2) > share && L < 1_000) L++;
      this.runLength[f] = L;
    }
  }

  private machine(id: string, index: number): Machine {
    let m = this.machines.get(id);
    if (!m) {
      if (this.machines.size >= this.config.maxMachines) {
        let oldest: Machine | undefined;
        for (const x of this.machines.values()) if (!oldest || x.lastSeen < oldest.lastSeen) oldest = x;
        if (oldest) this.machines.delete(oldest.id);
      }
      m = new Machine(id);
      this.machines.set(id, m);
    }
    m.lastSeen = index;
    return m;
  }

  /** Records that a check fired; returns an alarm when it opens a fault. */
  private fire(
    m: Machine,
    f: number,
    check: DataQualityCheck,
    index: number,
    at: SamplePoint,
    evidence: DataQualityAlarm['evidence'],
  ): DataQualityAlarm | null {
    const key = `${check === 'spikes' ? 'out-of-range' : check}:${f}`;
    const existing = m.faults.get(key);
    if (existing) {
      existing.lastFired = index;
      return null;
    }
    m.faults.set(key, { check, feature: f, since: index, lastFired: index });
    this.alarmsRaised++;
    return { kind: 'data-quality', machineId: m.id, feature: FEATURES[f] as Feature, check, at, evidence };
  }

  /** Out-of-range and machine-vs-fleet tests over the block just completed. */
  private testBlock(index: number, at: SamplePoint): DataQualityAlarm[] {
    const out: DataQualityAlarm[] = [];
    const tested = [...this.machines.values()].filter(
      (m) => (m.block[0] as number[]).length >= this.config.minReadings,
    );
    if (tested.length >= this.config.minMachines) {
      const alpha = this.blockAlpha(tested.length);
      for (let f = 0; f < NF; f++) {
        for (const a of this.outOfRange(tested, f, alpha, index, at)) out.push(a);
        for (const a of this.machineVsFleet(tested, f, alpha, index, at)) out.push(a);
      }
    }
    for (const m of this.machines.values()) m.block = FEATURES.map(() => []);
    return out;
  }

  private outOfRange(
    tested: Machine[],
    f: number,
    alpha: number,
    index: number,
    at: SamplePoint,
  ): DataQualityAlarm[] {
    const lo = this.lo[f] as number;
    const hi = this.hi[f] as number;
    const counts = tested.map((m) => {
      const vals = m.block[f] as number[];
      let k = 0;
      for (const v of vals) if (v < lo || v > hi) k++;
      return { m, n: vals.length, k };
    });
    const out: DataQualityAlarm[] = [];
    const checkOf = (c: { n: number; k: number }): DataQualityCheck =>
      c.k * 2 > c.n ? 'out-of-range' : 'spikes';
    // The fleet: machines in no fault. A machine already in an out-of-range fault of this feature is
    // tested against it to keep the fault open while it lasts.
    const fleet = counts.filter((c) => c.m.faults.size === 0);
    for (const c of counts) {
      if (!c.m.faults.has(`out-of-range:${f}`)) continue;
      const pool = [...fleet, c];
      if (pool.length < this.config.minMachines) continue;
      const N = pool.reduce((a, x) => a + x.n, 0);
      const K = pool.reduce((a, x) => a + x.k, 0);
      const p = hypergeometricUpperTail(c.k, N, K, c.n);
      if (p <= alpha) this.fire(c.m, f, checkOf(c), index, at, { pvalue: p, threshold: alpha });
    }
    // New faults: every machine not yet in this fault against the clean fleet (itself left out); name the
    // most significant, leave it out of the fleet, test the rest again.
    const excluded = new Set<Machine>();
    for (;;) {
      const fleetNow = fleet.filter((c) => !excluded.has(c.m));
      let best: { c: (typeof counts)[number]; p: number; N: number; K: number } | null = null;
      for (const c of counts) {
        if (excluded.has(c.m) || c.m.faults.has(`out-of-range:${f}`)) continue;
        const pool = fleetNow.includes(c) ? fleetNow : [...fleetNow, c];
        if (pool.length < this.config.minMachines) continue;
        const N = pool.reduce((a, x) => a + x.n, 0);
        const K = pool.reduce((a, x) => a + x.k, 0);
        if (K === 0) continue;
        const p = hypergeometricUpperTail(c.k, N, K, c.n);
        if (!best || p < best.p) best = { c, p, N, K };
      }
      if (!best || best.p > alpha) break;
      const { c, N, K } = best;
      const a = this.fire(c.m, f, checkOf(c), index, at, {
        readings: c.n,
        outOfRange: c.k,
        fleetReadings: N - c.n,
        fleetOutOfRange: K - c.k,
        pvalue: best.p,
        threshold: alpha,
      });
      if (a) out.push(a);
      excluded.add(c.m);
    }
    return out;
  }

  private machineVsFleet(
    tested: Machine[],
    f: number,
    alpha: number,
    index: number,
    at: SamplePoint,
  ): DataQualityAlarm[] {
    const out: DataQualityAlarm[] = [];
    const pools = new PooledReadings(tested, f);
    const test = (
      m: Machine,
      pool: Machine[],
    ): { h: number; lcm: number; crit: number; n1: number; n2: number } | null => {
      const mine = pools.sorted(m);
      const fleet = pools.without(pool, m);
      const n1 = fleet.length;
      const n2 = mine.length;
      if (n1 < 1 || n2 < 1) return null;
      const lcm = (n1 / gcd(n1, n2)) * n2;
      const h = latticeStatistic(fleet, mine, lcm / n1, lcm / n2);
      // Nowhere near rejecting: a bound below the critical h is enough (its ratio h / crit stays < 1, so the
      // choice of the most significant rejecting machine below is unchanged).
      const lb = criticalLowerBound(n1, n2, alpha);
      const crit = h <= lb ? lb + 1 : criticalLattice(n1, n2, alpha).h;
      return { h, lcm, crit, n1, n2 };
    };
    // Machines in any fault are never part of the fleet; one already in this fault is tested to keep it open.
    const clean = tested.filter((m) => m.faults.size === 0);
    for (const m of tested) {
      if (!m.faults.has(`machine-vs-fleet:${f}`) || clean.length + 1 < this.config.minMachines) continue;
      const r = test(m, [...clean, m]);
      if (r && r.h >= r.crit) this.fire(m, f, 'machine-vs-fleet', index, at, { pvalue: 0, threshold: alpha });
    }
    const excluded = new Set<Machine>();
    for (;;) {
      const fleetNow = clean.filter((m) => !excluded.has(m));
      let best: { m: Machine; r: NonNullable<ReturnType<typeof test>> } | null = null;
      for (const m of tested) {
        if (excluded.has(m) || m.faults.has(`machine-vs-fleet:${f}`)) continue;
        const pool = fleetNow.includes(m) ? fleetNow : [...fleetNow, m];
        if (pool.length < this.config.minMachines) continue;
        const r = test(m, pool);
        if (r && (!best || r.h / r.crit > best.r.h / best.r.crit)) best = { m, r };
      }
      if (!best || best.r.h < best.r.crit) break;
      const { r } = best;
      const p = cachedExactPvalue(r.n1, r.n2, r.h);
      const a = this.fire(best.m, f, 'machine-vs-fleet', index, at, {
        readings: r.n2,
        fleetReadings: r.n1,
        statistic: r.h / r.lcm,
        pvalue: Number.isNaN(p) ? 0 : p,
        threshold: alpha,
      });
      if (a) out.push(a);
      excluded.add(best.m);
    }
    return out;
  }
}

/**
 * The tested machines' readings of one feature in the block, sorted: each machine's own, and the sorted
 * union of a pool of machines (built once per pool: in a block, most machines are tested against the same
 * clean fleet). A leave-one-out fleet is that union minus the machine's own sorted readings, one pass over
 * N values. Merging the other machines' arrays for every machine tested cost O(machines × N) per test
 * (5 % of the edge's CPU with 20 machines in the pipeline benchmark).
 */
class PooledReadings {
  private readonly own = new Map<Machine, Float64Array>();
  private readonly unions = new Map<string, Float64Array>();
  private readonly order = new Map<Machine, number>();

  constructor(tested: Machine[], f: number) {
    tested.forEach((m, i) => {
      this.order.set(m, i);
      this.own.set(m, Float64Array.from(m.block[f] as number[]).sort());
    });
  }

  sorted(m: Machine): Float64Array {
    return this.own.get(m) as Float64Array;
  }

  /** The sorted readings of every machine in `pool` but `m` (`m` may or may not be in `pool`). */
  without(pool: Machine[], m: Machine): Float64Array {
    const members = pool.includes(m) ? pool : [...pool, m];
    const key = members
      .map((o) => this.order.get(o) as number)
      .sort((a, b) => a - b)
      .join(',');
    let union = this.unions.get(key);
    if (!union) {
      let n = 0;
      for (const o of members) n += this.sorted(o).length;
      union = new Float64Array(n);
      let k = 0;
      for (const o of members) {
        union.set(this.sorted(o), k);
        k += this.sorted(o).length;
      }
      union.sort();
      this.unions.set(key, union);
    }
    // The union minus m's readings: both sorted, and m's readings are in the union (a multiset difference).
    const mine = this.sorted(m);
    const out = new Float64Array(union.length - mine.length);
    let i = 0;
    let j = 0;
    for (const v of union) {
      if (i < mine.length && v === mine[i]) i++;
      else out[j++] = v;
    }
    return out;
  }
}

const logFactorials: number[] = [0];
function logFactorial(n: number): number {
  for (let k = logFactorials.length; k <= n; k++)
    logFactorials.push((logFactorials[k - 1] as number) + Math.log(k));
  return logFactorials[n] as number;
}

function logChoose(n: number, k: number): number {
  return logFactorial(n) - logFactorial(k) - logFactorial(n - k);
}

/** P(X >= k) for X ~ Hypergeometric(population N, K successes, n draws), exactly (summed in log space). */
export function hypergeometricUpperTail(k: number, N: number, K: number, n: number): number {
  const lo = Math.max(0, n - (N - K));
  const hi = Math.min(n, K);
  if (k <= lo) return 1;
  if (k > hi) return 0;
  const denom = logChoose(N, n);
  let sum = 0;
  for (let x = k; x <= hi; x++) sum += Math.exp(logChoose(K, x) + logChoose(N - K, n - x) - denom);
  return Math.min(1, sum);
}
