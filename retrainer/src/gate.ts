import type { EvalMetrics } from '../../common/model/types.ts';

/**
 * The promotion gate: decides from holdout metrics alone (pure, no I/O)
 * whether a challenger replaces the champion. Both models must have been
 * scored on the same holdout, drawn from the recent (post-drift) window.
 *
 * The challenger is promoted only when all hold:
 * 1. its accuracy clears the absolute floor (`minAccuracy`);
 * 2. its accuracy beats the champion's by at least `minGain` (absolute, e.g.
 *    0.005 = half a percentage point); a smaller gain is noise on a holdout of a
 *    few hundred samples and not worth a model swap on the edge;
 * 3. its macro-F1 is not worse than the champion's by more than
 *    `maxMacroF1Drop` (accuracy alone would let a model win by giving up the
 *    rare `High` class).
 * Without a champion (first model) only the floor applies.
 */

/** Thresholds of the gate. */
export interface GateConfig {
  /**
   * Minimum accuracy gain over the champion on the holdout (absolute fraction). `PROMOTION_MIN_GAIN`, default
   * 0.005.
   */
  minGain: number;
  /** Largest tolerated macro-F1 drop versus the champion (absolute). `PROMOTION_MAX_MACRO_F1_DROP`, default 0.01. */
  maxMacroF1Drop: number;
  /** Accuracy floor the challenger must reach on the holdout. `PROMOTION_MIN_ACCURACY`, default 0.9. */
  minAccuracy: number;
}

export const DEFAULT_GATE: Readonly<GateConfig> = Object.freeze({
  minGain: 0.005,
  maxMacroF1Drop: 0.01,
  minAccuracy: 0.9,
});

/** Why a challenger was rejected; used as a metric label. */
export type RejectionCause =
  'below-floor' | 'not-better' | 'within-margin' | 'macro-f1-drop' | 'invalid-metrics';

/** The outcome of {@link decidePromotion}. */
export interface GateDecision {
  /** True when the challenger should replace the champion. */
  promote: boolean;
  /** One readable sentence: why it was promoted, or every rule it failed. */
  reason: string;
  /** The rules it failed, first one first; empty when promoted. */
  causes: RejectionCause[];
  /** Challenger accuracy minus champion accuracy (challenger accuracy when there is no champion). */
  accuracyGain: number;
  /** Challenger macro-F1 minus champion macro-F1 (0 when there is no champion). */
  macroF1Delta: number;
}

const pct = (x: number): string => `${(100 * x).toFixed(2)}%`;
const pp = (x: number): string => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(2)} pp`;
const f4 = (x: number): string => x.toFixed(4);

/** Decides whether `challenger` replaces `champion` (undefined: no champion yet). */
export function decidePromotion(
  champion: EvalMetrics | undefined,
  challenger: EvalMetrics,
  config: GateConfig = DEFAULT_GATE,
): GateDecision {
  const finite = (m: EvalMetrics): boolean =>
    Number.isFinite(m.accuracy) && Number.isFinite(m.macroF1) && m.samples > 0;
  if (!finite(challenger) || (champion && !finite(champion))) {
    return {
      promote: false,
      reason: 'metrics are missing or not finite (empty holdout?)',
      causes: ['invalid-metrics'],
      accuracyGain: 0,
      macroF1Delta: 0,
    };
  }
  if (champion && champion.samples !== challenger.samples) {
    return {
      promote: false,
      reason:
        `champion and challenger were scored on different holdouts ` +
        `(${champion.samples} vs ${challenger.samples} samples)`,
      causes: ['invalid-metrics'],
      accuracyGain: 0,
      macroF1Delta: 0,
    };
  }
  const causes: RejectionCause[] = [];
  const problems: string[] = [];
  if (challenger.accuracy < config.minAccuracy) {
    causes.push('below-floor');
    problems.push(
      `challenger accuracy ${pct(challenger.accuracy)} is below the floor ${pct(config.minAccuracy)}`,
    );
  }
  const gain = champion ? challenger.accuracy - champion.accuracy : challenger.accuracy;
  const f1Delta = champion ? challenger.macroF1 - champion.macroF1 : 0;
  if (champion) {
    const versus = `challenger accuracy ${pct(challenger.accuracy)} vs champion ${pct(champion.accuracy)} (${pp(gain)})`;
    if (gain <= 0) {
      causes.push('not-better');
      problems.push(`${versus}: not better than the champion`);
    } else if (gain < config.minGain) {
      causes.push('within-margin');
      problems.push(`${versus}: gain within the margin of ${pp(config.minGain)}`);
    }
    if (f1Delta < -config.maxMacroF1Drop) {
      causes.push('macro-f1-drop');
      problems.push(
        `macro-F1 drops from ${f4(champion.macroF1)} to ` +
          `${f4(challenger.macroF1)} (tolerance ${f4(config.maxMacroF1Drop)})`,
      );
    }
  }
  if (causes.length > 0)
    return { promote: false, reason: problems.join('; '), causes, accuracyGain: gain, macroF1Delta: f1Delta };
  const reason = champion
    ? `challenger accuracy ${pct(challenger.accuracy)} beats champion ${pct(champion.accuracy)} by ${pp(gain)} (min ${pp(config.minGain)}), macro-F1 ${f4(challenger.macroF1)} vs ${f4(champion.macroF1)}, floor ${pct(config.minAccuracy)} cleared`
    : `no champion yet; challenger accuracy ${pct(challenger.accuracy)} clears the floor ${pct(config.minAccuracy)}`;
  return { promote: true, reason, causes, accuracyGain: gain, macroF1Delta: f1Delta };
}
