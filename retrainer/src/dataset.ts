import { DriftlineError } from '../../common/errors.ts';
import type { LabelledRow } from '../../common/model/types.ts';
import type { LabelledSample, LabelledSampleStore, SampleWindowQuery } from '../../common/samples/types.ts';
import { EFFICIENCY_CLASSES, type Efficiency } from '../../common/schema/features.ts';
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
 *   the challenger are both judged on what the machines do now, and the
 *   model's reported (validation) quality is measured on it too. Stage 1 of a
 *   concept retrain trains on the validation part as well and reports the
 *   holdout instead (`trainOnValidation`): nothing is selected on the
 *   validation set, and 600 labels are too few to keep 15 % of them aside twice.
 * - Older data (before the window) is mixed into the *training* part only,
 *   as `oldDataShare` of it. Choice: after **covariate** drift the labelling
 *   rule is unchanged, so older samples are still correct and keep the model
 *   good on the input region it may return to (default share 0.2). After
 *   **concept** drift older samples carry the old labels for the same inputs:
 *   they teach exactly what is now wrong, so the default share is 0
 *   (`RETRAIN_OLD_DATA_SHARE_CONCEPT`).
 * - **Selective replay after concept drift** (`RETRAIN_CONCEPT_REPLAY`): a
 *   rule change rarely moves every class. Where a class's region did not
 *   shrink, its older samples still carry the right label, and they keep a
 *   warm-started model from forgetting a class the few recent samples hardly
 *   show (a rare class whose boundary did not move). Such classes are found
 *   by {@link replayableClasses}: among the recent training samples the
 *   drifted champion predicted as class c, the share labelled otherwise is
 *   no higher than it was before the window (one-sided exact binomial test).
 *   The older samples of those classes, from the newest
 *   `conceptReplay` × (recent training rows) before the window, join the
 *   training part; each recent row weighs `conceptRecentWeight` times a
 *   replayed one, so where a changed class was missed by the test the recent
 *   labels still outweigh the replayed ones.
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
  /**
   * Selective replay after concept drift: the pool of older samples searched for replayable classes, as a
   * multiple of the recent training rows; 0 (default) none. `RETRAIN_CONCEPT_REPLAY`.
   */
  conceptReplay?: number;
  /** Loss weight of a recent training row relative to a replayed one. `RETRAIN_CONCEPT_RECENT_WEIGHT`, default 1. */
  conceptRecentWeight?: number;
  /**
   * Train on the validation part too, and report the holdout as the validation set (stage 1 of a concept
   * retrain, where every label counts). Sound because nothing is selected on the validation set (the trainer
   * keeps the last epoch's weights): it only reports the model's quality, and the holdout, which training
   * never sees, reports it as well. Default false.
   */
  trainOnValidation?: boolean;
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
  /**
   * The champion that drifted (the request's `championVersion`): selective replay judges the classes by the
   * predictions this version made (the samples' `prediction` and `modelVersion`). Absent: no replay.
   */
  championVersion?: string;
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
  /** Classes whose older samples were replayed (concept drift, `conceptReplay` > 0); absent: no replay. */
  replayedClasses?: Efficiency[];
}

/** The three parts of a retrain's data. */
export interface Dataset {
  /** Recent training rows plus the older rows mixed in, shuffled. */
  train: LabelledRow[];
  /** Recent rows only; the model's reported quality (the holdout's rows with `trainOnValidation`). */
  validation: LabelledRow[];
  /** Recent samples only; never seen in training. */
  holdout: LabelledRow[];
  /**
   * The rows the model's drift reference is drawn from, when not `train`: the training rows without the
   * replayed ones (replay takes older samples of some classes only, so they do not represent the inputs).
   */
  reference?: LabelledRow[];
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

const sampleId = (s: LabelledSample): string => `${s.machineId}\u0000${s.seq}`;

/** Significance of the test of {@link replayableClasses}: a class is replayed unless the test rejects at it. */
export const REPLAY_TEST_ALPHA = 0.05;
/** Fewest recent samples the drifted champion must have predicted as a class before the class can be replayed. */
export const REPLAY_MIN_PREDICTED = 5;
/** Fewest older samples predicted by the drifted champion needed to estimate its error rates before the window. */
export const REPLAY_MIN_POOL = 50;

/**
 * The classes whose older samples still carry the right label after a concept drift, judged by the drifted
 * champion's predictions (`championVersion`; samples it did not predict are ignored).
 *
 * For class c: before the window, a share q_c of the samples the champion predicted as c were labelled
 * otherwise (its error on c; estimated from `older` as (e + 1) / (n + 2)). If the rule change moved part of
 * c's old region to another class, the recent samples it predicts as c are labelled otherwise more often.
 * c is replayable unless the exact one-sided binomial test rejects "recent error rate ≤ q_c" at
 * {@link REPLAY_TEST_ALPHA}, and only when the champion predicted c at least {@link REPLAY_MIN_PREDICTED} times
 * in `recent` (no evidence, no replay) and `older` holds at least {@link REPLAY_MIN_POOL} of its predictions.
 */
export function replayableClasses(
  recent: readonly LabelledSample[],
  older: readonly LabelledSample[],
  championVersion: string,
): Efficiency[] {
  const count = (samples: readonly LabelledSample[]): Map<Efficiency, { n: number; wrong: number }> => {
    const out = new Map<Efficiency, { n: number; wrong: number }>(
      EFFICIENCY_CLASSES.map((c) => [c, { n: 0, wrong: 0 }]),
    );
    for (const s of samples) {
      if (s.modelVersion !== championVersion || s.prediction === undefined) continue;
      const c = out.get(s.prediction);
      if (!c) continue;
      c.n++;
      if (s.label !== s.prediction) c.wrong++;
    }
    return out;
  };
  const before = count(older);
  const poolSize = [...before.values()].reduce((n, c) => n + c.n, 0);
  if (poolSize < REPLAY_MIN_POOL) return [];
  const now = count(recent);
  return EFFICIENCY_CLASSES.filter((c) => {
    const b = before.get(c) as { n: number; wrong: number };
    const r = now.get(c) as { n: number; wrong: number };
    if (r.n < REPLAY_MIN_PREDICTED) return false;
    const q = (b.wrong + 1) / (b.n + 2);
    return binomialUpperTail(r.n, r.wrong, q) >= REPLAY_TEST_ALPHA;
  });
}

/** P(X ≥ k) for X ~ Binomial(n, p), 0 < p < 1. */
export function binomialUpperTail(n: number, k: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  // Sum the lower part P(X ≤ k − 1) in log space (n is at most a few thousand here).
  const logP = Math.log(p);
  const logQ = Math.log1p(-p);
  let logTerm = n * logQ; // log P(X = 0)
  let lower = Math.exp(logTerm);
  for (let i = 1; i < k; i++) {
    logTerm += Math.log((n - i + 1) / i) + logP - logQ;
    lower += Math.exp(logTerm);
  }
  return Math.max(0, 1 - lower);
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
  // The recent samples trained on: the training part, and the validation part too when it is not kept apart.
  const recentTrain = options.trainOnValidation ? [...split.train, ...split.validation] : split.train;

  const share = request.kind === 'concept' ? options.oldDataShareConcept : options.oldDataShare;
  let old: LabelledSample[] = [];
  const wanted = share > 0 && share < 1 ? Math.round((share / (1 - share)) * recentTrain.length) : 0;
  const query = wanted > 0 ? olderQuery(request.window, wanted * 4) : undefined;
  if (query) {
    // The newest pre-window samples, thinned at random to the wanted count.
    const pool = canonicalOrder(await store.readWindow(query));
    old = pool.length > wanted ? new Rng(options.seed ^ 0x01d).shuffle(pool).slice(0, wanted) : pool;
  }

  // Selective replay after concept drift (module comment).
  let replayed: LabelledSample[] = [];
  let replayedClasses: Efficiency[] | undefined;
  const replayPool = request.kind === 'concept' ? (options.conceptReplay ?? 0) : 0;
  const replayQuery =
    replayPool > 0 && request.championVersion !== undefined
      ? olderQuery(request.window, Math.round(replayPool * recentTrain.length))
      : undefined;
  if (replayQuery && request.championVersion !== undefined) {
    const pool = canonicalOrder(await store.readWindow(replayQuery));
    replayedClasses = replayableClasses(recentTrain, pool, request.championVersion);
    const classes = new Set<Efficiency>(replayedClasses);
    // A sample the random old-data share already took is not taken twice.
    const taken = new Set(old.map(sampleId));
    replayed = pool.filter((s) => classes.has(s.label) && !taken.has(sampleId(s)));
  }

  let train: LabelledRow[] = recentTrain.map(toRow);
  let reference: LabelledRow[] | undefined;
  if (replayed.length > 0) {
    reference = [...recentTrain, ...old].map(toRow);
    // A recent row weighs `conceptRecentWeight` times an older one; scaled so that the mean weight is 1.
    const older = old.length + replayed.length;
    const recentWeight = options.conceptRecentWeight ?? 1;
    const scale = (train.length + older) / (recentWeight * train.length + older);
    train = train.map((r) => ({ ...r, weight: recentWeight * scale }));
    for (const s of [...old, ...replayed]) train.push({ ...toRow(s), weight: scale });
  } else {
    train.push(...old.map(toRow));
  }
  if (old.length + replayed.length > 0 || options.trainOnValidation)
    new Rng(options.seed ^ 0x7a1).shuffle(train);
  const olderSamples = old.length + replayed.length;

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
    validation: (options.trainOnValidation ? split.holdout : split.validation).map(toRow),
    holdout: split.holdout.map(toRow),
    ...(reference ? { reference } : {}),
    provenance: {
      samples: recent.length,
      fromTs,
      toTs,
      ...(fromSample !== undefined ? { fromSample, toSample } : {}),
      oldSamples: olderSamples,
      oldDataShare: olderSamples > 0 ? olderSamples / train.length : 0,
      ...(replayedClasses !== undefined ? { replayedClasses } : {}),
    },
  };
}
