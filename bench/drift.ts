/**
 * Drift detector benchmark (`npm run bench -- drift`, or `npx tsx bench/drift.ts`).
 *
 * With the default configuration (DEFAULT_DRIFT_CONFIG) and a 5,000-row
 * reference of the seed profile:
 * - a 1,000,000-sample stationary stream: alarms (must be 0) and time per sample;
 * - for each of the nine features, a stream whose feature shifts by +0.5 sd at
 *   sample 20,250: samples from the onset to the alarm (goal: <= 2,000), and
 *   alarms before the onset;
 * - the cost of one KS test at the window size (exact p-value computed, exact
 *   p-value from the lattice cache, asymptotic).
 *
 * It also writes the very streams it ran (float32, row-major, FEATURES order)
 * to `.driftline/bench/streams/` with a `manifest.json` holding its own results,
 * so `bench/compare_detectors.py` runs River's KSWIN and Alibi Detect's KSDrift
 * on identical data and prints them side by side.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DEFAULT_DRIFT_CONFIG, FeatureDriftDetector } from '../common/drift/feature-drift.ts';
import { SeedStream, seedReference, seedSd, type MutableRow } from '../common/drift/synthetic.ts';
import type { ReferenceSample } from '../common/model/types.ts';
import { FEATURES, type Feature } from '../common/schema/features.ts';
import { latticeStatistic } from '../common/stats/ks-exact.ts';
import { SortedSample, ks2sampSorted } from '../common/stats/ks.ts';
import { Rng } from '../common/util/rng.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
export const STREAMS_DIR = path.resolve(here, '..', '.driftline', 'bench', 'streams');

const REFERENCE_SEED = 1;
const REFERENCE_SIZE = 5_000;
const STATIONARY_SEED = 2;
const STATIONARY_SAMPLES = 1_000_000;
const SHIFT_SEED_BASE = 1_000;
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

/** Feeds a matrix through a fresh default detector; the row object is reused (no per-sample allocation). */
function feed(reference: ReferenceSample, matrix: Float32Array, n: number): Run {
  const detector = new FeatureDriftDetector(reference, DEFAULT_DRIFT_CONFIG);
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
  const w = DEFAULT_DRIFT_CONFIG.windowSize;
  const rng = new Rng(77);
  const windows = Array.from({ length: 200 }, () =>
    Float64Array.from({ length: w }, () => rng.uniform(30, 90)),
  );
  // CPU microseconds per call (user + system), steadier than wall time on a shared machine.
  const time = (fn: (x: Float64Array) => void, reps: number): number => {
    for (let r = 0; r < 10; r++) fn(windows[r] as Float64Array);
    const cpu = process.cpuUsage();
    for (let r = 0; r < reps; r++) fn(windows[r % windows.length] as Float64Array);
    const used = process.cpuUsage(cpu);
    return (used.user + used.system) / reps;
  };
  const scratch = new Float64Array(w);
  const lcm = 5_000; // lcm(5,000, 500)
  return {
    referenceSize: ref.size,
    windowSize: w,
    exactCpuUs: time((x) => ks2sampSorted(ref, x, { method: 'exact' }), 100),
    asympCpuUs: time((x) => ks2sampSorted(ref, x, { method: 'asymp' }), 400),
    // What the detector does per feature once the p-value of the statistic is cached: copy, sort, merge.
    cachedCpuUs: time((x) => {
      scratch.set(x);
      scratch.sort();
      latticeStatistic(ref.values, scratch, lcm / ref.size, lcm / w);
    }, 4_000),
  };
}

export async function run(): Promise<Record<string, unknown>> {
  await mkdir(STREAMS_DIR, { recursive: true });
  const refMatrix = draw(new SeedStream({ seed: REFERENCE_SEED, float32: true }), REFERENCE_SIZE);
  const reference = referenceFrom(refMatrix, REFERENCE_SIZE);
  await writeStream('reference.f32', refMatrix);

  const stationary = draw(new SeedStream({ seed: STATIONARY_SEED, float32: true }), STATIONARY_SAMPLES);
  await writeStream('stationary.f32', stationary);
  const quiet = feed(reference, stationary, STATIONARY_SAMPLES);

  const shifts: Record<string, unknown>[] = [];
  for (const [k, feature] of FEATURES.entries()) {
    const n = ONSET + AFTER_ONSET;
    const delta = 0.5 * seedSd(feature);
    const matrix = draw(
      new SeedStream({ seed: SHIFT_SEED_BASE + k, float32: true, shift: { feature, delta, onset: ONSET } }),
      n,
    );
    const file = `shift-${feature}.f32`;
    await writeStream(file, matrix);
    const r = feed(reference, matrix, n);
    const first = r.alarms.find((i) => i >= ONSET);
    shifts.push({
      feature,
      file,
      samples: n,
      onset: ONSET,
      delta,
      alarmAt: first ?? null,
      delay: first === undefined ? null : first - ONSET,
      alarmsBeforeOnset: r.alarms.filter((i) => i < ONSET).length,
    });
  }

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
      expectedFalseAlarms: 'about 4.6e-4 per 1e6 samples (see common/drift/feature-drift.ts)',
    },
    shift: shifts,
    maxDelay: Math.max(
      ...shifts.map((s) => (typeof s.delay === 'number' ? s.delay : Number.POSITIVE_INFINITY)),
    ),
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
    shifts: shifts.map((s, k) => ({ ...s, seed: SHIFT_SEED_BASE + k })),
    ours: {
      config: DEFAULT_DRIFT_CONFIG,
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
