import { FEATURES, type Feature } from '../schema/features.ts';

/**
 * Is a change seen while a detector group settles after an adopted shift the
 * continuation of that shift (a ramp going on), or a different change?
 *
 * After `MultiScaleDriftDetector.acceptShift` the group adopts the shifted
 * rows as its reference and, for `settleSamples`, turns further rejections
 * into `continuing` reference updates instead of alarms, so that a ramp the
 * champion handles does not alarm every few thousand samples. A *different*
 * change in that time must still alarm. A ramp moves every feature it moves
 * together: the window's mean shift against the adopted reference, δ_f, is a
 * positive multiple r of the adopted step's mean shift Δ_f (new − old
 * reference mean) in every feature, r ≈ the ramp's progress since the step.
 * The change is a continuation when
 *
 * 1. some rejecting feature moved in the adopted step (its old-vs-new
 *    reference KS p-value at most {@link MOVED_PVALUE}) — when only features
 *    that did not move now do, it is a new change;
 * 2. r > 0, estimated from the moved rejecting feature whose δ is most
 *    significant (r = δ_k / Δ_k) — a step back is a new change;
 * 3. every feature is where the ramp puts it, within T_g = z·SE_g + ρ·|r·Δ_g|
 *    (SE_g the standard error of δ_g − r·Δ_g: the window mean, the new and
 *    the old reference mean, and r's own error, from the adopted reference's
 *    sd; ρ the slack a ramp that is not exactly linear needs): a rejecting
 *    feature within T_g of r·Δ_g, a quiet one whose predicted move exceeds T_g
 *    at least |r·Δ_g| − T_g along it — a change in one feature of a shift that moved several (the others
 *    stay put), or one much larger in one feature than the others, is a new
 *    change. A quiet feature above its prediction is not evidence of one.
 *
 * With z = {@link CONTINUATION_Z} = 4 a true ramp fails rule 3 in a feature
 * with probability ~6e-5 (nine features: ~6e-4 per settle-time rejection,
 * and such a failure only means one alarm more); the false-alarm budget of
 * the detector is untouched, since a break only turns a rejection that would
 * have been silenced back into the alarm it was.
 */

/** Old-vs-new reference KS p-value at or below which a feature counts as moved by the adopted step. */
export const MOVED_PVALUE = 1e-3;
/** Standard errors a feature may depart from the ramp's prediction. */
export const CONTINUATION_Z = 4;
/** Relative slack of the ramp's prediction (a ramp need not be exactly linear in every feature). */
export const CONTINUATION_SLACK = 0.25;

/** What the adopted step changed, per feature (FEATURES order). */
export interface AdoptedStep {
  /** New minus old reference mean. */
  readonly shift: Float64Array;
  /** 1 when the feature moved (KS p-value at most {@link MOVED_PVALUE}). */
  readonly moved: Uint8Array;
  /** Mean and sd of the adopted (new) reference. */
  readonly mean: Float64Array;
  readonly sd: Float64Array;
  /** Rows of the adopted reference. */
  readonly samples: number;
}

/** The verdict on one settle-time rejection. */
export interface ContinuationCheck {
  continuing: boolean;
  /** Why not: the first rule broken; `continues` when continuing. */
  reason: 'continues' | 'feature-did-not-move' | 'direction' | 'size';
  /** The feature that decided (the rule-breaking one, or the one r was estimated from). */
  feature: Feature | null;
  /** The ramp's progress ratio r (NaN when rule 1 broke first). */
  ratio: number;
  /** Window mean shift against the adopted reference, per feature. */
  windowShift: Record<Feature, number>;
}

/**
 * Applies the rules of the module comment to one test: `windowMean` per
 * feature over `windowSize` rows, and which features rejected.
 */
export function checkContinuation(
  step: AdoptedStep,
  windowMean: Float64Array,
  windowSize: number,
  rejected: readonly boolean[],
): ContinuationCheck {
  const NF = FEATURES.length;
  const delta = new Float64Array(NF);
  const se = new Float64Array(NF);
  const inv = 1 / windowSize + 1 / step.samples;
  for (let f = 0; f < NF; f++) {
    delta[f] = (windowMean[f] as number) - (step.mean[f] as number);
    se[f] = (step.sd[f] as number) * Math.sqrt(inv);
  }
  const windowShift = Object.fromEntries(FEATURES.map((f, i) => [f, delta[i] as number])) as Record<
    Feature,
    number
  >;
  const verdict = (
    continuing: boolean,
    reason: ContinuationCheck['reason'],
    f: number,
    ratio: number,
  ): ContinuationCheck => ({
    continuing,
    reason,
    feature: f >= 0 ? (FEATURES[f] as Feature) : null,
    ratio,
    windowShift,
  });
  // Rule 1, and the reference feature for r: the most significant rejecting feature that moved.
  let k = -1;
  let best = -1;
  let anyRejected = -1;
  for (let f = 0; f < NF; f++) {
    if (!rejected[f]) continue;
    anyRejected = f;
    if (step.moved[f] !== 1) continue;
    const z = Math.abs(delta[f] as number) / Math.max(se[f] as number, Number.MIN_VALUE);
    if (z > best) {
      best = z;
      k = f;
    }
  }
  if (anyRejected < 0) return verdict(true, 'continues', -1, Number.NaN);
  if (k < 0) return verdict(false, 'feature-did-not-move', anyRejected, Number.NaN);
  const r = (delta[k] as number) / (step.shift[k] as number);
  // Rule 2.
  if (!(r > 0)) return verdict(false, 'direction', k, r);
  // Rule 3. Relative error of r from δ_k's noise.
  const rRel = (se[k] as number) / Math.abs(delta[k] as number);
  for (let g = 0; g < NF; g++) {
    if (g === k) continue;
    const predicted = r * (step.shift[g] as number);
    const sd = step.sd[g] as number;
    // δ_g − r·Δ_g = window − (1 + r)·new mean + r·old mean (three independent means) − r's own error.
    const spread = Math.sqrt(
      sd * sd * (1 / windowSize + ((1 + r) ** 2 + r * r) / step.samples) + (predicted * rRel) ** 2,
    );
    const tolerance = CONTINUATION_Z * spread + CONTINUATION_SLACK * Math.abs(predicted);
    const d = delta[g] as number;
    // A rejecting feature must be where the ramp puts it; a quiet one must at least have moved as far as
    // the ramp says (a quiet feature's chance excess over its prediction is no evidence of a new change).
    const departs = rejected[g]
      ? Math.abs(d - predicted) > tolerance
      : Math.abs(predicted) > tolerance && Math.sign(predicted) * d < Math.abs(predicted) - tolerance;
    if (departs) return verdict(false, step.moved[g] === 1 ? 'size' : 'feature-did-not-move', g, r);
  }
  return verdict(true, 'continues', k, r);
}
