import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadArtifact, saveArtifact } from '../common/model/artifact.ts';
import { evaluateModel, trainClassifier } from '../common/model/classifier.ts';
import { loadTf } from '../common/model/tf.ts';
import type { LabelledRow } from '../common/model/types.ts';
import { generateStream } from '../common/scenario/generator.ts';
import { defaultScenario } from '../common/scenario/scenario.ts';

/**
 * Classifier figures: which tfjs backend runs, what one `predict` call costs
 * per batch size (µs per call and per row, through the real artifact path:
 * encode, one tensor op, read back), and how long training takes on retrainer-
 * sized windows, with the held-out quality reached.
 */

const BATCH_SIZES = [1, 8, 64, 256] as const;
const TRAIN_SIZES = [5_000, 10_000, 20_000] as const;

/** `n` labelled rows of the seed profile at baseline, from the simulator. */
function seedRows(n: number, seed: number): LabelledRow[] {
  const rows: LabelledRow[] = [];
  for (const s of generateStream(defaultScenario({ machines: 4, profile: 'seed', seed }))) {
    rows.push({ row: s.telemetry, label: s.label.efficiency });
    if (rows.length >= n) break;
  }
  return rows;
}

/** Calls `fn` repeatedly for about `budgetMs` (after a warm-up) and returns µs per call. */
function timePerCall(fn: () => void, budgetMs = 400): { usPerCall: number; calls: number } {
  for (let i = 0; i < 20; i++) fn();
  let calls = 0;
  const started = performance.now();
  let elapsed = 0;
  while (elapsed < budgetMs) {
    for (let i = 0; i < 10; i++) fn();
    calls += 10;
    elapsed = performance.now() - started;
  }
  return { usPerCall: (elapsed * 1000) / calls, calls };
}

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** Runs the classifier benchmark; see the module comment. */
export async function run(): Promise<Record<string, unknown>> {
  const { tf, backend } = await loadTf();
  const holdout = seedRows(20_000, 424_242);

  const training: Record<string, unknown> = {};
  let champion: Awaited<ReturnType<typeof trainClassifier>> | undefined;
  for (const n of TRAIN_SIZES) {
    const data = seedRows(n, 11);
    const cpuBefore = process.cpuUsage();
    const trained = await trainClassifier(tf, data, { seed: 1 });
    const cpu = process.cpuUsage(cpuBefore);
    const q = evaluateModel(tf, trained.model, trained.scaler, holdout);
    training[`samples_${n}`] = {
      trainMs: Math.round(trained.durationMs),
      // CPU time of this process: close to the wall time on an idle machine, and less sensitive to other load.
      trainCpuMs: Math.round((cpu.user + cpu.system) / 1000),
      trainRows: trained.samples,
      epochs: trained.epochs,
      holdoutAccuracy: round(q.accuracy, 4),
      holdoutMacroF1: round(q.macroF1, 4),
      holdoutHighF1: round(q.perClassF1.High, 4),
    };
    if (n === 10_000) champion = trained;
    else trained.model.dispose();
  }
  if (!champion) throw new Error('no 10k model trained');

  const dir = await mkdtemp(path.join(tmpdir(), 'driftline-bench-model-'));
  const predict: Record<string, unknown> = {};
  try {
    await saveArtifact(path.join(dir, 'm'), champion, { version: 'bench' });
    const loadStarted = performance.now();
    const model = await loadArtifact(path.join(dir, 'm'), tf);
    const loadMs = performance.now() - loadStarted;
    const rows = holdout.map((d) => d.row);
    let offset = 0;
    const call = (size: number) => (): void => {
      if (offset + size > rows.length) offset = 0;
      model.predict(rows.slice(offset, offset + size));
      offset += size;
    };
    // Warm every batch shape first: the first calls compile and cache kernels and are several times slower.
    for (const size of BATCH_SIZES) timePerCall(call(size), 150);
    // Two rounds, keeping each size's faster one (less sensitive to other load on the machine).
    const best = new Map<number, { usPerCall: number; calls: number }>();
    for (let round_ = 0; round_ < 2; round_++) {
      for (const size of BATCH_SIZES) {
        const t = timePerCall(call(size));
        const prev = best.get(size);
        if (!prev || t.usPerCall < prev.usPerCall) best.set(size, t);
      }
    }
    for (const size of BATCH_SIZES) {
      const { usPerCall, calls } = best.get(size) as { usPerCall: number; calls: number };
      predict[`batch_${size}`] = { usPerCall: round(usPerCall), usPerRow: round(usPerCall / size, 2), calls };
    }
    const one = (predict.batch_1 as { usPerCall: number }).usPerCall;
    const sixtyFour = (predict.batch_64 as { usPerCall: number }).usPerCall;
    predict.batch64VsSingleRowCallRatio = round(sixtyFour / one, 2);
    predict.loadArtifactMs = round(loadMs);
    model.dispose();
  } finally {
    champion.model.dispose();
    await rm(dir, { recursive: true, force: true });
  }
  return { backend, training, predict, tensorsLeft: tf.memory().numTensors };
}
