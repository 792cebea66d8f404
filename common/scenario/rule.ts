import type { Efficiency, Feature } from '../schema/features.ts';

/**
 * The labelling rule: the efficiency class follows from production speed and
 * error rate alone. A scenario phase may move the thresholds (concept drift).
 */
export interface LabelRule {
  /** `High` when productionSpeedUph > speedAbove and errorRatePct < errorBelow. */
  readonly high: { readonly speedAbove: number; readonly errorBelow: number };
  /** Otherwise `Medium` when productionSpeedUph > speedAbove and errorRatePct < errorBelow; otherwise `Low`. */
  readonly medium: { readonly speedAbove: number; readonly errorBelow: number };
}

/** The rule of the public machine-efficiency dataset (about 78 % Low, 19 % Medium, 3 % High on the seed ranges). */
export const SEED_RULE: LabelRule = Object.freeze({
  high: Object.freeze({ speedAbove: 400, errorBelow: 2 }),
  medium: Object.freeze({ speedAbove: 200, errorBelow: 5 }),
});

/** The rule applied to a speed and an error rate; the hot-path form of {@link labelFor}. */
export function classify(
  productionSpeedUph: number,
  errorRatePct: number,
  rule: LabelRule = SEED_RULE,
): Efficiency {
  if (productionSpeedUph > rule.high.speedAbove && errorRatePct < rule.high.errorBelow) return 'High';
  if (productionSpeedUph > rule.medium.speedAbove && errorRatePct < rule.medium.errorBelow) return 'Medium';
  return 'Low';
}

/** The labelling rule (default: the seed rule) applied to a record's feature values. */
export function labelFor(values: Readonly<Record<Feature, number>>, rule: LabelRule = SEED_RULE): Efficiency {
  return classify(values.productionSpeedUph, values.errorRatePct, rule);
}

/** True when both rules give every input the same class. */
export function sameRule(a: LabelRule, b: LabelRule): boolean {
  return (
    a.high.speedAbove === b.high.speedAbove &&
    a.high.errorBelow === b.high.errorBelow &&
    a.medium.speedAbove === b.medium.speedAbove &&
    a.medium.errorBelow === b.medium.errorBelow
  );
}
