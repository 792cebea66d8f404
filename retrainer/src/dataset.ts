import { DriftlineError } from '../../common/errors.ts';
import type { LabelledRow } from '../../common/model/types.ts';
import type { LabelledSample, LabelledSampleStore, SampleWindowQuery } from '../../common/samples/types.ts';
import { EFFICIENCY_CLASSES } from '../../common/schema/features.ts';
import { Rng } from '../../common/util/rng.ts';

/**
 * Builds the training, validation and holdout sets of one retrain.
 *
 * - Recent data: the window the retrain request names (after the drift
 *   onset), newest `maxSamples` of it. Fewer than `minSamples` →
 *   {@link NotEnoughDataError} (retriable: asked again later).
 * - Split: the recent samples are sorted (ts, machine, seq) so the result does
 *   not depend on arrival order, then split per class by a seeded shuffle into
 *   train / validation / holdout (default 70/15/15; stratified so the rare
 *   `High` class is present in every part in its recent proportion).
 * - Holdout and validation come only from the recent window: the champion and
 *   the challenger are both judged on what the machines do now, and the best
 *   epoch is picked on it too.
 * - Older data (before the window) is mixed into the *training* part only,
 *   as `oldDataShare` of it. Choice: after **covariate** drift the labelling
 *   rule is unchanged, so older samples are still correct and keep the model
 *   good on the input region it may return to (default share 0.2). After
 *   **concept** drift older samples carry the old labels for the same inputs:
 *   they teach exactly what is now wrong, so the default share is 0
 *   (`RETRAIN_OLD_DATA_SHARE_CONCEPT`).
 */

/** The part of the sample stream a retrain request names. Bounds inclusive; any may be absent. */
export interface SampleWindow {
  /** Drift onset (epoch ms, the sample clock in replays). */
  fromTs?: number;
  /** Latest ts to use. */
  toTs?: number;
  /** Drift onset as a global sample index. */
  fromSample?: number;
  /** Latest sample index to use. */
  toSample?: number;
}

/** Options of {@link buildDataset}. */
export interface DatasetOptions {
  /** Fewest recent samples to train on. `RETRAIN_MIN_SAMPLES`, default 2000. */
  minSamples: number;
  /** Most recent samples used (the newest of the window). `RETRAIN_MAX_SAMPLES`, default 20,000. */
  maxSamples: number;
  /** Share of pre-window samples in the training part after covariate drift. `RETRAIN_OLD_DATA_SHARE`, default 0.2. */
  oldDataShare: number;
  /** Same after concept drift. `RETRAIN_OLD_DATA_SHARE_CONCEPT`, default 0. */
  oldDataShareConcept: number;
  /** Share of the recent samples held out. `RETRAIN_HOLDOUT_SHARE`, default 0.15. */
  holdoutShare: number;
  /** Share of the recent samples used for validation. `RETRAIN_VALIDATION_SHARE`, default 0.15. */
  validationShare: number;
  /** Seed of the split and of the old-data draw. */
  seed: number;
}

/** What a retrain asks for. */
export interface DatasetRequest {
  /** The recent window. */
  window: SampleWindow;
  /** Kind of drift: decides the old-data share. */
  kind: 'covariate' | 'concept';
  /**
   * Ignore the window's upper bounds (use everything since the onset); the service does this when it retries
   * for more data.
   */
  extendToLatest?: boolean;
}

/** Where the samples of a dataset came from. */
export interface DatasetProvenance {
  /** Recent samples used (train + validation + holdout). */
  samples: number;
  /** Earliest ts of the recent samples. */
  fromTs: number;
  /** Latest ts of the recent samples. */
  toTs: number;
  /** Smallest sample index of the recent samples, when they carry one. */
  fromSample?: number;
  /** Largest sample index of the recent samples, when they carry one. */
  toSample?: number;
  /** Pre-window samples mixed into training. */
  oldSamples: number;
  /** The old-data share that applied. */
  oldDataShare: number;
}

/** The three parts of a retrain's data. */
export interface Dataset {
  /** Recent training rows plus the older rows mixed in, shuffled. */
  train: LabelledRow[];
  /** Recent rows only; picks the best epoch. */
  validation: LabelledRow[];
  /** Recent samples only; never seen in training. */
  holdout: LabelledRow[];
  provenance: DatasetProvenance;
}

/** The window holds fewer samples than a retrain needs. Retriable: more will arrive. */
export class NotEnoughDataError extends DriftlineError {
  readonly available: number;
  readonly required: number;
  constructor(available: number, required: number) {
    super(`not enough data yet: ${available} of ${required} samples in the window`, {
      code: 'NOT_ENOUGH_DATA',
      retriable: true,
    });
    this.available = available;
    this.required = required;
  }
}

const toRow = (s: LabelledSample): LabelledRow => ({ row: s.row, label: s.label });

/** Sorts samples by (ts, machineId, seq) so a split does not depend on arrival order. */
export function canonicalOrder(samples: readonly LabelledSample[]): LabelledSample[] {
  return [...samples].sort(
    (a, b) =>
      a.ts - b.ts || (a.machineId < b.machineId ? -1 : a.machineId > b.machineId ? 1 : 0) || a.seq - b.seq,
  );
}

/** The split of {@link splitRecent}. */
export interface RecentSplit {
  /** The rest (≈ 70 %). */
  train: LabelledSample[];
  /** `validationShare` of each class. */
  validation: LabelledSample[];
  /** `holdoutShare` of each class. */
  holdout: LabelledSample[];
}

/**
 * Splits recent samples into train / validation / holdout per class by a
 * seeded shuffle (after sorting them canonically). Each class contributes
 * `round(n_c · share)` to the holdout and validation, at least one sample
 * each when the class has three or more.
 */
export function splitRecent(
  recent: readonly LabelledSample[],
  options: Pick<DatasetOptions, 'holdoutShare' | 'validationShare' | 'seed'>,
): RecentSplit {
  if (!(
    options.holdoutShare > 0 &&
    options.validationShare > 0 &&
    options.holdoutShare + options.validationShare < 1
  )) {
    throw new RangeError(
      `holdoutShare and validationShare must be positive and sum to less ` +
        `than 1, got ${options.holdoutShare} and ${options.validationShare}`,
    );
  }
  const rng = new Rng(options.seed);
  const out: RecentSplit = { train: [], validation: [], holdout: [] };
  const sorted = canonicalOrder(recent);
  for (const cls of EFFICIENCY_CLASSES) {
    const items = rng.shuffle(sorted.filter((s) => s.label === cls));
    const n = items.length;
    let nHold = Math.round(n * options.holdoutShare);
    let nVal = Math.round(n * options.validationShare);
    if (n >= 3) {
      nHold = Math.max(1, nHold);
      nVal = Math.max(1, nVal);
    }
    out.holdout.push(...items.slice(0, nHold));
    out.validation.push(...items.slice(nHold, nHold + nVal));
    out.train.push(...items.slice(nHold + nVal));
  }
  // Mix the classes again (the trainer shuffles too, but keep every part class-interleaved and reproducible).
  rng.shuffle(out.train);
  rng.shuffle(out.validation);
  rng.shuffle(out.holdout);
  return out;
}

/** The store query for the recent window. */
export function recentQuery(request: DatasetRequest, maxSamples: number): SampleWindowQuery {
  const w = request.window;
  return {
    fromTs: w.fromTs,
    toTs: request.extendToLatest ? undefined : w.toTs,
    fromSample: w.fromSample,
    toSample: request.extendToLatest ? undefined : w.toSample,
    limit: maxSamples,
  };
}

/** The store query for samples before the window, or undefined when the window has no lower bound. */
export function olderQuery(window: SampleWindow, limit: number): SampleWindowQuery | undefined {
  if (window.fromSample !== undefined) return { toSample: window.fromSample - 1, limit };
  if (window.fromTs !== undefined) return { toTs: window.fromTs - 1, limit };
  return undefined;
}

/** Reads the window from `store` and builds the dataset (see the module comment). */
export async function buildDataset(
  store: LabelledSampleStore,
  request: DatasetRequest,
  options: DatasetOptions,
): Promise<Dataset> {
  const recent = await store.readWindow(recentQuery(request, options.maxSamples));
  if (recent.length < options.minSamples) throw new NotEnoughDataError(recent.length, options.minSamples);
  const split = splitRecent(recent, options);

  const share = request.kind === 'concept' ? options.oldDataShareConcept : options.oldDataShare;
  let old: LabelledSample[] = [];
  const wanted = share > 0 && share < 1 ? Math.round((share / (1 - share)) * split.train.length) : 0;
  const query = wanted > 0 ? olderQuery(request.window, wanted * 4) : undefined;
  if (query) {
    // The newest pre-window samples, thinned at random to the wanted count.
    const pool = canonicalOrder(await store.readWindow(query));
    old = pool.length > wanted ? new Rng(options.seed ^ 0x01d).shuffle(pool).slice(0, wanted) : pool;
  }
  const train = split.train.map(toRow);
  if (old.length > 0) {
    train.push(...old.map(toRow));
    new Rng(options.seed ^ 0x7a1).shuffle(train);
  }

  let fromTs = Number.POSITIVE_INFINITY;
  let toTs = Number.NEGATIVE_INFINITY;
  let fromSample: number | undefined;
  let toSample: number | undefined;
  for (const s of recent) {
    fromTs = Math.min(fromTs, s.ts);
    toTs = Math.max(toTs, s.ts);
    if (s.sampleIndex !== undefined) {
      fromSample = Math.min(fromSample ?? s.sampleIndex, s.sampleIndex);
      toSample = Math.max(toSample ?? s.sampleIndex, s.sampleIndex);
    }
  }
  return {
    train,
    validation: split.validation.map(toRow),
    holdout: split.holdout.map(toRow),
    provenance: {
      samples: recent.length,
      fromTs,
      toTs,
      ...(fromSample !== undefined ? { fromSample, toSample } : {}),
      oldSamples: old.length,
      oldDataShare: old.length > 0 ? old.length / train.length : 0,
    },
  };
}
