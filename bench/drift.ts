/**
 * Drift detector benchmark (`npm run bench -- drift`, or `npx tsx bench/drift.ts`).
 *
 * With the default configuration (DEFAULT_DRIFT_CONFIG: the multi-scale
 * detector) and, for comparison, the previous default (`detector: 'windows'`:
 * tumbling 500, 2 consecutive windows), on a 5,000-row reference of the seed profile:
 * - a 1,000,000-sample stationary stream: alarms (must be 0) and time per sample;
 * - for each of the nine features, a stream whose feature shifts by +0.5 sd, and
 *   one whose feature shifts by +0.25 sd, at sample 20,250: samples from the onset
 *   to the alarm (goals: <= 600 and <= 3,000), and alarms before the onset
 *   (one onset phase per stream; the worst case over onset phases and seeds is
 *   bench/drift-design.ts);
 * - the cost of one KS test at the window sizes (exact p-value computed, the
 *   lattice statistic alone).
 *
 * It also writes the very streams it ran (float32, row-major, FEATURES order)
 * to `.driftline/bench/streams/` with a `manifest.json` holding its own results,
 * so `bench/compare_detectors.py` runs River's KSWIN and Alibi Detect's KSDrift
 * on identical data and prints them side by side.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  DEFAULT_DRIFT_CONFIG,
  FeatureDriftDetector,
  type FeatureDriftConfig,
} from '../common/drift/feature-drift.ts';
import { ReferenceIndex, criticalLattice } from '../common/drift/ks-budget.ts';
import { scaleAlpha } from '../common/drift/multiscale-drift.ts';
import { SeedStream, seedReference, seedSd, type MutableRow } from '../common/drift/synthetic.ts';
import type { ReferenceSample } from '../common/model/types.ts';
import { FEATURES, type Feature } from '../common/schema/features.ts';
import { SortedSample, ks2sampSorted } from '../common/stats/ks.ts';
import { Rng } from '../common/util/rng.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
export const STREAMS_DIR = path.resolve(here, '..', '.driftline', 'bench', 'streams');

const REFERENCE_SEED = 1;
const REFERENCE_SIZE = 5_000;
const STATIONARY_SEED = 2;
const STATIONARY_SAMPLES = 1_000_000;
const SHIFT_SEED_BASE = 1_000;
const QUARTER_SEED_BASE = 2_000;
const ONSET = 20_250;
const AFTER_ONSET = 30_000;
const NF = FEATURES.length;

/**
 * Writes a stream file unless it already holds these exact bytes (the streams are
 * deterministic: keeping the file keeps its mtime, which compare_detectors.py's
 * result cache keys on), atomically (temp file + rename) so a reader never sees half.
 */
async function writeStream(file: string, data: Float32Array): Promise<void> {
  const target = path.join(STREAMS_DIR, file);
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  try {
    if ((await readFile(target)).equals(bytes)) return;
  } catch {
    // missing: write it
  }
  const tmp = `${target}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, target);
}

/** Draws `n` rows of a seed stream into a float32 row-major matrix. */
function draw(stream: SeedStream, n: number): Float32Array {
  const out = new Float32Array(n * NF);
  for (let i = 0; i < n; i++) {
    const row = stream.next();
    for (let f = 0; f < NF; f++) out[i * NF + f] = row[FEATURES[f] as Feature];
  }
  return out;
}

function referenceFrom(matrix: Float32Array, n: number): ReferenceSample {
  const ref = seedReference(REFERENCE_SEED, 1); // for classShares
  const features = Object.fromEntries(
    FEATURES.map((f, k) => [f, Array.from({ length: n }, (_, i) => matrix[i * NF + k] as number)]),
  ) as Record<Feature, number[]>;
  return { size: n, features, classShares: ref.classShares };
}

interface Run {
  alarms: number[];
  nsPerSample: number;
  /** CPU time (user + system) per sample: steadier than wall time on a shared machine. */
  cpuNsPerSample: number;
  windowsTested: number;
  cacheHits: number;
}

/** The previous default, for the before/after rows. */
const WINDOWS_CONFIG: Partial<FeatureDriftConfig> = { ...DEFAULT_DRIFT_CONFIG, detector: 'windows' };

/** Feeds a matrix through a fresh detector (default config); the row object is reused (no per-sample allocation). */
function feed(
  reference: ReferenceSample,
  matrix: Float32Array,
  n: number,
  config: Partial<FeatureDriftConfig> = DEFAULT_DRIFT_CONFIG,
): Run {
  const detector = new FeatureDriftDetector(reference, config);
  const row = Object.fromEntries([['operationMode', 'Active'], ...FEATURES.map((f) => [f, 0])]) as MutableRow;
  const alarms: number[] = [];
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    for (let f = 0; f < NF; f++) row[FEATURES[f] as Feature] = matrix[i * NF + f] as number;
    if (detector.update(row).alarm) alarms.push(i);
  }
  const ns = Number(process.hrtime.bigint() - started);
  const used = process.cpuUsage(cpu);
  return {
    alarms,
    nsPerSample: ns / n,
    cpuNsPerSample: ((used.user + used.system) * 1_000) / n,
    windowsTested: detector.stats.windowsTested,
    cacheHits: detector.stats.pvalueCacheHits,
  };
}

function ksCost(reference: ReferenceSample): Record<string, number> {
  const ref = new SortedSample(reference.features.temperatureC);
  const index = new ReferenceIndex(ref.values);
  const rng = new Rng(77);
  // CPU microseconds per call (user + system), steadier than wall time on a shared machine.
  const time = (fn: (x: Float64Array) => void, windows: Float64Array[], reps: number): number => {
    for (let r = 0; r < 10; r++) fn(windows[r] as Float64Array);
    const cpu = process.cpuUsage();
    for (let r = 0; r < reps; r++) fn(windows[r % windows.length] as Float64Array);
    const used = process.cpuUsage(cpu);
    return (used.user + used.system) / reps;
  };
  const out: Record<string, number> = { referenceSize: ref.size };
  for (const w of [400, 2_000]) {
    const windows = Array.from({ length: 50 }, () =>
      Float64Array.from({ length: w }, () => rng.uniform(30, 90)).sort(),
    );
    const lcm = (ref.size * w) / gcd(ref.size, w);
    out[`exactPvalueCpuUs_w${w}`] = time((x) => ks2sampSorted(ref, x, { method: 'exact' }), windows, 20);
    // What the detector does per feature and test: the lattice statistic of the (incrementally) sorted window.
    out[`latticeCpuUs_w${w}`] = time(
      (x) => index.latticeStatistic(x, lcm / ref.size, lcm / w),
      windows,
      2_000,
    );
  }
  return out;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** Exact expected false alarms per sample of the default, averaged over the reference draw. */
function expectedFalseAlarmsPerSample(n: number): number {
  return DEFAULT_DRIFT_CONFIG.scales.reduce((sum, s) => {
    const c = criticalLattice(n, s.windowSize, scaleAlpha(DEFAULT_DRIFT_CONFIG, s));
    return sum + (FEATURES.length * c.pvalue) / s.hop;
  }, 0);
}

export async function run(): Promise<Record<string, unknown>> {
  await mkdir(STREAMS_DIR, { recursive: true });
  const refMatrix = draw(new SeedStream({ seed: REFERENCE_SEED, float32: true }), REFERENCE_SIZE);
  const reference = referenceFrom(refMatrix, REFERENCE_SIZE);
  await writeStream('reference.f32', refMatrix);

  const stationary = draw(new SeedStream({ seed: STATIONARY_SEED, float32: true }), STATIONARY_SAMPLES);
  await writeStream('stationary.f32', stationary);
  const quiet = feed(reference, stationary, STATIONARY_SAMPLES);
  const quietWindows = feed(reference, stationary, STATIONARY_SAMPLES, WINDOWS_CONFIG);

  const shiftsOf = async (
    sd: number,
    seedBase: number,
    prefix: string,
  ): Promise<Record<string, unknown>[]> => {
    const out: Record<string, unknown>[] = [];
    for (const [k, feature] of FEATURES.entries()) {
      const n = ONSET + AFTER_ONSET;
      const delta = sd * seedSd(feature);
      const matrix = draw(
        new SeedStream({ seed: seedBase + k, float32: true, shift: { feature, delta, onset: ONSET } }),
        n,
      );
      const file = `${prefix}-${feature}.f32`;
      await writeStream(file, matrix);
      const r = feed(reference, matrix, n);
      const first = r.alarms.find((i) => i >= ONSET);
      const w = feed(reference, matrix, n, WINDOWS_CONFIG);
      const firstW = w.alarms.find((i) => i >= ONSET);
      out.push({
        feature,
        file,
        samples: n,
        onset: ONSET,
        sd,
        delta,
        seed: seedBase + k,
        alarmAt: first ?? null,
        delay: first === undefined ? null : first - ONSET,
        alarmsBeforeOnset: r.alarms.filter((i) => i < ONSET).length,
        windowsDelay: firstW === undefined ? null : firstW - ONSET,
        windowsAlarmsBeforeOnset: w.alarms.filter((i) => i < ONSET).length,
      });
    }
    return out;
  };
  const shifts = await shiftsOf(0.5, SHIFT_SEED_BASE, 'shift');
  const quarterShifts = await shiftsOf(0.25, QUARTER_SEED_BASE, 'shift-quarter');
  const maxOf = (list: Record<string, unknown>[], key: string): number =>
    Math.max(
      ...list.map((s) => (typeof s[key] === 'number' ? (s[key] as number) : Number.POSITIVE_INFINITY)),
    );

  const ks = ksCost(reference);
  const result = {
    config: DEFAULT_DRIFT_CONFIG,
    referenceSize: REFERENCE_SIZE,
    stationary: {
      samples: STATIONARY_SAMPLES,
      alarms: quiet.alarms.length,
      alarmAt: quiet.alarms.slice(0, 10),
      windowsTested: quiet.windowsTested,
      ksTests: quiet.windowsTested * NF,
      pvalueCacheHits: quiet.cacheHits,
      usPerSample: Number((quiet.nsPerSample / 1_000).toFixed(3)),
      cpuUsPerSample: Number((quiet.cpuNsPerSample / 1_000).toFixed(3)),
      expectedFalseAlarmsPerSample: expectedFalseAlarmsPerSample(REFERENCE_SIZE),
      windowsEngine: {
        alarms: quietWindows.alarms.length,
        cpuUsPerSample: Number((quietWindows.cpuNsPerSample / 1_000).toFixed(3)),
        expectedFalseAlarmsPerSample: 4.6e-10,
      },
    },
    shift: shifts,
    shiftQuarterSd: quarterShifts,
    maxDelay: maxOf(shifts, 'delay'),
    maxDelayQuarterSd: maxOf(quarterShifts, 'delay'),
    windowsEngineMaxDelay: maxOf(shifts, 'windowsDelay'),
    windowsEngineMaxDelayQuarterSd: maxOf(quarterShifts, 'windowsDelay'),
    ksTestCostUs: Object.fromEntries(Object.entries(ks).map(([key, v]) => [key, Number(v.toFixed(2))])),
    streams: STREAMS_DIR,
  };
  const manifest = {
    format: 'driftline-drift-bench/1',
    dtype: 'float32',
    layout: 'row-major [samples, features]',
    features: FEATURES,
    reference: { file: 'reference.f32', samples: REFERENCE_SIZE, seed: REFERENCE_SEED },
    stationary: { file: 'stationary.f32', samples: STATIONARY_SAMPLES, seed: STATIONARY_SEED },
    shifts,
    quarterShifts,
    ours: {
      config: DEFAULT_DRIFT_CONFIG,
      settings: `multi-scale exact KS vs 5,000: windows ${DEFAULT_DRIFT_CONFIG.scales.map((s) => `${s.windowSize}/${s.hop}`).join(' + ')}, ${DEFAULT_DRIFT_CONFIG.falseAlarmsPerSample} expected false alarms per sample, one rejection`,
      windowsEngine: {
        settings: 'previous default: w=500 tumbling, alpha=1e-3 Bonferroni, 2 consecutive (same feature)',
        stationaryAlarms: quietWindows.alarms.length,
      },
      stationaryAlarms: quiet.alarms.length,
      stationaryUsPerSample: result.stationary.usPerSample,
      stationaryCpuUsPerSample: result.stationary.cpuUsPerSample,
    },
  };
  await writeFile(path.join(STREAMS_DIR, 'manifest.json'), JSON.stringify(manifest, null, 2));
  return result;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await run(), null, 2));
}
